import CNIProtocol
import NetAddress
import PodWiring
import Testing

/// The plan is pure: these tests build it from a config, an environment and an IPAM answer, and
/// read it back in `ip` terms, with no kernel.
@Suite("WiringPlan")
struct WiringPlanTests {
    static let podMAC: [UInt8] = [0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02]

    static func config(_ extra: String = "") throws -> NetworkConfig {
        try NetworkConfig.parse(Array("""
            {"cniVersion": "1.0.0", "name": "kindnet", "type": "podwire"\(extra),
             "ipam": {"type": "podwire-ipam", "ranges": [[{"subnet": "10.244.1.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}
            """.utf8))
    }

    static func pair(_ containerID: String = "pod-a", mtu: Int = 1500) -> VethPair {
        VethPair(network: "kindnet", containerID: containerID, ifname: "eth0", netns: "/run/netns/\(containerID)", podMAC: podMAC, mtu: mtu)
    }

    static func allocation(_ addresses: [(String, String)], routes: [String] = ["0.0.0.0/0"]) -> CNIResult {
        var result = CNIResult()
        result.ips = addresses.map { CNIIPConfig(address: IPNetwork($0.0)!, gateway: IPAddress($0.1)!) }
        result.routes = routes.map { CNIRoute(dst: IPNetwork($0)!) }
        return result
    }

    /// The seed article's two pods on one Kindnet node, route for route as `ip route` shows them
    /// there (the pod's routes in the order ADD makes them; the device is the pair's end).
    @Test("the seed's pods: routes via the gateway inside, a /32 scope host route outside",
          arguments: [("pod-a", "10.244.1.2"), ("pod-b", "10.244.1.3")])
    func seed(_ pod: String, _ address: String) throws {
        let plan = try WiringPlan(pair: Self.pair(pod), ipam: Self.allocation([("\(address)/24", "10.244.1.1")]),
                                  config: Self.config(), ipamSubnets: [IPNetwork("10.244.1.0/24")!])
        #expect(plan.addresses == [.init(address: IPNetwork("\(address)/24")!, gateway: IPAddress("10.244.1.1")!)])
        #expect(plan.podRoutes.map(\.description) == [
            "10.244.1.1 scope link src \(address)",
            "default via 10.244.1.1",
            "10.244.1.0/24 via 10.244.1.1 src \(address)",
        ])
        #expect(plan.podRoutes.map(\.role) == [.gateway, .ipam, .subnet])
        #expect(plan.podRoutes.map(\.mode) == [.exclusive, .create, .exclusive])
        #expect(plan.hostAddresses == [IPNetwork("10.244.1.1/32")!])
        #expect(plan.hostRoutes.map(\.description) == ["\(address) scope host"])
        #expect(plan.hostRoutes.map(\.mode) == [.replace])
        #expect(plan.forwarding == .v4)
        #expect(plan.hostSysctl.name == "net/ipv6/conf/\(plan.pair.hostName)/disable_ipv6")
        #expect(plan.masquerade == nil)
    }

    @Test("the pair's names, MACs and alias come from the attachment alone")
    func pair() {
        let a = Self.pair("pod-a"), again = Self.pair("pod-a"), b = Self.pair("pod-b")
        #expect(a == again)
        #expect(a.hostName != b.hostName)
        #expect(a.hostName.count == 12 && a.hostName.hasPrefix("veth"))
        #expect(HostVeth.isSigned(name: a.hostName, mac: formatMAC(a.hostMAC)))
        #expect(a.alias == "podwire kindnet pod-a eth0")
        #expect(a.owner == "pod-a/eth0")
        #expect(a.podName == "eth0" && a.podMAC == Self.podMAC)
    }

    @Test("dual-stack: a route and a /128 per family, IPv6 DAD skipped on the host end")
    func dualStack() throws {
        let result = Self.allocation([("10.244.1.2/24", "10.244.1.1"), ("fd00:10:244:1::2/64", "fd00:10:244:1::1")],
                                     routes: ["0.0.0.0/0", "::/0"])
        let plan = try WiringPlan(pair: Self.pair(), ipam: result, config: Self.config(), ipamSubnets: [])
        #expect(plan.podRoutes.map(\.description) == [
            "10.244.1.1 scope link src 10.244.1.2",
            "fd00:10:244:1::1 scope link src fd00:10:244:1::2",
            "default via 10.244.1.1",
            "default via fd00:10:244:1::1",
            "10.244.1.0/24 via 10.244.1.1 src 10.244.1.2",
            "fd00:10:244:1::/64 via fd00:10:244:1::1 src fd00:10:244:1::2",
        ])
        #expect(plan.hostAddresses == [IPNetwork("10.244.1.1/32")!, IPNetwork("fd00:10:244:1::1/128")!])
        #expect(plan.hostRoutes.map(\.description) == ["10.244.1.2 scope host", "fd00:10:244:1::2 scope host"])
        #expect(plan.forwarding == [.v4, .v6])
        #expect(plan.hostSysctl.name == "net/ipv6/conf/\(plan.pair.hostName)/accept_dad")
        #expect(plan.hostSysctl.value == "0")
    }

    @Test("an IPAM route of a family the pod has no address in is left out; its own gateway and table are kept")
    func ipamRoutes() throws {
        var result = Self.allocation([("10.244.1.2/24", "10.244.1.1")], routes: ["::/0"])
        var special = CNIRoute(dst: IPNetwork("198.51.100.0/24")!, gw: IPAddress("10.244.1.254")!)
        special.table = 100
        special.priority = 5
        result.routes.append(special)
        let plan = try WiringPlan(pair: Self.pair(), ipam: result, config: Self.config(), ipamSubnets: [])
        #expect(plan.podRoutes.filter { $0.role == .ipam }.map(\.description) == ["198.51.100.0/24 via 10.244.1.254 metric 5 table 100"])
    }

    @Test("ipMasq: the pod's addresses, its owner, and every exempt destination, link-local included")
    func masquerade() throws {
        let config = try Self.config(#", "ipMasq": true, "nonMasqueradeCIDRs": ["10.244.0.0/16"]"#)
        let plan = try WiringPlan(pair: Self.pair(), ipam: Self.allocation([("10.244.1.2/24", "10.244.1.1")]),
                                  config: config, ipamSubnets: [IPNetwork("10.244.1.0/24")!])
        let masquerade = try #require(plan.masquerade)
        #expect(masquerade.addresses == [IPAddress("10.244.1.2")!])
        #expect(masquerade.owner == "pod-a/eth0")
        #expect(masquerade.exempt == ["10.244.0.0/16", "169.254.0.0/16", "fe80::/10", "10.244.1.0/24", "10.244.1.0/24"].map { IPNetwork($0)! })
    }

    @Test("masqLinkLocal / masqLinkLocalIPv6 take their range out of the exempt destinations")
    func masqueradeLinkLocal() throws {
        let result = Self.allocation([("10.244.1.2/24", "10.244.1.1")])
        let v4 = try WiringPlan(pair: Self.pair(), ipam: result, config: Self.config(#", "ipMasq": true, "masqLinkLocal": true"#), ipamSubnets: [])
        #expect(v4.masquerade?.exempt == ["fe80::/10", "10.244.1.0/24"].map { IPNetwork($0)! })
        let both = try WiringPlan(pair: Self.pair(), ipam: result,
                                  config: Self.config(#", "ipMasq": true, "masqLinkLocal": true, "masqLinkLocalIPv6": true"#), ipamSubnets: [])
        #expect(both.masquerade?.exempt == [IPNetwork("10.244.1.0/24")!])
    }

    @Test("an IPAM answer that cannot be wired is refused with code 7",
          arguments: [
            ([(String, String)](), "IPAM returned no IP address"),
            ([("10.244.1.2/24", "fd00::1")], "IPAM returned 10.244.1.2/24 without a gateway"),
            ([("10.244.1.1/24", "10.244.1.1")], "IPAM returned the gateway 10.244.1.1 as the pod's address"),
          ])
    func refused(_ addresses: [(String, String)], _ message: String) throws {
        let error = #expect(throws: CNIError.self) {
            try WiringPlan(pair: Self.pair(), ipam: Self.allocation(addresses), config: Self.config(), ipamSubnets: [])
        }
        #expect(error?.code == .invalidNetworkConfig)
        #expect(error?.message == message)
    }

    @Test("CHECK's plan from a prevResult equals ADD's for the same answer")
    func checkingPlan() throws {
        let result = Self.allocation([("10.244.1.2/24", "10.244.1.1")])
        let config = try Self.config(#", "ipMasq": true"#)
        let added = try WiringPlan(pair: Self.pair(), ipam: result, config: config, ipamSubnets: [])
        let checked = WiringPlan(pair: Self.pair(), checking: added.addresses, routes: result.routes, config: config)
        #expect(checked.podRoutes == added.podRoutes)
        #expect(checked.hostAddresses == added.hostAddresses)
        #expect(checked.hostRoutes == added.hostRoutes)
        #expect(checked.masquerade?.addresses == added.masquerade?.addresses)
        #expect(checked.masquerade?.owner == added.masquerade?.owner)
        let gateway = try #require(checked.podRoute(.gateway, for: checked.addresses[0]))
        #expect(gateway.description == "10.244.1.1 scope link src 10.244.1.2")
        #expect(checked.podRoute(.subnet, for: checked.addresses[0])?.description == "10.244.1.0/24 via 10.244.1.1 src 10.244.1.2")
    }

    @Test("a prevResult address without a gateway is checked for its address and host route only")
    func checkingWithoutGateway() {
        let address = WiringPlan.PodAddress(address: IPNetwork("10.244.1.2/24")!, gateway: nil)
        let plan = WiringPlan(pair: Self.pair(), checking: [address], routes: [CNIRoute(dst: IPNetwork("0.0.0.0/0")!)],
                              config: try! Self.config())
        #expect(plan.podRoutes.isEmpty)
        #expect(plan.hostAddresses.isEmpty)
        #expect(plan.hostRoutes.map(\.description) == ["10.244.1.2 scope host"])
    }
}

/// The one rule ADD, DEL and GC apply before they delete a host veth.
@Suite("HostVethOwner")
struct HostVethOwnerTests {
    static let pair = WiringPlanTests.pair("pod-a")
    static let mac = formatMAC(pair.hostMAC)

    @Test("a veth labelled by this network belongs to the attachment its alias names")
    func labelled() {
        let owner = HostVethOwner.of(kind: "veth", name: Self.pair.hostName, mac: Self.mac, alias: Self.pair.alias, network: "kindnet")
        #expect(owner == .attachment(alias: "podwire kindnet pod-a eth0"))
        #expect(owner?.belongs(to: Self.pair.alias) == true)
        #expect(owner?.belongs(to: "podwire kindnet pod-b eth0") == false)
        #expect(owner?.isStale(keeping: [Self.pair.alias]) == false)
        #expect(owner?.isStale(keeping: []) == true)
    }

    @Test("an unlabelled veth with the signed MAC is an unfinished ADD: its attachment's, and stale for GC")
    func unlabelled() {
        let owner = HostVethOwner.of(kind: "veth", name: Self.pair.hostName, mac: Self.mac, alias: "", network: "kindnet")
        #expect(owner == .unlabelled)
        #expect(owner?.belongs(to: Self.pair.alias) == true)
        #expect(owner?.isStale(keeping: [Self.pair.alias]) == true)
    }

    @Test("nobody's: another network's, a person's, an unsigned one, or not a veth",
          arguments: [
            ("veth", "podwire other pod-a eth0", true),
            ("veth", "my own veth", true),
            ("veth", "", false),
            ("bridge", "podwire kindnet pod-a eth0", true),
            ("dummy", "", true),
          ])
    func nobodys(_ kind: String, _ alias: String, _ signed: Bool) {
        let mac = signed ? Self.mac : "02:00:00:00:00:01"
        #expect(HostVethOwner.of(kind: kind, name: Self.pair.hostName, mac: mac, alias: alias, network: "kindnet") == nil)
    }
}
