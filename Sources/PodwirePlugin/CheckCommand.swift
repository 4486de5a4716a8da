import CNIProtocol
import LinuxSystem
import NetAddress
import Netfilter
import Netlink
import PodWiring

/// CHECK: compares the live state on both sides with the `WiringPlan` for the prevResult's
/// addresses and routes, and names everything that is missing, including the node side (host
/// veth, gateway address, host route), which the reference plugin does not look at.
struct CheckCommand {
    let environment: CNIEnvironment
    let config: NetworkConfig

    func run() throws(CNIError) {
        guard let previous = config.prevResult, previous != .null else {
            throw CNIError(.invalidNetworkConfig, "required prevResult missing", details: "CHECK compares the live state with the ADD result in prevResult")
        }
        let result = try CNIResult.decode(previous, defaultVersion: config.cniVersion)
        guard let podIndex = result.interfaces.firstIndex(where: { $0.name == environment.ifname && ($0.sandbox ?? "") != "" }) else {
            throw CNIError(.checkFailed, "prevResult has no interface \(environment.ifname) in a sandbox")
        }
        let podInterface = result.interfaces[podIndex]
        guard podInterface.sandbox == environment.netns else {
            throw CNIError(.checkFailed, "sandbox in prevResult \(podInterface.sandbox ?? "") doesn't match configured netns: \(environment.netns)")
        }
        let addresses = result.ips.filter { $0.interface == nil || $0.interface == podIndex }
        let ipam = try IPAMBackend(config: config, environment: environment)
        try ipam.check(containerID: environment.containerID, ifname: environment.ifname, expected: addresses.map(\.address.address))

        // The MAC is compared with the prevResult's own text; CHECK never sets one.
        let pair = VethPair(network: config.name, containerID: environment.containerID, ifname: environment.ifname,
                            netns: environment.netns, podMAC: [], mtu: podInterface.mtu ?? 0)
        let plan = WiringPlan(pair: pair, checking: addresses.map { WiringPlan.PodAddress(address: $0.address, gateway: $0.gateway) },
                              routes: result.routes, config: config)
        var problems: [String] = []
        try checkPodSide(plan, expectedMAC: podInterface.mac, problems: &problems)
        try checkHostSide(plan, problems: &problems)
        if let masquerade = plan.masquerade { try checkMasquerade(masquerade, problems: &problems) }
        if let hostPorts = try HostPorts.plan(config.requirePortMappings(), addresses: plan.addresses.map(\.address.address), pair: pair) {
            try checkHostPorts(hostPorts, problems: &problems)
        }
        if !problems.isEmpty {
            throw CNIError(.checkFailed, "attachment \(environment.containerID)/\(environment.ifname) differs from its result: "
                           + problems.joined(separator: "; "))
        }
    }

    func checkPodSide(_ plan: WiringPlan, expectedMAC: String?, problems: inout [String]) throws(CNIError) {
        let netns = plan.pair.netns, ifname = plan.pair.podName
        let namespace = try openPodNamespace(netns)
        let socket = try kernel("open a netlink socket in \(netns)") { () throws(NetlinkError) in try RouteSocket(in: namespace) }
        guard let link = try kernel("look up \(ifname)", { () throws(NetlinkError) in try socket.link(named: ifname) }) else {
            problems.append("pod interface \(ifname) is missing from \(netns)")
            return
        }
        if link.kind != "veth" { problems.append("pod interface \(ifname) is a \(link.kind.isEmpty ? "device" : link.kind), not a veth") }
        if let mac = expectedMAC, mac.lowercased() != link.mac { problems.append("pod interface \(ifname) has MAC \(link.mac), expected \(mac)") }
        if !link.isUp { problems.append("pod interface \(ifname) is down") }

        let present = try kernel("list addresses in \(netns)") { () throws(NetlinkError) in try socket.addresses(linkIndex: link.index) }
        var live: [RouteSpec] = []
        for family in Set(plan.addresses.map(\.address.family)) {
            live += try kernel("list routes in \(netns)") { () throws(NetlinkError) in try socket.routes(family: family) }
        }
        for entry in plan.addresses {
            if !present.contains(where: { $0.address == entry.address }) {
                problems.append("pod address \(entry.address) is missing from \(ifname)")
            }
            if let route = plan.podRoute(.gateway, for: entry),
               !live.contains(where: { $0.destination == route.destination && $0.linkIndex == link.index && $0.gateway == nil }) {
                problems.append("pod route \(route.destination.address) dev \(ifname) scope link is missing")
            }
            if let route = plan.podRoute(.subnet, for: entry),
               !live.contains(where: { $0.destination == route.destination && $0.gateway == route.gateway }) {
                problems.append("pod route \(route.destination) via \(route.gateway.map(\.description) ?? "") is missing")
            }
        }
        for route in plan.podRoutes where route.role == .ipam {
            let table = route.table ?? 254
            if !live.contains(where: {
                $0.destination == route.destination.masked && $0.gateway == route.gateway && $0.linkIndex == link.index && ($0.table ?? 254) == table
            }) {
                problems.append("pod route \(route.destination)\(route.gateway.map { " via \($0)" } ?? "") is missing")
            }
        }
    }

    /// With ipMasq: the network's table, its chain and two rules, and each pod address in its set.
    func checkMasquerade(_ plan: MasqueradePlan, problems: inout [String]) throws(CNIError) {
        let table = MasqueradeTable(network: config.name)
        problems += try kernel("inspect nftables table inet \(table.name)") { () throws(NetlinkError) in
            try table.problems(for: plan.addresses, owner: plan.owner)
        }
    }

    /// With portMappings: the hostPort chains, each forward in its map for this attachment, the
    /// SNAT pairs, and route_localnet on the host veth where 127.0.0.1 is forwarded.
    func checkHostPorts(_ plan: HostPortPlan, problems: inout [String]) throws(CNIError) {
        let table = HostPortTable(network: config.name)
        problems += try kernel("inspect nftables table inet \(table.name)") { () throws(NetlinkError) in
            try table.problems(for: plan)
        }
        let hostName = HostVeth(containerID: environment.containerID, ifname: environment.ifname).name
        if plan.needsRouteLocalnet, (try? Sysctl.read("net/ipv4/conf/\(hostName)/route_localnet")) == "0" {
            problems.append("route_localnet is off on \(hostName): hostPorts cannot be reached on 127.0.0.1")
        }
    }

    func checkHostSide(_ plan: WiringPlan, problems: inout [String]) throws(CNIError) {
        let hostName = plan.pair.hostName
        let socket = try kernel("open a netlink socket") { () throws(NetlinkError) in try RouteSocket() }
        guard let link = try kernel("look up \(hostName)", { () throws(NetlinkError) in try socket.link(named: hostName) }) else {
            problems.append("host interface \(hostName) is missing")
            return
        }
        if !link.isUp { problems.append("host interface \(hostName) is down") }
        let present = try kernel("list addresses of \(hostName)") { () throws(NetlinkError) in try socket.addresses(linkIndex: link.index) }
        // One dump per family, not per address: the node's table holds a route per pod.
        var live: [RouteSpec] = []
        for family in Set(plan.addresses.map(\.address.family)) {
            live += try kernel("list routes") { () throws(NetlinkError) in try socket.routes(family: family) }
        }
        for entry in plan.addresses {
            if let gateway = entry.gateway, plan.hostAddresses.contains(.host(gateway)),
               !present.contains(where: { $0.address == .host(gateway) }) {
                problems.append("gateway address \(IPNetwork.host(gateway)) is missing from \(hostName)")
            }
            if let route = plan.hostRoutes.first(where: { $0.destination == .host(entry.address.address) }),
               !live.contains(where: { $0.destination == route.destination && $0.linkIndex == link.index }) {
                problems.append("host route \(entry.address.address) dev \(hostName) is missing")
            }
        }
    }
}
