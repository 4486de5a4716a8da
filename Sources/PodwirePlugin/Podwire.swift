import CNIPlugin
import CNIProtocol

/// The podwire CNI plugin: one invocation, from environment and stdin to one stdout document.
public enum Podwire {
    /// `variable` reads one environment variable (`getenv`); nil when it is unset.
    public static func run(variable: (String) -> String?, stdin: [UInt8]) -> PluginOutcome {
        PluginFrame.respond(variable: variable, stdin: stdin) { (environment, config) throws(CNIError) -> [UInt8] in
            switch environment.command {
            case .add:
                return try AddCommand(environment: environment, config: config).run().encoded(as: config.cniVersion)
            case .del:
                try DelCommand(environment: environment, config: config).run()
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
            return []
        }
    }
}
