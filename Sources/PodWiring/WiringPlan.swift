import CNIProtocol
import NetAddress

/// Everything one attachment puts in the kernel, computed once from the config, the CNI
/// environment and the IPAM answer, before (or without) touching the kernel: ADD applies it and
/// CHECK compares the live state with it. DEL and GC, which have no IPAM answer, find what ADD
/// made by the pair's derived names and `HostVethOwner`, and the addresses in the IPAM store.
///
/// For a pod given 10.244.1.2/24 with gateway 10.244.1.1 (the seed article's pod):
///
///     pod:  eth0 10.244.1.2/24 noprefixroute
///           10.244.1.1 dev eth0 scope link src 10.244.1.2
///           default via 10.244.1.1 dev eth0                (the IPAM's routes)
///           10.244.1.0/24 via 10.244.1.1 dev eth0 src 10.244.1.2
///     node: vethXXXXXXXX 10.244.1.1/32 (the same gateway on every host veth)
///           10.244.1.2 dev vethXXXXXXXX scope host
///
/// The pod sends everything, neighbours included, to its gateway, and the node reaches each pod
/// by its own /32 (/128) route: no bridge, no subnet route on the node.
public struct WiringPlan: Sendable, Equatable {
    public var pair: VethPair
    public var addresses: [PodAddress]
    /// In the order ADD sends them; each exclusive unless its mode says otherwise.
    public var podRoutes: [PlannedRoute]
    /// The gateway addresses on the host end.
    public var hostAddresses: [IPNetwork]
    public var hostRoutes: [PlannedRoute]
    /// The host end's per-interface IPv6 switch, written while it is down.
    public var hostSysctl: PlannedSysctl
    /// The node-wide forwarding switches the pod's traffic needs.
    public var forwarding: IPFamilies
    /// nil without `ipMasq`.
    public var masquerade: MasqueradePlan?

    /// One pod address and the gateway its traffic goes through, as the result lists it. The
    /// gateway is nil only in a plan made for CHECK from a prevResult that had none (ADD refuses
    /// such an IPAM answer).
    public typealias PodAddress = CNIIPConfig

    /// ADD's plan: the IPAM answer checked (every address needs a gateway of its family, other
    /// than itself), then the addresses, routes and switches on both sides.
    /// `ipamSubnets` are the IPAM's range subnets, exempt from the masquerade with the pod's own.
    public init(pair: VethPair, ipam result: CNIResult, config: NetworkConfig, ipamSubnets: [IPNetwork]) throws(CNIError) {
        guard !result.ips.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "IPAM returned no IP address", details: "check the ipam ranges of network \(config.name)")
        }
        var addresses: [PodAddress] = []
        for ip in result.ips {
            guard let gateway = ip.gateway, gateway.family == ip.address.family else {
                throw CNIError(.invalidNetworkConfig, "IPAM returned \(ip.address) without a gateway",
                               details: "podwire routes pod traffic through the gateway; give the range a gateway")
            }
            guard gateway != ip.address.address else {
                throw CNIError(.invalidNetworkConfig, "IPAM returned the gateway \(gateway) as the pod's address")
            }
            addresses.append(PodAddress(address: ip.address, gateway: gateway))
        }
        self.init(pair: pair, addresses: addresses, routes: result.routes)
        if config.ipMasq {
            masquerade = MasqueradePlan(addresses: addresses.map(\.address.address), owner: pair.owner,
                                        exempt: try config.requireNonMasqueradeCIDRs() + MasqueradePlan.linkLocal(config)
                                            + addresses.map(\.address.masked) + ipamSubnets)
        }
    }

    /// CHECK's plan: what ADD made for the addresses and routes a prevResult lists.
    public init(pair: VethPair, checking addresses: [PodAddress], routes: [CNIRoute], config: NetworkConfig) {
        self.init(pair: pair, addresses: addresses, routes: routes)
        if config.ipMasq {
            masquerade = MasqueradePlan(addresses: addresses.map(\.address.address), owner: pair.owner, exempt: [])
        }
    }

    init(pair: VethPair, addresses: [PodAddress], routes: [CNIRoute]) {
        self.pair = pair
        self.addresses = addresses
        podRoutes = []
        for entry in addresses {
            guard let gateway = entry.gateway else { continue }
            podRoutes.append(PlannedRoute(role: .gateway, IPRoute(destination: .host(gateway), source: entry.address.address, scope: .link)))
        }
        for route in routes {
            // A route of a family the pod has no address in has no gateway to go through.
            guard let gateway = route.gw ?? addresses.first(where: { $0.address.family == route.dst.family })?.gateway else { continue }
            podRoutes.append(PlannedRoute(role: .ipam, IPRoute(destination: route.dst, gateway: gateway,
                                                               scope: IPRoute.Scope(rawValue: UInt8(clamping: route.scope ?? 0)) ?? .universe,
                                                               priority: route.priority.map { UInt32(clamping: $0) },
                                                               table: route.table.map { UInt32(clamping: $0) }), mode: .create))
        }
        for entry in addresses {
            guard let gateway = entry.gateway else { continue }
            podRoutes.append(PlannedRoute(role: .subnet, IPRoute(destination: entry.address.masked, gateway: gateway, source: entry.address.address)))
        }
        hostAddresses = addresses.compactMap { $0.gateway.map(IPNetwork.host) }
        // Replaced, not added: a route left on another veth for this address would otherwise
        // keep the new pod unreachable.
        hostRoutes = addresses.map { PlannedRoute(role: .host, IPRoute(destination: .host($0.address.address), scope: .host), mode: .replace) }
        forwarding = []
        for entry in addresses { forwarding.insert(entry.address.family == .v4 ? .v4 : .v6) }
        // With IPv6, the node can solicit a pod's MAC only from a link-local that passed DAD, so
        // DAD is skipped on the host end rather than waited for (addresses come from IPAM, unique).
        // Without, IPv6 is switched off there: every host veth would otherwise carry a link-local
        // address and its routes, and the kernel walks all the node's IPv6 routes on each link
        // event, so a veth's creation would grow with the number of pods.
        hostSysctl = forwarding.contains(.v6)
            ? PlannedSysctl(name: "net/ipv6/conf/\(pair.hostName)/accept_dad", value: "0", purpose: "disable DAD on \(pair.hostName)",
                            ifMissing: .fail, onlyIfDifferent: true)
            : PlannedSysctl(name: "net/ipv6/conf/\(pair.hostName)/disable_ipv6", value: "1", purpose: "switch IPv6 off on \(pair.hostName)",
                            ifMissing: .skip, onlyIfDifferent: false)
        masquerade = nil
    }

    /// The pod routes ADD made for `address`, by role (the gateway's link route, the subnet via it).
    public func podRoute(_ role: PlannedRoute.Role, for address: PodAddress) -> PlannedRoute? {
        guard let gateway = address.gateway else { return nil }
        switch role {
        case .gateway: return podRoutes.first { $0.role == .gateway && $0.destination == .host(gateway) && $0.source == address.address.address }
        case .subnet: return podRoutes.first { $0.role == .subnet && $0.destination == address.address.masked && $0.gateway == gateway }
        case .ipam, .host: return nil
        }
    }

    /// The result ADD prints: both ends of the pair, the addresses on the pod's end.
    public func result(from allocation: CNIResult, dns: CNIDNS?) -> CNIResult {
        var result = allocation
        result.interfaces = [
            CNIInterface(name: pair.hostName, mac: formatMAC(pair.hostMAC), mtu: pair.mtu),
            CNIInterface(name: pair.podName, mac: formatMAC(pair.podMAC), mtu: pair.mtu, sandbox: pair.netns),
        ]
        result.ips = result.ips.map { CNIIPConfig(address: $0.address, gateway: $0.gateway, interface: 1) }
        if let dns, dns.isSet { result.dns = dns }
        return result
    }
}

/// The veth pair of one attachment: what ADD creates before it asks IPAM for an address (a
/// second ADD of a live attachment then fails on the names, without touching IPAM), and all
/// DEL needs to find it again.
public struct VethPair: Sendable, Equatable {
    public var hostName: String
    public var hostMAC: [UInt8]
    /// The alias on the host end, naming the attachment (see `HostVethOwner`).
    public var alias: String
    public var podName: String
    public var podMAC: [UInt8]
    public var netns: String
    public var mtu: Int
    /// "<containerID>/<ifname>": the comment on the attachment's nftables elements.
    public var owner: String

    public init(network: String, containerID: String, ifname: String, netns: String, podMAC: [UInt8], mtu: Int) {
        let host = HostVeth(containerID: containerID, ifname: ifname)
        hostName = host.name
        hostMAC = host.mac
        alias = HostVeth.alias(network: network, containerID: containerID, ifname: ifname)
        podName = ifname
        self.podMAC = podMAC
        self.netns = netns
        self.mtu = mtu
        owner = Self.owner(containerID: containerID, ifname: ifname)
    }

    /// The comment on an attachment's nftables elements, so GC and people can tell whose they are.
    public static func owner(containerID: String, ifname: String) -> String { "\(containerID)/\(ifname)" }
}

/// A route without its link, which the kernel numbers only when the pair exists.
@dynamicMemberLookup
public struct PlannedRoute: Sendable, Equatable, CustomStringConvertible {
    public enum Role: Sendable, Equatable {
        /// The pod's `gw dev eth0 scope link`: how it reaches its gateway with no subnet route.
        case gateway
        /// A route the IPAM handed out, via the gateway.
        case ipam
        /// The pod's own subnet, via the gateway too.
        case subnet
        /// The node's /32 (/128) route to the pod.
        case host
    }

    public enum Mode: Sendable, Equatable {
        /// `ip route add`: fails when the route is there.
        case exclusive
        /// Created, an identical route accepted silently (IPAM routes may repeat).
        case create
        /// `ip route replace`.
        case replace
    }

    public var role: Role
    public var route: IPRoute
    public var mode: Mode

    public init(role: Role, _ route: IPRoute, mode: Mode = .exclusive) {
        self.role = role
        self.route = route
        self.mode = mode
    }

    public subscript<Value>(dynamicMember field: KeyPath<IPRoute, Value>) -> Value { route[keyPath: field] }

    public var description: String { route.description }
}

/// A set of address families (an option set: no array type for the runtime to build per ADD).
public struct IPFamilies: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let v4 = IPFamilies(rawValue: 1)
    public static let v6 = IPFamilies(rawValue: 2)
}

/// A /proc/sys switch of one interface.
public struct PlannedSysctl: Sendable, Equatable {
    public enum IfMissing: Sendable, Equatable {
        case fail
        /// The kernel has no such switch (no IPv6 in it): nothing to switch off.
        case skip
    }

    /// Relative to /proc/sys.
    public var name: String
    public var value: String
    /// What it is for, as a failure names it ("disable DAD on vethab12cd34").
    public var purpose: String
    public var ifMissing: IfMissing
    /// Read first and written only if different; otherwise written blind (a fresh interface
    /// holds the default).
    public var onlyIfDifferent: Bool
}

/// `ipMasq`: the pod's addresses masqueraded towards anything but the exempt destinations.
public struct MasqueradePlan: Sendable, Equatable {
    public var addresses: [IPAddress]
    /// The elements' comment.
    public var owner: String
    /// `nonMasqueradeCIDRs` (the cluster's pod CIDR, say, as ip-masq-agent exempts it), the
    /// link-local ranges unless `masqLinkLocal` / `masqLinkLocalIPv6`, each pod's own subnet
    /// (what ptp exempts) and every IPAM range subnet of the network.
    public var exempt: [IPNetwork]

    /// 169.254.0.0/16 and fe80::/10 unless the config asks for them to be masqueraded, as
    /// ip-masq-agent does: link-local destinations (a cloud's metadata service) see the pod itself.
    static func linkLocal(_ config: NetworkConfig) -> [IPNetwork] {
        var ranges: [IPNetwork] = []
        // Built from their bits, not parsed from text on every ADD.
        if !config.masqLinkLocal { ranges.append(IPNetwork(address: .v4(IPv4Address(0xa9fe_0000)), prefixLength: 16)!) }
        if !config.masqLinkLocalIPv6 { ranges.append(IPNetwork(address: .v6(IPv6Address(high: 0xfe80_0000_0000_0000, low: 0)), prefixLength: 10)!) }
        return ranges
    }
}
