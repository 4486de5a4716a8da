import Foundation
import Testing

/// podwire's built-in hostPorts through the real binary, exec'd as a runtime execs it with
/// `runtimeConfig.portMappings` on stdin: what DEL, GC, CHECK and a refused or retried ADD do to
/// the network's nftables table, read back from the kernel with `nft`, and to the traffic a
/// hostPort carries. Every node is a private namespace of its own.
@Suite("hostPorts through the binary: DEL, GC, refusals, hostIP, retried ADD, CHECK", .serialized,
       .needs(.namespaces))
struct HostPortVerbTests {
    static let network = "kindnet"
    static let table = TestNode.podwireTable(network: network)

    /// The seed network with `mappings` as `runtimeConfig.portMappings`; no runtimeConfig at all
    /// when nil. 1.0.0 for Debian's host-local, which refuses 1.1.0.
    static func config(_ plugin: PluginUnderTest, _ mappings: [[String: Any]]?) -> NetworkConfig {
        NetworkConfig.kindnet(for: plugin, version: plugin.ipamType == "host-local" ? "1.0.0" : "1.1.0")
            .setting("runtimeConfig", mappings.map { ["portMappings": $0] })
    }

    /// An attachment ADDed by `add`: the pod's address, its host veth and the ADD's result.
    struct Added {
        var address: String
        var hostVeth: String
        var result: [String: Any]
    }

    /// Makes the pod's namespace and ADDs its eth0 with `mappings`; the container ID is the pod's name.
    static func add(_ cni: CNIRunner, _ pod: String, _ mappings: [[String: Any]]?,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> Added {
        try cni.node.addPod(pod)
        let response = try addAgain(cni, pod, mappings, sourceLocation: sourceLocation)
        let result = try cni.expectAddSucceeded(response, sourceLocation: sourceLocation)
        let ip = try #require(result.ips?.first, "\(response)", sourceLocation: sourceLocation)
        let host = try #require(result.interfaces?.first, "\(response)", sourceLocation: sourceLocation)
        return Added(address: String(ip.address.prefix { $0 != "/" }), hostVeth: host.name,
                     result: try #require(response.json, sourceLocation: sourceLocation))
    }

    /// ADD of `pod`'s eth0 into its existing namespace.
    static func addAgain(_ cni: CNIRunner, _ pod: String, _ mappings: [[String: Any]]?,
                         sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        try cni.exec("ADD", containerID: pod, netns: cni.node.netnsPath(pod), ifname: "eth0",
                     config: config(cni.plugin, mappings), sourceLocation: sourceLocation)
    }

    /// DEL of `pod`'s eth0 with `netns` ("" as containerd sends it once the sandbox is gone).
    static func del(_ cni: CNIRunner, _ pod: String, netns: String, _ mappings: [[String: Any]]?,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        try cni.exec("DEL", containerID: pod, netns: netns, ifname: "eth0", config: config(cni.plugin, mappings),
                     sourceLocation: sourceLocation)
    }

    /// Every per-pod element of the network's table (hostPort maps, SNAT sets, masquerade sets),
    /// "set: element" as `nft list` prints the element, sorted.
    static func elements(_ node: TestNode, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        try node.podwirePerPodElements(network: network, sourceLocation: sourceLocation).sorted()
    }

    /// A forward as `elements` lists it: in `hp4any` on every IPv4 address of the node, in `hp4`
    /// on the one address `hostIP`.
    static func forward(_ hostPort: Int, _ owner: String, _ pod: String, _ containerPort: Int, proto: String = "tcp",
                        on hostIP: String? = nil) -> String {
        let element = TestNode.hostPortElement(proto: proto, hostPort: hostPort, owner: owner, podIP: pod, containerPort: containerPort)
        return hostIP.map { "hp4: \($0) . \(element)" } ?? "hp4any: \(element)"
    }

    /// An IPv4 pod's SNAT pairs: the hairpin pair and the localhost pair.
    static func snat(_ pod: String, _ owner: String) -> [String] {
        ["hpsnat4: \(pod) . \(pod) comment \"\(owner)\"", "hpsnat4: 127.0.0.1 . \(pod) comment \"\(owner)\""]
    }

    /// The addresses the IPAM store holds for the network, sorted.
    static func reservations(_ cni: CNIRunner) throws -> [String] {
        try cni.node.listDirectory("\(cni.config.dataDir)/\(cni.config.name)").filter { $0.first?.isNumber == true }
    }

    // MARK: DEL

    @Test("DEL removes the attachment's forwards and SNAT pairs with an empty CNI_NETNS, without portMappings, and without both",
          arguments: VersionCase.podwireVariants)
    func delWithoutNetnsOrMappings(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: plugin, config: Self.config(plugin, nil))
        let mappingsA: [[String: Any]] = [["hostPort": 8080, "containerPort": 80, "protocol": "tcp"],
                                          ["hostPort": 5353, "containerPort": 53, "protocol": "udp"]]
        let mappingsB: [[String: Any]] = [["HostPort": 9090, "ContainerPort": 90, "Protocol": "tcp", "HostIP": ""]]
        let mappingsC: [[String: Any]] = [["hostPort": 7070, "containerPort": 70, "hostIP": "198.51.100.1"]]
        let a = try Self.add(cni, "pod-a", mappingsA)
        let b = try Self.add(cni, "pod-b", mappingsB)
        let c = try Self.add(cni, "pod-c", mappingsC)
        #expect([a.address, b.address, c.address] == ["10.244.1.2", "10.244.1.3", "10.244.1.4"])
        let elementsA = [Self.forward(8080, "pod-a/eth0", a.address, 80), Self.forward(5353, "pod-a/eth0", a.address, 53, proto: "udp")]
            + Self.snat(a.address, "pod-a/eth0")
        let elementsB = [Self.forward(9090, "pod-b/eth0", b.address, 90)] + Self.snat(b.address, "pod-b/eth0")
        let elementsC = [Self.forward(7070, "pod-c/eth0", c.address, 70, on: "198.51.100.1")] + Self.snat(c.address, "pod-c/eth0")
        #expect(try Self.elements(node) == (elementsA + elementsB + elementsC).sorted())

        // pod-a: the sandbox is gone and the runtime no longer knows its netns (containerd's DEL).
        try node.removePod("pod-a")
        cni.expectDelSucceeded(try Self.del(cni, "pod-a", netns: "", mappingsA))
        #expect(try Self.elements(node) == (elementsB + elementsC).sorted())
        #expect(try node.link(a.hostVeth) == nil)
        #expect(try !node.fileExists(cni.config.addressFile(a.address)))
        // A repeated DEL finds nothing more to remove, and touches no one else's.
        cni.expectDelSucceeded(try Self.del(cni, "pod-a", netns: "", mappingsA))
        #expect(try Self.elements(node) == (elementsB + elementsC).sorted())

        // pod-b: a DEL that carries no runtimeConfig (a runtime that does not pass capabilities
        // on DEL): the elements are found by their owner.
        cni.expectDelSucceeded(try Self.del(cni, "pod-b", netns: node.netnsPath("pod-b"), nil))
        #expect(try Self.elements(node) == elementsC.sorted())
        #expect(try node.link(b.hostVeth) == nil)
        #expect(try !node.fileExists(cni.config.addressFile(b.address)))

        // pod-c: neither netns nor runtimeConfig, and its forward is on a hostIP (the hp4 map).
        try node.removePod("pod-c")
        cni.expectDelSucceeded(try Self.del(cni, "pod-c", netns: "", nil))
        #expect(try Self.elements(node) == [])
        #expect(try node.link(c.hostVeth) == nil)
        #expect(try !node.fileExists(cni.config.addressFile(c.address)))

        // The structure stays for the next pod, empty.
        let sets = try node.podwireSets(network: Self.network)
        #expect(sets.keys.sorted() == ["hp4", "hp4any", "hp6", "hp6any", "hpseen4", "hpseen6", "hpsnat4", "hpsnat6"], "\(sets)")
        // Empty but for the seen sets' youth (port 0, for the UDP conntrack timeout).
        #expect(sets.filter { !$0.key.hasPrefix("hpseen") }.values.allSatisfy { $0.isEmpty }, "\(sets)")
        #expect(sets.filter { $0.key.hasPrefix("hpseen") }.values.allSatisfy { $0 == ["0"] }, "\(sets)")
    }

    // MARK: GC

    @Test("GC removes the forwards and SNAT pairs of unlisted attachments only; the listed pod still answers on its hostPort")
    func gcKeepsListed() throws {
        let node = try TestNode()
        try node.addOutside()
        let plugin = PluginUnderTest.podwire
        let cni = CNIRunner(node: node, plugin: plugin, config: Self.config(plugin, nil))
        let a = try Self.add(cni, "pod-a", [["hostPort": 8080, "containerPort": 80]])
        let b = try Self.add(cni, "pod-b", [["hostPort": 8081, "containerPort": 80]])
        let elementsA = [Self.forward(8080, "pod-a/eth0", a.address, 80)] + Self.snat(a.address, "pod-a/eth0")
        let elementsB = [Self.forward(8081, "pod-b/eth0", b.address, 80)] + Self.snat(b.address, "pod-b/eth0")
        #expect(try Self.elements(node) == (elementsA + elementsB).sorted())

        try node.startListener(netns: node.netnsPath("pod-a"), proto: "tcp", port: 80, name: "pod-a")
        try node.startListener(netns: node.netnsPath("pod-b"), proto: "tcp", port: 80, name: "pod-b")
        let outside = node.netnsPath("outside")
        #expect(try node.exchange(from: outside, proto: "tcp", address: Masq.nodeOutside, port: 8080) == "hello from pod-a to \(Masq.outside)")
        #expect(try node.exchange(from: outside, proto: "tcp", address: Masq.nodeOutside, port: 8081) == "hello from pod-b to \(Masq.outside)")

        cni.expectSilentSuccess(try cni.gc(valid: [("pod-b", "eth0")]))
        #expect(try Self.elements(node) == elementsB.sorted())
        #expect(try node.link(a.hostVeth) == nil)
        #expect(try node.link(b.hostVeth)?.isUp == true)
        #expect(try node.exchange(from: outside, proto: "tcp", address: Masq.nodeOutside, port: 8081) == "hello from pod-b to \(Masq.outside)")
        #expect(try node.exchange(from: outside, proto: "tcp", address: Masq.nodeOutside, port: 8080) == nil,
                "pod-a's hostPort still answers after GC")

        // A second GC has nothing more to remove.
        cni.expectSilentSuccess(try cni.gc(valid: [("pod-b", "eth0")]))
        #expect(try Self.elements(node) == elementsB.sorted())
        try node.stopListeners()
    }

    // MARK: Refused ADDs

    struct BadList: Sendable, CustomTestStringConvertible {
        var label: String
        /// runtimeConfig.portMappings, JSON text.
        var list: String
        var mentions: [String]

        var testDescription: String { label }
    }

    static let badLists: [BadList] = [
        BadList(label: "not a list", list: #"{"hostPort":8080,"containerPort":80}"#,
                mentions: ["invalid runtimeConfig.portMappings: expected a list"]),
        BadList(label: "hostPort 0 after a good entry", list: #"[{"hostPort":9090,"containerPort":90},{"hostPort":0,"containerPort":80}]"#,
                mentions: [#"invalid runtimeConfig.portMappings entry 1: "hostPort" must be a port number from 1 to 65535"#,
                           #"the entry is {"containerPort":80,"hostPort":0}"#]),
        BadList(label: "a string port", list: #"[{"HostPort":"8080","ContainerPort":80}]"#,
                mentions: [#"invalid runtimeConfig.portMappings entry 0: "hostPort" must be a port number"#]),
        BadList(label: "unknown protocol", list: #"[{"hostPort":8080,"containerPort":80,"protocol":"icmp"}]"#,
                mentions: [#"invalid runtimeConfig.portMappings entry 0: unknown protocol "icmp""#]),
        BadList(label: "bad hostIP", list: #"[{"hostPort":8080,"containerPort":80,"hostIP":"node-a"}]"#,
                mentions: [#"invalid runtimeConfig.portMappings entry 0: hostIP "node-a" is not an IP address"#]),
        BadList(label: "one host port to two container ports",
                list: #"[{"hostPort":8080,"containerPort":80},{"hostPort":8080,"containerPort":81}]"#,
                mentions: ["runtimeConfig.portMappings maps host port tcp/8080 twice, to container ports 80 and 81"]),
    ]

    @Test("a bad portMappings list is refused with code 7 before anything is made: no veth, no address file, no nftables table",
          arguments: badLists)
    func badListRefused(_ row: BadList) throws {
        let node = try TestNode()
        try node.addPod("pod-a")
        let before = try node.leftovers(pods: ["pod-a"])
        let response = try RawInvocation.add(config: InputNetwork.kindnet(extra: #","runtimeConfig":{"portMappings":\#(row.list)}"#)).run(on: node)
        try expectRefused(response, code: 7, mentions: row.mentions, node: node, before: before, pods: ["pod-a"])
        #expect(try node.check(["nft", "list", "ruleset"]).isEmpty)
        #expect(try node.listDirectory(InputNetwork.store).filter { $0.first?.isNumber == true }.isEmpty)
    }

    struct Unreachable: Sendable, CustomTestStringConvertible {
        var label: String
        var ranges: String
        var routes: String
        var hostIP: String
        var mentions: [String]
        /// The address the pod gets, before and after.
        var address: String

        var testDescription: String { label }
    }

    /// Ranges of one address each: the ADD after the refused one can only succeed if the refused
    /// one gave its address back.
    static let onlyV4 = #"[{"subnet":"10.244.1.0/24","rangeStart":"10.244.1.2","rangeEnd":"10.244.1.2"}]"#
    static let onlyV6 = #"[{"subnet":"fd00:10:244:1::/64","rangeStart":"fd00:10:244:1::2","rangeEnd":"fd00:10:244:1::2"}]"#

    static let unreachable: [Unreachable] = [
        Unreachable(label: "hostIP 2001:db8::1 for an IPv4-only pod", ranges: "[\(onlyV4)]", routes: #"[{"dst":"0.0.0.0/0"}]"#,
                    hostIP: "2001:db8::1", mentions: ["2001:db8::1", "tcp/8080 cannot reach the pod", "the pod has IPv4 only"],
                    address: "10.244.1.2"),
        Unreachable(label: "hostIP :: for an IPv4-only pod", ranges: "[\(onlyV4)]", routes: #"[{"dst":"0.0.0.0/0"}]"#,
                    hostIP: "::", mentions: ["tcp/8080 cannot reach the pod", "the pod has IPv4 only"], address: "10.244.1.2"),
        Unreachable(label: "hostIP 0.0.0.0 for an IPv6-only pod", ranges: "[\(onlyV6)]", routes: #"[{"dst":"::/0"}]"#,
                    hostIP: "0.0.0.0", mentions: ["hostPort 0.0.0.0:tcp/8080 cannot reach the pod", "the pod has IPv6 only"],
                    address: "fd00:10:244:1::2"),
    ]

    @Test("a hostIP of a family the pod has no address in is refused with code 7 after IPAM, everything rolled back",
          arguments: unreachable)
    func familyRefusedAfterIPAM(_ row: Unreachable) throws {
        let node = try TestNode()
        try node.addPod("pod-a")
        // The store's directory is IPAM's to make on first use, which this ADD reaches: made
        // beforehand, so that the snapshots differ only by what the ADD should have undone.
        try node.shell("mkdir -p \(InputNetwork.store)")
        let before = try node.leftovers(pods: ["pod-a"])
        let list = #"[{"hostPort":9090,"containerPort":90},{"hostPort":8080,"containerPort":80,"hostIP":"\#(row.hostIP)"}]"#
        let network = { (extra: String) in InputNetwork.kindnet(ranges: row.ranges, routes: row.routes, extra: extra) }
        let response = try RawInvocation.add(config: network(#","runtimeConfig":{"portMappings":\#(list)}"#)).run(on: node)
        // Veth, address file, host route, pod address: all gone again (leftovers compares them all).
        try expectRefused(response, code: 7, mentions: row.mentions, node: node, before: before, pods: ["pod-a"])
        #expect(try node.check(["nft", "list", "ruleset"]).isEmpty)
        // IPAM was reached (its cursor moved), and its one address was given back: the next ADD
        // of the pod, without the bad mapping, gets it.
        #expect(try node.fileExists("\(InputNetwork.store)/last_reserved_ip.0"))
        let again = try RawInvocation.add(config: network(#","runtimeConfig":{"portMappings":[{"hostPort":9090,"containerPort":90}]}"#)).run(on: node)
        let result = try CNIRunner(node: node, plugin: InputNetwork.podwire).expectAddSucceeded(again)
        #expect(result.ips?.map { String($0.address.prefix { $0 != "/" }) } == [row.address], "\(again)")
    }

    @Test("one node port reached through hostIP \"\" and 0.0.0.0 to two container ports: refused with code 7, nothing left")
    func samePortTwoSpellings() throws {
        let node = try TestNode()
        try node.addPod("pod-a")
        try node.shell("mkdir -p \(InputNetwork.store)")
        let before = try node.leftovers(pods: ["pod-a"])
        let list = #"[{"hostPort":8080,"containerPort":80},{"hostPort":8080,"containerPort":81,"hostIP":"0.0.0.0"}]"#
        let response = try RawInvocation.add(config: InputNetwork.kindnet(extra: #","runtimeConfig":{"portMappings":\#(list)}"#)).run(on: node)
        let cni = CNIRunner(node: node, plugin: InputNetwork.podwire)
        let error = try cni.expectFailure(response)
        #expect(error.code == 7, "\(response)")
        #expect(try node.leftovers(pods: ["pod-a"]) == before)
        #expect(try Self.elements(node) == [])
    }

    // MARK: hostIP

    @Test("a hostIP mapping answers on that address only; another pod may take the port on another address, not on all (105)")
    func specificHostIP() throws {
        let node = try TestNode()
        try node.addOutside()
        let second = "198.51.100.3"
        try node.ip("address", "add", "\(second)/24", "dev", "out0")
        let plugin = PluginUnderTest.podwire
        let cni = CNIRunner(node: node, plugin: plugin, config: Self.config(plugin, nil))
        let outside = node.netnsPath("outside")

        let a = try Self.add(cni, "pod-a", [["hostPort": 8080, "containerPort": 80, "hostIP": Masq.nodeOutside]])
        let elementsA = [Self.forward(8080, "pod-a/eth0", a.address, 80, on: Masq.nodeOutside)] + Self.snat(a.address, "pod-a/eth0")
        #expect(try Self.elements(node) == elementsA.sorted())
        try node.startListener(netns: node.netnsPath("pod-a"), proto: "tcp", port: 80, name: "pod-a")
        #expect(try node.exchange(from: outside, proto: "tcp", address: Masq.nodeOutside, port: 8080) == "hello from pod-a to \(Masq.outside)")
        #expect(try node.exchange(from: outside, proto: "tcp", address: second, port: 8080) == nil,
                "the hostPort answers on \(second) too, not only on its hostIP")

        // The same port on the node's other address is another pod's to take.
        let b = try Self.add(cni, "pod-b", [["HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": second]])
        let elementsB = [Self.forward(8080, "pod-b/eth0", b.address, 80, on: second)] + Self.snat(b.address, "pod-b/eth0")
        #expect(try Self.elements(node) == (elementsA + elementsB).sorted())
        try node.startListener(netns: node.netnsPath("pod-b"), proto: "tcp", port: 80, name: "pod-b")
        #expect(try node.exchange(from: outside, proto: "tcp", address: second, port: 8080) == "hello from pod-b to \(Masq.outside)")
        #expect(try node.exchange(from: outside, proto: "tcp", address: Masq.nodeOutside, port: 8080) == "hello from pod-a to \(Masq.outside)")

        // Every address, or pod-a's own, is taken: refused naming a holder, nothing of pod-c left.
        try node.addPod("pod-c")
        for (hostIP, message) in [("", "hostPort tcp/8080 is already taken by container pod-"),
                                  ("0.0.0.0", "hostPort tcp/8080 is already taken by container pod-"),
                                  (Masq.nodeOutside, "hostPort 198.51.100.1:tcp/8080 is already taken by container pod-a (interface eth0)")] {
            let refused = try Self.addAgain(cni, "pod-c", [["hostPort": 8080, "containerPort": 8080, "hostIP": hostIP]])
            let error = try cni.expectCNIError(refused, code: 105)
            #expect(error.msg.hasPrefix(message), "hostIP \"\(hostIP)\": \(refused)")
            #expect(try node.links(inPod: "pod-c").map(\.ifname) == ["lo"], "hostIP \"\(hostIP)\"")
            #expect(try Self.reservations(cni) == [a.address, b.address], "hostIP \"\(hostIP)\"")
            #expect(try Self.elements(node) == (elementsA + elementsB).sorted(), "hostIP \"\(hostIP)\"")
        }
        let named = try cni.expectCNIError(try Self.addAgain(cni, "pod-c", [["hostPort": 8080, "containerPort": 8080, "hostIP": Masq.nodeOutside]]),
                                           code: 105)
        #expect(named.details == "held as 198.51.100.1:tcp/8080 -> 10.244.1.2:80; DEL that pod, or choose another hostPort")

        // Another protocol on the same port is free, on every address.
        let c = try Self.add(cni, "pod-c-udp", [["hostPort": 8080, "containerPort": 8080, "protocol": "udp"]])
        #expect(try Self.elements(node)
                == (elementsA + elementsB + [Self.forward(8080, "pod-c-udp/eth0", c.address, 8080, proto: "udp")] + Self.snat(c.address, "pod-c-udp/eth0")).sorted())
        #expect(try node.exchange(from: outside, proto: "tcp", address: second, port: 8080) == "hello from pod-b to \(Masq.outside)")
        try node.stopListeners()
    }

    // MARK: Retried ADD

    @Test("a runtime's retried ADD of the same attachment is never refused as a conflict with its own hostPorts")
    func retriedAdd() throws {
        let node = try TestNode()
        let plugin = PluginUnderTest.podwire
        let mappings: [[String: Any]] = [["hostPort": 8080, "containerPort": 80], ["hostPort": 5353, "containerPort": 53, "protocol": "udp"]]
        let cni = CNIRunner(node: node, plugin: plugin, config: Self.config(plugin, mappings))
        let a = try Self.add(cni, "pod-a", mappings)
        let elements = [Self.forward(8080, "pod-a/eth0", a.address, 80), Self.forward(5353, "pod-a/eth0", a.address, 53, proto: "udp")]
            + Self.snat(a.address, "pod-a/eth0")
        #expect(try Self.elements(node) == elements.sorted())

        // The attachment is live: the retry fails (its interface exists), but not as a hostPort
        // conflict, and the first wiring and its elements are untouched.
        let retried = try Self.addAgain(cni, "pod-a", mappings)
        let error = try cni.expectFailure(retried)
        #expect(error.code != 105, "\(retried)")
        #expect(try Self.elements(node) == elements.sorted())
        #expect(try node.readFile(cni.config.addressFile(a.address)) == "pod-a\r\neth0")
        #expect(try node.link(a.hostVeth)?.isUp == true)
        cni.expectSilentSuccess(try cni.check(pod: "pod-a", prevResult: a.result))

        // The sandbox's namespace was lost and made again without a DEL (a runtime that
        // restarted): the retried ADD wires the same address and finds its hostPorts in place.
        try node.removePod("pod-a")
        // The kernel frees a deleted namespace, and the host end whose peer lived there, in its
        // own time; a runtime restarting takes longer than that. (ADD right away, before it is
        // gone, was refused once in 4 runs: see the closing note of issue #15.)
        var waited = 0
        while try node.link(a.hostVeth) != nil && waited < 100 {
            usleep(50_000)
            waited += 1
        }
        let again = try Self.add(cni, "pod-a", mappings)
        #expect(again.address == a.address)
        #expect(try Self.elements(node) == elements.sorted())
        cni.expectSilentSuccess(try cni.check(pod: "pod-a", prevResult: again.result))
    }

    // MARK: CHECK

    @Test("CHECK with the mappings passes after ADD and fails (104) naming the missing element, the foreign holder, the SNAT pair, route_localnet")
    func checkNamesWhatIsMissing() throws {
        let node = try TestNode()
        let plugin = PluginUnderTest.podwire
        let mappings: [[String: Any]] = [["hostPort": 8080, "containerPort": 80], ["hostPort": 5353, "containerPort": 53, "protocol": "udp"]]
        let cni = CNIRunner(node: node, plugin: plugin, config: Self.config(plugin, mappings))
        let a = try Self.add(cni, "pod-a", mappings)
        #expect(a.address == "10.244.1.2")
        cni.expectSilentSuccess(try cni.check(pod: "pod-a", prevResult: a.result))
        let differs = "attachment pod-a/eth0 differs from its result: "

        try node.check(["nft", "delete element inet \(Self.table) hp4any { tcp . 8080 }"])
        try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: a.result), code: 104,
                               msg: differs + "hostPort 0.0.0.0:tcp/8080 -> 10.244.1.2:80 is missing from map hp4any of table inet \(Self.table)")

        try node.check(["nft", #"add element inet \#(Self.table) hp4any { tcp . 8080 comment "pod-z/eth0" : 10.244.1.9 . 80 }"#])
        try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: a.result), code: 104,
                               msg: differs + "hostPort 0.0.0.0:tcp/8080 -> 10.244.1.2:80 is missing from map hp4any of table inet \(Self.table)"
                                   + ": it holds 0.0.0.0:tcp/8080 -> 10.244.1.9:80 for pod-z/eth0")

        try node.check(["nft", #"delete element inet \#(Self.table) hp4any { tcp . 8080 }; add element inet \#(Self.table) hp4any { tcp . 8080 comment "pod-a/eth0" : 10.244.1.2 . 80 }"#])
        cni.expectSilentSuccess(try cni.check(pod: "pod-a", prevResult: a.result))

        try node.check(["nft", "delete element inet \(Self.table) hpsnat4 { 10.244.1.2 . 10.244.1.2 }"])
        try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: a.result), code: 104,
                               msg: differs + "10.244.1.2 . 10.244.1.2 is missing from set hpsnat4 of table inet \(Self.table)")
        try node.check(["nft", #"add element inet \#(Self.table) hpsnat4 { 10.244.1.2 . 10.244.1.2 comment "pod-a/eth0" }"#])
        cni.expectSilentSuccess(try cni.check(pod: "pod-a", prevResult: a.result))

        try node.check(["sysctl", "-qw", "net.ipv4.conf.\(a.hostVeth).route_localnet=0"])
        try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: a.result), code: 104,
                               msg: differs + "route_localnet is off on \(a.hostVeth): hostPorts cannot be reached on 127.0.0.1")
    }
}
