import Foundation
import Testing

/// hostPorts built into podwire, through libcni with the node's one-entry conflist (podwire
/// alone, the portMappings capability, ipMasq): real traffic from the outside namespace, the node
/// itself and the pod, and the kernel's state after every step.
@Suite("libcni: podwire's built-in hostPorts", .serialized, .needs(.realRoot))
struct RuntimeHostPortTests {
    static let idA = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
    static let idB = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
    static let idC = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"

    @Test("TCP to a hostPort from outside, from the node's address, from 127.0.0.1, and hairpin from the pod itself")
    func tcpFromEverywhere() throws {
        let host = try LibcniNode()
        let node = host.node
        try node.addOutside()
        let pod = try LibcniPod(on: host, name: "pod-a", id: Self.idA)
        let result = try pod.add()
        let veth = try #require(LibcniPod.hostVeth(in: result))
        #expect(LibcniPod.addresses(in: result) == ["10.244.1.2"], "\(result)")
        let table = "podwire-\(host.conflist.name)"
        #expect(try node.mapElements(table: table, map: "hp4any") == ["tcp . 8080 comment \"\(Self.idA)/eth0\" : 10.244.1.2 . 80"])
        #expect(try node.check(["sysctl", "-n", "net.ipv4.conf.\(veth).route_localnet"]).trimmingCharacters(in: .whitespacesAndNewlines) == "1")

        try node.startListener(netns: pod.netns, proto: "tcp", port: 80, name: "pod-a")
        // From outside: the client is seen as it is (no SNAT for a client outside the pod network).
        #expect(try node.exchange(from: node.netnsPath("outside"), proto: "tcp", address: Masq.nodeOutside, port: 8080)
                == "hello from pod-a to \(Masq.outside)")
        // From the node, to its own address: the node's address is a source the pod can answer.
        #expect(try node.exchange(from: nil, proto: "tcp", address: Masq.nodeOutside, port: 8080)
                == "hello from pod-a to \(Masq.nodeOutside)")
        // From the node to 127.0.0.1: forwarded with route_localnet, masqueraded to the gateway.
        #expect(try node.exchange(from: nil, proto: "tcp", address: "127.0.0.1", port: 8080) == "hello from pod-a to 10.244.1.1")
        // Hairpin: the pod reaches itself through the node's address, masqueraded so the reply
        // comes back through the node.
        #expect(try node.exchange(from: pod.netns, proto: "tcp", address: Masq.nodeOutside, port: 8080)
                == "hello from pod-a to 10.244.1.1")
        // The port is the node's only: traffic to 8080 of another host, through the node, is not
        // taken (it reaches that host, masqueraded by the list's ipMasq).
        try node.startListener(netns: node.netnsPath("outside"), proto: "tcp", port: 8080, name: "outside")
        #expect(try node.exchange(from: pod.netns, proto: "tcp", address: Masq.outside, port: 8080)
                == "hello from outside to \(Masq.nodeOutside)", "a pod's connection to another host's 8080 was hijacked")

        let check = try pod.libcni("check")
        #expect(check.succeeded && check.stdout.isEmpty, "\(check)")

        try pod.del()
        #expect(try node.exchange(from: node.netnsPath("outside"), proto: "tcp", address: Masq.nodeOutside, port: 8080) == nil,
                "the hostPort still answers after DEL")
        try node.stopListeners()
        try node.removeOutside()
        try pod.expectNothingLeft()
    }

    @Test("route_localnet does not open the node's 127.0.0.1 services to the pod")
    func loopbackGuard() throws {
        let host = try LibcniNode()
        let node = host.node
        let pod = try LibcniPod(on: host, name: "pod-a", id: Self.idA)
        _ = try pod.add()
        // A service the node binds to loopback only, and a pod that routes 127.0.0.53 to its gateway.
        try node.startListener(netns: "/proc/self/ns/net", proto: "tcp", port: 9053, name: "node-only")
        #expect(try node.exchange(from: nil, proto: "tcp", address: "127.0.0.1", port: 9053) == "hello from node-only to 127.0.0.1")
        try node.check(["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"], inPod: "pod-a")
        try node.podIP("pod-a", "route", "add", "127.0.0.53/32", "via", "10.244.1.1", "dev", "eth0")
        #expect(try node.exchange(from: pod.netns, proto: "tcp", address: "127.0.0.53", port: 9053) == nil,
                "the pod reached a service bound to the node's loopback")
        // The control: without podwire's guard rule the same connection gets through, so the
        // refusal above is the guard's.
        try node.check(["nft", "flush", "chain", "inet", "podwire-\(host.conflist.name)", "hpinput"])
        #expect(try node.exchange(from: pod.netns, proto: "tcp", address: "127.0.0.53", port: 9053) == "hello from node-only to 10.244.1.2")
        try node.stopListeners()
        try pod.del()
        try pod.expectNothingLeft()
    }

    @Test("A rule flushed by hand comes back with the next ADD with hostPorts, each chain with exactly its rules")
    func structureRepaired() throws {
        let host = try LibcniNode()
        let node = host.node
        let table = "podwire-\(host.conflist.name)"
        let first = try LibcniPod(on: host, name: "pod-a", id: Self.idA)
        _ = try first.add()
        let listed = try node.check(["nft", "list", "table", "inet", table])
        try node.check(["nft", "flush", "chain", "inet", table, "hpinput"])
        try node.check(["nft", "flush", "chain", "inet", table, "hostports"])
        #expect(!(try node.check(["nft", "list", "table", "inet", table])).contains("loopback guard"))
        let second = try LibcniPod(on: host, name: "pod-b", id: Self.idB,
                                   portMappings: [["HostPort": 8081, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""]])
        _ = try second.add()
        // The same chains and rules as before, the elements aside.
        let rules: (String) -> [String] = { $0.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.contains(" comment \"podwire v1: ") } }
        #expect(rules(try node.check(["nft", "list", "table", "inet", table])) == rules(listed))
        #expect(rules(listed).count == 9, "\(listed)")
        try second.del()
        try first.del()
        try node.removePod("pod-a")
        try second.expectNothingLeft()
        try first.expectNothingLeft()
    }

    @Test("UDP from outside; a flow from a fixed source port reaches the port's next holder after the first pod's DEL")
    func udpFlowFollowsTheHolder() throws {
        let host = try LibcniNode()
        let node = host.node
        try node.addOutside()
        // podman's and CRI-O's spelling: camelCase, no hostIP.
        let udp: [[String: Any]] = [["hostPort": 5353, "containerPort": 53, "protocol": "udp"]]
        let first = try LibcniPod(on: host, name: "pod-a", id: Self.idA, portMappings: udp)
        _ = try first.add()
        try node.startListener(netns: first.netns, proto: "udp", port: 53, name: "pod-a")
        let outside = node.netnsPath("outside")
        #expect(try node.exchange(from: outside, proto: "udp", address: Masq.nodeOutside, port: 5353, sourcePort: 40000)
                == "hello from pod-a to \(Masq.outside)")

        try first.del()
        try node.stopListeners()
        try node.removePod("pod-a")
        let next = try LibcniPod(on: host, name: "pod-b", id: Self.idB, portMappings: udp)
        let result = try next.add()
        #expect(LibcniPod.addresses(in: result) != ["10.244.1.2"], "the next holder got the first pod's address: \(result)")
        try node.startListener(netns: next.netns, proto: "udp", port: 53, name: "pod-b")
        // The same client flow (same source port): conntrack must not remember the dead pod.
        #expect(try node.exchange(from: outside, proto: "udp", address: Masq.nodeOutside, port: 5353, sourcePort: 40000)
                == "hello from pod-b to \(Masq.outside)")

        try next.del()
        try node.stopListeners()
        try node.removeOutside()
        try next.expectNothingLeft()
        try first.expectNothingLeft()
    }

    @Test("A UDP flow that started before its port was mapped reaches the pod once an ADD maps the port; a masqueraded flow through the node to another host's port of that number keeps its entry")
    func udpFlowStartedBeforeTheMapping() throws {
        let host = try LibcniNode()
        let node = host.node
        try node.addOutside()
        // A first pod, so the node tracks connections (the list's nftables tables exist).
        let first = try LibcniPod(on: host, name: "pod-a", id: Self.idA)
        _ = try first.add()
        let outside = node.netnsPath("outside")
        // The client starts before any pod holds 5353/udp: nothing answers on the node, and
        // conntrack keeps the untranslated flow (it would for 30 s, for as long as the client sends).
        #expect(try node.exchange(from: outside, proto: "udp", address: Masq.nodeOutside, port: 5353, sourcePort: 40001) == nil)
        // A pod's flow through the node to another host's 5353, masqueraded by ipMasq.
        try node.startListener(netns: outside, proto: "udp", port: 5353, name: "outside")
        #expect(try node.exchange(from: first.netns, proto: "udp", address: Masq.outside, port: 5353, sourcePort: 40002)
                == "hello from outside to \(Masq.nodeOutside)")
        func flows() throws -> [String] {
            try node.check(["conntrack", "-L", "-p", "udp", "--orig-port-dst", "5353"]).split(separator: "\n")
                .filter { $0.contains("dport=5353") }.map { line in
                    line.split(separator: " ").filter { $0.hasPrefix("src=") || $0.hasPrefix("sport=") }.prefix(2).joined(separator: " ")
                }.sorted()
        }
        #expect(try flows() == ["src=10.244.1.2 sport=40002", "src=\(Masq.outside) sport=40001"], "the two flows before the ADD")
        // The flow delivered to the node is recorded in the seen set (the forwarded one is not):
        // it is what makes the next ADD of 5353/udp ask the kernel to forget. (0: the set is
        // younger than the UDP conntrack timeout, which makes every ADD ask.)
        #expect(try node.podwireElements(network: host.conflist.name, set: "hpseen4") == ["0", "5353"])

        let next = try LibcniPod(on: host, name: "pod-b", id: Self.idB,
                                 portMappings: [["hostPort": 5353, "containerPort": 53, "protocol": "udp"]])
        _ = try next.add()
        // The ADD forgot the stale flow, and only it.
        #expect(try flows() == ["src=10.244.1.2 sport=40002"], "the flows after the ADD")
        try node.startListener(netns: next.netns, proto: "udp", port: 53, name: "pod-b")
        // The same client flow (same source port) now reaches the pod.
        #expect(try node.exchange(from: outside, proto: "udp", address: Masq.nodeOutside, port: 5353, sourcePort: 40001)
                == "hello from pod-b to \(Masq.outside)")

        try next.del()
        try first.del()
        try node.stopListeners()
        try node.removePod("pod-a")
        try node.removeOutside()
        try next.expectNothingLeft()
        try first.expectNothingLeft()
    }

    @Test("The ADD that makes the hostPort structure forgets the UDP flows before it, every ADD does while its seen sets are young, then a UDP port no flow reached is not searched for (no walk of the conntrack table)")
    func udpFlowsBeforeTheStructureAndUnseenPorts() throws {
        let host = try LibcniNode()
        let node = host.node
        try node.addOutside()
        // The node tracks connections before podwire has a table (a firewall of its own).
        try node.check(["nft", "add table inet nodefw"])
        try node.check(["nft", "add chain inet nodefw input { type filter hook input priority 10; }"])
        try node.check(["nft", "add rule inet nodefw input ct state new counter"])
        let outside = node.netnsPath("outside")
        #expect(try node.exchange(from: outside, proto: "udp", address: Masq.nodeOutside, port: 5356, sourcePort: 40003) == nil)
        #expect(try node.podwireSets(network: host.conflist.name).isEmpty, "no podwire table yet")

        // The first ADD with a hostPort makes the seen sets: they say nothing of the flows before
        // them, so the ADD asks the kernel to forget every untranslated flow to its UDP port.
        let first = try LibcniPod(on: host, name: "pod-a", id: Self.idA,
                                  portMappings: [["hostPort": 5356, "containerPort": 53, "protocol": "udp"]])
        _ = try first.add()
        try node.startListener(netns: first.netns, proto: "udp", port: 53, name: "pod-a")
        #expect(try node.exchange(from: outside, proto: "udp", address: Masq.nodeOutside, port: 5356, sourcePort: 40003)
                == "hello from pod-a to \(Masq.outside)")

        // Entries the datapath never made (conntrack -I), to ports no flow reached on the node.
        func insertUntranslated(to port: Int) throws {
            try node.check(["conntrack", "-I", "-p", "udp", "-s", Masq.outside, "-d", Masq.nodeOutside,
                            "--sport", "40004", "--dport", String(port), "-t", "120"])
        }
        func entries(to port: Int) throws -> Int {
            try node.check(["conntrack", "-L", "-p", "udp", "--orig-port-dst", String(port)])
                .split(separator: "\n").filter { $0.contains("dport=\(port) ") }.count
        }
        // While the sets are young (port 0, for the UDP conntrack timeout), every ADD asks: the
        // flows before them are unknown. The entry to 5357 goes with pod-b's ADD.
        #expect(try node.podwireElements(network: host.conflist.name, set: "hpseen4") == ["0"])
        try insertUntranslated(to: 5357)
        let second = try LibcniPod(on: host, name: "pod-b", id: Self.idB,
                                   portMappings: [["hostPort": 5357, "containerPort": 53, "protocol": "udp"]])
        _ = try second.add()
        #expect(try entries(to: 5357) == 0, "the entry to 5357 while the sets are young")
        // Once the sets are of age (0 expired: deleted here rather than waited for), a port no flow
        // reached is not looked for: the entry to 5358 stays, with no walk of the conntrack table.
        try node.check(["nft", "delete element inet podwire-\(host.conflist.name) hpseen4 { 0 }"])
        try insertUntranslated(to: 5358)
        let third = try LibcniPod(on: host, name: "pod-c", id: Self.idC,
                                  portMappings: [["hostPort": 5358, "containerPort": 53, "protocol": "udp"]])
        _ = try third.add()
        #expect(try entries(to: 5358) == 1, "the entry to the unseen port 5358, the sets of age")

        try third.del()
        try second.del()
        try first.del()
        try node.stopListeners()
        try node.removePod("pod-a")
        try node.removePod("pod-b")
        try node.check(["nft", "delete table inet nodefw"])
        try node.removeOutside()
        try third.expectNothingLeft()
        try second.expectNothingLeft()
        try first.expectNothingLeft()
    }

    @Test("A pod asking for a taken hostPort is refused naming the holder, which keeps its port, also after the refused pod's DEL")
    func conflictRefused() throws {
        let host = try LibcniNode()
        let node = host.node
        try node.addOutside()
        let holder = try LibcniPod(on: host, name: "pod-a", id: Self.idA)
        let holderVeth = try #require(LibcniPod.hostVeth(in: try holder.add()))
        try node.startListener(netns: holder.netns, proto: "tcp", port: 80, name: "pod-a")

        let table = "podwire-\(host.conflist.name)"
        let held = ["tcp . 8080 comment \"\(Self.idA)/eth0\" : 10.244.1.2 . 80"]
        for (name, id, hostIP) in [("pod-b", Self.idB, ""), ("pod-c", Self.idC, Masq.nodeOutside)] {
            let second = try LibcniPod(on: host, name: name, id: id,
                                       portMappings: [["HostPort": 8080, "ContainerPort": 8080, "Protocol": "tcp", "HostIP": hostIP]])
            let refused = try second.libcni("add")
            #expect(!refused.succeeded, "a second pod took hostPort 8080 (hostIP \"\(hostIP)\"): \(refused)")
            let error = try #require(try? JSONSerialization.jsonObject(with: Data(refused.stdout.utf8)) as? [String: Any], "\(refused)")
            #expect(error["code"] as? Int == 105, "\(refused)")
            #expect((error["msg"] as? String)?.contains("tcp/8080 is already taken by container \(Self.idA) (interface eth0)") == true,
                    "\(refused)")
            // Nothing of the refused pod is left, and the holder still has its port...
            #expect(try node.mapElements(table: table, map: "hp4any") == held)
            #expect(try node.mapElements(table: table, map: "hp4").isEmpty)
            #expect(try node.exchange(from: node.netnsPath("outside"), proto: "tcp", address: Masq.nodeOutside, port: 8080)
                    == "hello from pod-a to \(Masq.outside)")
            // ...also after the runtime's DEL of the refused pod, which carries the same portMappings.
            try second.del()
            #expect(try node.mapElements(table: table, map: "hp4any") == held)
            #expect(try node.exchange(from: node.netnsPath("outside"), proto: "tcp", address: Masq.nodeOutside, port: 8080)
                    == "hello from pod-a to \(Masq.outside)")
            try node.removePod(name)
            try expectOnlyTheHolder(node, refused: id, holderVeth: holderVeth)
        }
        // A re-ADD of the holder itself (a runtime's retry) is not a conflict.
        let again = try holder.libcni("add")
        #expect(!again.stdout.contains("\"code\":105"), "\(again)")

        try holder.del()
        try node.stopListeners()
        try node.removeOutside()
        try holder.expectNothingLeft()
    }

    /// The node holds the holder's wiring and nothing of the refused pod: no other veth, route,
    /// address file, cache entry or nftables line naming it or the address it was given.
    func expectOnlyTheHolder(_ node: TestNode, refused id: String, holderVeth: String,
                             sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(Set(try node.links().map(\.ifname)) == ["lo", "out0", holderVeth], sourceLocation: sourceLocation)
        #expect(try node.routes().filter { $0.dst.hasPrefix("10.244.") }.map(\.dst) == ["10.244.1.2"], sourceLocation: sourceLocation)
        let store = try node.listDirectory("/run/cni-ipam-state/kindnet").filter { $0.hasPrefix("10.244.") }
        #expect(store == ["10.244.1.2"], sourceLocation: sourceLocation)
        #expect(try node.listDirectory("\(LibcniNode.cacheDirectory)/results").allSatisfy { !$0.contains(id) }, sourceLocation: sourceLocation)
        let ruleset = try node.check(["nft", "list", "ruleset"])
        #expect(!ruleset.contains(id) && !ruleset.contains("10.244.1.3"), "\(ruleset)", sourceLocation: sourceLocation)
    }

    @Test("A dual-stack pod's hostPort answers IPv6 from outside too, and DEL leaves no rule or element naming either address")
    func dualStackFromOutside() throws {
        let host = try LibcniNode(dualStack: true)
        let node = host.node
        try node.addOutside()
        let pod = try LibcniPod(on: host, name: "pod-a", id: Self.idA)
        let result = try pod.add()
        let addresses = LibcniPod.addresses(in: result)
        #expect(addresses == ["10.244.1.2", "fd00:10:244:1::2"], "\(result)")
        let table = "podwire-\(host.conflist.name)"
        #expect(try node.mapElements(table: table, map: "hp6any") == ["tcp . 8080 comment \"\(Self.idA)/eth0\" : fd00:10:244:1::2 . 80"])

        try node.startListener(netns: pod.netns, proto: "tcp", port: 80, name: "pod-a")
        let outside = node.netnsPath("outside")
        #expect(try node.exchange(from: outside, proto: "tcp", address: Masq.nodeOutside6, port: 8080) == "hello from pod-a to \(Masq.outside6)")
        #expect(try node.exchange(from: outside, proto: "tcp", address: Masq.nodeOutside, port: 8080) == "hello from pod-a to \(Masq.outside)")
        // Hairpin over IPv6 too.
        #expect(try node.exchange(from: pod.netns, proto: "tcp", address: Masq.nodeOutside6, port: 8080) == "hello from pod-a to fd00:10:244:1::1")
        let check = try pod.libcni("check")
        #expect(check.succeeded && check.stdout.isEmpty, "\(check)")

        try pod.del()
        try node.stopListeners()
        let ruleset = try node.check(["nft", "list", "ruleset"])
        for address in addresses {
            let lines = ruleset.split(separator: "\n").filter { $0.contains(address) }
            #expect(lines.isEmpty, "nftables still names \(address):\n\(lines.joined(separator: "\n"))")
        }
        try node.removeOutside()
        try pod.expectNothingLeft()
    }

    @Test("hostPorts exec nothing: under strace, libcni execs podwire and podwire execs no process (no iptables, nft or conntrack)")
    func noExec() throws {
        let host = try LibcniNode()
        let node = host.node
        let pod = try LibcniPod(on: host, name: "pod-a", id: Self.idA,
                                portMappings: [["hostPort": 8080, "containerPort": 80, "protocol": "tcp"],
                                               ["hostPort": 5353, "containerPort": 53, "protocol": "udp"]])
        for command in ["add", "check", "del"] {
            let trace = "/run/exec-trace-\(command)"
            let argv = try host.clientArguments(command, containerID: pod.id, pod: pod.name, netns: pod.netns,
                                                capabilityArgs: pod.capabilityArgs)
            let run = try node.run(["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", trace] + argv, timeout: 60)
            #expect(run.succeeded, "libcni \(command) under strace: \(run)")
            let executed = try node.check(["cat", trace]).split(separator: "\n")
                .filter { $0.contains("execve(") && $0.hasSuffix("= 0") }
                .compactMap { line in line.split(separator: "\"", maxSplits: 2).dropFirst().first.map(String.init) }
            #expect(executed == [host.client, "\(LibcniNode.binDirectory)/podwire"],
                    "libcni \(command) executed: \(executed)")
        }
        try pod.expectNothingLeft()
    }
}
