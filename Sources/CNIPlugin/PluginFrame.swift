import CNIProtocol

/// What one invocation prints on stdout and exits with.
public struct PluginOutcome: Sendable {
    public var stdout: [UInt8]
    public var exitCode: Int32

    public init(stdout: [UInt8], exitCode: Int32) {
        self.stdout = stdout
        self.exitCode = exitCode
    }
}

/// What every podwire plugin binary shares between its environment and its one stdout document.
public enum PluginFrame {
    public static let version = "0.1.0"

    public static var supportedVersionsText: String {
        CNIVersion.supported.map(\.description).joined(separator: ", ")
    }

    /// The frame every podwire executable shares: VERSION, environment and config checks, and
    /// turning any failure into the one error document.
    ///
    /// `observe` hears how a call whose environment and config could be read ended (nil: it
    /// succeeded); VERSION, and calls refused before the config was read, are not observed.
    public static func respond(variable: (String) -> String?, stdin: [UInt8],
                               observe: (CNIEnvironment, NetworkConfig, CNIError?) -> Void = { _, _, _ in },
                               _ body: (CNIEnvironment, NetworkConfig) throws(CNIError) -> [UInt8]) -> PluginOutcome {
        if variable("CNI_COMMAND") == CNICommand.version.rawValue {
            return PluginOutcome(stdout: CNIJSON.encode(VersionReport(requested: stdin)), exitCode: 0)
        }
        var replyVersion = CNIVersion.current
        var parsed: (CNIEnvironment, NetworkConfig)?
        do {
            let environment = try CNIEnvironment.parse(variable)
            let config = try NetworkConfig.parse(stdin)
            parsed = (environment, config)
            replyVersion = config.cniVersion
            for warning in config.warnings { PluginProcess.writeAll(2, Array((warning + "\n").utf8)) }
            let output = try body(environment, config)
            observe(environment, config, nil)
            return PluginOutcome(stdout: output, exitCode: 0)
        } catch {
            if let (environment, config) = parsed { observe(environment, config, error) }
            return PluginOutcome(stdout: CNIJSON.encode(ErrorDocument(error, version: replyVersion)), exitCode: 1)
        }
    }

    public static func requireCheckable(_ config: NetworkConfig) throws(CNIError) {
        guard config.cniVersion.allowsCheck else {
            throw CNIError(.incompatibleVersion, "config version \(config.cniVersion) does not allow CHECK",
                           details: "CHECK exists from CNI 0.4.0 on")
        }
    }

    public static func requireStatusAndGC(_ config: NetworkConfig, _ command: CNICommand) throws(CNIError) {
        guard config.cniVersion.allowsStatusAndGC else {
            throw CNIError(.incompatibleVersion, "config version \(config.cniVersion) does not allow \(command.rawValue)",
                           details: "\(command.rawValue) exists from CNI 1.1.0 on; set cniVersion to 1.1.0")
        }
    }
}
