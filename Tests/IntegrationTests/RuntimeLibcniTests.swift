import Foundation
import Testing

/// podwire under libcni itself, the library containerd's CRI plugin and CRI-O use: the project's
/// client (Tests/Runtimes/libcni/main.go, built against Debian's libcni 1.1) loads the node's
/// conflist, podwire alone with the portMappings capability, from a configuration directory and runs
/// AddNetworkList, CheckNetworkList, DelNetworkList and GetNetworkListCachedResult with a
/// Kubernetes pod's CNI_ARGS and portMappings, libcni's result cache in a directory of the node.
@Suite("libcni runs the node's conflist (podwire alone) for a pod sandbox", .needs(.realRoot))
struct RuntimeLibcniTests {
    @Test("libcni ADD wires the pod from the range and caches the result GetNetworkListCachedResult returns")
    func addAndCachedResult() throws {
        let pod = try LibcniPod()
        let node = pod.node
        let result = try pod.add()

        let ips = try #require(result["ips"] as? [[String: Any]], "\(result)")
        #expect(ips.count == 1)
        #expect(ips.first?["address"] as? String == "10.244.1.2/24", "\(ips)")
        #expect(ips.first?["gateway"] as? String == "10.244.1.1", "\(ips)")
        let interfaces = try #require(result["interfaces"] as? [[String: Any]], "\(result)")
        #expect(interfaces.compactMap { $0["sandbox"] as? String } == [pod.netns], "\(interfaces)")
        let veth = try #require(LibcniPod.hostVeth(in: result), "no host interface in \(result)")

        // The kernel agrees with the result, on both sides.
        #expect(try node.addresses(of: "eth0", inPod: LibcniPod.pod).map(\.cidr) == ["10.244.1.2/24"])
        #expect(try node.link("eth0", inPod: LibcniPod.pod)?.isUp == true)
        let podRoutes = try node.routes(inPod: LibcniPod.pod)
        #expect(podRoutes.contains { $0.dst == "default" && $0.gateway == "10.244.1.1" && $0.dev == "eth0" }, "\(podRoutes)")
        #expect(try node.link(veth)?.isUp == true, "host veth \(veth)")
        #expect(try node.addresses(of: veth).map(\.cidr) == ["10.244.1.1/32"])
        let nodeRoutes = try node.routes()
        #expect(nodeRoutes.contains { $0.dst == "10.244.1.2" && $0.dev == veth && $0.scope == "host" }, "\(nodeRoutes)")
        #expect(try node.readFile(pod.conflist.addressFile("10.244.1.2")) == "\(LibcniPod.containerID)\r\neth0")
        // libcni handed podwire the portMappings capability (go-cni's capitalised keys).
        let elements = try node.mapElements(table: "podwire-\(pod.conflist.name)", map: "hp4any")
        #expect(elements == ["tcp . 8080 comment \"\(LibcniPod.containerID)/eth0\" : 10.244.1.2 . 80"], "\(elements)")
        #expect(try node.ping(from: LibcniPod.pod, to: "10.244.1.1").succeeded)

        // What a runtime reads back after a restart: the very result ADD returned.
        let cached = try pod.libcni("cached")
        try #require(cached.succeeded, "\(cached)")
        let cachedResult = try JSONSerialization.jsonObject(with: Data(cached.stdout.utf8))
        #expect(canonicalJSON(cachedResult) == canonicalJSON(result), "cached: \(cached.stdout)\nADD: \(result)")
        // libcni's cache file, in the directory the runtime chose, records the attachment.
        let file = try #require(try node.readFile(pod.cacheFile), "no cache file \(pod.cacheFile)")
        let entry = try #require(try JSONSerialization.jsonObject(with: Data(file.utf8)) as? [String: Any], "\(file)")
        #expect(entry["kind"] as? String == "cniCacheV1")
        #expect(entry["containerId"] as? String == LibcniPod.containerID)
        #expect(entry["networkName"] as? String == pod.conflist.name)
        #expect(entry["ifName"] as? String == "eth0")
        #expect(canonicalJSON(entry["result"] as Any) == canonicalJSON(result), "\(file)")
        #expect(canonicalJSON((entry["capabilityArgs"] as? [String: Any])?["portMappings"] as Any)
                == canonicalJSON(LibcniPod.capabilityArgs["portMappings"] as Any), "\(file)")
        #expect((entry["cniArgs"] as? [[String]])?.contains(["K8S_POD_NAME", LibcniPod.pod]) == true, "\(file)")

        try pod.del()
        try pod.expectNothingLeft()
    }

    @Test("libcni CHECK passes with the cached result, and fails naming a host route, then a hostPort, that went missing")
    func checkThroughTheList() throws {
        let pod = try LibcniPod()
        let node = pod.node
        let result = try pod.add()
        let veth = try #require(LibcniPod.hostVeth(in: result), "no host interface in \(result)")

        let check = try pod.libcni("check")
        #expect(check.succeeded && check.stdout.isEmpty, "\(check)")

        // A broken attachment: podwire's CHECK names it, and libcni hands its error on.
        try node.ip("route", "del", "10.244.1.2", "dev", veth)
        let broken = try pod.libcni("check")
        #expect(!broken.succeeded, "CHECK passed without the host route: \(broken)")
        let error = try #require(try? JSONSerialization.jsonObject(with: Data(broken.stdout.utf8)) as? [String: Any],
                                 "no CNI error on stdout: \(broken)")
        #expect(error["code"] as? Int == 104, "\(broken)")
        #expect((error["msg"] as? String)?.contains("host route 10.244.1.2 dev \(veth) is missing") == true, "\(broken)")
        try node.ip("route", "add", "10.244.1.2", "dev", veth, "scope", "host")

        // The hostPort's element deleted behind podwire's back: CHECK names it.
        try node.check(["nft", "delete element inet podwire-\(pod.conflist.name) hp4any { tcp . 8080 }"])
        let unmapped = try pod.libcni("check")
        let unmappedError = try? JSONSerialization.jsonObject(with: Data(unmapped.stdout.utf8)) as? [String: Any]
        #expect(!unmapped.succeeded && unmappedError?["code"] as? Int == 104, "\(unmapped)")
        #expect((unmappedError?["msg"] as? String)?.contains("hostPort 0.0.0.0:tcp/8080 -> 10.244.1.2:80 is missing from map hp4any") == true,
                "\(unmapped)")

        try pod.del()
        try pod.expectNothingLeft()
    }

    @Test("libcni DEL removes the pod's wiring and its cache entry; a retried DEL and one without a netns succeed")
    func delAndRetries() throws {
        let pod = try LibcniPod()
        let node = pod.node
        let result = try pod.add()
        let veth = try #require(LibcniPod.hostVeth(in: result), "no host interface in \(result)")
        #expect(try node.fileExists(pod.cacheFile), "ADD left no cache file")

        try pod.del()
        #expect(try node.link(veth) == nil, "host veth \(veth) left behind")
        #expect(try !node.routes().contains { $0.dst == "10.244.1.2" }, "host route to 10.244.1.2 left behind")
        #expect(try !node.fileExists(pod.conflist.addressFile("10.244.1.2")), "address file left behind")
        #expect(try node.links(inPod: LibcniPod.pod).map(\.ifname) == ["lo"], "the pod still has interfaces")
        #expect(try node.mapElements(table: "podwire-\(pod.conflist.name)", map: "hp4any").isEmpty, "the hostPort's element left behind")
        #expect(try !node.fileExists(pod.cacheFile), "libcni's cache entry left behind")
        let cached = try pod.libcni("cached")
        #expect(cached.succeeded && cached.stdout == "null\n", "a cached result after DEL: \(cached)")

        // Runtimes retry DEL until it succeeds, now with no cached result to hand the plugins;
        // containerd's last DEL may come after the sandbox's netns is gone.
        try pod.del()
        try node.removePod(LibcniPod.pod)
        try pod.del(netns: "")
        try pod.expectNothingLeft()
    }
}
