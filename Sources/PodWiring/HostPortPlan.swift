import CNIProtocol
import NetAddress

/// The hostPorts of one attachment in kernel terms, computed from the runtime's `portMappings`
/// and the pod's addresses before anything is touched: which node ports go to which pod port
/// (the DNAT maps' elements) and which (source, destination) pairs need SNAT so replies come
/// back through the node.
///
/// For pod 10.244.1.2 with `{hostPort: 8080, containerPort: 80}`:
///
///     map hp4any   { tcp . 8080 comment "<cid>/eth0" : 10.244.1.2 . 80 }
///     set hpsnat4  { 10.244.1.2 . 10.244.1.2, 127.0.0.1 . 10.244.1.2 }
///     route_localnet on the host veth
///
/// The hairpin pair lets the pod reach itself through the node's address (the kernel would
/// drop a packet arriving with the pod's own address as source); the localhost pair and
/// route_localnet let the node reach the port on 127.0.0.1, as the reference portmap allows.
/// IPv6 has no route_localnet: `::1` cannot be forwarded, so IPv6 gets only the hairpin pair.
public struct HostPortPlan: Sendable, Equatable {
    public var forwards: [HostPortForward]
    public var snat: [SNATPair]
    /// The elements' comment, as on the masquerade's: "<containerID>/<ifname>".
    public var owner: String

    /// `mappings` forwarded to the pod's first address of each family a mapping covers. A
    /// mapping that covers none of the pod's families (hostIP 0.0.0.0 for an IPv6-only pod)
    /// is refused rather than silently doing nothing.
    public init(mappings: [PortMapping], podAddresses: [IPAddress], owner: String) throws(CNIError) {
        self.owner = owner
        forwards = []
        snat = []
        let v4 = podAddresses.first { $0.family == .v4 }
        let v6 = podAddresses.first { $0.family == .v6 }
        for mapping in mappings {
            let targets = [v4, v6].compactMap { $0 }.filter { mapping.hostAddress.covers($0.family) }
            guard !targets.isEmpty else {
                let families = podAddresses.map { $0.family == .v4 ? "IPv4" : "IPv6" }
                throw CNIError(.invalidNetworkConfig, "hostPort \(mapping.hostText) cannot reach the pod: its hostIP is of a family the pod has no address in",
                               details: families.isEmpty ? "the pod has no address" : "the pod has \(families.joined(separator: " and ")) only")
            }
            for pod in targets {
                var hostAddress: IPAddress?
                if case .address(let address) = mapping.hostAddress { hostAddress = address }
                let forward = HostPortForward(hostAddress: hostAddress, proto: mapping.proto, hostPort: mapping.hostPort,
                                              pod: pod, podPort: mapping.containerPort)
                // `""` and `0.0.0.0` to the same port make the same forward for an IPv4 pod.
                if !forwards.contains(forward) { forwards.append(forward) }
            }
        }
        for pod in [v4, v6].compactMap({ $0 }) where forwards.contains(where: { $0.pod == pod }) {
            snat += SNATPair.pairs(of: pod)
        }
    }

    public var isEmpty: Bool { forwards.isEmpty }

    /// route_localnet on the host veth: only when 127.0.0.1 is forwarded to an IPv4 pod address.
    public var needsRouteLocalnet: Bool { forwards.contains { $0.pod.family == .v4 } }

    /// The pod addresses the hostPorts go to.
    public var podAddresses: [IPAddress] {
        var result: [IPAddress] = []
        for forward in forwards where !result.contains(forward.pod) { result.append(forward.pod) }
        return result
    }
}

/// One node port forwarded to the pod: an element of the DNAT map of its family.
public struct HostPortForward: Sendable, Equatable, CustomStringConvertible {
    /// nil: every local address of the pod's family (the `hp4any` / `hp6any` maps).
    public var hostAddress: IPAddress?
    public var proto: PortMapping.TransportProtocol
    public var hostPort: UInt16
    public var pod: IPAddress
    public var podPort: UInt16

    public init(hostAddress: IPAddress?, proto: PortMapping.TransportProtocol, hostPort: UInt16, pod: IPAddress, podPort: UInt16) {
        self.hostAddress = hostAddress
        self.proto = proto
        self.hostPort = hostPort
        self.pod = pod
        self.podPort = podPort
    }

    public var family: IPFamily { pod.family }

    /// Whether both claim the same node port: the same protocol and port, on the same address
    /// or with either on every address of the family (Kubernetes' rule: 0.0.0.0 conflicts
    /// with any IP).
    public func overlaps(_ other: HostPortForward) -> Bool {
        guard family == other.family, proto == other.proto, hostPort == other.hostPort else { return false }
        guard let mine = hostAddress, let theirs = other.hostAddress else { return true }
        return mine == theirs
    }

    /// `tcp/8080` or `198.51.100.2:tcp/8080`: the node port as a runtime asked for it.
    public var hostPortText: String {
        (hostAddress.map(Self.withPort) ?? "") + "\(proto.rawValue)/\(hostPort)"
    }

    /// `198.51.100.2:tcp/8080 -> 10.244.1.2:80` (`[2001:db8::1]:tcp/8080 -> [fd00:10:244:1::2]:80`),
    /// as errors and CHECK name it.
    public var description: String {
        let host = hostAddress == nil ? (family == .v4 ? "0.0.0.0:" : "[::]:") : ""
        return "\(host)\(hostPortText) -> \(Self.withPort(pod))\(podPort)"
    }

    /// `a.b.c.d:` or `[v6]:`.
    static func withPort(_ address: IPAddress) -> String {
        address.family == .v6 ? "[\(address)]:" : "\(address):"
    }
}

/// Packets from `source` to `destination` after DNAT are masqueraded (the `hpsnat` sets).
public struct SNATPair: Sendable, Equatable {
    public var source: IPAddress
    public var destination: IPAddress

    public init(source: IPAddress, destination: IPAddress) {
        self.source = source
        self.destination = destination
    }

    /// The pairs a pod with hostPorts has: itself to itself (hairpin), and for IPv4 127.0.0.1 to
    /// it (localhost; IPv6 cannot forward ::1). The hairpin pair comes first.
    public static func pairs(of pod: IPAddress) -> [SNATPair] {
        [SNATPair(source: pod, destination: pod)]
            + (pod.family == .v4 ? [SNATPair(source: .v4(IPv4Address(0x7f00_0001)), destination: pod)] : [])
    }
}
