import Foundation
import Testing

/// `podwirectl doctor` and `ls` on a node wired by the plugin exactly as a runtime wires it: two
/// pods (pod-a with hostPort 8080, both masqueraded), then something broken behind podwire's
/// back. doctor must name it (exit 1), `doctor --fix` must repair it, a second doctor must find
/// nothing (exit 0), and the other pod must stay exactly as it was.
@Suite("podwirectl doctor and ls", .serialized, .needs(.namespaces))
struct DoctorTests {
    /// The two pods, and podwirectl on their network's conflist.
    struct Node {
        let setup: PodsOnOneNode
        let ctl: PodwirectlRunner
        var node: TestNode { setup.node }

        init() throws {
            let config = Masq.config(for: .podwire).setting("capabilities", ["portMappings": true])
            let mapped = config.setting("runtimeConfig", ["portMappings": [["hostPort": 8080, "containerPort": 80, "protocol": "tcp"]]])
            setup = try PodsOnOneNode(.podwire, config: config, podConfigs: ["pod-a": mapped])
            ctl = try PodwirectlRunner(node: setup.node, config: config)
        }

        var a: PodsOnOneNode.Attachment { setup.a }
        var b: PodsOnOneNode.Attachment { setup.b }

        /// What doctor prints, expecting it to exit `status`.
        func doctor(_ arguments: [String] = [], exits status: Int32, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
            let result = try ctl.run(["doctor"] + arguments, sourceLocation: sourceLocation)
            #expect(result.status == status, "\(result)", sourceLocation: sourceLocation)
            return result.stdout.split(separator: "\n").map(String.init)
        }

        /// Finds, fixes, and finds nothing after; returns the first doctor's lines.
        func findAndFix(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
            let found = try doctor(exits: 1, sourceLocation: sourceLocation)
            let fixed = try doctor(["--fix"], exits: 0, sourceLocation: sourceLocation)
            #expect(fixed.count == found.count && fixed.allSatisfy { $0.hasPrefix("fixed ") }, "\(fixed)", sourceLocation: sourceLocation)
            let after = try doctor(exits: 0, sourceLocation: sourceLocation)
            #expect(after == ["network kindnet: no problems found"], "\(after)", sourceLocation: sourceLocation)
            return found
        }

        /// The pod is wired as ADD left it: its address file, host veth and host route, its
        /// masquerade element, and it reaches its gateway.
        func expectIntact(_ pod: PodsOnOneNode.Attachment, sourceLocation: SourceLocation = #_sourceLocation) throws {
            #expect(try setup.addressFiles().contains(pod.address), sourceLocation: sourceLocation)
            #expect(try node.link(pod.hostVeth) != nil, "\(pod.hostVeth) is gone", sourceLocation: sourceLocation)
            let routes = try node.routeLines()
            #expect(routes.contains("\(pod.address) dev \(pod.hostVeth) scope host"), "\(routes)", sourceLocation: sourceLocation)
            #expect(try node.masqMembers().contains("\(pod.address) \(pod.pod)/eth0"), sourceLocation: sourceLocation)
            let ping = try node.ping(from: pod.pod, to: "10.244.1.1")
            #expect(ping.succeeded, "\(ping)", sourceLocation: sourceLocation)
        }
    }

    @Test("a leaked address and a stray route are found, fixed, and pod B is untouched")
    func leakAndStrayRoute() throws {
        let n = try Node()
        try n.node.ip("link", "del", n.a.hostVeth)
        try n.node.ip("route", "add", "10.244.1.77/32", "dev", n.b.hostVeth)

        let found = try n.doctor(exits: 1)
        #expect(found.contains { $0.hasPrefix("leaked-address 10.244.1.2: allocation pod-a/eth0:") && $0.contains(n.a.hostVeth) }, "\(found)")
        #expect(found.contains { $0.hasPrefix("stray-route 10.244.1.77: route 10.244.1.77/32 dev \(n.b.hostVeth):") }, "\(found)")
        #expect(found.count == 2, "\(found)")
        // Read-only without --fix.
        #expect(try n.node.routeLines().contains("10.244.1.77 dev \(n.b.hostVeth) scope link"))
        #expect(try n.setup.addressFiles().contains("10.244.1.2"))

        let fixed = try n.doctor(["--fix"], exits: 0)
        #expect(fixed.count == 2 && fixed.allSatisfy { $0.hasPrefix("fixed ") }, "\(fixed)")
        #expect(try n.doctor(exits: 0) == ["network kindnet: no problems found"])

        // pod A's address is free again, with everything that named it.
        #expect(try !n.setup.addressFiles().contains("10.244.1.2"))
        #expect(try n.node.masqMembers() == ["10.244.1.3 pod-b/eth0"])
        #expect(try n.node.mapElements(table: Masq.table, map: "hp4any").isEmpty)
        #expect(try n.node.nftSetElements(set: "hpsnat4").isEmpty)
        #expect(try !n.node.routeLines().contains { $0.hasPrefix("10.244.1.77") })
        try n.expectIntact(n.b)

        let listed = try n.ctl.json(["ls"])
        let rows = try #require(listed["attachments"] as? [[String: Any]])
        #expect(rows.count == 1)
        #expect(rows.first?["containerID"] as? String == "pod-b")
        #expect(rows.first?["addresses"] as? [String] == ["10.244.1.3"])
        #expect(rows.first?["hostVeth"] as? String == n.b.hostVeth)
        #expect(rows.first?["hostVethPresent"] as? Bool == true)
        #expect((rows.first?["podEnd"] as? [String: Any])?["present"] as? Bool == true)
        #expect(rows.first?["masquerade"] as? Bool == true)
    }

    @Test("ls lists both pods with their hostPorts, and a gone veth")
    func listing() throws {
        let n = try Node()
        var rows = try #require(try n.ctl.json(["ls"])["attachments"] as? [[String: Any]])
        #expect(rows.map { $0["containerID"] as? String } == ["pod-a", "pod-b"])
        #expect(rows[0]["hostPorts"] as? [String] == ["tcp/8080 -> 80"])
        #expect(rows[1]["hostPorts"] as? [String] == [])
        #expect((rows[0]["ageSeconds"] as? Int).map { $0 >= 0 && $0 < 600 } == true)
        try n.node.ip("link", "del", n.a.hostVeth)
        rows = try #require(try n.ctl.json(["ls"])["attachments"] as? [[String: Any]])
        #expect(rows[0]["hostVethPresent"] as? Bool == false)
        #expect((rows[0]["podEnd"] as? [String: Any])?["present"] as? Bool == false)
        let text = try n.ctl.run(["ls"])
        // Its hostPort is still mapped: doctor's to release (with the address), not ls's.
        #expect(text.succeeded && text.stdout.contains("\(n.a.hostVeth) (gone)") && text.stdout.contains("tcp/8080 -> 80"), "\(text)")
    }

    @Test("a route to pod A's address moved onto pod B's veth: the stray goes, A's route comes back")
    func routeMovedToAnotherVeth() throws {
        let n = try Node()
        try n.node.ip("route", "replace", "10.244.1.2/32", "dev", n.b.hostVeth)
        let found = try n.findAndFix()
        #expect(found.contains { $0.hasPrefix("stray-route 10.244.1.2: route 10.244.1.2/32 dev \(n.b.hostVeth): 10.244.1.2 is pod-a/eth0's") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("missing-route 10.244.1.2: host veth \(n.a.hostVeth) of pod-a/eth0:") }, "\(found)")
        try n.expectIntact(n.a)
        try n.expectIntact(n.b)
    }

    @Test("a pod whose address file is gone: the store learns it again from its veth")
    func unallocatedVethIsRecorded() throws {
        let n = try Node()
        try n.node.check(["rm", n.setup.cni.config.addressFile(n.b.address)])
        let found = try n.findAndFix()
        // Its route and masquerade element belong to the address it gets back: not stray.
        #expect(found.count == 2, "\(found)")
        #expect(found.contains { $0.hasPrefix("unallocated-veth 10.244.1.3: host veth \(n.b.hostVeth)") && $0.contains("records 10.244.1.3 for pod-b/eth0") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("index-disagreement 10.244.1.3: index entry .podwire/pod-b:eth0") }, "\(found)")
        #expect(try n.node.readFile(n.setup.cni.config.addressFile(n.b.address)) == "pod-b\r\neth0")
        try n.expectIntact(n.a)
        try n.expectIntact(n.b)
    }

    @Test("a podwire-labelled veth that routes no pod address is deleted")
    func unallocatedVethIsDeleted() throws {
        let n = try Node()
        try n.node.ip("link", "add", "vethdeadbeef", "type", "veth", "peer", "name", "ghost-peer")
        try n.node.ip("link", "set", "vethdeadbeef", "alias", "podwire kindnet ghost eth0")
        let found = try n.findAndFix()
        #expect(found == [found.first { $0.hasPrefix("unallocated-veth: host veth vethdeadbeef") && $0.contains("deletes vethdeadbeef") }], "\(found)")
        #expect(try n.node.link("vethdeadbeef") == nil)
        try n.expectIntact(n.a)
        try n.expectIntact(n.b)
    }

    @Test("masquerade and hostPort elements of an address nobody holds are removed")
    func strayElements() throws {
        let n = try Node()
        try n.node.shell("""
            nft add element inet \(Masq.table) masq4 '{ 10.244.1.99 }'
            nft add element inet \(Masq.table) hp4any '{ tcp . 9999 : 10.244.1.99 . 80 }'
            nft add element inet \(Masq.table) hpsnat4 '{ 10.244.1.99 . 10.244.1.99 }'
            """)
        let found = try n.findAndFix()
        #expect(found.count == 3, "\(found)")
        #expect(found.contains { $0.hasPrefix("stray-masquerade 10.244.1.99: element 10.244.1.99 of set masq4") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("stray-hostport 10.244.1.99: forward 0.0.0.0:tcp/9999 -> 10.244.1.99:80") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("stray-hostport 10.244.1.99: SNAT pair 10.244.1.99 . 10.244.1.99") }, "\(found)")
        #expect(try n.node.masqMembers() == ["10.244.1.2 pod-a/eth0", "10.244.1.3 pod-b/eth0"])
        #expect(try n.node.mapElements(table: Masq.table, map: "hp4any") == [#"tcp . 8080 comment "pod-a/eth0" : 10.244.1.2 . 80"#])
        try n.expectIntact(n.a)
        try n.expectIntact(n.b)
    }

    @Test("a hostPort forwarded to two pods: the later holder's forward goes, the first keeps the port")
    func hostPortHeldTwice() throws {
        let n = try Node()
        // Written a second later than pod A's, so pod B is the later holder.
        try n.node.shell("touch -d '+1 second' \(n.setup.cni.config.addressFile(n.b.address))")
        try n.node.shell("nft add element inet \(Masq.table) hp4 '{ 198.51.100.7 . tcp . 8080 comment \"pod-b/eth0\" : 10.244.1.3 . 80 }'")
        let found = try n.findAndFix()
        #expect(found.count == 1 && found[0].hasPrefix("hostport-held-twice 10.244.1.3: forward 198.51.100.7:tcp/8080 -> 10.244.1.3:80")
                && found[0].contains("also forwarded to 10.244.1.2 (pod-a/eth0)"), "\(found)")
        #expect(try n.node.mapElements(table: Masq.table, map: "hp4").isEmpty)
        #expect(try n.node.mapElements(table: Masq.table, map: "hp4any") == [#"tcp . 8080 comment "pod-a/eth0" : 10.244.1.2 . 80"#])
        try n.expectIntact(n.a)
        try n.expectIntact(n.b)
    }

    @Test("an index entry that disagrees with the address files is rebuilt")
    func indexDisagreement() throws {
        let n = try Node()
        let entry = "\(n.setup.cni.config.dataDir)/kindnet/.podwire/pod-b:eth0"
        try n.node.shell("printf '# podwire-index v1\\n10.244.1.3\\n10.244.1.50\\n' > \(entry)")
        let found = try n.findAndFix()
        #expect(found == ["index-disagreement 10.244.1.50: index entry .podwire/pod-b:eth0: index entry .podwire/pod-b:eth0 lists 10.244.1.50, whose address file does not name that attachment; --fix rebuilds the index from the address files"], "\(found)")
        #expect(try n.node.readFile(entry) == "# podwire-index v1\n10.244.1.3\n")
        try n.expectIntact(n.a)
        try n.expectIntact(n.b)
    }

    @Test("an address file that names nobody is removed")
    func unattributedAddress() throws {
        let n = try Node()
        let file = n.setup.cni.config.addressFile("10.244.1.60")
        try n.node.shell("printf 'not a record' > \(file)")
        let found = try n.findAndFix()
        #expect(found.contains { $0.hasPrefix("unattributed-address 10.244.1.60: address file \(file):") }, "\(found)")
        #expect(try n.node.readFile(file) == nil)
        try n.expectIntact(n.a)
        try n.expectIntact(n.b)
    }

    @Test("doctor --fix, run again and again while pods come and go, reports and changes nothing")
    func safeDuringCalls() throws {
        let n = try Node()
        let binary = try PluginUnderTest.podwire.requireBinary()
        let control = try PodwireBinary.requireControl()
        let pods = (0..<6).map { "storm-\($0)" }
        for pod in pods { try n.node.addPod(pod) }
        let configPath = "/run/storm-net.json"
        let written = try n.node.run(["sh", "-c", "cat > \(configPath)"], stdin: n.setup.cni.config.data)
        try #require(written.succeeded, "\(written)")
        // Ten rounds of ADD then DEL of every storm pod, and a last round of ADDs, in the
        // background; doctor --fix meanwhile, as often as it can.
        let script = """
            cni() { CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/run/netns/$2 CNI_IFNAME=eth0 CNI_PATH='\(n.setup.cni.plugin.cniPath)' \\
                '\(binary)' < \(configPath) > /dev/null 2>> /run/storm-errors || echo "$1 $2 failed" >> /run/storm-errors; }
            (
                for round in 1 2 3 4 5 6 7 8 9 10; do
                    for pod in \(pods.joined(separator: " ")); do cni ADD $pod; done
                    for pod in \(pods.joined(separator: " ")); do cni DEL $pod; done
                done
                for pod in \(pods.joined(separator: " ")); do cni ADD $pod; done
                touch /run/storm-done
            ) &
            runs=0
            while [ ! -e /run/storm-done ]; do
                '\(control)' doctor --fix --conflist '\(n.ctl.conflist)' > /run/storm-doctor 2>&1 && rc=0 || rc=$?
                echo "rc=$rc $(cat /run/storm-doctor)"
                runs=$((runs + 1))
            done
            wait
            echo "runs=$runs"
            cat /run/storm-errors 2>/dev/null || true
            """
        let output = try n.node.check(["bash", "-c", script])
        let lines = output.split(separator: "\n").map(String.init)
        let doctorRuns = lines.filter { $0.hasPrefix("rc=") }
        #expect(doctorRuns.count >= 3, "\(output)")
        #expect(doctorRuns.allSatisfy { $0 == "rc=0 network kindnet: no problems found" }, "\(output)")
        #expect(!lines.contains { $0.contains("failed") }, "\(output)")
        #expect(try n.doctor(exits: 0) == ["network kindnet: no problems found"])
        try n.expectIntact(n.a)
        try n.expectIntact(n.b)
        let rows = try #require(try n.ctl.json(["ls"])["attachments"] as? [[String: Any]])
        #expect(Set(rows.compactMap { $0["containerID"] as? String }) == Set(["pod-a", "pod-b"] + pods))
        for pod in pods {
            let ping = try n.node.ping(from: pod, to: "10.244.1.1")
            #expect(ping.succeeded, "\(pod): \(ping)")
        }
    }

    @Test("a consistent node has nothing to fix, and --fix changes nothing")
    func cleanNode() throws {
        let n = try Node()
        let before = try n.setup.snapshot()
        #expect(try n.doctor(exits: 0) == ["network kindnet: no problems found"])
        #expect(try n.doctor(["--fix"], exits: 0) == ["network kindnet: no problems found"])
        #expect(try n.setup.snapshot() == before)
        let json = try n.ctl.json(["doctor"])
        #expect((json["findings"] as? [Any])?.isEmpty == true)
    }
}
