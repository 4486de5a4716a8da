import NetAddress

/// One entry of the `portMappings` capability: a node port forwarded to a port of the pod.
///
/// Runtimes spell the keys differently: containerd (go-cni, no JSON tags) sends `HostPort`,
/// `ContainerPort`, `Protocol`, `HostIP`; CRI-O and podman send `hostPort`... in camelCase. Go's
/// decoder ignores case, so every runtime expects a plugin to: keys are matched without case.
public struct PortMapping: Hashable, Sendable {
    /// Which of the node's addresses the port is opened on.
    public enum HostAddress: Hashable, Sendable {
        /// `hostIP` absent or "": every address of every family the pod has.
        case all
        /// `0.0.0.0` or `::`: every address of that family (as the reference portmap reads them).
        case allOf(IPFamily)
        case address(IPAddress)

        /// Whether the mapping opens the port on addresses of `family`.
        public func covers(_ family: IPFamily) -> Bool {
            switch self {
            case .all: true
            case .allOf(let only): only == family
            case .address(let address): address.family == family
            }
        }

        /// Whether a port on both would be the same element of a map: the same address, or every
        /// address of a family both cover (`""` and `0.0.0.0` for IPv4).
        public func sharesKey(with other: HostAddress) -> Bool {
            switch (self, other) {
            case (.address(let mine), .address(let theirs)): mine == theirs
            case (.address, _), (_, .address): false
            default: [IPFamily.v4, .v6].contains { covers($0) && other.covers($0) }
            }
        }

        public var description: String {
            switch self {
            case .all: "all addresses"
            case .allOf(let family): family == .v4 ? "0.0.0.0" : "::"
            case .address(let address): address.description
            }
        }
    }

    public enum TransportProtocol: String, Hashable, Sendable {
        case tcp, udp, sctp

        /// The IP protocol number (`meta l4proto`).
        public var number: UInt8 {
            switch self {
            case .tcp: 6
            case .udp: 17
            case .sctp: 132
            }
        }

        public init?(number: UInt8) {
            switch number {
            case 6: self = .tcp
            case 17: self = .udp
            case 132: self = .sctp
            default: return nil
            }
        }
    }

    public var hostAddress: HostAddress
    public var proto: TransportProtocol
    public var hostPort: UInt16
    public var containerPort: UInt16

    public init(hostAddress: HostAddress = .all, proto: TransportProtocol, hostPort: UInt16, containerPort: UInt16) {
        self.hostAddress = hostAddress
        self.proto = proto
        self.hostPort = hostPort
        self.containerPort = containerPort
    }

    /// `tcp/8080` or `198.51.100.2:tcp/8080`, as errors name a port.
    public var hostText: String {
        switch hostAddress {
        case .all: "\(proto.rawValue)/\(hostPort)"
        case .allOf(.v6): "[::]:\(proto.rawValue)/\(hostPort)"
        case .address(let address) where address.family == .v6: "[\(address)]:\(proto.rawValue)/\(hostPort)"
        case .allOf, .address: "\(hostAddress.description):\(proto.rawValue)/\(hostPort)"
        }
    }

    /// `runtimeConfig.portMappings`, each entry checked; repeated entries are kept once, and one
    /// host port mapped to two container ports is refused, however its hostIP is spelled (`""`
    /// and `0.0.0.0` are the same port for an IPv4 pod). Every error is code 7 and names the
    /// entry.
    public static func parseList(_ value: JSONValue) throws(CNIError) -> [PortMapping] {
        guard case .array(let entries) = value else {
            throw CNIError(.invalidNetworkConfig, "invalid runtimeConfig.portMappings: expected a list",
                           details: "e.g. [{\"hostPort\": 8080, \"containerPort\": 80, \"protocol\": \"tcp\"}]")
        }
        var mappings: [PortMapping] = []
        for (index, entry) in entries.enumerated() {
            let mapping = try parse(entry, index: index)
            if let other = mappings.first(where: {
                $0.hostAddress.sharesKey(with: mapping.hostAddress) && $0.proto == mapping.proto && $0.hostPort == mapping.hostPort
            }) {
                if other.containerPort == mapping.containerPort && other.hostAddress == mapping.hostAddress { continue }
                if other.containerPort == mapping.containerPort { mappings.append(mapping); continue } // the plan keeps one forward
                throw CNIError(.invalidNetworkConfig,
                               "runtimeConfig.portMappings maps host port \(mapping.hostText) twice, to container ports \(other.containerPort) and \(mapping.containerPort)")
            }
            mappings.append(mapping)
        }
        return mappings
    }

    static func parse(_ entry: JSONValue, index: Int) throws(CNIError) -> PortMapping {
        guard case .object(let object) = entry else {
            throw CNIError(.invalidNetworkConfig, "invalid runtimeConfig.portMappings entry \(index): expected an object")
        }
        // Each field looked up without regard to case. Two spellings of one field would be read
        // in the object's order, which changes from one process to the next: ADD and DEL could
        // disagree on the port. (No Dictionary of lowercased keys: a new generic type per ADD.)
        func field(_ name: String) throws(CNIError) -> JSONValue? {
            var found: (key: String, value: JSONValue)?
            for (key, value) in object where key.count == name.count && key.lowercased() == name {
                if let found {
                    throw CNIError(.invalidNetworkConfig, "invalid runtimeConfig.portMappings entry \(index): \"\(found.key)\" and \"\(key)\" are the same field",
                                   details: "the entry is \(String(decoding: JSONWriter.write(entry), as: UTF8.self))")
                }
                found = (key, value)
            }
            return found?.value
        }
        func port(_ key: String, _ name: String) throws(CNIError) -> UInt16 {
            guard case .number(let number)? = try field(key), number.rounded() == number, number >= 1, number <= 65535 else {
                throw CNIError(.invalidNetworkConfig, "invalid runtimeConfig.portMappings entry \(index): \"\(name)\" must be a port number from 1 to 65535",
                               details: "the entry is \(String(decoding: JSONWriter.write(entry), as: UTF8.self))")
            }
            return UInt16(number)
        }
        let hostPort = try port("hostport", "hostPort")
        let containerPort = try port("containerport", "containerPort")

        let proto: TransportProtocol
        switch try field("protocol") {
        case nil, .null?, .string("")?:
            proto = .tcp // Kubernetes' default
        case .string(let text)?:
            guard let known = TransportProtocol(rawValue: text.lowercased()) else {
                throw CNIError(.invalidNetworkConfig, "invalid runtimeConfig.portMappings entry \(index): unknown protocol \"\(text)\"",
                               details: "protocol is tcp, udp or sctp")
            }
            proto = known
        default:
            throw CNIError(.invalidNetworkConfig, "invalid runtimeConfig.portMappings entry \(index): \"protocol\" must be a string")
        }

        let hostAddress: HostAddress
        switch try field("hostip") {
        case nil, .null?, .string("")?:
            hostAddress = .all
        case .string(let text)?:
            guard let address = IPAddress(text) else {
                throw CNIError(.invalidNetworkConfig, "invalid runtimeConfig.portMappings entry \(index): hostIP \"\(text)\" is not an IP address")
            }
            hostAddress = address.isUnspecified ? .allOf(address.family) : .address(address)
        default:
            throw CNIError(.invalidNetworkConfig, "invalid runtimeConfig.portMappings entry \(index): \"hostIP\" must be a string")
        }
        return PortMapping(hostAddress: hostAddress, proto: proto, hostPort: hostPort, containerPort: containerPort)
    }
}
