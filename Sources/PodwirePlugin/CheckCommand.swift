import CLinuxShim
import CNIProtocol
import NetAddress
import Netfilter
import Netlink

/// CHECK: compares the live state on both sides with the prevResult and names everything that
/// is missing, including the node side (host veth, gateway address, host route), which the
/// reference plugin does not look at.
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

        var problems: [String] = []
        try checkPodSide(interface: podInterface, addresses: addresses, routes: result.routes, problems: &problems)
        try checkHostSide(addresses: addresses, problems: &problems)
        if config.ipMasq { try checkMasquerade(addresses: addresses, problems: &problems) }
        if !problems.isEmpty {
            throw CNIError(.checkFailed, "attachment \(environment.containerID)/\(environment.ifname) differs from its result: "
                           + problems.joined(separator: "; "))
        }
    }

    func checkPodSide(interface: CNIInterface, addresses: [CNIIPConfig], routes: [CNIRoute], problems: inout [String]) throws(CNIError) {
        let namespace = try openPodNamespace(environment.netns)
        let socket = try kernel("open a netlink socket in \(environment.netns)") { () throws(KernelError) in try RouteSocket(in: namespace) }
        let ifname = environment.ifname
        guard let link = try kernel("look up \(ifname)", { () throws(KernelError) in try socket.link(named: ifname) }) else {
            problems.append("pod interface \(ifname) is missing from \(environment.netns)")
            return
        }
        if link.kind != "veth" { problems.append("pod interface \(ifname) is a \(link.kind.isEmpty ? "device" : link.kind), not a veth") }
        if let mac = interface.mac, mac.lowercased() != link.mac { problems.append("pod interface \(ifname) has MAC \(link.mac), expected \(mac)") }
        if !link.isUp { problems.append("pod interface \(ifname) is down") }

        let present = try kernel("list addresses in \(environment.netns)") { () throws(KernelError) in try socket.addresses(linkIndex: link.index) }
        var podRoutes: [RouteSpec] = []
        for family in Set(addresses.map(\.address.family)) {
            podRoutes += try kernel("list routes in \(environment.netns)") { () throws(KernelError) in try socket.routes(family: family) }
        }
        for ip in addresses {
            if !present.contains(where: { $0.address == ip.address }) {
                problems.append("pod address \(ip.address) is missing from \(ifname)")
            }
            guard let gateway = ip.gateway else { continue }
            if !podRoutes.contains(where: { $0.destination == .host(gateway) && $0.linkIndex == link.index && $0.gateway == nil }) {
                problems.append("pod route \(gateway) dev \(ifname) scope link is missing")
            }
            if !podRoutes.contains(where: { $0.destination == ip.address.masked && $0.gateway == gateway }) {
                problems.append("pod route \(ip.address.masked) via \(gateway) is missing")
            }
        }
        for route in routes {
            let gateway = route.gw ?? addresses.first(where: { $0.address.family == route.dst.family })?.gateway
            let table = route.table.map { UInt32(clamping: $0) } ?? 254
            if !podRoutes.contains(where: {
                $0.destination == route.dst.masked && $0.gateway == gateway && $0.linkIndex == link.index && ($0.table ?? 254) == table
            }) {
                problems.append("pod route \(route.dst)\(gateway.map { " via \($0)" } ?? "") is missing")
            }
        }
    }

    /// With ipMasq: the network's table, its chain and two rules, and each pod address in its set.
    func checkMasquerade(addresses: [CNIIPConfig], problems: inout [String]) throws(CNIError) {
        let table = MasqueradeTable(network: config.name)
        let podAddresses = addresses.map(\.address.address)
        problems += try kernel("inspect nftables table inet \(table.name)") { () throws(KernelError) in
            try table.problems(for: podAddresses, owner: Masquerade.owner(containerID: environment.containerID, ifname: environment.ifname))
        }
    }

    func checkHostSide(addresses: [CNIIPConfig], problems: inout [String]) throws(CNIError) {
        let hostName = HostVeth(containerID: environment.containerID, ifname: environment.ifname).name
        let socket = try kernel("open a netlink socket") { () throws(KernelError) in try RouteSocket() }
        guard let link = try kernel("look up \(hostName)", { () throws(KernelError) in try socket.link(named: hostName) }) else {
            problems.append("host interface \(hostName) is missing")
            return
        }
        if !link.isUp { problems.append("host interface \(hostName) is down") }
        let present = try kernel("list addresses of \(hostName)") { () throws(KernelError) in try socket.addresses(linkIndex: link.index) }
        // One dump per family, not per address: the node's table holds a route per pod.
        var hostRoutes: [RouteSpec] = []
        for family in Set(addresses.map(\.address.family)) {
            hostRoutes += try kernel("list routes") { () throws(KernelError) in try socket.routes(family: family) }
        }
        for ip in addresses {
            if let gateway = ip.gateway, !present.contains(where: { $0.address == .host(gateway) }) {
                problems.append("gateway address \(IPNetwork.host(gateway)) is missing from \(hostName)")
            }
            if !hostRoutes.contains(where: { $0.destination == .host(ip.address.address) && $0.linkIndex == link.index }) {
                problems.append("host route \(ip.address.address) dev \(hostName) is missing")
            }
        }
    }
}
