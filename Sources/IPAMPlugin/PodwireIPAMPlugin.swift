import CNIPlugin
import CNIProtocol
import PodIPAM

/// podwire's IPAM as an ordinary CNI IPAM plugin (`podwire-ipam` on CNI_PATH), for other main
/// plugins (ptp, bridge, ...) to delegate to. Its result is the abbreviated IPAM result: addresses,
/// routes and DNS, no interfaces.
public enum PodwireIPAMPlugin {
    public static func run(variable: (String) -> String?, stdin: [UInt8]) -> PluginOutcome {
        PluginFrame.respond(variable: variable, stdin: stdin) { (environment, config) throws(CNIError) -> [UInt8] in
            let ipam = PodIPAM(config: try IPAMConfig.parse(config, environment: environment), network: config.name)
            switch environment.command {
            case .add:
                return try ipam.add(containerID: environment.containerID, ifname: environment.ifname).encoded(as: config.cniVersion)
            case .del:
                try ipam.del(containerID: environment.containerID, ifname: environment.ifname)
            case .check:
                try PluginFrame.requireCheckable(config)
                // Without it every reservation would be reported as "not in the result", which
                // blames the store for what is a malformed request.
                guard let previous = config.prevResult, previous != .null else {
                    throw CNIError(.invalidNetworkConfig, "required prevResult missing",
                                   details: "CHECK compares the reservations with the ADD result in prevResult")
                }
                let expected = try CNIResult.decode(previous, defaultVersion: config.cniVersion).ips.map(\.address.address)
                try ipam.check(containerID: environment.containerID, ifname: environment.ifname, expected: expected)
            case .status:
                try PluginFrame.requireStatusAndGC(config, environment.command)
                try ipam.status()
            case .gc:
                try PluginFrame.requireStatusAndGC(config, environment.command)
                try ipam.gc(validAttachments: try config.requireValidAttachments().map { ($0.containerID, $0.ifname) })
            case .version:
                break
            }
            return []
        }
    }
}
