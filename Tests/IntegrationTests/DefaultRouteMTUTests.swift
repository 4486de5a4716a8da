import Foundation
import Testing

/// A config without `mtu`: the pair takes the MTU of the link that carries the node's default
/// route, found with one route lookup whatever the number of routes on the node.
@Suite("MTU from the default route", .serialized,
       .needs(.namespaces))
struct DefaultRouteMTUTests {
    /// A node whose default route leaves through `uplink` (MTU 1400), with a route of its own to
    /// the lookup's probe range (192.0.2.0/24) through `side` (MTU 1300) only when asked.
    static func node(probeRouted: Bool = false) throws -> TestNode {
        let node = try TestNode()
        // veth pairs (this kernel has no dummy links), both ends up so the routes have carrier.
        for (link, mtu) in [("uplink", "1400"), ("side", "1300")] {
            try node.ip("link", "add", link, "mtu", mtu, "type", "veth", "peer", "name", link + "-peer", "mtu", mtu)
            try node.ip("link", "set", link, "up")
            try node.ip("link", "set", link + "-peer", "up")
        }
        try node.ip("addr", "add", "198.51.100.2/24", "dev", "uplink")
        try node.ip("route", "add", "default", "via", "198.51.100.1", "dev", "uplink")
        if probeRouted {
            try node.ip("route", "add", "192.0.2.0/24", "dev", "side")
        }
        return node
    }

    static func mtus(_ node: TestNode, pod: String) throws -> (pod: Int, host: Int) {
        let podLink = try #require(try node.links(inPod: pod).first { $0.ifname == "eth0" })
        let hostLinks = try node.links().filter { $0.ifname.hasPrefix("veth") }
        let hostLink = try #require(hostLinks.last)
        return (podLink.mtu, hostLink.mtu)
    }

    @Test("the default route's link MTU, on an empty node and with 300 more routes",
          arguments: VersionCase.podwireVariants)
    func defaultRouteLink(_ plugin: PluginUnderTest) throws {
        let node = try Self.node()
        let cni = CNIRunner(node: node, plugin: plugin, config: NetworkConfig.kindnet(for: plugin).setting("mtu", nil))
        try node.addPod("pod-a")
        _ = try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))
        var mtus = try Self.mtus(node, pod: "pod-a")
        #expect(mtus.pod == 1400 && mtus.host == 1400, "\(mtus)")

        let batch = (0..<300).map { "route add 203.0.113.\($0 % 250)/32 dev uplink table \(100 + $0 / 250)" }
            + (0..<300).map { "route add 10.99.\($0 / 250).\($0 % 250)/32 dev side" }
        _ = try node.check(["sh", "-c", "printf '%s\\n' \"$@\" | ip -batch -", "sh"] + batch)
        try node.addPod("pod-b")
        _ = try cni.expectAddSucceeded(try cni.add(pod: "pod-b"))
        mtus = try Self.mtus(node, pod: "pod-b")
        #expect(mtus.pod == 1400 && mtus.host == 1400, "\(mtus)")
    }

    @Test("a route of its own to the lookup's probe does not mislead it; no default route means 1500",
          arguments: VersionCase.podwireVariants)
    func probeRoutedAndNoDefault(_ plugin: PluginUnderTest) throws {
        let node = try Self.node(probeRouted: true)
        let cni = CNIRunner(node: node, plugin: plugin, config: NetworkConfig.kindnet(for: plugin).setting("mtu", nil))
        try node.addPod("pod-a")
        _ = try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))
        var mtus = try Self.mtus(node, pod: "pod-a")
        #expect(mtus.pod == 1400 && mtus.host == 1400, "\(mtus)")

        try node.ip("route", "del", "default")
        try node.addPod("pod-b")
        _ = try cni.expectAddSucceeded(try cni.add(pod: "pod-b"))
        mtus = try Self.mtus(node, pod: "pod-b")
        #expect(mtus.pod == 1500 && mtus.host == 1500, "\(mtus)")
    }
}
