import CNIProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What one invocation prints on stdout and exits with.
public struct PluginOutcome: Sendable {
    public var stdout: [UInt8]
    public var exitCode: Int32
}

/// The podwire CNI plugin: one invocation, from environment and stdin to one stdout document.
public enum Podwire {
    public static let version = "0.1.0"

    public static var supportedVersionsText: String {
        CNIVersion.supported.map(\.description).joined(separator: ", ")
    }

    public static func run(environment variables: [String: String], stdin: [UInt8]) -> PluginOutcome {
        var replyVersion = CNIVersion.current
        do {
            if variables["CNI_COMMAND"] == CNICommand.version.rawValue {
                return PluginOutcome(stdout: CNIJSON.encode(VersionReport(requested: stdin)), exitCode: 0)
            }
            let environment = try CNIEnvironment.parse(variables)
            let config = try NetworkConfig.parse(stdin)
            replyVersion = config.cniVersion
            let output: [UInt8]
            switch environment.command {
            case .add:
                output = try AddCommand(environment: environment, config: config).run().encoded(as: config.cniVersion)
            case .del:
                try DelCommand(environment: environment, config: config).run()
                output = []
            case .check:
                try CheckCommand(environment: environment, config: config).run()
                output = []
            case .status, .gc:
                guard config.cniVersion.allowsStatusAndGC else {
                    throw CNIError(.incompatibleVersion, "config version \(config.cniVersion) does not allow \(environment.command.rawValue)",
                                   details: "\(environment.command.rawValue) exists from CNI 1.1.0 on; set cniVersion to 1.1.0")
                }
                throw CNIError(.invalidEnvironment, "\(environment.command.rawValue) is not implemented yet")
            case .version:
                output = CNIJSON.encode(VersionReport(requested: stdin))
            }
            return PluginOutcome(stdout: output, exitCode: 0)
        } catch let error as CNIError {
            return PluginOutcome(stdout: CNIJSON.encode(ErrorDocument(error, version: replyVersion)), exitCode: 1)
        } catch {
            let unexpected = CNIError(.ioFailure, "unexpected failure", details: String(describing: error))
            return PluginOutcome(stdout: CNIJSON.encode(ErrorDocument(unexpected, version: replyVersion)), exitCode: 1)
        }
    }
}
