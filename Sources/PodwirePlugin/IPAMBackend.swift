import CNIProtocol
import NetAddress
import PodIPAM

/// Where a network's addresses come from: podwire's own IPAM in this process, or any IPAM
/// plugin exec'd from CNI_PATH (host-local, dhcp, ...).
enum IPAMBackend {
    /// The ipam.type served in-process, without an exec.
    static let builtInType = "podwire-ipam"

    case builtIn(PodIPAM)
    case delegated(DelegatedPlugin, config: NetworkConfig)

    init(config: NetworkConfig, environment: CNIEnvironment) throws(CNIError) {
        guard let type = config.ipamType else {
            throw CNIError(.invalidNetworkConfig, "missing \"ipam\" section",
                           details: "podwire needs an IPAM: set ipam.type to \"\(Self.builtInType)\" or an IPAM plugin on CNI_PATH")
        }
        if type == Self.builtInType {
            self = .builtIn(PodIPAM(config: try IPAMConfig.parse(config, environment: environment), network: config.name))
        } else {
            self = .delegated(try DelegatedPlugin(type: type, searchPath: environment.path), config: config)
        }
    }

    /// The subnets of podwire-ipam's ranges (exempt from the masquerade); a delegated IPAM's are unknown.
    var rangeSubnets: [IPNetwork] {
        guard case .builtIn(let own) = self else { return [] }
        return own.config.rangeSets.flatMap { $0.map(\.subnet) }
    }

    func add(containerID: String, ifname: String) throws(CNIError) -> CNIResult {
        switch self {
        case .builtIn(let ipam):
            return try ipam.add(containerID: containerID, ifname: ifname)
        case .delegated(let plugin, let config):
            let output = try plugin.run(.add, stdin: config.raw)
            return try CNIResult.decode(output, defaultVersion: config.cniVersion)
        }
    }

    func del(containerID: String, ifname: String) throws(CNIError) {
        switch self {
        case .builtIn(let ipam):
            try ipam.del(containerID: containerID, ifname: ifname)
        case .delegated(let plugin, let config):
            _ = try plugin.run(.del, stdin: config.raw)
        }
    }

    func check(containerID: String, ifname: String, expected: [IPAddress]) throws(CNIError) {
        switch self {
        case .builtIn(let ipam):
            try ipam.check(containerID: containerID, ifname: ifname, expected: expected)
        case .delegated(let plugin, let config):
            _ = try plugin.run(.check, stdin: config.raw)
        }
    }

    func status() throws(CNIError) {
        switch self {
        case .builtIn(let ipam):
            try ipam.status()
        case .delegated(let plugin, let config):
            _ = try plugin.run(.status, stdin: config.raw)
        }
    }

    func gc(validAttachments: [NetworkConfig.Attachment]) throws(CNIError) {
        switch self {
        case .builtIn(let ipam):
            try ipam.gc(validAttachments: validAttachments.map { ($0.containerID, $0.ifname) })
        case .delegated(let plugin, let config):
            _ = try plugin.run(.gc, stdin: config.raw)
        }
    }
}
