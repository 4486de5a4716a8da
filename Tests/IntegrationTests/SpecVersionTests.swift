import Foundation
import Testing

/// Every CNI spec version through the real binary: the result document a runtime of that version
/// reads, the same kernel state whatever the version, and which commands each version allows.
@Suite("CNI spec versions 0.1.0 to 1.1.0", .serialized,
       .needs(.namespaces))
struct SpecVersionTests {
    @Test("Debian's host-local speaks exactly the versions the version tests expect (so none is left untested)")
    func hostLocalVersionsAsExpected() throws {
        #expect(try Requirement.versions(ofReferencePlugin: "host-local") == IPAMVersions.hostLocal)
        #expect(!VersionCase.unsupported().isEmpty && !VersionCase.supported().isEmpty)
    }

    @Test("ADD prints its result in the config's version, wires the seed state, and DEL removes it",
          arguments: VersionCase.supported())
    func addAndDel(_ testCase: VersionCase) throws {
        let version = testCase.version
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: testCase.plugin, config: .kindnet(for: testCase.plugin, version: version))
        let netns = try node.addPod("pod-a")

        let response = try cni.add(pod: "pod-a")
        try #require(response.succeeded, "\(response)")
        #expect(response.stdoutProblem == nil, "\(response)")
        let document = try #require(response.json, "ADD printed no result: \(response)")

        let hostLinks = try node.nonLoopbackLinks()
        try #require(hostLinks.count == 1, "expected exactly one host veth: \(hostLinks.map(\.ifname))")
        let hostVeth = hostLinks[0]
        let eth0 = try #require(try node.link("eth0", inPod: "pod-a"), "pod has no eth0")

        let expected: [String: Any]
        if SpecVersion.isLegacy(version) {
            expected = ["cniVersion": version,
                        "ip4": ["ip": "10.244.1.2/24", "gateway": "10.244.1.1", "routes": [["dst": "0.0.0.0/0"]]]]
        } else {
            var host: [String: Any] = ["name": hostVeth.ifname, "mac": hostVeth.address ?? "?"]
            var pod: [String: Any] = ["name": "eth0", "mac": eth0.address ?? "?", "sandbox": netns]
            if version == "1.1.0" {
                host["mtu"] = 1500
                pod["mtu"] = 1500
            }
            var ip: [String: Any] = ["address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 1]
            if SpecVersion.tagsIPVersion(version) { ip["version"] = "4" }
            expected = ["cniVersion": version, "interfaces": [host, pod], "ips": [ip], "routes": [["dst": "0.0.0.0/0"]]]
        }
        #expect(VersionsJSON.canonical(document) == VersionsJSON.canonical(expected))

        // The same seed state whatever the version.
        #expect(try node.routeLines(inPod: "pod-a") == [
            "default via 10.244.1.1 dev eth0",
            "10.244.1.0/24 via 10.244.1.1 dev eth0 src 10.244.1.2",
            "10.244.1.1 dev eth0 scope link src 10.244.1.2",
        ])
        #expect(try node.addresses(of: "eth0", inPod: "pod-a").map(\.cidr) == ["10.244.1.2/24"])
        #expect(eth0.isUp && eth0.mtu == 1500, "\(eth0)")
        #expect(hostVeth.ifname.wholeMatch(of: /veth[0-9a-f]{8}/) != nil, "\(hostVeth.ifname)")
        #expect(hostVeth.isUp && hostVeth.mtu == 1500, "\(hostVeth)")
        #expect(try node.addresses(of: hostVeth.ifname).map(\.cidr) == ["10.244.1.1/32"])
        #expect(try node.routeLines() == ["10.244.1.2 dev \(hostVeth.ifname) scope host"])
        #expect(try node.sysctl("net.ipv4.ip_forward") == "1")
        #expect(try node.readFile(cni.config.addressFile("10.244.1.2")) == "pod-a\r\neth0")
        let ping = try node.ping(from: "pod-a", to: "10.244.1.1")
        #expect(ping.succeeded, "\(ping)")

        // Runtimes send the ADD result as prevResult on DEL from 0.4.0 on.
        let delConfig = SpecVersion.allowsCheck(version) ? cni.config.setting("prevResult", document) : cni.config
        cni.expectDelSucceeded(try cni.exec("DEL", containerID: "pod-a", netns: netns, ifname: "eth0", config: delConfig))
        #expect(try node.links().map(\.ifname) == ["lo"])
        #expect(try node.links(inPod: "pod-a").map(\.ifname) == ["lo"])
        #expect(try node.routeLines().isEmpty)
        #expect(try !node.fileExists(cni.config.addressFile("10.244.1.2")))
    }

    @Test("ADD at a version the delegated IPAM does not speak fails with its code 1 and leaves nothing",
          arguments: VersionCase.unsupported())
    func delegateRefusesVersion(_ testCase: VersionCase) throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: testCase.plugin, config: .kindnet(for: testCase.plugin, version: testCase.version))
        try node.addPod("pod-a")
        let error = try cni.expectCNIError(try cni.add(pod: "pod-a"), code: 1,
                                        msg: "\(testCase.plugin.ipamType): incompatible CNI versions")
        #expect(error.cniVersion == testCase.version)
        #expect(error.details?.contains("config is \"\(testCase.version)\"") == true, "\(error)")
        #expect(try node.links().map(\.ifname) == ["lo"])
        #expect(try node.links(inPod: "pod-a").map(\.ifname) == ["lo"])
        #expect(try node.listDirectory("\(cni.config.dataDir)/kindnet").filter { $0.first?.isNumber == true }.isEmpty)
    }

    @Test("CHECK passes on the ADD result and names exactly what is missing with code 104",
          arguments: VersionCase.supported(SpecVersion.all.filter(SpecVersion.allowsCheck)))
    func check(_ testCase: VersionCase) throws {
        let version = testCase.version
        let (node, cni, result) = try nodeWithPodA(testCase)
        let hostVeth = try #require(try node.nonLoopbackLinks().first).ifname

        cni.expectSilentSuccess(try cni.check(pod: "pod-a", prevResult: result))

        let prefix = "attachment pod-a/eth0 differs from its result: "
        let hostRoute = "host route 10.244.1.2 dev \(hostVeth) is missing"
        let defaultRoute = "pod route 0.0.0.0/0 via 10.244.1.1 is missing"

        try node.ip("route", "del", "10.244.1.2")
        var error = try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: result), code: 104, msg: prefix + hostRoute)
        #expect(error.cniVersion == version)

        try node.ip("route", "add", "10.244.1.2", "dev", hostVeth, "scope", "host")
        cni.expectSilentSuccess(try cni.check(pod: "pod-a", prevResult: result))

        try node.podIP("pod-a", "route", "del", "default")
        error = try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: result), code: 104, msg: prefix + defaultRoute)

        try node.ip("route", "del", "10.244.1.2")
        error = try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: result), code: 104,
                                    msg: prefix + defaultRoute + "; " + hostRoute)
        #expect(error.cniVersion == version)
    }

    @Test("CHECK below 0.4.0 and STATUS/GC below 1.1.0 are refused with code 1, changing nothing",
          arguments: VersionCase.builtInOnly.flatMap { plugin in
              SpecVersion.all.filter { !SpecVersion.allowsStatusAndGC($0) }.map { VersionCase(plugin: plugin, version: $0) }
          })
    func refusedCommands(_ testCase: VersionCase) throws {
        let version = testCase.version
        let (node, cni, result) = try nodeWithPodA(testCase)
        let store = "\(cni.config.dataDir)/kindnet"
        let before = try node.stateSnapshot(pods: ["pod-a"], storeDirectories: [store])

        if !SpecVersion.allowsCheck(version) {
            let error = try cni.expectCNIError(try cni.check(pod: "pod-a", prevResult: result), code: 1,
                                            msg: "config version \(version) does not allow CHECK")
            #expect(error.cniVersion == version)
            #expect(error.details == "CHECK exists from CNI 0.4.0 on")
        }
        let status = try cni.expectCNIError(try cni.networkCommand("STATUS"), code: 1,
                                         msg: "config version \(version) does not allow STATUS")
        #expect(status.cniVersion == version)
        #expect(status.details == "STATUS exists from CNI 1.1.0 on; set cniVersion to 1.1.0")
        // An empty list would remove pod-a if GC ran.
        let gc = try cni.expectCNIError(
            try cni.networkCommand("GC", config: cni.config.setting("cni.dev/valid-attachments", [Any]())),
            code: 1, msg: "config version \(version) does not allow GC")
        #expect(gc.cniVersion == version)

        #expect(try node.stateSnapshot(pods: ["pod-a"], storeDirectories: [store]) == before)
        #expect(try node.ping(from: "pod-a", to: "10.244.1.1").succeeded)
    }

    @Test("an unknown cniVersion is refused with code 1 by every command, creating nothing",
          arguments: ["9.9.9", "1.0"])
    func unknownVersion(_ text: String) throws {
        let plugin = PluginUnderTest.podwire
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: plugin, config: .kindnet(for: plugin, version: text)
            .setting("cni.dev/valid-attachments", [Any]()))
        let netns = try node.addPod("pod-a")
        let responses = [
            try cni.add(pod: "pod-a"),
            try cni.exec("CHECK", containerID: "pod-a", netns: netns, ifname: "eth0",
                         config: cni.config.setting("prevResult", ["cniVersion": "1.0.0"])),
            try cni.del(pod: "pod-a"),
            try cni.networkCommand("STATUS"),
            try cni.networkCommand("GC"),
        ]
        for response in responses {
            let error = try cni.expectCNIError(response, code: 1, msg: "incompatible CNI versions")
            #expect(error.details == "config is \"\(text)\", plugin supports [\(SpecVersion.all.joined(separator: " "))]",
                    "\(response)")
            #expect(error.cniVersion.map(SpecVersion.all.contains) == true, "the error document needs a version: \(response)")
        }
        #expect(try node.links().map(\.ifname) == ["lo"])
        #expect(try node.links(inPod: "pod-a").map(\.ifname) == ["lo"])
        #expect(try !node.fileExists(cni.config.dataDir), "nothing may be written for a refused version")
    }

    @Test("a config without cniVersion is read as 0.1.0", arguments: VersionCase.builtInOnly)
    func impliedVersion(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: plugin, config: .kindnet(for: plugin, version: "0.1.0").setting("cniVersion", nil))
        try node.addPod("pod-a")
        let response = try cni.add(pod: "pod-a")
        try #require(response.succeeded, "\(response)")
        #expect(VersionsJSON.canonical(response.json ?? [:]) == VersionsJSON.canonical([
            "cniVersion": "0.1.0",
            "ip4": ["ip": "10.244.1.2/24", "gateway": "10.244.1.1", "routes": [["dst": "0.0.0.0/0"]]],
        ] as [String: Any]))
        cni.expectDelSucceeded(try cni.del(pod: "pod-a"))
        #expect(try node.links().map(\.ifname) == ["lo"])
    }

    @Test("VERSION lists all seven versions and answers in the requested one", arguments: VersionCase.podwireVariants)
    func version(_ plugin: PluginUnderTest) throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: plugin)
        let requests: [(stdin: String, answer: String)] = SpecVersion.all.map { (#"{"cniVersion":"\#($0)"}"#, $0) } + [
            (#"{"cniVersion":"9.9.9"}"#, "1.1.0"),
            (#"{"cniVersion":"1.0"}"#, "1.1.0"),
            ("{}", "1.1.0"),
            ("", "1.1.0"),
        ]
        for request in requests {
            let response = try cni.exec("VERSION", stdin: Data(request.stdin.utf8))
            #expect(response.succeeded, "\(request.stdin): \(response)")
            #expect(VersionsJSON.canonical(response.json ?? [:]) == VersionsJSON.canonical([
                "cniVersion": request.answer, "supportedVersions": SpecVersion.all,
            ] as [String: Any]), "\(request.stdin): \(response)")
        }
    }
}

extension SpecVersionTests {
    /// A fresh node with pod-a wired by `testCase`'s plugin in its version: the node, the runner
    /// and the ADD's result.
    func nodeWithPodA(_ testCase: VersionCase) throws -> (TestNode, CNIRunner, [String: Any]) {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: testCase.plugin, config: .kindnet(for: testCase.plugin, version: testCase.version))
        try node.addPod("pod-a")
        let added = try cni.add(pod: "pod-a")
        try #require(added.succeeded, "\(added)")
        return (node, cni, try #require(added.json))
    }
}
