import Foundation
import Testing

/// `ipMasq: true` through the real binary: the network's nftables table as `nft` reads it back,
/// and packets that reach an "outside" (198.51.100.0/24, 2001:db8::/64) with no route to the pods,
/// counted by source address where they arrive.
@Suite("ipMasq with nftables", .serialized,
       .needs(.namespaces))
struct MasqueradeTests {
    static let rules = [
        "ip saddr @masq4 ip daddr != @exempt4 ip daddr != 224.0.0.0/4 masquerade",
        "ip6 saddr @masq6 ip6 daddr != @exempt6 ip6 daddr != ff00::/8 masquerade",
    ]

    static var trafficVariants: [PluginUnderTest] { VersionCase.podwireVariants }

    // MARK: Traffic

    @Test("a pod reaches the outside, which has no route back, as the node's address", arguments: trafficVariants)
    func outsideThroughMasquerade(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        try node.addOutside()
        let cni = CNIRunner(node: node, plugin: plugin, config: Masq.config(for: plugin))
        try node.addPod("pod-a")
        try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))

        let ping = try node.ping(from: "pod-a", to: Masq.outside)
        #expect(ping.succeeded, "\(ping)")
        #expect(try node.echoSenders(inPod: "outside") == [Masq.nodeOutside: 1])

        // The table, as nft reads it back from the kernel.
        let chain = try node.check(["nft", "list", "chain", "inet", Masq.table, "postrouting"])
        #expect(chain.contains("type nat hook postrouting priority srcnat; policy accept;"), "\(chain)")
        #expect(try node.masqRules() == Self.rules)
        #expect(try node.masqMembers() == ["10.244.1.2 pod-a/eth0"])
        #expect(try node.masqMembers("masq6").isEmpty)
        #expect(try node.nftSetElements(set: "exempt4").map(\.value) == ["10.244.1.0/24", "169.254.0.0/16"])
        #expect(try node.nftSetElements(set: "exempt6").map(\.value) == ["fe80::/10"])
    }

    @Test("without ipMasq the pod's own address reaches the outside, and no table is made", arguments: VersionCase.builtInOnly)
    func noMasqueradeWithoutIpMasq(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        try node.addOutside()
        let cni = CNIRunner(node: node, plugin: plugin, config: Masq.config(for: plugin, ipMasq: false))
        try node.addPod("pod-a")
        try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))

        // The request arrives with the pod's source; the answer has nowhere to go.
        let ping = try node.ping(from: "pod-a", to: Masq.outside, wait: 1)
        #expect(!ping.succeeded, "\(ping)")
        #expect(try node.echoSenders(inPod: "outside") == ["10.244.1.2": 1])
        #expect(try !node.hasMasqTable())
    }

    @Test("pod-to-pod traffic on the node keeps the pod's source address", arguments: VersionCase.builtInOnly)
    func podToPodKeepsSource(_ plugin: PluginUnderTest) throws {
        let setup = try PodsOnOneNode(plugin, config: Masq.config(for: plugin))
        let node = setup.node
        try node.counters(inPod: "pod-b")
        let ping = try node.ping(from: "pod-a", to: setup.b.address)
        #expect(ping.succeeded, "\(ping)")
        #expect(try node.echoSenders(inPod: "pod-b") == [setup.a.address: 1])
        #expect(try node.masqMembers() == ["10.244.1.2 pod-a/eth0", "10.244.1.3 pod-b/eth0"])
    }

    @Test("IPv4 and IPv6 of a dual-stack pod are both masqueraded", arguments: VersionCase.builtInOnly)
    func dualStack(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        try node.addOutside()
        var config = Masq.config(for: plugin)
        config.object["ipam"] = [
            "type": plugin.ipamType, "dataDir": "/run/cni-ipam-state",
            "ranges": [[["subnet": "10.244.1.0/24"]], [["subnet": "fd00:10:244:1::/64"]]],
            "routes": [["dst": "0.0.0.0/0"], ["dst": "::/0"]],
        ] as [String: Any]
        let cni = CNIRunner(node: node, plugin: plugin, config: config)
        try node.addPod("pod-a")
        try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))

        for target in [Masq.outside, Masq.outside6] {
            let ping = try node.ping(from: "pod-a", to: target)
            #expect(ping.succeeded, "\(ping)")
        }
        #expect(try node.echoSenders(inPod: "outside") == [Masq.nodeOutside: 1, Masq.nodeOutside6: 1])
        #expect(try node.masqMembers("masq6") == ["fd00:10:244:1::2 pod-a/eth0"])
        #expect(try node.nftSetElements(set: "exempt6").map(\.value) == ["fd00:10:244:1::/64", "fe80::/10"])
    }

    // MARK: The table across ADDs

    @Test("many ADDs, concurrent ones included, leave the two rules once and one element per pod",
          arguments: VersionCase.builtInOnly)
    func rulesOnceAfterManyAdds(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: plugin, config: Masq.config(for: plugin))
        let first = (1...8).map { "pod-f\($0)" }, sequential = (1...3).map { "pod-s\($0)" }, burst = (1...8).map { "pod-c\($0)" }
        let pods = first + sequential + burst
        for pod in pods { try node.addPod(pod) }

        // A burst on a fresh node: every ADD races to create the table.
        var statuses = try cni.addConcurrently(first)
        #expect(statuses == Dictionary(uniqueKeysWithValues: first.map { ($0, Int32(0)) }))
        #expect(try node.masqRules() == Self.rules)
        let handles = try node.masqRuleHandles()
        #expect(handles.count == 2)

        // Once the table is in place an ADD adds its element and rewrites nothing.
        for pod in sequential { try cni.expectAddSucceeded(try cni.add(pod: pod)) }
        statuses = try cni.addConcurrently(burst)
        #expect(statuses == Dictionary(uniqueKeysWithValues: burst.map { ($0, Int32(0)) }))
        #expect(try node.masqRules() == Self.rules)
        #expect(try node.masqRuleHandles() == handles)

        let members = try node.nftSetElements(set: "masq4")
        #expect(members.count == pods.count, "\(members)")
        #expect(Set(members.compactMap(\.comment)) == Set(pods.map { "\($0)/eth0" }))
        #expect(try node.nftSetElements(set: "exempt4").map(\.value) == ["10.244.1.0/24", "169.254.0.0/16"])
        // Each element is the address IPAM gave that pod.
        for pod in [first[0], sequential[0], burst[0]] {
            let address = try #require(try node.addresses(of: "eth0", inPod: pod).first?.local)
            #expect(members.contains { $0.value == address && $0.comment == "\(pod)/eth0" }, "\(pod) \(address): \(members)")
        }
    }

    @Test("an ADD puts back rules and exempt destinations changed by hand, and takes over a stale element",
          arguments: VersionCase.builtInOnly)
    func addRepairsTable(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: plugin, config: Masq.config(for: plugin))
        for pod in ["pod-a", "pod-b"] { try node.addPod(pod) }
        try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))
        try node.check(["nft", "add rule inet \(Masq.table) postrouting counter; delete rule inet \(Masq.table) postrouting handle \(try node.masqRuleHandles()[0]);"
                        + " add element inet \(Masq.table) exempt4 { 192.0.2.0/24 };"
                        // pod-b will get 10.244.1.3: an element of an earlier holder whose DEL never came.
                        + " add element inet \(Masq.table) masq4 { 10.244.1.3 comment \"gone/eth0\" }"])
        #expect(try node.masqRules() == [Self.rules[1]])

        try cni.expectAddSucceeded(try cni.add(pod: "pod-b"))
        #expect(try node.check(["nft", "list", "chain", "inet", Masq.table, "postrouting"]).split(separator: "\n")
                    .filter { $0.contains("saddr") || $0.contains("counter") }.map { $0.trimmingCharacters(in: .whitespaces) } == Self.rules)
        #expect(try node.nftSetElements(set: "exempt4").map(\.value) == ["10.244.1.0/24", "169.254.0.0/16"])
        #expect(try node.masqMembers() == ["10.244.1.2 pod-a/eth0", "10.244.1.3 pod-b/eth0"])
    }

    @Test("noMasqueradeCIDRs exempts its destinations; the next ADD's config replaces them",
          arguments: VersionCase.builtInOnly)
    func noMasqueradeCIDRs(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        try node.addOutside(routeBack: true)
        let exempting = Masq.config(for: plugin)
            .setting("noMasqueradeCIDRs", ["10.244.0.0/16", "198.51.100.0/24", "fd00:10:244::/48"])
        let cni = CNIRunner(node: node, plugin: plugin, config: exempting)
        try node.addPod("pod-a")
        try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))
        // The IPAM subnet 10.244.1.0/24 lies inside 10.244.0.0/16: one interval.
        #expect(try node.nftSetElements(set: "exempt4").map(\.value) == ["10.244.0.0/16", "169.254.0.0/16", "198.51.100.0/24"])
        #expect(try node.nftSetElements(set: "exempt6").map(\.value) == ["fd00:10:244::/48", "fe80::/10"])

        var ping = try node.ping(from: "pod-a", to: Masq.outside)
        #expect(ping.succeeded, "\(ping)")
        #expect(try node.echoSenders(inPod: "outside") == ["10.244.1.2": 1])

        // A runtime with the key removed from the config: the exemption goes with the next ADD.
        try node.addPod("pod-b")
        try cni.expectAddSucceeded(try cni.exec("ADD", containerID: "pod-b", netns: node.netnsPath("pod-b"), ifname: "eth0",
                                                config: Masq.config(for: plugin)))
        #expect(try node.nftSetElements(set: "exempt4").map(\.value) == ["10.244.1.0/24", "169.254.0.0/16"])
        #expect(try node.nftSetElements(set: "exempt6").map(\.value) == ["fe80::/10"])
        ping = try node.ping(from: "pod-a", to: Masq.outside)
        #expect(ping.succeeded, "\(ping)")
        #expect(try node.echoSenders(inPod: "outside") == ["10.244.1.2": 1, Masq.nodeOutside: 1])
    }

    /// The value as JSON text, and what the error message must say.
    static let badExemptions: [(json: String, mentions: String)] = [
        (#""10.244.0.0/16""#, "expected a list of CIDR strings"),
        (#"["banana"]"#, #"invalid "noMasqueradeCIDRs" entry "banana": not a CIDR"#),
        (#"["10.244.0.0"]"#, #"invalid "noMasqueradeCIDRs" entry "10.244.0.0": not a CIDR"#),
        (#"["10.244.0.0/33"]"#, #"invalid "noMasqueradeCIDRs" entry "10.244.0.0/33": not a CIDR"#),
        (#"["10.244.1.5/16"]"#, "entry 10.244.1.5/16 has host bits set; did you mean 10.244.0.0/16?"),
        (#"["10.244.0.0/16",42]"#, #"invalid "noMasqueradeCIDRs" entry 1: expected a CIDR string"#),
    ]

    @Test("a bad noMasqueradeCIDRs is refused with code 7 before anything is made",
          arguments: VersionCase.builtInOnly, badExemptions.indices)
    func badNoMasqueradeCIDRs(_ plugin: PluginUnderTest, _ index: Int) throws {
        let bad = Self.badExemptions[index]
        let node = try TestNode()
        let value = try JSONSerialization.jsonObject(with: Data(bad.json.utf8), options: .fragmentsAllowed)
        let config = Masq.config(for: plugin).setting("noMasqueradeCIDRs", value)
        let cni = CNIRunner(node: node, plugin: plugin, config: config)
        try node.addPod("pod-a")
        let error = try cni.expectCNIError(try cni.add(pod: "pod-a"), code: 7)
        #expect(error.msg.contains(bad.mentions), "\(error)")

        #expect(try node.links().map(\.ifname) == ["lo"])
        #expect(try node.links(inPod: "pod-a").map(\.ifname) == ["lo"])
        #expect(try !node.fileExists(config.addressFile("10.244.1.2")))
        #expect(try !node.hasMasqTable())
    }

    @Test("an ADD whose masquerade the kernel refuses fails with code 100 and undoes everything",
          arguments: VersionCase.builtInOnly)
    func refusedMasqueradeRollsBack(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        // A table of the same name whose masq4 holds IPv6 addresses: podwire's cannot be made.
        try node.check(["nft", "add table inet \(Masq.table); add set inet \(Masq.table) masq4 { type ipv6_addr; }"])
        let before = try node.check(["nft", "list", "ruleset"])
        let config = Masq.config(for: plugin)
        let cni = CNIRunner(node: node, plugin: plugin, config: config)
        try node.addPod("pod-a")
        let error = try cni.expectCNIError(try cni.add(pod: "pod-a"), code: 100)
        #expect(error.msg.hasPrefix("failed to masquerade 10.244.1.2 with nftables table inet \(Masq.table): "), "\(error)")
        #expect(error.details?.contains("nft add set inet \(Masq.table) masq4 { type ipv4_addr; }") == true, "\(error)")

        #expect(try node.links().map(\.ifname) == ["lo"])
        #expect(try node.links(inPod: "pod-a").map(\.ifname) == ["lo"])
        #expect(try !node.fileExists(config.addressFile("10.244.1.2")))
        #expect(try node.check(["nft", "list", "ruleset"]) == before, "one transaction: nothing of it stays")
    }

    // MARK: DEL

    @Test("DEL removes the pod's element, only it, and again succeeds", arguments: Masq.storeVariants)
    func delRemovesElement(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        try node.linkDelegate()
        try node.addOutside()
        let cni = CNIRunner(node: node, plugin: plugin, config: Masq.config(for: plugin))
        for pod in ["pod-a", "pod-b"] {
            try node.addPod(pod)
            try cni.expectAddSucceeded(try cni.add(pod: pod))
        }
        cni.expectDelSucceeded(try cni.del(pod: "pod-a"))
        #expect(try node.masqMembers() == ["10.244.1.3 pod-b/eth0"])
        cni.expectDelSucceeded(try cni.del(pod: "pod-a"))
        #expect(try node.masqMembers() == ["10.244.1.3 pod-b/eth0"])
        #expect(try node.masqRules() == Self.rules)
        #expect(try node.ping(from: "pod-b", to: Masq.outside).succeeded)
    }

    @Test("DEL with an empty CNI_NETNS after the pod's netns is gone still removes its element (B6)",
          arguments: Masq.storeVariants)
    func delAfterNetnsGone(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        try node.linkDelegate()
        let config = Masq.config(for: plugin)
        let cni = CNIRunner(node: node, plugin: plugin, config: config)
        for pod in ["pod-a", "pod-b"] {
            try node.addPod(pod)
            try cni.expectAddSucceeded(try cni.add(pod: pod))
        }
        try node.removePod("pod-a")
        cni.expectDelSucceeded(try cni.delWithoutNetns(pod: "pod-a"))
        #expect(try node.masqMembers() == ["10.244.1.3 pod-b/eth0"])
        #expect(try !node.fileExists(config.addressFile("10.244.1.2")))
        cni.expectDelSucceeded(try cni.delWithoutNetns(pod: "pod-a"))
    }

    @Test("DEL removes the element whatever ipMasq says now", arguments: VersionCase.builtInOnly)
    func delIgnoresCurrentIpMasq(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let on = Masq.config(for: plugin), off = Masq.config(for: plugin, ipMasq: false)
        let cni = CNIRunner(node: node, plugin: plugin, config: on)
        for pod in ["pod-a", "pod-b"] { try node.addPod(pod) }
        try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))
        try cni.expectAddSucceeded(try cni.exec("ADD", containerID: "pod-b", netns: node.netnsPath("pod-b"), ifname: "eth0", config: off))
        #expect(try node.masqMembers() == ["10.244.1.2 pod-a/eth0"])

        // ipMasq turned off since pod-a's ADD; turned on since pod-b's (the reference's B11).
        cni.expectDelSucceeded(try cni.exec("DEL", containerID: "pod-a", netns: node.netnsPath("pod-a"), ifname: "eth0", config: off))
        #expect(try node.masqMembers().isEmpty)
        cni.expectDelSucceeded(try cni.del(pod: "pod-b"))
        #expect(try node.links().map(\.ifname) == ["lo"])
    }

    @Test("a DEL whose masquerade removal the kernel refuses still deletes the veth, keeps the address, and a retry finishes",
          arguments: VersionCase.builtInOnly)
    func refusedRemovalKeepsAddress(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let config = Masq.config(for: plugin)
        let cni = CNIRunner(node: node, plugin: plugin, config: config)
        try node.addPod("pod-a")
        try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))
        // Someone replaced the table with one whose masq4 holds IPv6 addresses.
        try node.check(["nft", "delete table inet \(Masq.table); add table inet \(Masq.table);"
                        + " add set inet \(Masq.table) masq4 { type ipv6_addr; }"])

        let error = try cni.expectCNIError(try cni.del(pod: "pod-a"), code: 100)
        #expect(error.msg.hasPrefix("failed to stop masquerading pod-a/eth0 in nftables table inet \(Masq.table): "), "\(error)")
        #expect(try node.links().map(\.ifname) == ["lo"], "the veth goes whatever happens to the masquerade")
        #expect(try node.fileExists(config.addressFile("10.244.1.2")), "not released while it may still be masqueraded")

        try node.check(["nft", "delete table inet \(Masq.table)"])
        cni.expectDelSucceeded(try cni.del(pod: "pod-a"))
        #expect(try !node.fileExists(config.addressFile("10.244.1.2")))
    }

    // MARK: GC and CHECK

    @Test("GC leaves in the sets exactly what remains allocated to listed attachments", arguments: Masq.storeVariants)
    func gcCollects(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        try node.linkDelegate()
        let cni = CNIRunner(node: node, plugin: plugin, config: Masq.config(for: plugin))
        for pod in ["pod-a", "pod-b", "pod-c"] {
            try node.addPod(pod)
            try cni.expectAddSucceeded(try cni.add(pod: pod))
        }
        // Damage a runtime never causes: an element of a pod gone without DEL, one nobody claims.
        try node.check(["nft", "add element inet \(Masq.table) masq4 { 10.244.1.99 comment \"ghost/eth0\", 10.244.1.98 }"])
        let ownStore = plugin.ipamType == "podwire-ipam"
        if ownStore {
            // With the store to read, GC also puts back what an allocation lacks.
            try node.check(["nft", "delete element inet \(Masq.table) masq4 { 10.244.1.2 }"])
        }
        cni.expectSilentSuccess(try cni.gc(valid: [("pod-a", "eth0"), ("pod-c", "eth0")]))

        // Without a store, an element without an owner's comment cannot be judged, so it stays.
        let expected = ["10.244.1.2 pod-a/eth0", "10.244.1.4 pod-c/eth0"] + (ownStore ? [] : ["10.244.1.98"])
        #expect(try node.masqMembers() == expected.sorted())
        #expect(try node.masqRules() == Self.rules)
    }

    @Test("CHECK names the missing or misattributed element, the missing rules and table (code 104)", arguments: VersionCase.builtInOnly)
    func checkNamesWhatIsMissing(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: plugin, config: Masq.config(for: plugin))
        try node.addPod("pod-a")
        let added = try cni.add(pod: "pod-a")
        try cni.expectAddSucceeded(added)
        let result = try #require(added.json)
        cni.expectSilentSuccess(try cni.check(pod: "pod-a", prevResult: result))

        try node.check(["nft", "delete element inet \(Masq.table) masq4 { 10.244.1.2 }"])
        var error = try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: result), code: 104)
        #expect(error.msg.hasSuffix("differs from its result: pod address 10.244.1.2 is missing from set masq4 of table inet \(Masq.table)"),
                "\(error)")

        try node.check(["nft", "add element inet \(Masq.table) masq4 { 10.244.1.2 comment \"pod-z/eth0\" }"])
        error = try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: result), code: 104)
        #expect(error.msg.hasSuffix(#"pod address 10.244.1.2 in set masq4 of table inet podwire-kindnet is commented as "pod-z/eth0", not "pod-a/eth0""#),
                "\(error)")

        try node.check(["nft", "delete element inet \(Masq.table) masq4 { 10.244.1.2 }; add element inet \(Masq.table) masq4 { 10.244.1.2 comment \"pod-a/eth0\" };"
                        + " flush chain inet \(Masq.table) postrouting"])
        error = try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: result), code: 104)
        #expect(error.msg.hasSuffix(Self.rules.map { "rule \"\($0)\" is missing from chain postrouting of table inet \(Masq.table)" }
                    .joined(separator: "; ")), "\(error)")

        try node.check(["nft", "delete table inet \(Masq.table)"])
        error = try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: result), code: 104)
        #expect(error.msg.hasSuffix("nftables table inet \(Masq.table) is missing"), "\(error)")

        // Without ipMasq there is nothing of it to check.
        cni.expectSilentSuccess(try cni.check(pod: "pod-a", prevResult: result, config: Masq.config(for: plugin, ipMasq: false)))
    }
}
