import CallLog
import CNIProtocol
import LinuxSystem
import NetAddress
import Netfilter
import Netlink
import PodWiring
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// ADD: the veth pair (its pod end born in the pod's namespace), an address from IPAM, then the
/// `WiringPlan` for them applied to both sides, and with `ipMasq` the masquerade. Anything that
/// fails undoes everything done before it, IPAM reservation included.
struct AddCommand {
    let environment: CNIEnvironment
    let config: NetworkConfig
    let timer: CallTimer

    func run() throws(CNIError) -> CNIResult {
        // The pod's socket is made on a thread of its own (it must enter the pod's namespace);
        // it is started first and waited for last, so the config checks and the host socket run
        // meanwhile. A config error is still reported before a namespace error.
        let podNamespaceOrError = Result { () throws(CNIError) in try openPodNamespace(environment.netns) }
        let pendingPodSocket = podNamespaceOrError.map { try? PendingRouteSocket(in: $0) }
        let ipam = try IPAMBackend(config: config, environment: environment)
        let mappings = try config.requirePortMappings()
        try Masquerade.requireUsableConfig(config, hostPorts: !mappings.isEmpty)
        let podNamespace = try podNamespaceOrError.get()
        let hostSocket = try kernel("open a netlink socket") { () throws(NetlinkError) in try RouteSocket() }
        let podSocket = try kernel("open a netlink socket in \(environment.netns)") { () throws(NetlinkError) in
            if case .success(let pending?) = pendingPodSocket { return try RouteSocket(opening: pending) }
            return try RouteSocket(in: podNamespace)
        }
        timer.lap(.config)

        // The pair is created before IPAM is asked: a second ADD of a live attachment finds its
        // interface names taken and fails here without touching IPAM, which would hand that
        // attachment its own address again (and release it on the way out).
        let pair = VethPair(network: config.name, containerID: environment.containerID, ifname: environment.ifname,
                            netns: environment.netns, podMAC: randomPodMAC(), mtu: try resolveMTU(hostSocket))
        let indexes = try createVethPair(pair, hostSocket: hostSocket, podSocket: podSocket)
        timer.lap(.veth)
        var rollback = Rollback()
        rollback.add { _ = try? hostSocket.deleteLink(named: pair.hostName) }
        do throws(CNIError) {
            let allocation = try ipam.add(containerID: environment.containerID, ifname: environment.ifname)
            // Released only after the pair is gone: an address must not be handed out again
            // while a route to it still points at this pod's veth.
            rollback.addRunningLast { try? ipam.del(containerID: environment.containerID, ifname: environment.ifname) }
            timer.lap(.ipam)
            let plan = try WiringPlan(pair: pair, ipam: allocation, config: config, ipamSubnets: config.ipMasq ? ipam.rangeSubnets : [])
            let hostPorts = try HostPorts.plan(mappings, addresses: plan.addresses.map(\.address.address), pair: pair)
            try enableForwarding(plan.forwarding, hostSocket)
            try setHostSysctl(plan.hostSysctl)

            var podIndex = indexes?.local ?? 0, hostIndex = indexes?.peer ?? 0
            if indexes == nil {
                podIndex = try lookUpIndex(podSocket, pair.podName, in: pair.netns)
                hostIndex = try lookUpIndex(hostSocket, pair.hostName, in: nil)
            }
            try configurePodSide(podSocket, podIndex: podIndex, plan: plan)
            timer.lap(.podSide)
            try configureHostSide(hostSocket, hostIndex: hostIndex, plan: plan, routeLocalnet: hostPorts?.needsRouteLocalnet ?? false)
            timer.lap(.hostSide)
            var masqueradeTable: MasqueradeTable?
            if let masquerade = plan.masquerade {
                let table = try Masquerade.install(masquerade, network: config.name)
                masqueradeTable = table
                rollback.add { _ = try? table.remove(masquerade.addresses) }
                timer.lap(.masquerade)
            }
            if let hostPorts {
                let table = try HostPorts.install(hostPorts, network: config.name,
                                                  sharingSocketWith: masqueradeTable, timer: timer)
                rollback.add { _ = try? table.remove(owner: hostPorts.owner, podAddresses: hostPorts.podAddresses, mappings: mappings) }
            }
            rollback.discard()
            return plan.result(from: allocation, dns: config.dns)
        } catch {
            rollback.run()
            throw error
        }
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
    func enableForwarding(_ families: IPFamilies, _ socket: RouteSocket) throws(CNIError) {
        if families.contains(.v4), (try? socket.allForwarding(family: .v4)) != true {
            try system("enable IPv4 forwarding") { () throws(SystemError) in try Sysctl.ensureSerialized("net/ipv4/ip_forward", is: "1") }
        }
        if families.contains(.v6), (try? socket.allForwarding(family: .v6)) != true {
            try system("enable IPv6 forwarding") { () throws(SystemError) in
                try Sysctl.ensureSerialized("net/ipv6/conf/all/forwarding", is: "1")
            }
        }
    }

    /// Sent on the pod's socket, so the pod end is born in the pod and the host end (the peer) in
    /// podwire's own namespace. Returns both ends' indexes when the kernel told them (see
    /// `RouteSocket.addVethPair`).
    func createVethPair(_ pair: VethPair, hostSocket: RouteSocket, podSocket: RouteSocket) throws(CNIError) -> RouteSocket.VethIndexes? {
        func create() throws(NetlinkError) -> RouteSocket.VethIndexes? {
            try podSocket.addVethPair(name: pair.podName, mac: pair.podMAC, peerName: pair.hostName, peerMAC: pair.hostMAC,
                                      peerNamespacePID: getpid(), mtu: pair.mtu)
        }
        do {
            return try create()
        } catch let error where error.isExists {
            // Either end's name may be taken. The pod's: a live attachment, or someone else's
            // interface; refused, nothing touched. A host end left by an earlier ADD of this very
            // attachment (a runtime that retried without DEL) is replaced; anything else is refused.
            let ifname = pair.podName
            if try kernel("look up \(ifname) in \(pair.netns)", { () throws(NetlinkError) in try podSocket.link(named: ifname) }) != nil {
                throw CNIError(.invalidEnvironment, "interface \(ifname) already exists in \(pair.netns)",
                               details: "CNI_IFNAME must name an interface the pod does not have yet; DEL the attachment first")
            }
            let existing = try kernel("look up \(pair.hostName)") { () throws(NetlinkError) in try hostSocket.link(named: pair.hostName) }
            guard let existing else {
                throw CNIError(.invalidEnvironment, "interface \(ifname) already exists in \(pair.netns)",
                               details: "CNI_IFNAME must name an interface the pod does not have yet")
            }
            guard existing.owner(network: config.name)?.belongs(to: pair.alias) == true else {
                throw CNIError(.tryAgainLater, "host interface \(pair.hostName) already exists and belongs to another attachment",
                               details: existing.alias.isEmpty ? "it has no podwire alias" : "its alias is \"\(existing.alias)\"")
            }
            try kernel("delete stale \(pair.hostName)") { () throws(NetlinkError) in _ = try hostSocket.deleteLink(named: pair.hostName) }
            return try kernel("create the veth pair \(pair.hostName) / \(ifname)") { () throws(NetlinkError) in try create() }
        } catch {
            throw CNIError(error, doing: "create the veth pair \(pair.hostName) / \(pair.podName)")
        }
    }

    /// The host end's IPv6 switch, written while it is still down (see `WiringPlan`).
    func setHostSysctl(_ sysctl: PlannedSysctl) throws(CNIError) {
        do {
            if sysctl.onlyIfDifferent {
                try Sysctl.ensure(sysctl.name, is: sysctl.value)
            } else {
                try Sysctl.set(sysctl.name, to: sysctl.value)
            }
        } catch where error.isNotFound && sysctl.ifMissing == .skip {
            // the kernel has no such switch
        } catch {
            throw CNIError(error, doing: sysctl.purpose)
        }
    }

    /// The pod's addresses without the kernel's connected route, its end brought up, then the
    /// plan's pod routes in order: everything goes to the kernel as one batch.
    func configurePodSide(_ socket: RouteSocket, podIndex: Int32, plan: WiringPlan) throws(CNIError) {
        try kernel("configure \(plan.pair.podName) in \(plan.pair.netns)") { () throws(NetlinkError) in
            try socket.batch { () throws(NetlinkError) in
                for entry in plan.addresses {
                    try socket.addAddress(entry.address, linkIndex: podIndex, noDAD: entry.address.family == .v6, noPrefixRoute: true)
                }
                try socket.setUp(linkIndex: podIndex)
                for route in plan.podRoutes {
                    try socket.addRoute(RouteSpec(route: route.route, linkIndex: podIndex), mode: .init(route.mode))
                }
            }
        }
    }

    /// The index of a link just created, for kernels that do not echo the creation.
    func lookUpIndex(_ socket: RouteSocket, _ name: String, in netns: String?) throws(CNIError) -> Int32 {
        let place = netns.map { " in \($0)" } ?? ""
        let link = try kernel("look up \(name)\(place)") { () throws(NetlinkError) in try socket.link(named: name) }
        guard let link else { throw CNIError(.kernelRefused, "\(name) vanished\(place) right after it was created") }
        return link.index
    }

    /// The host end labelled with its owner and brought up, the gateway addresses on it, and the
    /// host routes to the pod, as one batch handled in this order.
    ///
    /// For an IPv4 pod the labelling request also switches IPv4 forwarding on for the host end
    /// itself: the kernel decides by the receiving interface's flag, and a node's `default` flag
    /// can be left 0 by concurrent writers of ip_forward elsewhere (see `Sysctl.ensureSerialized`).
    ///
    /// With hostPorts forwarded to an IPv4 address, route_localnet goes on in the same request.
    func configureHostSide(_ socket: RouteSocket, hostIndex: Int32, plan: WiringPlan, routeLocalnet: Bool) throws(CNIError) {
        try kernel("configure \(plan.pair.hostName)") { () throws(NetlinkError) in
            try socket.batch { () throws(NetlinkError) in
                try socket.setUp(linkIndex: hostIndex, alias: plan.pair.alias, ipv4Forwarding: plan.forwarding.contains(.v4),
                                 routeLocalnet: routeLocalnet)
                for (address, route) in zip(plan.hostAddresses, plan.hostRoutes) {
                    try socket.addAddress(address, linkIndex: hostIndex, noDAD: address.family == .v6)
                    try socket.addRoute(RouteSpec(route: route.route, linkIndex: hostIndex), mode: .init(route.mode))
                }
            }
        }
    }
}
