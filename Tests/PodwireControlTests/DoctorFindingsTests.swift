import NetAddress
import Netfilter
import Netlink
import PodIPAM
import PodWiring
import Testing
@testable import PodwireControl

/// `Doctor.findings` on snapshots written by hand: which inconsistency is named, and which
/// repair it gets, without a kernel.
@Suite("doctor's findings")
struct DoctorFindingsTests {
    static let subnet = IPNetwork("10.244.1.0/24")!

    static func address(_ text: String) -> IPAddress { IPAddress(text)! }

    static func allocation(_ text: String, _ id: String?, modified: Int64 = 1000) -> LockedIPAMStore.Allocation {
        LockedIPAMStore.Allocation(address: address(text), containerID: id, ifname: id == nil ? nil : "eth0",
                                   owner: id.map { "\($0)/eth0" }, modified: modified, path: "/store/kindnet/\(text)")
    }

    /// The host veth podwire makes for `id`/eth0, labelled (or not yet).
    static func veth(_ id: String, index: Int32, labelled: Bool = true) -> LinkInfo {
        let veth = HostVeth(containerID: id, ifname: "eth0")
        return LinkInfo(index: index, name: veth.name, mac: formatMAC(veth.mac), mtu: 1500, isUp: true, kind: "veth",
                        alias: labelled ? HostVeth.alias(network: "kindnet", containerID: id, ifname: "eth0") : "")
    }

    static func route(_ text: String, on index: Int32) -> RouteSpec {
        RouteSpec(destination: .host(address(text)), linkIndex: index, scope: .host, table: 254)
    }

    static func node(allocations: [LockedIPAMStore.Allocation], links: [LinkInfo], routes: [RouteSpec],
                     masquerade: [MasqueradeTable.Member]? = nil, forwards: [HostPortTable.Held] = []) throws -> NodeSnapshot {
        NodeSnapshot(network: "kindnet", subnets: [subnet], ranges: [try IPRange(subnet: subnet)], storePath: "/store/kindnet",
                     allocations: allocations, indexDisagreements: [], links: links, podRoutes: routes,
                     masquerade: masquerade, forwards: forwards, snatPairs: [], time: 2000)
    }

    @Test("a consistent pod has no finding")
    func consistent() throws {
        let node = try Self.node(allocations: [Self.allocation("10.244.1.2", "a")], links: [Self.veth("a", index: 5)],
                             routes: [Self.route("10.244.1.2", on: 5)],
                             masquerade: [MasqueradeTable.Member(address: Self.address("10.244.1.2"), owner: "a/eth0")])
        #expect(Doctor.findings(node).isEmpty)
    }

    @Test("an ADD that has not labelled its veth yet is not a leak")
    func unlabelledVethInFlight() throws {
        let node = try Self.node(allocations: [Self.allocation("10.244.1.2", "a")], links: [Self.veth("a", index: 5, labelled: false)],
                             routes: [Self.route("10.244.1.2", on: 5)])
        #expect(Doctor.findings(node).isEmpty)
    }

    @Test("an allocation without its veth is a leak, released with its elements")
    func leak() throws {
        let node = try Self.node(allocations: [Self.allocation("10.244.1.2", "a")], links: [], routes: [])
        let findings = Doctor.findings(node)
        #expect(findings.map(\.kind) == [.leakedAddress])
        #expect(findings.first?.repair == .releaseAttachment(containerID: "a", ifname: "eth0", addresses: [Self.address("10.244.1.2")]))
    }

    @Test("a route to an unallocated pod address is stray; one on the owner's veth is not")
    func strayRoute() throws {
        let node = try Self.node(allocations: [Self.allocation("10.244.1.2", "a")], links: [Self.veth("a", index: 5)],
                             routes: [Self.route("10.244.1.2", on: 5), Self.route("10.244.1.9", on: 5)])
        let findings = Doctor.findings(node)
        #expect(findings.map(\.kind) == [.strayRoute])
        #expect(findings.first?.address == Self.address("10.244.1.9"))
        #expect(findings.first?.repair == .deleteRoute(Self.route("10.244.1.9", on: 5), device: Self.veth("a", index: 5).name))
    }

    @Test("a veth the store lost gets its routed address back, and its route and element are not stray")
    func adoption() throws {
        let node = try Self.node(allocations: [], links: [Self.veth("b", index: 6)], routes: [Self.route("10.244.1.3", on: 6)],
                             masquerade: [MasqueradeTable.Member(address: Self.address("10.244.1.3"), owner: "b/eth0")])
        let findings = Doctor.findings(node)
        #expect(findings.map(\.kind) == [.unallocatedVeth])
        #expect(findings.first?.repair == .recordAddresses([Self.address("10.244.1.3")], containerID: "b", ifname: "eth0"))
    }

    @Test("a lost veth routing another pod's address, or nothing, is deleted")
    func unadoptable() throws {
        let held = try Self.node(allocations: [Self.allocation("10.244.1.3", "a")], links: [Self.veth("a", index: 5), Self.veth("b", index: 6)],
                             routes: [Self.route("10.244.1.3", on: 6)])
        let findings = Doctor.findings(held)
        #expect(findings.contains { $0.kind == .unallocatedVeth && $0.repair == .deleteLink(Self.veth("b", index: 6).name) })
        #expect(findings.contains { $0.kind == .strayRoute && $0.address == Self.address("10.244.1.3") })
        #expect(findings.contains { $0.kind == .missingRoute && $0.repair == .addHostRoute(Self.address("10.244.1.3"), linkIndex: 5,
                                                                                           device: Self.veth("a", index: 5).name) })
    }

    @Test("an alias cut short cannot be read back")
    func aliasParsing() throws {
        #expect(Doctor.aliasAttachment("podwire kindnet abc eth0", network: "kindnet")! == ("abc", "eth0"))
        #expect(Doctor.aliasAttachment("podwire other abc eth0", network: "kindnet") == nil)
        let long = String(repeating: "f", count: 300)
        #expect(Doctor.aliasAttachment(HostVeth.alias(network: "kindnet", containerID: long, ifname: "eth0"), network: "kindnet") == nil)
    }

    @Test("of two pods forwarded one port, the later holder loses it")
    func heldTwice() throws {
        let wide = HostPortForward(hostAddress: nil, proto: .tcp, hostPort: 8080, pod: Self.address("10.244.1.2"), podPort: 80)
        let narrow = HostPortForward(hostAddress: Self.address("198.51.100.7"), proto: .tcp, hostPort: 8080,
                                     pod: Self.address("10.244.1.3"), podPort: 80)
        for (olderWide, dropped) in [(true, narrow), (false, wide)] {
            let node = try Self.node(allocations: [Self.allocation("10.244.1.2", "a", modified: olderWide ? 1000 : 1500),
                                               Self.allocation("10.244.1.3", "b", modified: olderWide ? 1500 : 1000)],
                                 links: [Self.veth("a", index: 5), Self.veth("b", index: 6)],
                                 routes: [Self.route("10.244.1.2", on: 5), Self.route("10.244.1.3", on: 6)],
                                 forwards: [HostPortTable.Held(forward: wide, owner: "a/eth0"), HostPortTable.Held(forward: narrow, owner: "b/eth0")])
            let findings = Doctor.findings(node)
            #expect(findings.map(\.kind) == [.hostPortHeldTwice])
            #expect(findings.first?.repair == .removeForward(dropped))
        }
    }
}
