import CallLog
import CNIPlugin
import CNIProtocol

/// The podwire CNI plugin: one invocation, from environment and stdin to one stdout document.
public enum Podwire {
    /// The whole process: the call, its document on stdout, then its line in the call log (when
    /// the config names one).
    public static func main() -> Never {
        let timer = CallTimer()
        var ended: EndedCall?
        PluginProcess.main(name: "podwire", handler: { variable, stdin in
            run(variable: variable, stdin: stdin, timer: timer) { ended = $0 }
        }, afterOutput: {
            timer.lap(.output)
            ended?.log(timer)
        })
    }

    /// `variable` reads one environment variable (`getenv`); nil when it is unset. `ended` hears
    /// how a call whose environment and config could be read ended.
    public static func run(variable: (String) -> String?, stdin: [UInt8], timer: CallTimer = CallTimer(),
                           ended: (EndedCall) -> Void = { _ in }) -> PluginOutcome {
        var addresses: [CNIIPConfig]? = nil
        return PluginFrame.respond(variable: variable, stdin: stdin, observe: { environment, config, error in
            // Up to here: encoding ADD's result, or what a failed call did since its last phase.
            timer.lap(.work)
            ended(EndedCall(environment: environment, config: config, addresses: addresses, error: error))
        }) { (environment, config) throws(CNIError) -> [UInt8] in
            timer.lap(.config)
            switch environment.command {
            case .add:
                let result = try AddCommand(environment: environment, config: config, timer: timer).run()
                addresses = result.ips
                return try result.encoded(as: config.cniVersion)
            case .del:
                try DelCommand(environment: environment, config: config, timer: timer).run()
            case .check:
                try PluginFrame.requireCheckable(config)
                try CheckCommand(environment: environment, config: config).run()
            case .status:
                try PluginFrame.requireStatusAndGC(config, environment.command)
                try IPAMBackend(config: config, environment: environment).status()
            case .gc:
                try PluginFrame.requireStatusAndGC(config, environment.command)
                try GarbageCollector(config: config, ipam: IPAMBackend(config: config, environment: environment)).run()
            case .version:
                break
            }
            timer.lap(.work)
            return []
        }
    }
}

/// A call as the call log records it, kept from its end until its document is out.
public struct EndedCall {
    public var environment: CNIEnvironment
    public var config: NetworkConfig
    /// ADD's result's addresses; nil for the other verbs. Written as text only for the log.
    public var addresses: [CNIIPConfig]?
    public var error: CNIError?

    /// Appends the call's line to the config's `callLog`, if any. A log that cannot be written
    /// is said on stderr; the call has succeeded or failed already, and stays so.
    func log(_ timer: CallTimer) {
        guard let path = config.callLog else { return }
        let record = CallRecord(command: environment.command.rawValue, network: config.name, containerID: environment.containerID,
                                ifname: environment.ifname, ips: addresses?.map(\.address.description), error: error.map { ($0.code.rawValue, $0.message) }, timer: timer)
        do {
            try CallLogFile(path: path, maxBytes: config.callLogMaxBytes ?? CallLogFile.defaultMaxBytes).append(record.line())
        } catch {
            PluginProcess.warn("podwire: could not write the call log: \(error)")
        }
    }
}
