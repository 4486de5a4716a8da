import CLinuxShim
import CNIProtocol
import NetAddress
import Netfilter
import Netlink
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// ADD: an address from IPAM, a veth pair with its pod end born in the pod's namespace, the
/// pod's routes through the gateway, and the node's /32 (/128) host route to the pod.
///
/// Kernel state on both sides, for a pod given 10.244.1.2/24 with gateway 10.244.1.1:
///   pod:  eth0 10.244.1.2/24; default via 10.244.1.1; 10.244.1.0/24 via 10.244.1.1 src 10.244.1.2;
///         10.244.1.1 dev eth0 scope link src 10.244.1.2
///   node: vethXXXXXXXX 10.244.1.1/32 (the same gateway on every host veth);
///         10.244.1.2 dev vethXXXXXXXX scope host
/// With `ipMasq`, the pod's addresses join the network's masquerade sets (see `Masquerade`).
/// Anything that fails undoes everything done before it, IPAM reservation included.
struct AddCommand {
    let environment: CNIEnvironment
    let config: NetworkConfig

    func run() throws(CNIError) -> CNIResult {
        // The pod's socket is made on a thread of its own (it must enter the pod's namespace);
        // it is started first and waited for last, so the config checks and the host socket run
        // meanwhile. A config error is still reported before a namespace error.
        let podNamespaceOrError = Result { () throws(CNIError) in try openPodNamespace(environment.netns) }
        let pendingPodSocket = podNamespaceOrError.map { try? PendingRouteSocket(in: $0) }
        let ipam = try IPAMBackend(config: config, environment: environment)
        let masquerade = try Masquerade(config)
        let podNamespace = try podNamespaceOrError.get()
        let hostSocket = try kernel("open a netlink socket") { () throws(KernelError) in try RouteSocket() }
        let podSocket = try kernel("open a netlink socket in \(environment.netns)") { () throws(KernelError) in
            if case .success(let pending?) = pendingPodSocket { return try RouteSocket(opening: pending) }
            return try RouteSocket(in: podNamespace)
        }

        // The pair is created before IPAM is asked: a second ADD of a live attachment finds its
        // interface names taken and fails here without touching IPAM, which would hand that
        // attachment its own address again (and release it on the way out).
        let mtu = try resolveMTU(hostSocket)
        let hostVeth = HostVeth(containerID: environment.containerID, ifname: environment.ifname)
        let hostName = hostVeth.name, hostMAC = hostVeth.mac, podMAC = randomMAC()
        let alias = HostVeth.alias(network: config.name, containerID: environment.containerID, ifname: environment.ifname)
        let indexes = try createVethPair(hostSocket, podSocket: podSocket, hostName: hostName, alias: alias, hostMAC: hostMAC,
                                         podMAC: podMAC, mtu: mtu)
        var rollback = Rollback()
        rollback.add { _ = try? hostSocket.deleteLink(named: hostName) }
        do throws(CNIError) {
            var allocation = try ipam.add(containerID: environment.containerID, ifname: environment.ifname)
            // Released only after the pair is gone: an address must not be handed out again
            // while a route to it still points at this pod's veth.
            rollback.addRunningLast { try? ipam.del(containerID: environment.containerID, ifname: environment.ifname) }
            let addresses = try validatedAddresses(allocation)
            try enableForwarding(for: addresses, hostSocket)
            try prepareHostEnd(hostName, addresses: addresses)

            var podIndex = indexes?.local ?? 0, hostIndex = indexes?.peer ?? 0
            if indexes == nil {
                podIndex = try lookUpIndex(podSocket, environment.ifname, in: environment.netns)
                hostIndex = try lookUpIndex(hostSocket, hostName, in: nil)
            }
            try configurePodSide(podSocket, podIndex: podIndex, addresses: addresses, routes: allocation.routes)
            try configureHostSide(hostSocket, hostName: hostName, hostIndex: hostIndex, alias: alias, addresses: addresses)
            if masquerade.enabled {
                let podAddresses = addresses.map(\.address.address)
                try masquerade.install(addresses: podAddresses, subnets: addresses.map(\.address.masked), ipam: ipam,
                                       containerID: environment.containerID, ifname: environment.ifname)
                rollback.add { _ = try? masquerade.table.remove(podAddresses) }
            }

            allocation.interfaces = [
                CNIInterface(name: hostName, mac: formatMAC(hostMAC), mtu: mtu),
                CNIInterface(name: environment.ifname, mac: formatMAC(podMAC), mtu: mtu, sandbox: environment.netns),
            ]
            allocation.ips = allocation.ips.map { CNIIPConfig(address: $0.address, gateway: $0.gateway, interface: 1) }
            if let dns = config.dns, dns.isSet { allocation.dns = dns }
            rollback.discard()
            return allocation
        } catch {
            rollback.run()
            throw error
        }
    }

    /// Each allocated address with its gateway; the design routes everything through the gateway,
    /// so an IPAM result without one cannot be wired.
    func validatedAddresses(_ result: CNIResult) throws(CNIError) -> [(address: IPNetwork, gateway: IPAddress)] {
        guard !result.ips.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "IPAM returned no IP address", details: "check the ipam ranges of network \(config.name)")
        }
        var addresses: [(address: IPNetwork, gateway: IPAddress)] = []
        for ip in result.ips {
            guard let gateway = ip.gateway, gateway.family == ip.address.family else {
                throw CNIError(.invalidNetworkConfig, "IPAM returned \(ip.address) without a gateway",
                               details: "podwire routes pod traffic through the gateway; give the range a gateway")
            }
            guard gateway != ip.address.address else {
                throw CNIError(.invalidNetworkConfig, "IPAM returned the gateway \(gateway) as the pod's address")
            }
            addresses.append((ip.address, gateway))
        }
        return addresses
    }

    /// The configured MTU; else the MTU of the link carrying the node's default route, else 1500.
    func resolveMTU(_ hostSocket: RouteSocket) throws(CNIError) -> Int {
        if let mtu = config.mtu { return mtu }
        if let mtu = try? hostSocket.defaultRouteLinkMTU() { return mtu }
        return 1500
    }

    /// Switches the node's forwarding on where it is off. The kernel is asked first over netlink
    /// (no /proc/sys walk); only a node with forwarding off, or a kernel that does not say, gets
    /// the serialized check and write.
    func enableForwarding(for addresses: [(address: IPNetwork, gateway: IPAddress)], _ socket: RouteSocket) throws(CNIError) {
        if addresses.contains(where: { $0.address.family == .v4 }), (try? socket.allForwarding(family: .v4)) != true {
            try kernel("enable IPv4 forwarding") { () throws(KernelError) in try Sysctl.ensureSerialized("net/ipv4/ip_forward", is: "1") }
        }
        if addresses.contains(where: { $0.address.family == .v6 }), (try? socket.allForwarding(family: .v6)) != true {
            try kernel("enable IPv6 forwarding") { () throws(KernelError) in
                try Sysctl.ensureSerialized("net/ipv6/conf/all/forwarding", is: "1")
            }
        }
    }

    /// Sent on the pod's socket, so the pod end is born in the pod and the host end (the peer) in
    /// podwire's own namespace. Returns both ends' indexes when the kernel told them (see
    /// `RouteSocket.addVethPair`).
    func createVethPair(_ hostSocket: RouteSocket, podSocket: RouteSocket, hostName: String, alias: String, hostMAC: [UInt8],
                        podMAC: [UInt8], mtu: Int) throws(CNIError) -> RouteSocket.VethIndexes? {
        func create() throws(KernelError) -> RouteSocket.VethIndexes? {
            try podSocket.addVethPair(name: environment.ifname, mac: podMAC, peerName: hostName, peerMAC: hostMAC,
                                      peerNamespacePID: getpid(), mtu: mtu)
        }
        do {
            return try create()
        } catch let error where error.isExists {
            // Either end's name may be taken. The pod's: a live attachment, or someone else's
            // interface; refused, nothing touched. A host end left by an earlier ADD of this very
            // attachment (a runtime that retried without DEL) is replaced; anything else is refused.
            let ifname = environment.ifname
            if try kernel("look up \(ifname) in \(environment.netns)", { () throws(KernelError) in try podSocket.link(named: ifname) }) != nil {
                throw CNIError(.invalidEnvironment, "interface \(ifname) already exists in \(environment.netns)",
                               details: "CNI_IFNAME must name an interface the pod does not have yet; DEL the attachment first")
            }
            let existing = try kernel("look up \(hostName)") { () throws(KernelError) in try hostSocket.link(named: hostName) }
            guard let existing else {
                throw CNIError(.invalidEnvironment, "interface \(environment.ifname) already exists in \(environment.netns)",
                               details: "CNI_IFNAME must name an interface the pod does not have yet")
            }
            guard existing.alias == alias || (existing.alias.isEmpty && HostVeth.isSigned(name: existing.name, mac: existing.mac)) else {
                throw CNIError(.tryAgainLater, "host interface \(hostName) already exists and belongs to another attachment",
                               details: existing.alias.isEmpty ? "it has no podwire alias" : "its alias is \"\(existing.alias)\"")
            }
            try kernel("delete stale \(hostName)") { () throws(KernelError) in _ = try hostSocket.deleteLink(named: hostName) }
            return try kernel("create the veth pair \(hostName) / \(environment.ifname)") { () throws(KernelError) in try create() }
        } catch {
            throw CNIError(error, doing: "create the veth pair \(hostName) / \(environment.ifname)")
        }
    }

    /// The host end's IPv6 settings, written while it is still down.
    ///
    /// An attachment with an IPv6 address: the host end's link-local appears when the pair comes
    /// up, and the node can solicit a pod's MAC only from a link-local that passed DAD, so DAD is
    /// skipped on it rather than waited for (~2 s with the reference). Addresses come from IPAM,
    /// unique.
    ///
    /// An IPv4-only attachment: IPv6 is switched off on the host end. Otherwise every host veth
    /// carries a link-local address, an fe80::/64 and an ff00::/8 route, and the kernel walks all
    /// of the node's IPv6 routes on each link event: a veth created next to 1000 pods took about
    /// 1.5 ms longer than on an empty node. A kernel without IPv6 has nothing to switch off.
    func prepareHostEnd(_ hostName: String, addresses: [(address: IPNetwork, gateway: IPAddress)]) throws(CNIError) {
        if addresses.contains(where: { $0.address.family == .v6 }) {
            try kernel("disable DAD on \(hostName)") { () throws(KernelError) in
                try Sysctl.ensure("net/ipv6/conf/\(hostName)/accept_dad", is: "0")
            }
        } else {
            do {
                try Sysctl.set("net/ipv6/conf/\(hostName)/disable_ipv6", to: "1")
            } catch where error.isNotFound {
                // no IPv6 in this kernel
            } catch {
                throw CNIError(error, doing: "switch IPv6 off on \(hostName)")
            }
        }
    }

    /// Addresses without the kernel's connected route, `gw/32 scope link`, the IPAM routes via the
    /// gateway, then `subnet via gw`: the pod sends everything, neighbours included, to its gateway.
    /// Everything after the index lookup goes to the kernel as one batch, handled in this order.
    func configurePodSide(_ socket: RouteSocket, podIndex: Int32, addresses: [(address: IPNetwork, gateway: IPAddress)],
                          routes: [CNIRoute]) throws(CNIError) {
        try kernel("configure \(environment.ifname) in \(environment.netns)") { () throws(KernelError) in
            try socket.batch { () throws(KernelError) in
                for entry in addresses {
                    try socket.addAddress(entry.address, linkIndex: podIndex, noDAD: entry.address.family == .v6, noPrefixRoute: true)
                }
                try socket.setUp(linkIndex: podIndex)
                for entry in addresses {
                    try socket.addRoute(RouteSpec(destination: .host(entry.gateway), linkIndex: podIndex,
                                                  source: entry.address.address, scope: .link), mode: .exclusive)
                }
                for route in routes {
                    guard let gateway = route.gw ?? addresses.first(where: { $0.address.family == route.dst.family })?.gateway else {
                        continue // a route of a family the pod has no address in
                    }
                    let spec = RouteSpec(destination: route.dst, gateway: gateway, linkIndex: podIndex,
                                         scope: RouteSpec.Scope(rawValue: UInt8(clamping: route.scope ?? 0)) ?? .universe,
                                         priority: route.priority.map { UInt32(clamping: $0) }, table: route.table.map { UInt32(clamping: $0) })
                    try socket.addRoute(spec, mode: .create)
                }
                for entry in addresses {
                    try socket.addRoute(RouteSpec(destination: entry.address.masked, gateway: entry.gateway, linkIndex: podIndex,
                                                  source: entry.address.address), mode: .exclusive)
                }
            }
        }
    }

    /// The index of a link just created, for kernels that do not echo the creation.
    func lookUpIndex(_ socket: RouteSocket, _ name: String, in netns: String?) throws(CNIError) -> Int32 {
        let place = netns.map { " in \($0)" } ?? ""
        let link = try kernel("look up \(name)\(place)") { () throws(KernelError) in try socket.link(named: name) }
        guard let link else { throw CNIError(.kernelRefused, "\(name) vanished\(place) right after it was created") }
        return link.index
    }

    /// The host end labelled with its owner and brought up, the gateway address on it, and the
    /// host route to each pod address, as one batch handled in this order.
    ///
    /// For an IPv4 pod the labelling request also switches IPv4 forwarding on for the host end
    /// itself: the kernel decides by the receiving interface's flag, and a node's `default` flag
    /// can be left 0 by concurrent writers of ip_forward elsewhere (see `Sysctl.ensureSerialized`).
    ///
    /// The host route is replaced, not added: a route left on another veth for this address would
    /// otherwise keep the new pod unreachable.
    func configureHostSide(_ socket: RouteSocket, hostName: String, hostIndex: Int32, alias: String,
                           addresses: [(address: IPNetwork, gateway: IPAddress)]) throws(CNIError) {
        let forwards = addresses.contains(where: { $0.address.family == .v4 })
        try kernel("configure \(hostName)") { () throws(KernelError) in
            try socket.batch { () throws(KernelError) in
                try socket.setUp(linkIndex: hostIndex, alias: alias, ipv4Forwarding: forwards)
                for entry in addresses {
                    try socket.addAddress(.host(entry.gateway), linkIndex: hostIndex, noDAD: entry.gateway.family == .v6)
                    try socket.addRoute(RouteSpec(destination: .host(entry.address.address), linkIndex: hostIndex, scope: .host),
                                        mode: .replace)
                }
            }
        }
    }
}

/// Opens the pod's namespace, telling "gone" from "not a namespace".
func openPodNamespace(_ path: String) throws(CNIError) -> NetworkNamespace {
    do {
        return try NetworkNamespace(path: path)
    } catch {
        if error.isNotFound {
            throw CNIError(.unknownContainer, "network namespace \(path) does not exist", details: error.description)
        }
        throw CNIError(.invalidEnvironment, "CNI_NETNS \(path) is not a usable network namespace", details: error.description)
    }
}

/// Runs a kernel operation, turning its failure into the CNI error for `doing`.
func kernel<T>(_ doing: @autoclosure () -> String, _ body: () throws(KernelError) -> T) throws(CNIError) -> T {
    do {
        return try body()
    } catch {
        throw CNIError(error, doing: doing())
    }
}

/// A locally administered unicast MAC, chosen here so the result needs no read-back.
func randomMAC() -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 6)
    _ = bytes.withUnsafeMutableBytes { CLinuxShim_getrandom($0.baseAddress, 6) }
    bytes[0] = (bytes[0] & 0xfe) | 0x02
    return bytes
}

/// Undo steps, run newest first when an operation fails midway.
///
/// A chain of class nodes rather than an array of closures: an array of a function type is one
/// more generic type for the runtime to build on every ADD.
struct Rollback {
    private final class Step {
        let run: () -> Void
        var next: Step?
        init(_ run: @escaping () -> Void, next: Step?) {
            self.run = run
            self.next = next
        }
    }
    /// Newest first.
    private var newest: Step?

    mutating func add(_ step: @escaping () -> Void) { newest = Step(step, next: newest) }

    /// A step that runs after every other, whenever it was added.
    mutating func addRunningLast(_ step: @escaping () -> Void) {
        guard var last = newest else { return add(step) }
        while let next = last.next { last = next }
        last.next = Step(step, next: nil)
    }

    mutating func discard() { newest = nil }

    func run() {
        var step = newest
        while let current = step {
            current.run()
            step = current.next
        }
    }
}

// MARK: - Masquerade

/// `ipMasq` over nftables: the network's table (`MasqueradeTable`) masquerades traffic from the
/// pods' addresses to anywhere but the exempt destinations, which are `noMasqueradeCIDRs` (the
/// cluster's pod CIDR, say, as kind-masq-agent exempts it), every IPAM range subnet of the network
/// and each pod's own subnet (what ptp exempts). One netlink transaction per ADD or DEL, no exec.
struct Masquerade {
    let enabled: Bool
    let table: MasqueradeTable
    /// `noMasqueradeCIDRs`, checked.
    let exempt: [IPNetwork]

    /// Checks `ipMasq`'s companions whether or not `ipMasq` is set, so a typo is reported before
    /// it matters; code 7.
    init(_ config: NetworkConfig) throws(CNIError) {
        enabled = config.ipMasq
        table = MasqueradeTable(network: config.name)
        exempt = try Self.parseExempt(config.json["noMasqueradeCIDRs"])
        if enabled && table.name.utf8.count > MasqueradeTable.maximumNameLength {
            throw CNIError(.invalidNetworkConfig, "network name \"\(config.name)\" is too long for ipMasq",
                           details: "the nftables table \(table.name.prefix(40))... may have at most \(MasqueradeTable.maximumNameLength) bytes")
        }
    }

    static func parseExempt(_ value: JSONValue?) throws(CNIError) -> [IPNetwork] {
        guard let value, value != .null else { return [] }
        guard case .array(let entries) = value else {
            throw CNIError(.invalidNetworkConfig, "invalid \"noMasqueradeCIDRs\": expected a list of CIDR strings",
                           details: "e.g. \"noMasqueradeCIDRs\": [\"10.244.0.0/16\"]")
        }
        var networks: [IPNetwork] = []
        for (index, entry) in entries.enumerated() {
            guard case .string(let text) = entry else {
                throw CNIError(.invalidNetworkConfig, "invalid \"noMasqueradeCIDRs\" entry \(index): expected a CIDR string",
                               details: "e.g. \"noMasqueradeCIDRs\": [\"10.244.0.0/16\"]")
            }
            guard let network = IPNetwork(text) else {
                throw CNIError(.invalidNetworkConfig, "invalid \"noMasqueradeCIDRs\" entry \"\(text)\": not a CIDR",
                               details: "write an address and a prefix length, e.g. 10.244.0.0/16 or fd00:10:244::/48")
            }
            if network.hasHostBits {
                throw CNIError(.invalidNetworkConfig,
                               "\"noMasqueradeCIDRs\" entry \(network) has host bits set; did you mean \(network.masked)?")
            }
            networks.append(network)
        }
        return networks
    }

    /// The comment on a pod's set elements, so GC and people can tell whose they are.
    static func owner(containerID: String, ifname: String) -> String { "\(containerID)/\(ifname)" }

    func install(addresses: [IPAddress], subnets: [IPNetwork], ipam: IPAMBackend,
                 containerID: String, ifname: String) throws(CNIError) {
        var destinations = exempt + subnets
        if case .builtIn(let own) = ipam { destinations += own.config.rangeSets.flatMap { $0.map(\.subnet) } }
        let table = self.table
        try kernel("masquerade \(addresses.map(\.description).joined(separator: ", ")) with nftables table inet \(table.name)") {
            () throws(KernelError) in
            try table.install(exempt: destinations, addresses: addresses, owner: Self.owner(containerID: containerID, ifname: ifname))
        }
    }
}
