import Foundation
import Testing

/// podwirectl's CNI verbs (what cnitool does) through the real binaries: podwirectl execs podwire
/// from CNI_PATH (the build's directory) inside a private node, and every test asserts on the
/// kernel's state read back with `ip` and `nft`, on the files podwirectl and podwire leave in the
/// node's /run, and on podwirectl's exit status and output.
@Suite("podwirectl add, check, del, status, gc", .serialized,
       .needs(.namespaces))
struct PodwirectlVerbTests {
    static let network = "kindnet"
    static let conflistPath = "/run/pwctl/net.d/10-podwire.conflist"
    static let cacheDirectory = "/run/pwctl/cache"
    static let dataDir = "/run/pwctl/ipam"

    /// podwire with its built-in IPAM and the portMappings capability, PodCIDR 10.244.1.0/24.
    static func podwireEntry(mtu: String = "1500", extra: String = "") -> String {
        #"{"type":"podwire","mtu":\#(mtu),"capabilities":{"portMappings":true},\#(extra)"#
            + #""ipam":{"type":"podwire-ipam","dataDir":"\#(dataDir)","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}"#
    }

    static func conflist(version: String = "1.1.0", plugins: [String] = [podwireEntry()]) -> String {
        #"{"cniVersion":"\#(version)","name":"\#(network)","plugins":[\#(plugins.joined(separator: ","))]}"#
    }

    /// A node with the network's conflist written in it, and podwirectl beside the podwire binary.
    struct Scene {
        let node: TestNode
        let podwirectl: String
        /// The build's bin directory: podwire and podwire-ipam, as CNI_PATH.
        let cniPath: String

        init(conflist: String = PodwirectlVerbTests.conflist(), sourceLocation: SourceLocation = #_sourceLocation) throws {
            podwirectl = try PodwireBinary.requireControl(sourceLocation: sourceLocation)
            cniPath = URL(fileURLWithPath: podwirectl).deletingLastPathComponent().path
            node = try TestNode()
            try write(PodwirectlVerbTests.conflistPath, conflist)
        }

        func write(_ path: String, _ contents: String) throws {
            let result = try node.run(["sh", "-c", "mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\"", "sh", path], stdin: Data(contents.utf8))
            guard result.succeeded else { throw TestNodeError.commandFailed(argv: ["write", path], result: result) }
        }

        /// `podwirectl VERB ARGS... --conflist <the network> [--cache-dir <the node's cache>]`, CNI_PATH the build's.
        func ctl(_ verb: String, _ arguments: [String] = [], conflist: String = PodwirectlVerbTests.conflistPath,
                 cache: Bool = true, environment: [String: String] = [:]) throws -> CommandResult {
            var argv = [podwirectl, verb] + arguments + ["--conflist", conflist]
            if cache { argv += ["--cache-dir", PodwirectlVerbTests.cacheDirectory] }
            var variables = ["CNI_PATH": cniPath]
            variables.merge(environment) { _, new in new }
            return try node.run(argv, environment: variables, timeout: 60)
        }

        /// `add <pod> --id <pod>` into a new namespace, expected to succeed; the printed result.
        @discardableResult
        func add(_ pod: String, _ arguments: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
            try node.addPod(pod)
            let added = try ctl("add", [pod, "--id", pod] + arguments)
            try #require(added.succeeded, "podwirectl add \(pod): \(added)", sourceLocation: sourceLocation)
            try node.settleLinks()
            return try #require(try JSONSerialization.jsonObject(with: Data(added.stdout.utf8)) as? [String: Any],
                                "add printed no JSON object: \(added)", sourceLocation: sourceLocation)
        }

        func cacheFile(_ containerID: String, _ ifname: String = "eth0") -> String {
            "\(PodwirectlVerbTests.cacheDirectory)/results/\(PodwirectlVerbTests.network)-\(containerID)-\(ifname)"
        }

        func cacheEntries() throws -> [String] { try node.listDirectory("\(PodwirectlVerbTests.cacheDirectory)/results") }

        /// The addresses the IPAM store holds for the network.
        func reservations() throws -> [String] {
            try node.listDirectory("\(PodwirectlVerbTests.dataDir)/\(PodwirectlVerbTests.network)").filter { $0.first?.isNumber == true }
        }

        /// What a pod could have left on the node (links, routes, store, nftables, cache); the
        /// pods' namespaces themselves, which the test made, are not counted.
        func leftovers(_ containerIDs: [String]) throws -> [String] {
            try node.runtimeLeftovers(network: PodwirectlVerbTests.network, dataDir: PodwirectlVerbTests.dataDir,
                                      attachments: containerIDs, podNetworkPrefix: "10.244.",
                                      cacheDirectories: [PodwirectlVerbTests.cacheDirectory])
                .filter { !$0.hasPrefix("network namespace ") }
        }
    }

    /// The host veth a result names (the interface without a sandbox).
    static func hostVeth(_ result: [String: Any]) -> String? {
        (result["interfaces"] as? [[String: Any]])?.first { $0["sandbox"] == nil }?["name"] as? String
    }

    /// podwirectl's default container ID, computed here independently: FNV-1a 64 of the path.
    static func defaultContainerID(_ netns: String) -> String {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in netns.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        return "podwirectl-" + String(format: "%016llx", hash)
    }

    // MARK: add, check, del

    @Test("add wires the pod and caches its result as libcni does; check passes; del removes the veth and the cache entry")
    func addCheckDel() throws {
        let scene = try Scene()
        let node = scene.node
        let result = try scene.add("pod-a")

        // The printed result: podwire's, in the list's version, naming the pod's eth0 and its address.
        #expect(result["cniVersion"] as? String == "1.1.0")
        let interfaces = try #require(result["interfaces"] as? [[String: Any]])
        #expect(interfaces.contains { $0["name"] as? String == "eth0" && $0["sandbox"] as? String == "/run/netns/pod-a" }, "\(result)")
        let ips = try #require(result["ips"] as? [[String: Any]])
        #expect(ips.map { $0["address"] as? String } == ["10.244.1.2/24"])

        // The kernel: the pod's eth0 holds the address, the host veth is up with the gateway.
        #expect(try node.addresses(of: "eth0", inPod: "pod-a").map(\.cidr) == ["10.244.1.2/24"])
        #expect(try node.link("eth0", inPod: "pod-a")?.isUp == true)
        let veth = try #require(Self.hostVeth(result), "\(result)")
        #expect(try node.link(veth)?.isUp == true)
        #expect(try node.addresses(of: veth).map(\.cidr) == ["10.244.1.1/32"])
        #expect(try node.ping(from: "pod-a", to: "10.244.1.1").succeeded)

        // The cache entry: libcni's cniCacheV1 document, with the list's bytes and the printed result.
        let cacheText = try #require(try node.readFile(scene.cacheFile("pod-a")), "no cache entry")
        let cache = try #require(try JSONSerialization.jsonObject(with: Data(cacheText.utf8)) as? [String: Any])
        #expect(cache["kind"] as? String == "cniCacheV1")
        #expect(cache["containerId"] as? String == "pod-a")
        #expect(cache["ifName"] as? String == "eth0")
        #expect(cache["networkName"] as? String == Self.network)
        #expect(cache["netns"] as? String == "/run/netns/pod-a")
        let config = try #require(Data(base64Encoded: cache["config"] as? String ?? ""), "config is not base64: \(cacheText)")
        #expect(String(decoding: config, as: UTF8.self) == Self.conflist())
        #expect(NSDictionary(dictionary: cache["result"] as? [String: Any] ?? [:]).isEqual(to: result), "\(cacheText)")

        let check = try scene.ctl("check", ["/run/netns/pod-a", "--id", "pod-a"])
        #expect(check.succeeded, "\(check)")

        let del = try scene.ctl("del", ["pod-a", "--id", "pod-a"])
        #expect(del.succeeded, "\(del)")
        #expect(try node.link(veth) == nil)
        #expect(try node.links(inPod: "pod-a").map(\.ifname) == ["lo"])
        #expect(try !node.fileExists(scene.cacheFile("pod-a")))
        #expect(try scene.reservations().isEmpty)
        #expect(try scene.leftovers(["pod-a"]).isEmpty)

        // DEL is idempotent: again, with no cache entry and nothing left, it still succeeds.
        let again = try scene.ctl("del", ["pod-a", "--id", "pod-a"])
        #expect(again.succeeded, "\(again)")
    }

    @Test("without --id the container ID is podwirectl- and a hash of the namespace's path, so add, check and del meet")
    func defaultContainerID() throws {
        let scene = try Scene()
        let id = Self.defaultContainerID("/run/netns/pod-b")
        try scene.node.addPod("pod-b")
        let added = try scene.ctl("add", ["pod-b"])
        try #require(added.succeeded, "\(added)")
        #expect(try scene.cacheEntries() == ["\(Self.network)-\(id)-eth0"])
        // podwire-ipam's reservation names the attachment podwirectl made up.
        #expect(try scene.node.readFile("\(Self.dataDir)/\(Self.network)/10.244.1.2") == "\(id)\r\neth0")

        let check = try scene.ctl("check", ["/run/netns/pod-b"])
        #expect(check.succeeded, "\(check)")
        let del = try scene.ctl("del", ["/run/netns/pod-b"])
        #expect(del.succeeded, "\(del)")
        #expect(try scene.cacheEntries().isEmpty)
        #expect(try scene.leftovers([id]).isEmpty)
    }

    @Test("check reports what podwire's CHECK finds wrong in the kernel: exit 1 with its message")
    func checkFindsDamage() throws {
        let scene = try Scene()
        try scene.add("pod-a")
        try scene.node.podIP("pod-a", "address", "del", "10.244.1.2/24", "dev", "eth0")
        let check = try scene.ctl("check", ["pod-a", "--id", "pod-a"])
        #expect(check.status == 1, "\(check)")
        #expect(check.stderr.contains("podwirectl: podwire CHECK failed: CNI error 104: "), "\(check)")
    }

    @Test("check without a cached result, or of a list older than 0.4.0, is a usage error saying what to do")
    func checkNeedsCacheAndVersion() throws {
        let scene = try Scene()
        try scene.add("pod-a")
        try scene.node.check(["rm", scene.cacheFile("pod-a")])
        let uncached = try scene.ctl("check", ["pod-a", "--id", "pod-a"])
        #expect(uncached.status == 2, "\(uncached)")
        #expect(uncached.stderr.contains("no cached result for pod-a/eth0 of network kindnet"), "\(uncached)")
        #expect(uncached.stderr.contains("podwirectl add"), "\(uncached)")

        let old = "/run/pwctl/net.d/old.conflist"
        try scene.write(old, Self.conflist(version: "0.3.1"))
        let tooOld = try scene.ctl("check", ["pod-a", "--id", "pod-a"], conflist: old)
        #expect(tooOld.status == 2, "\(tooOld)")
        #expect(tooOld.stderr.contains("CHECK needs cniVersion 0.4.0 or later"), "\(tooOld)")
        // Neither touched the pod.
        #expect(try scene.node.addresses(of: "eth0", inPod: "pod-a").map(\.cidr) == ["10.244.1.2/24"])
    }

    @Test("--cap-args reach podwire as runtimeConfig and are cached; del without them removes the hostPort")
    func capabilityArguments() throws {
        let scene = try Scene()
        try scene.add("pod-a", ["--cap-args", #"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}"#])
        let forward = "hp4any: " + TestNode.hostPortElement(hostPort: 8080, owner: "pod-a/eth0", podIP: "10.244.1.2", containerPort: 80)
        #expect(try scene.node.podwirePerPodElements(network: Self.network).contains(forward))
        let cacheText = try #require(try scene.node.readFile(scene.cacheFile("pod-a")))
        #expect(cacheText.contains(#""capabilityArgs":{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"}]}"#), "\(cacheText)")

        let del = try scene.ctl("del", ["pod-a", "--id", "pod-a"])
        #expect(del.succeeded, "\(del)")
        #expect(try scene.node.podwirePerPodElements(network: Self.network).isEmpty)
        #expect(try scene.leftovers(["pod-a"]).isEmpty)
    }

    @Test("the plugin's stderr is passed through to podwirectl's, its stdout stays the result alone")
    func stderrPassesThrough() throws {
        // podwire warns on stderr about the deprecated alias, and goes on.
        let scene = try Scene(conflist: Self.conflist(plugins: [Self.podwireEntry(extra: #""noMasqueradeCIDRs":["10.244.0.0/16"],"#)]))
        try scene.node.addPod("pod-a")
        let add = try scene.ctl("add", ["pod-a", "--id", "pod-a"])
        #expect(add.succeeded, "\(add)")
        #expect(add.stderr.contains(#"podwire: "noMasqueradeCIDRs" is deprecated and will be removed"#), "\(add)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(add.stdout.utf8)) as? [String: Any], "\(add)")
        #expect((result["ips"] as? [[String: Any]])?.first?["address"] as? String == "10.244.1.2/24")
        #expect(try scene.node.addresses(of: "eth0", inPod: "pod-a").map(\.cidr) == ["10.244.1.2/24"])
    }

    @Test("podwirectl uses the cache of a libcni runtime, and libcni uses podwirectl's (Debian's libcni)")
    func libcniCacheBothWays() throws {
        let client = try LibcniClient.require()
        let scene = try Scene(conflist: Self.conflist(version: "1.0.0"))
        let node = scene.node
        let mappings = #"{"portMappings":[{"hostPort":8080,"containerPort":80}]}"#
        func libcni(_ command: String, _ pod: String) throws -> CommandResult {
            try node.run([client, "-conflist", Self.conflistPath, "-path", scene.cniPath, "-cache", Self.cacheDirectory,
                          "-id", pod, "-netns", node.netnsPath(pod), "-pod-name", pod, "-capability-args", mappings, command],
                         timeout: 60)
        }

        // A runtime's ADD through libcni; podwirectl's check and del find its cache entry.
        try node.addPod("pod-a")
        let added = try libcni("add", "pod-a")
        try #require(added.succeeded, "libcni add: \(added)")
        try node.settleLinks()
        let addedResult = try #require(try JSONSerialization.jsonObject(with: Data(added.stdout.utf8)) as? [String: Any], "\(added)")
        let veth = try #require(Self.hostVeth(addedResult), "\(added)")
        let check = try scene.ctl("check", ["pod-a", "--id", "pod-a"])
        #expect(check.succeeded, "\(check)")
        let del = try scene.ctl("del", ["pod-a", "--id", "pod-a"])
        #expect(del.succeeded, "\(del)")
        #expect(try node.link(veth) == nil)
        #expect(try scene.cacheEntries().isEmpty)
        #expect(try node.podwirePerPodElements(network: Self.network).isEmpty)

        // podwirectl's ADD; libcni reads the cached result back, checks and deletes with it.
        let result = try scene.add("pod-b", ["--cap-args", mappings])
        let cached = try libcni("cached", "pod-b")
        #expect(cached.succeeded, "\(cached)")
        let cachedResult = try #require(try JSONSerialization.jsonObject(with: Data(cached.stdout.utf8)) as? [String: Any], "\(cached)")
        // libcni prints the result as it decoded it (an empty dns added): the same interfaces and addresses.
        for key in ["interfaces", "ips", "routes"] {
            #expect((cachedResult[key] as? NSArray) == (result[key] as? NSArray), "\(key): libcni \(cachedResult), podwirectl \(result)")
        }
        let libcniCheck = try libcni("check", "pod-b")
        #expect(libcniCheck.succeeded, "\(libcniCheck)")
        let libcniDel = try libcni("del", "pod-b")
        #expect(libcniDel.succeeded, "\(libcniDel)")
        #expect(try scene.cacheEntries().isEmpty)
        #expect(try scene.leftovers(["pod-a", "pod-b"]).isEmpty)
    }

    // MARK: Failures

    struct FailingAdd: Sendable, CustomTestStringConvertible {
        var label: String
        var arguments: [String]
        var environment: [String: String] = [:]
        var message: String
        var testDescription: String { label }
    }

    static let failingAdds = [
        FailingAdd(label: "hostPort 0 in --cap-args",
                   arguments: ["--cap-args", #"{"portMappings":[{"hostPort":0,"containerPort":80}]}"#],
                   message: #"podwirectl: podwire ADD failed: CNI error 7: invalid runtimeConfig.portMappings entry 0: "hostPort" must be a port number from 1 to 65535"#),
        FailingAdd(label: "an address outside the range in --args",
                   arguments: ["--args", "IP=10.9.9.9"],
                   message: "podwirectl: podwire ADD failed: CNI error 103: requested IP address 10.9.9.9 is outside every range set"),
        FailingAdd(label: "an address outside the range in $CNI_ARGS",
                   arguments: [], environment: ["CNI_ARGS": "IgnoreUnknown=1;IP=10.9.9.9"],
                   message: "podwirectl: podwire ADD failed: CNI error 103: requested IP address 10.9.9.9 is outside every range set"),
    ]

    @Test("a plugin's failure is exit 1 with podwire's message on stderr, and leaves nothing behind", arguments: failingAdds)
    func pluginFailure(_ failing: FailingAdd) throws {
        let scene = try Scene()
        try scene.node.addPod("pod-a")
        let add = try scene.ctl("add", ["pod-a", "--id", "pod-a"] + failing.arguments, environment: failing.environment)
        #expect(add.status == 1, "\(add)")
        #expect(add.stdout.isEmpty, "\(add)")
        #expect(add.stderr.split(separator: "\n").contains { $0.hasPrefix(failing.message) }, "\(add)")
        #expect(try scene.node.links(inPod: "pod-a").map(\.ifname) == ["lo"])
        #expect(try scene.leftovers(["pod-a"]).isEmpty)
    }

    @Test("a later plugin's failure undoes the ADD of the plugins before it")
    func laterPluginFailureUndoes() throws {
        // The second entry is a podwire whose config it refuses: the first has wired the pod by then.
        let scene = try Scene(conflist: Self.conflist(plugins: [Self.podwireEntry(), Self.podwireEntry(mtu: #""big""#)]))
        try scene.node.addPod("pod-a")
        let add = try scene.ctl("add", ["pod-a", "--id", "pod-a"])
        #expect(add.status == 1, "\(add)")
        #expect(add.stderr.contains("podwirectl: podwire ADD failed: CNI error "), "\(add)")
        #expect(add.stderr.contains("podwirectl: undid the ADD of podwire (DEL, in reverse order)"), "\(add)")
        #expect(try scene.node.links(inPod: "pod-a").map(\.ifname) == ["lo"])
        #expect(try scene.leftovers(["pod-a"]).isEmpty)
    }

    @Test("a bad conflist, a plugin missing from CNI_PATH or bad --cap-args is exit 2, and nothing is done")
    func usageErrors() throws {
        let scene = try Scene()
        try scene.node.addPod("pod-a")
        try scene.write("/run/pwctl/net.d/broken.conflist", #"{"cniVersion":"1.1.0","name":"kindnet","plugins":[{"type":"podwire""#)
        let broken = try scene.ctl("add", ["pod-a"], conflist: "/run/pwctl/net.d/broken.conflist")
        #expect(broken.status == 2, "\(broken)")
        #expect(broken.stderr.contains("is not a CNI config"), "\(broken)")

        let absent = try scene.ctl("add", ["pod-a"], conflist: "/run/pwctl/net.d/none.conflist")
        #expect(absent.status == 2, "\(absent)")

        try scene.write("/run/pwctl/net.d/other.conflist", Self.conflist(plugins: [Self.podwireEntry(), #"{"type":"no-such-plugin"}"#]))
        let missing = try scene.ctl("add", ["pod-a"], conflist: "/run/pwctl/net.d/other.conflist")
        #expect(missing.status == 2, "\(missing)")
        #expect(missing.stderr.contains(#"plugin "no-such-plugin" not found in CNI_PATH=\#(scene.cniPath)"#), "\(missing)")

        let badJSON = try scene.ctl("add", ["pod-a", "--cap-args", "{portMappings"])
        #expect(badJSON.status == 2, "\(badJSON)")
        #expect(badJSON.stderr.contains("--cap-args is not JSON"), "\(badJSON)")

        let noNamespace = try scene.ctl("add", ["pod-nowhere"])
        #expect(noNamespace.status == 2, "\(noNamespace)")
        #expect(noNamespace.stderr.contains("network namespace /run/netns/pod-nowhere does not exist"), "\(noNamespace)")

        #expect(try scene.node.links(inPod: "pod-a").map(\.ifname) == ["lo"])
        #expect(try scene.leftovers(["pod-a"]).isEmpty)
    }

    // MARK: status

    @Test("status asks podwire (CNI 1.1.0) and exits 0; as text, as JSON, and noted for an older list")
    func status() throws {
        let scene = try Scene()
        let text = try scene.ctl("status", cache: false)
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout == "podwire: ok\n", "\(text)")

        let json = try scene.ctl("status", ["--json"], cache: false)
        #expect(json.status == 0, "\(json)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json)")
        #expect(document["ready"] as? Bool == true)
        #expect((document["plugins"] as? [[String: Any]])?.map { $0["status"] as? String } == ["ok"])

        let old = "/run/pwctl/net.d/old.conflist"
        try scene.write(old, Self.conflist(version: "1.0.0"))
        let older = try scene.ctl("status", conflist: old, cache: false)
        #expect(older.status == 0, "\(older)")
        #expect(older.stdout.contains("note: network kindnet says cniVersion 1.0.0; STATUS exists from 1.1.0 and is sent with cniVersion 1.1.0"), "\(older)")
        #expect(older.stdout.contains("podwire: ok"), "\(older)")
    }

    @Test("status exits 1 with podwire's error when the IPAM store cannot be written")
    func statusNotReady() throws {
        let scene = try Scene()
        try scene.node.check(["mkdir", "-p", Self.dataDir])
        try scene.node.remountReadOnly(Self.dataDir)
        let status = try scene.ctl("status", cache: false)
        #expect(status.status == 1, "\(status)")
        #expect(status.stderr.contains("podwirectl: podwire STATUS failed: CNI error 50: the IPAM store of network kindnet is not usable"), "\(status)")
    }

    @Test("status and gc skip a plugin that predates CNI 1.1.0 (Debian's portmap) with a note, and ask podwire")
    func olderPluginSkipped() throws {
        try Requirement.referencePlugin("portmap").require()
        let scene = try Scene(conflist: Self.conflist(plugins: [Self.podwireEntry(), #"{"type":"portmap","snat":true}"#]))
        let path = ["CNI_PATH": scene.cniPath + ":" + PluginUnderTest.referenceDirectory]
        let status = try scene.ctl("status", cache: false, environment: path)
        #expect(status.status == 0, "\(status)")
        #expect(status.stdout == "podwire: ok\nportmap: skipped: supports CNI up to 1.0.0; STATUS needs 1.1.0\n", "\(status)")

        let gc = try scene.ctl("gc", ["--keep-nothing"], environment: path)
        #expect(gc.status == 0, "\(gc)")
        #expect(gc.stdout == "podwire: ok\nportmap: skipped: supports CNI up to 1.0.0; GC needs 1.1.0\n", "\(gc)")
    }

    // MARK: gc

    @Test("gc without --keep exits 2 and removes nothing; a --keep without a slash is exit 2 too")
    func gcRefuses() throws {
        let scene = try Scene()
        let a = try #require(Self.hostVeth(try scene.add("pod-a")))
        let b = try #require(Self.hostVeth(try scene.add("pod-b")))

        let refused = try scene.ctl("gc")
        #expect(refused.status == 2, "\(refused)")
        #expect(refused.stderr == "podwirectl: gc without --keep would remove every attachment of network kindnet; name the attachments to keep with --keep ID/IFNAME, or pass --keep-nothing\n", "\(refused)")

        let malformed = try scene.ctl("gc", ["--keep", "pod-a"])
        #expect(malformed.status == 2, "\(malformed)")
        #expect(malformed.stderr.contains(#"invalid --keep "pod-a""#), "\(malformed)")

        for veth in [a, b] { #expect(try scene.node.link(veth) != nil) }
        #expect(try scene.cacheEntries() == ["kindnet-pod-a-eth0", "kindnet-pod-b-eth0"])
        #expect(try scene.reservations() == ["10.244.1.2", "10.244.1.3"])
    }

    @Test("gc --keep A keeps A and removes B (cached) and C (known only to podwire)")
    func gcKeeps() throws {
        let scene = try Scene()
        let node = scene.node
        let a = try #require(Self.hostVeth(try scene.add("pod-a")))
        let b = try #require(Self.hostVeth(try scene.add("pod-b")))
        let c = try #require(Self.hostVeth(try scene.add("pod-c")))
        // C's cache entry gone: only podwire's GC can find C.
        try node.check(["rm", scene.cacheFile("pod-c")])

        let gc = try scene.ctl("gc", ["--keep", "pod-a/eth0"])
        #expect(gc.status == 0, "\(gc)")
        #expect(gc.stdout.contains("DEL pod-b/eth0: not kept (from the cache)"), "\(gc)")
        #expect(gc.stdout.contains("podwire: ok"), "\(gc)")

        #expect(try node.link(a)?.isUp == true)
        #expect(try node.addresses(of: "eth0", inPod: "pod-a").map(\.cidr) == ["10.244.1.2/24"])
        #expect(try node.ping(from: "pod-a", to: "10.244.1.1").succeeded)
        #expect(try node.link(b) == nil)
        #expect(try node.link(c) == nil)
        #expect(try node.links(inPod: "pod-b").map(\.ifname) == ["lo"])
        #expect(try node.links(inPod: "pod-c").map(\.ifname) == ["lo"])
        #expect(try scene.cacheEntries() == ["kindnet-pod-a-eth0"])
        #expect(try scene.reservations() == ["10.244.1.2"])

        // What gc kept is still whole: check passes, del removes it.
        let check = try scene.ctl("check", ["pod-a", "--id", "pod-a"])
        #expect(check.succeeded, "\(check)")
        let del = try scene.ctl("del", ["pod-a", "--id", "pod-a"])
        #expect(del.succeeded, "\(del)")
        #expect(try scene.leftovers(["pod-a", "pod-b", "pod-c"]).isEmpty)
    }

    @Test("gc --keep-nothing removes every attachment of the network")
    func gcKeepNothing() throws {
        let scene = try Scene()
        try scene.add("pod-a")
        try scene.add("pod-b")
        let gc = try scene.ctl("gc", ["--keep-nothing"])
        #expect(gc.status == 0, "\(gc)")
        #expect(try scene.leftovers(["pod-a", "pod-b"]).isEmpty)
    }
}
