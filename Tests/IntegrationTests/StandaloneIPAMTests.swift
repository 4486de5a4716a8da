import Foundation
import Testing

/// `podwire-ipam` as an ordinary CNI IPAM plugin: exec'd from CNI_PATH by Debian's `ptp` and
/// `bridge` (which support CNI up to 1.0.0), and run directly at 1.1.0 as any main plugin would.
@Suite("podwire-ipam as a standalone IPAM plugin", .serialized,
       .needs(.namespaces))
struct StandaloneIPAMTests {
    enum MainPlugin: String, CaseIterable, CustomTestStringConvertible {
        case ptp, bridge
        var testDescription: String { "Debian's \(rawValue)" }

        /// The Kindnet network, with this main plugin and `ipam.type` podwire-ipam.
        var config: NetworkConfig {
            var config = NetworkConfig.kindnet(type: rawValue, ipamType: "podwire-ipam")
            if self == .bridge {
                config.object["bridge"] = "cni0"
                config.object["isGateway"] = true
            }
            return config
        }
    }

    /// Two pods ADDed through `main`, after making sure podwire-ipam is there to be found.
    private func twoPods(_ main: MainPlugin, sourceLocation: SourceLocation = #_sourceLocation) throws -> PodsOnOneNode {
        let located = PodwireBinary.locateIPAM()
        try #require(located.path != nil, "\(located.reason ?? "podwire-ipam not found")", sourceLocation: sourceLocation)
        return try PodsOnOneNode(.debian(main.rawValue), config: main.config, sourceLocation: sourceLocation)
    }

    // MARK: Under Debian's main plugins

    @Test("two pods get .2 and .3, recorded in host-local's format, and reach each other",
          arguments: MainPlugin.allCases)
    func addUnderMainPlugin(_ main: MainPlugin) throws {
        let setup = try twoPods(main)
        let node = setup.node, config = setup.cni.config

        for (attachment, expected) in zip(setup.attachments, ["10.244.1.2", "10.244.1.3"]) {
            let ips = try #require(attachment.result.ips, "\(attachment.pod): no ips")
            try #require(ips.count == 1, "\(attachment.pod): \(ips)")
            #expect(ips[0].address == "\(expected)/24")
            #expect(ips[0].gateway == "10.244.1.1")
            #expect(attachment.result.routes == [CNIResult.Route(dst: "0.0.0.0/0", gw: nil)])
            #expect(try node.addresses(of: "eth0", inPod: attachment.pod).map(\.cidr) == ["\(expected)/24"])
            // host-local's record: the container ID and the interface name, CRLF between them.
            #expect(try node.readFile(config.addressFile(expected)) == "\(attachment.pod)\r\neth0")
        }
        #expect(try setup.addressFiles() == ["10.244.1.2", "10.244.1.3"])
        #expect(try node.readFile("\(config.dataDir)/\(config.name)/last_reserved_ip.0") == "10.244.1.3")
        #expect(try node.fileExists("\(config.dataDir)/\(config.name)/lock"))

        if main == .bridge {
            #expect(try node.addresses(of: "cni0").map(\.cidr) == ["10.244.1.1/24"], "isGateway puts the gateway on the bridge")
        }
        let aToB = try node.ping(from: "pod-a", to: setup.b.address)
        #expect(aToB.succeeded, "\(aToB)")
        let bToA = try node.ping(from: "pod-b", to: setup.a.address)
        #expect(bToA.succeeded, "\(bToA)")
    }

    @Test("CHECK through the main plugin runs podwire-ipam's CHECK", arguments: MainPlugin.allCases)
    func checkUnderMainPlugin(_ main: MainPlugin) throws {
        let setup = try twoPods(main)
        let cni = setup.cni, a = setup.a

        let check = try cni.exec("CHECK", containerID: a.pod, netns: a.netns, ifname: "eth0",
                                 config: cni.config.with("prevResult", a.json))
        #expect(check.succeeded, "\(check)")
        #expect(check.stdout.isEmpty, "CHECK must print nothing: \(check)")

        // A result that claims another address: the main plugin delegates CHECK before looking at
        // interfaces, so the error that comes back is podwire-ipam's comparison with its store.
        var claimed = a.json
        claimed["ips"] = [["address": "10.244.1.9/24", "gateway": "10.244.1.1", "interface": (a.result.ips?[0].interface ?? 1)]]
        let mismatch = try cni.exec("CHECK", containerID: a.pod, netns: a.netns, ifname: "eth0",
                                    config: cni.config.with("prevResult", claimed))
        let error = try cni.expectFailure(mismatch)
        #expect(error.code == 104, "\(mismatch)")
        #expect(error.msg.contains("holds 10.244.1.2") && error.msg.contains("10.244.1.9"), "\(mismatch)")
    }

    @Test("DEL through the main plugin releases the addresses and leaves nothing", arguments: MainPlugin.allCases)
    func delUnderMainPlugin(_ main: MainPlugin) throws {
        let setup = try twoPods(main)
        let node = setup.node, cni = setup.cni
        for attachment in setup.attachments {
            cni.expectDelSucceeded(try cni.exec("DEL", containerID: attachment.pod, netns: attachment.netns, ifname: "eth0",
                                                config: cni.config.with("prevResult", attachment.json)))
        }

        #expect(try setup.addressFiles().isEmpty)
        // What host-local also keeps: the lock and the round-robin cursor.
        let store = try node.listDirectory("\(cni.config.dataDir)/\(cni.config.name)").filter { !$0.hasPrefix(".") }
        #expect(store == ["last_reserved_ip.0", "lock"])
        for attachment in setup.attachments {
            #expect(try node.links(inPod: attachment.pod).map(\.ifname) == ["lo"])
            #expect(try !node.routes().contains { $0.dst == attachment.address }, "route to \(attachment.address) left behind")
        }
        // bridge keeps its bridge (by design: other pods may share it); ptp leaves nothing at all.
        #expect(try node.links().map(\.ifname).sorted() == (main == .bridge ? ["cni0", "lo"] : ["lo"]))

        // A runtime retrying DEL, now without netns or prevResult, must still succeed.
        cni.expectDelSucceeded(try cni.del(pod: "pod-a", netns: ""))
    }

    @Test("host-local and podwire-ipam hand out addresses from one store")
    func sharedStoreWithHostLocal() throws {
        let setup = try twoPods(.ptp)
        let node = setup.node
        let viaPodwire = setup.cni
        let viaHostLocal = CNIRunner(node: node, plugin: .debian("ptp", ipam: "host-local"),
                                     config: NetworkConfig.kindnet(type: "ptp", ipamType: "host-local"))

        try node.addPod("pod-c")
        let c = try viaHostLocal.expectAddSucceeded(try viaHostLocal.add(pod: "pod-c"))
        #expect(c.ips?.first?.address == "10.244.1.4/24", "host-local must skip podwire-ipam's .2 and .3")
        #expect(try node.readFile(viaHostLocal.config.addressFile("10.244.1.4")) == "pod-c\r\neth0")

        try node.addPod("pod-d")
        let d = try viaPodwire.expectAddSucceeded(try viaPodwire.add(pod: "pod-d"))
        #expect(d.ips?.first?.address == "10.244.1.5/24", "podwire-ipam must skip host-local's .4 and follow its cursor")

        // Each releases what the other reserved.
        viaPodwire.expectDelSucceeded(try viaPodwire.del(pod: "pod-c"))
        viaHostLocal.expectDelSucceeded(try viaHostLocal.del(pod: "pod-a"))
        #expect(try setup.addressFiles() == ["10.244.1.3", "10.244.1.5"])
        #expect(try node.ping(from: "pod-b", to: "10.244.1.5").succeeded)
    }

    // MARK: Run directly

    /// The config a main plugin hands its IPAM plugin: its own, whole, at 1.1.0.
    private static func directConfig(subnet: String = "10.244.1.0/24", version: String = "1.1.0") -> NetworkConfig {
        NetworkConfig.kindnet(type: "ptp", ipamType: "podwire-ipam", subnet: subnet).with("cniVersion", version)
    }

    private func directRunner(subnet: String = "10.244.1.0/24",
                              sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIRunner {
        let plugin = PluginUnderTest.podwireIPAM
        _ = try plugin.requireBinary(sourceLocation: sourceLocation)
        return CNIRunner(node: try TestNode(), plugin: plugin, config: Self.directConfig(subnet: subnet))
    }

    @Test("VERSION run directly answers in the requested version and lists 1.1.0")
    func directVersion() throws {
        let cni = try directRunner()
        let response = try cni.exec("VERSION", stdin: Data(#"{"cniVersion":"1.1.0"}"#.utf8))
        #expect(response.succeeded, "\(response)")
        #expect(response.stdoutProblem == nil, "\(response)")
        #expect(response.json?["cniVersion"] as? String == "1.1.0", "\(response)")
        let supported = try #require(response.json?["supportedVersions"] as? [String], "\(response)")
        #expect(supported.contains("1.0.0") && supported.contains("1.1.0"), "\(supported)")
    }

    @Test("ADD run directly prints the abbreviated result; CHECK and DEL work on the store")
    func directAddCheckDel() throws {
        let cni = try directRunner()
        let node = cni.node, config = cni.config
        let netns = try node.addPod("pod-a")

        let add = try cni.add(pod: "pod-a")
        try #require(add.succeeded, "\(add)")
        #expect(add.stdoutProblem == nil, "\(add)")
        let result = try #require(add.json, "\(add)")
        // No interfaces and no interface index: an IPAM plugin creates no interface.
        #expect(canonicalJSON(result) ==
                #"{"cniVersion":"1.1.0","ips":[{"address":"10.244.1.2/24","gateway":"10.244.1.1"}],"routes":[{"dst":"0.0.0.0/0"}]}"#)
        #expect(try node.readFile(config.addressFile("10.244.1.2")) == "pod-a\r\neth0")
        #expect(try node.links().map(\.ifname) == ["lo"])
        #expect(try node.links(inPod: "pod-a").map(\.ifname) == ["lo"])

        // A runtime repeating the ADD of the same attachment gets the same address, not a second one.
        let again = try cni.add(pod: "pod-a")
        #expect(again.succeeded, "\(again)")
        #expect(canonicalJSON(again.json ?? [:]) == canonicalJSON(result))
        #expect(try node.listDirectory("\(config.dataDir)/\(config.name)").filter { $0.hasPrefix("10.") } == ["10.244.1.2"])

        let check = try cni.exec("CHECK", containerID: "pod-a", netns: netns, ifname: "eth0",
                                 config: config.with("prevResult", result))
        #expect(check.succeeded && check.stdout.isEmpty, "\(check)")

        var other = result
        other["ips"] = [["address": "10.244.1.9/24", "gateway": "10.244.1.1"]]
        let mismatch = try cni.exec("CHECK", containerID: "pod-a", netns: netns, ifname: "eth0",
                                    config: config.with("prevResult", other))
        #expect(try cni.expectFailure(mismatch).code == 104, "\(mismatch)")

        let stranger = try cni.exec("CHECK", containerID: "pod-z", netns: netns, ifname: "eth0",
                                    config: config.with("prevResult", result))
        let strangerError = try cni.expectFailure(stranger)
        #expect(strangerError.msg.contains("pod-z"), "\(stranger)")

        let bare = try cni.exec("CHECK", containerID: "pod-a", netns: netns, ifname: "eth0")
        let bareError = try cni.expectFailure(bare)
        #expect(bareError.code == 7 && bareError.msg.contains("prevResult"), "\(bare)")

        cni.expectDelSucceeded(try cni.exec("DEL", containerID: "pod-a", netns: netns, ifname: "eth0",
                                            config: config.with("prevResult", result)))
        #expect(try !node.fileExists(config.addressFile("10.244.1.2")))
        cni.expectDelSucceeded(try cni.del(pod: "pod-a", netns: ""))
        #expect(try node.listDirectory("\(config.dataDir)/\(config.name)").filter { !$0.hasPrefix(".") }
                == ["last_reserved_ip.0", "lock"])
    }

    @Test("STATUS run directly: available, then 50 once the range is used up; 1.0.0 refused")
    func directStatus() throws {
        // 10.244.1.0/30 has one address to give: .1 is the gateway, .3 the broadcast.
        let cni = try directRunner(subnet: "10.244.1.0/30")
        let node = cni.node

        let status = try cni.exec("STATUS")
        #expect(status.succeeded && status.stdout.isEmpty, "\(status)")

        try node.addPod("pod-a")
        let a = try cni.add(pod: "pod-a")
        #expect(a.succeeded, "\(a)")
        #expect((a.json?["ips"] as? [[String: Any]])?.first?["address"] as? String == "10.244.1.2/30", "\(a)")

        let exhausted = try cni.expectFailure(try cni.exec("STATUS"))
        #expect(exhausted.code == 50, "\(exhausted)")
        try node.addPod("pod-b")
        let b = try cni.expectFailure(try cni.add(pod: "pod-b"))
        #expect(b.code == 102, "\(b)")
        #expect(try node.listDirectory("\(cni.config.dataDir)/\(cni.config.name)").filter { $0.hasPrefix("10.") } == ["10.244.1.2"])

        let old = try cni.expectFailure(try cni.exec("STATUS", config: Self.directConfig(version: "1.0.0")))
        #expect(old.code == 1, "\(old)")
    }

    @Test("GC run directly releases exactly the attachments not listed; 1.0.0 refused")
    func directGC() throws {
        let cni = try directRunner()
        let node = cni.node, config = cni.config
        for pod in ["pod-a", "pod-b", "pod-c"] {
            try node.addPod(pod)
            #expect(try cni.add(pod: pod).succeeded)
        }
        #expect(try node.listDirectory("\(config.dataDir)/\(config.name)").filter { $0.hasPrefix("10.") }
                == ["10.244.1.2", "10.244.1.3", "10.244.1.4"])

        // libcni sends the list under both the current and the 1.1.0 tag's key.
        let valid: [[String: Any]] = [["containerID": "pod-a", "ifname": "eth0"], ["containerID": "pod-c", "ifname": "eth0"]]
        let gcConfig = config.with("cni.dev/valid-attachments", valid).with("cni.dev/attachments", valid)
        let gc = try cni.exec("GC", config: gcConfig)
        #expect(gc.succeeded && gc.stdout.isEmpty, "\(gc)")
        #expect(try node.listDirectory("\(config.dataDir)/\(config.name)").filter { $0.hasPrefix("10.") }
                == ["10.244.1.2", "10.244.1.4"])
        #expect(try node.readFile(config.addressFile("10.244.1.4")) == "pod-c\r\neth0")

        let old = try cni.expectFailure(try cni.exec("GC", config: gcConfig.with("cniVersion", "1.0.0")))
        #expect(old.code == 1, "\(old)")
        #expect(try node.listDirectory("\(config.dataDir)/\(config.name)").filter { $0.hasPrefix("10.") }
                == ["10.244.1.2", "10.244.1.4"])
    }
}
