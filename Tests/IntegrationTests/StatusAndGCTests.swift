import Foundation
import Testing

/// CNI 1.1's STATUS and GC through the real binary, asserting on the node's links, routes and the
/// IPAM store's files.
@Suite("STATUS and GC (CNI 1.1.0)", .serialized,
       .needs(.namespaces))
struct StatusAndGCTests {
    // MARK: STATUS

    @Test("STATUS answers 0 with nothing on stdout while an ADD could be served", arguments: VersionCase.builtInOnly)
    func statusReady(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: plugin, config: .kindnet(for: plugin, version: "1.1.0"))
        cni.expectSilentSuccess(try cni.networkCommand("STATUS"))  // before any ADD: no store yet
        try node.addPod("pod-a")
        let added = try cni.add(pod: "pod-a")
        #expect(added.succeeded, "\(added)")
        cni.expectSilentSuccess(try cni.networkCommand("STATUS"))
        // STATUS only looks: the pod and its reservation are as ADD left them.
        #expect(try node.readFile(cni.config.addressFile("10.244.1.2")) == "pod-a\r\neth0")
        #expect(try node.ping(from: "pod-a", to: "10.244.1.1").succeeded)
    }

    @Test("STATUS answers 50 once the range is exhausted, and 0 again after a DEL", arguments: VersionCase.builtInOnly)
    func statusExhausted(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        // A /29: .1 is the gateway, .2 to .6 the five pod addresses.
        let cni = CNIRunner(node: node, plugin: plugin,
                            config: .kindnet(for: plugin, version: "1.1.0", subnet: "10.244.1.0/29"))
        for index in 2...6 {
            cni.expectSilentSuccess(try cni.networkCommand("STATUS"))
            let pod = "pod-\(index)"
            try node.addPod(pod)
            let response = try cni.add(pod: pod)
            try #require(response.succeeded, "\(response)")
            #expect(try node.readFile(cni.config.addressFile("10.244.1.\(index)")) == "\(pod)\r\neth0")
        }
        let error = try cni.expectCNIError(
            try cni.networkCommand("STATUS"), code: 50,
            msg: "range set 0 (10.244.1.2-10.244.1.6) of network kindnet is exhausted: all 5 addresses are allocated")
        #expect(error.cniVersion == "1.1.0")
        #expect(error.details == "release the addresses of deleted pods (CNI DEL or GC) or widen the range")

        // STATUS was right: the next ADD cannot be served, and leaves nothing behind.
        try node.addPod("pod-7")
        try cni.expectCNIError(try cni.add(pod: "pod-7"), code: 102)
        #expect(try node.links(inPod: "pod-7").map(\.ifname) == ["lo"])

        cni.expectDelSucceeded(try cni.del(pod: "pod-4"))
        cni.expectSilentSuccess(try cni.networkCommand("STATUS"))
    }

    @Test("STATUS answers 50 when the IPAM store cannot be written", arguments: VersionCase.builtInOnly)
    func statusReadOnlyStore(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let dataDir = "/run/ipam-store"
        let cni = CNIRunner(node: node, plugin: plugin, config: .kindnet(for: plugin, version: "1.1.0", dataDir: dataDir))
        try node.check(["mkdir", "-p", dataDir])
        try node.addPod("pod-a")
        let added = try cni.add(pod: "pod-a")
        try #require(added.succeeded, "\(added)")
        cni.expectSilentSuccess(try cni.networkCommand("STATUS"))

        try node.remountReadOnly(dataDir)
        let error = try cni.expectCNIError(try cni.networkCommand("STATUS"), code: 50)
        #expect(error.msg.hasPrefix("the IPAM store of network kindnet is not usable: "), "\(error)")
        #expect(error.msg.contains(dataDir + "/kindnet"), "the message should name the store: \(error)")
        #expect(error.msg.contains("Read-only file system") || error.details?.contains("Read-only file system") == true,
                "\(error)")

        // STATUS was right: an ADD fails, and the existing pod is untouched.
        try node.addPod("pod-b")
        let refused = try cni.expectFailure(try cni.add(pod: "pod-b"))
        #expect(refused.code == 5, "\(refused)")
        #expect(try node.links(inPod: "pod-b").map(\.ifname) == ["lo"])
        #expect(try node.ping(from: "pod-a", to: "10.244.1.1").succeeded)

        // A read-only dataDir where the network's directory was never created.
        let fresh = CNIRunner(node: node, plugin: plugin,
                              config: .kindnet(for: plugin, version: "1.1.0", name: "fresh", dataDir: dataDir))
        let freshError = try cni.expectCNIError(try fresh.networkCommand("STATUS"), code: 50)
        #expect(freshError.msg.hasPrefix("the IPAM store of network fresh is not usable: "), "\(freshError)")
    }

    @Test("STATUS with a delegated IPAM passes the delegate's answer through", arguments: VersionCase.podwireVariants.filter { $0.ipamType == "host-local" })
    func statusDelegated(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let config = NetworkConfig.kindnet(for: plugin, version: "1.1.0")
        let cni = CNIRunner(node: node, plugin: plugin, config: config)
        let podwire = try cni.networkCommand("STATUS")

        // host-local itself, run exactly as podwire runs it: same environment, same stdin.
        let delegate = try node.run(["\(PluginUnderTest.referenceDirectory)/host-local"],
                                    environment: ["CNI_COMMAND": "STATUS", "CNI_PATH": plugin.cniPath], stdin: config.data)
        #expect(podwire.status == (delegate.status == 0 ? 0 : 1), "podwire: \(podwire)\nhost-local: \(delegate)")
        if delegate.status == 0 {
            cni.expectSilentSuccess(podwire)
        } else {
            // Debian's host-local 1.1.1 predates STATUS: {"code":3,"msg":"missing containerID"}.
            let own = try #require(try? JSONSerialization.jsonObject(with: Data(delegate.stdout.utf8)) as? [String: Any],
                                   "host-local printed no error document: \(delegate)")
            let error = try cni.expectFailure(podwire)
            #expect(error.code == own["code"] as? Int, "podwire: \(podwire)\nhost-local: \(delegate)")
            #expect(error.msg == "host-local: \(own["msg"] as? String ?? "")", "\(podwire)")
            #expect(error.cniVersion == "1.1.0")
        }
    }

    // MARK: GC

    @Test("GC removes the veth, host route and reservation of every unlisted attachment, and only those",
          arguments: VersionCase.builtInOnly, ["cni.dev/valid-attachments", "cni.dev/attachments"])
    func gcKeepsListed(_ plugin: PluginUnderTest, _ key: String) throws {
        let scene = try GCScene(plugin)
        let cni = scene.cni
        cni.expectSilentSuccess(try cni.gc(valid: [("pod-a", "eth0"), ("pod-c", "eth0")], key: key))

        try scene.expectIntact(scene.pods["pod-a"]!)
        try scene.expectIntact(scene.pods["pod-c"]!)
        try scene.expectGone(scene.pods["pod-b"]!)
        try scene.expectGone(scene.pods["pod-d"]!)
        try scene.expectOthersUntouched()
        #expect(try scene.node.link(scene.crashedVeth) == nil, "a signed, unlabelled veth of a dead ADD must go")

        // The listed pods still reach each other and, through the node, the other network's pod.
        for (from, to) in [("pod-a", "10.244.1.4"), ("pod-c", "10.244.1.2"), ("pod-x", "10.244.1.2")] {
            let ping = try scene.node.ping(from: from, to: to)
            #expect(ping.succeeded, "\(from) → \(to): \(ping)")
        }

        // A repeated GC changes nothing, and the store stays usable for ADD and DEL.
        let after = try scene.snapshot()
        cni.expectSilentSuccess(try cni.gc(valid: [("pod-a", "eth0"), ("pod-c", "eth0")], key: key))
        #expect(try scene.snapshot() == after)
        let again = try cni.add(pod: "pod-b")
        #expect(again.succeeded, "re-ADD after GC: \(again)")
        cni.expectDelSucceeded(try cni.del(pod: "pod-a"))
        #expect(try !scene.node.fileExists(cni.config.addressFile("10.244.1.2")))
    }

    @Test("GC with an empty list removes every attachment of this network and nothing else",
          arguments: VersionCase.builtInOnly)
    func gcEmptyList(_ plugin: PluginUnderTest) throws {
        let scene = try GCScene(plugin)
        scene.cni.expectSilentSuccess(try scene.cni.gc(valid: []))
        for attachment in scene.pods.values { try scene.expectGone(attachment) }
        #expect(try scene.node.link(scene.crashedVeth) == nil)
        #expect(try scene.node.listDirectory(scene.store).filter { $0.first?.isNumber == true }.isEmpty)
        #expect(try !scene.node.routeLines().contains { $0.hasPrefix("10.244.1.") })
        try scene.expectOthersUntouched()
    }

    @Test("GC without a list of valid attachments is refused with code 7 and removes nothing",
          arguments: VersionCase.builtInOnly)
    func gcWithoutList(_ plugin: PluginUnderTest) throws {
        let scene = try GCScene(plugin)
        let before = try scene.snapshot()
        let missing = try scene.cni.expectCNIError(try scene.cni.gc(valid: nil), code: 7,
                                                msg: "GC needs \"cni.dev/valid-attachments\" in the config")
        #expect(missing.cniVersion == "1.1.0")
        #expect(missing.details == "an empty list removes every attachment of the network; a missing one removes nothing")

        let notAList = scene.cni.config.setting("cniVersion", "1.1.0").setting("cni.dev/valid-attachments", "pod-a")
        try scene.cni.expectCNIError(try scene.cni.networkCommand("GC", config: notAList), code: 7,
                                  msg: "\"cni.dev/valid-attachments\" must be a list of {containerID, ifname}")
        #expect(try scene.snapshot() == before)
    }

    @Test("GC keeps going past an address it cannot release and reports it", arguments: VersionCase.builtInOnly)
    func gcReportsFailures(_ plugin: PluginUnderTest) throws {
        let scene = try GCScene(plugin)
        let node = scene.node, cni = scene.cni
        let stuck = cni.config.addressFile("10.244.1.3")  // pod-b's
        try node.pinAgainstUnlink(stuck)

        let error = try cni.expectCNIError(try cni.gc(valid: [("pod-a", "eth0")]), code: 5)
        #expect(error.cniVersion == "1.1.0")
        #expect(error.msg.contains("GC could not release 1 address of network kindnet"), "\(error)")
        #expect(error.details?.contains("\(stuck): ") == true, "the details should name the file: \(error)")
        #expect(error.details?.contains("busy") == true, "\(error)")

        // Everything else went: the kernel side of b, c and d, and c's and d's reservations.
        for pod in ["pod-b", "pod-c", "pod-d"] {
            let attachment = scene.pods[pod]!
            #expect(try node.link(attachment.hostVeth) == nil, "\(pod)'s veth")
            #expect(try !node.routeLines().contains { $0.hasPrefix("\(attachment.address) ") }, "\(pod)'s host route")
        }
        #expect(try !node.fileExists(cni.config.addressFile("10.244.1.4")))
        #expect(try !node.fileExists(cni.config.addressFile("10.244.1.5")))
        #expect(try node.readFile(stuck) == "pod-b\r\neth0", "the pinned file stays pod-b's reservation")
        try scene.expectIntact(scene.pods["pod-a"]!)
        try scene.expectOthersUntouched()

        // Once the file can go, the next GC finishes the job.
        try node.unpinAgainstUnlink(stuck)
        cni.expectSilentSuccess(try cni.gc(valid: [("pod-a", "eth0")]))
        #expect(try !node.fileExists(stuck))
        try scene.expectIntact(scene.pods["pod-a"]!)
    }
}

/// Four pods on `kindnet` (a .2, b .3, c .4, d .5), one on another podwire network `othernet`
/// (10.244.2.0/24, same dataDir), a hand-made veth that is not podwire's, and the signed but
/// unlabelled host veth an ADD killed midway would leave.
struct GCScene {
    struct Attachment {
        var pod: String
        var address: String
        var gateway: String
        var hostVeth: String
        var store: String
    }

    let node: TestNode
    let cni: CNIRunner
    let other: CNIRunner
    var pods: [String: Attachment] = [:]
    let podX: Attachment
    let store: String
    let foreignVeth = "vethdeadbeef"
    let crashedVeth: String

    init(_ plugin: PluginUnderTest, sourceLocation: SourceLocation = #_sourceLocation) throws {
        node = try TestNode()
        cni = CNIRunner(node: node, plugin: plugin, config: .kindnet(for: plugin, version: "1.1.0"))
        other = CNIRunner(node: node, plugin: plugin,
                          config: .kindnet(for: plugin, version: "1.1.0", name: "othernet", subnet: "10.244.2.0/24"))
        store = "\(cni.config.dataDir)/kindnet"
        for pod in ["pod-a", "pod-b", "pod-c", "pod-d"] {
            pods[pod] = try Self.add(pod, with: cni, sourceLocation: sourceLocation)
        }
        podX = try Self.add("pod-x", with: other, sourceLocation: sourceLocation)
        try node.ip("link", "add", "name", foreignVeth, "type", "veth", "peer", "name", "x0")
        let crashed = DerivedHostVeth.name(containerID: "pod-crashed", ifname: "eth0")
        crashedVeth = crashed.name
        try node.ip("link", "add", "name", crashed.name, "address", crashed.mac, "type", "veth", "peer", "name", "c0")
        let addresses = pods.values.map(\.address).sorted()
        #expect(addresses == ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5"], sourceLocation: sourceLocation)
    }

    private static func add(_ pod: String, with runner: CNIRunner, sourceLocation: SourceLocation) throws -> Attachment {
        try runner.node.addPod(pod)
        let response = try runner.add(pod: pod, sourceLocation: sourceLocation)
        let result = try runner.expectAddSucceeded(response, sourceLocation: sourceLocation)
        let ip = try #require(result.ips?.first, "\(response)", sourceLocation: sourceLocation)
        let host = try #require(result.interfaces?.first, "\(response)", sourceLocation: sourceLocation)
        return Attachment(pod: pod, address: String(ip.address.prefix { $0 != "/" }), gateway: ip.gateway ?? "",
                          hostVeth: host.name, store: "\(runner.config.dataDir)/\(runner.config.name)")
    }

    func snapshot() throws -> [String] {
        try node.stateSnapshot(pods: pods.keys.sorted() + ["pod-x"],
                               storeDirectories: [store, podX.store])
    }

    func expectIntact(_ attachment: Attachment, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let veth = try node.link(attachment.hostVeth)
        #expect(veth?.isUp == true, "\(attachment.pod)'s host veth \(attachment.hostVeth): \(String(describing: veth))",
                sourceLocation: sourceLocation)
        #expect(try node.addresses(of: attachment.hostVeth).map(\.cidr) == ["\(attachment.gateway)/32"],
                sourceLocation: sourceLocation)
        #expect(try node.routeLines().contains("\(attachment.address) dev \(attachment.hostVeth) scope host"),
                "\(attachment.pod)'s host route", sourceLocation: sourceLocation)
        #expect(try node.readFile("\(attachment.store)/\(attachment.address)") == "\(attachment.pod)\r\neth0",
                "\(attachment.pod)'s reservation", sourceLocation: sourceLocation)
        #expect(try node.addresses(of: "eth0", inPod: attachment.pod).map(\.cidr).map { $0.hasPrefix(attachment.address + "/") } == [true],
                "\(attachment.pod)'s eth0", sourceLocation: sourceLocation)
    }

    func expectGone(_ attachment: Attachment, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try node.link(attachment.hostVeth) == nil, "\(attachment.pod)'s host veth", sourceLocation: sourceLocation)
        #expect(try !node.routeLines().contains { $0.hasPrefix("\(attachment.address) ") },
                "\(attachment.pod)'s host route", sourceLocation: sourceLocation)
        #expect(try !node.fileExists("\(attachment.store)/\(attachment.address)"),
                "\(attachment.pod)'s reservation", sourceLocation: sourceLocation)
        #expect(try node.links(inPod: attachment.pod).map(\.ifname) == ["lo"], "\(attachment.pod)'s eth0",
                sourceLocation: sourceLocation)
    }

    /// The other network's pod and the veth podwire did not make are left alone.
    func expectOthersUntouched(sourceLocation: SourceLocation = #_sourceLocation) throws {
        try expectIntact(podX, sourceLocation: sourceLocation)
        #expect(try node.linkAlias(podX.hostVeth) == "podwire othernet pod-x eth0", sourceLocation: sourceLocation)
        #expect(try node.link(foreignVeth) != nil, "the hand-made \(foreignVeth) must stay", sourceLocation: sourceLocation)
        #expect(try node.link("x0") != nil, "the hand-made veth's peer must stay", sourceLocation: sourceLocation)
    }
}
