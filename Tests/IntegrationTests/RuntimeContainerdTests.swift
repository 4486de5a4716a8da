import Foundation
import Testing

/// podwire under Debian's containerd 1.6 and its CRI plugin, driven as a kubelet drives it:
/// RunPodSandbox, PodSandboxStatus, StopPodSandbox and RemovePodSandbox through the project's own
/// CRI client, with the node conflist conf/10-podwire.conflist (podwire alone, mapping hostPorts and
/// masquerading in its nftables table) and a pause image built from Tests/Runtimes/pause. Each
/// test has a containerd of its own in a private network + mount namespace of real root, and ends
/// proving that nothing of its pods is left.
@Suite("containerd CRI: pod sandboxes through containerd's CRI with conf/10-podwire.conflist", .needs(.realRoot))
struct RuntimeContainerdTests {
    static let subnetPrefix = "10.244.1."
    static let dataDir = "/run/cni-ipam-state"
    static let network = "kindnet"

    @Test("containerd CRI: two pod sandboxes get addresses from the conflist's range and ping each other")
    func twoPodsPingEachOther() throws {
        let containerd = try ContainerdNode()
        let node = containerd.node
        let requests = [CRIPodRequest.pod("pod-a"), CRIPodRequest.pod("pod-b", attempt: 1)]
        let sandboxes = try requests.map { try containerd.runPod($0) }
        try node.settleLinks()

        // podwire-ipam hands out the range in order; the gateway .1 is the host ends'.
        #expect(sandboxes.map(\.ip) == ["10.244.1.2", "10.244.1.3"], "\(sandboxes)")
        for (request, sandbox) in zip(requests, sandboxes) {
            let status = try containerd.status(sandbox.id)
            #expect(status["state"] as? String == "SANDBOX_READY", "\(status)")
            #expect(status["ip"] as? String == sandbox.ip)
            // What the client encoded comes back as containerd decoded and stored it.
            let metadata = try #require(status["metadata"] as? [String: Any], "\(status)")
            #expect(metadata["name"] as? String == request.name)
            #expect(metadata["uid"] as? String == request.uid)
            #expect(metadata["namespace"] as? String == request.namespace)
            #expect(metadata["attempt"] as? Int == request.attempt)
            #expect(status["labels"] as? [String: String] == request.labels)
            #expect(status["annotations"] as? [String: String] == request.annotations)

            // The pod's side: containerd's netns, eth0 holding the address in the /24.
            #expect(sandbox.netns.hasPrefix("/var/run/netns/cni-"), "\(sandbox)")
            #expect(try node.addresses(of: "eth0", inPod: sandbox.podName).map(\.cidr) == ["\(sandbox.ip)/24"])
            // The node's side: podwire's host veth for this sandbox, its /32 route, the address file.
            let hostVeth = try #require(try containerd.hostVeth(of: sandbox), "no host veth names \(sandbox.id)")
            #expect(try node.routes().contains { $0.dst == sandbox.ip && $0.dev == hostVeth && $0.scope == "host" })
            #expect(try node.readFile("\(Self.dataDir)/\(Self.network)/\(sandbox.ip)") == "\(sandbox.id)\r\neth0")
        }
        let listed = try containerd.list()
        #expect(Set(listed.compactMap { $0["id"] as? String }) == Set(sandboxes.map(\.id)), "\(listed)")
        #expect(listed.allSatisfy { $0["state"] as? String == "SANDBOX_READY" }, "\(listed)")

        let (a, b) = (sandboxes[0], sandboxes[1])
        let aToB = try node.ping(from: a.podName, to: b.ip)
        #expect(aToB.succeeded, "\(aToB)")
        let bToA = try node.ping(from: b.podName, to: a.ip)
        #expect(bToA.succeeded, "\(bToA)")

        try containerd.stopAndRemove(sandboxes)
        try containerd.expectNothingLeft(of: sandboxes)
        let machine = containerd.close()
        #expect(machine.isEmpty, "left on this machine: \(machine)")
    }

    @Test("containerd CRI: a hostPort asked in RunPodSandbox is podwire's map element and answers a client outside the node")
    func hostPortReachableFromOutside() throws {
        let containerd = try ContainerdNode()
        let node = containerd.node
        // The outside first: `ip netns add` turns /run/netns into a bind mount of itself, and a
        // pod netns mounted before that would stay pinned under it (StopPodSandbox: EBUSY).
        try node.addOutside()
        let sandbox = try containerd.runPod(.pod("web", ports: [(host: 8080, container: 80)]))
        #expect(sandbox.ip.hasPrefix(Self.subnetPrefix), "\(sandbox)")
        try node.settleLinks()

        // containerd read port_mappings as the client encoded them (protocol TCP is 0, left off the wire).
        let status = try containerd.status(sandbox.id)
        let info = (status["info"] as? [String: Any])?["info"] as? [String: Any]
        let mappings = (info?["config"] as? [String: Any])?["port_mappings"] as? [[String: Any]]
        #expect(mappings?.count == 1 && mappings?.first?["host_port"] as? Int == 8080
                && mappings?.first?["container_port"] as? Int == 80, "port_mappings as containerd stored them: \(String(describing: mappings))")

        // podwire, handed the mapping as runtimeConfig.portMappings (go-cni's keys), DNATs the
        // node's port 8080 on every address to the pod through its hp4any map, the element
        // commented with the sandbox's attachment.
        let element = TestNode.hostPortElement(hostPort: 8080, owner: "\(sandbox.id)/eth0", podIP: sandbox.ip, containerPort: 80)
        let hp4any = try node.check(["nft", "list", "map", "inet", TestNode.podwireTable(network: Self.network), "hp4any"])
        #expect(hp4any.contains(element), "missing `\(element)` in:\n\(hp4any)")
        let sets = try node.podwireSets(network: Self.network)
        #expect(sets["hp4any"] == [element], "\(sets)")
        #expect((sets["hp4"] ?? []).isEmpty && (sets["hp6"] ?? []).isEmpty && (sets["hp6any"] ?? []).isEmpty, "\(sets)")
        #expect(sets["masq4"] == ["\(sandbox.ip) comment \"\(sandbox.id)/eth0\""], "\(sets)")
        // What the leftover check reads sees this pod's elements: after teardown it would catch one left.
        let perPod = try node.podwirePerPodElements(network: Self.network)
        #expect(perPod.contains("hp4any: \(element)") && perPod.contains { $0.hasPrefix("masq4: \(sandbox.ip) ") }, "\(perPod)")
        // No chained portmap any more: nothing of the pod in iptables.
        let portmapRules = try node.natRules().filter { $0.contains("CNI-DN-") || $0.contains(sandbox.id) || $0.contains(sandbox.ip) }
        #expect(portmapRules.isEmpty, "iptables nat rules for the pod: \(portmapRules)")

        // A listener on the container port in the pod's netns, a client in the outside namespace
        // connecting to the node's address and the hostPort.
        let run = try node.connectThroughHostPort(pod: "web", netns: sandbox.netns, address: Masq.nodeOutside, port: 8080)
        #expect(run.succeeded, "\(run)")
        // The client is not in the pod network, so it is not masqueraded: the pod sees it as it is.
        #expect(run.stdout == "hello from web to \(Masq.outside)\n", "\(run)")

        // The operator's view of what containerd's calls made: one attachment, nothing to fix, and
        // the shipped conflist's call log holding the ADD.
        let ctl = try PodwireBinary.requireControl()
        let conflist = ["--conflist", "\(ContainerdNode.dir)/net.d/10-podwire.conflist"]
        let listed = try node.run([ctl, "ls", "--json"] + conflist)
        #expect(listed.succeeded && listed.stdout.contains("\"containerID\":\"\(sandbox.id)\"")
                && listed.stdout.contains("\"hostPorts\":[\"tcp/8080 -> 80\"]"), "\(listed)")
        let doctor = try node.run([ctl, "doctor"] + conflist)
        #expect(doctor.status == 0 && doctor.stdout == "network kindnet: no problems found\n", "\(doctor)")
        let added = try node.run([ctl, "stats", "--json"] + conflist)
        #expect(added.succeeded && added.stdout.contains("\"ADD\":{\"count\":1,"), "\(added)")

        try node.check(["ip", "netns", "delete", "outside"])
        try containerd.stopAndRemove([sandbox])
        let after = try node.run([ctl, "doctor"] + conflist)
        #expect(after.status == 0, "\(after)")
        let deleted = try node.run([ctl, "stats", "--json"] + conflist)
        #expect(deleted.succeeded && !deleted.stdout.contains("\"DEL\":{\"count\":0,"), "\(deleted)")
        try containerd.expectNothingLeft(of: [sandbox])
        let machine = containerd.close()
        #expect(machine.isEmpty, "left on this machine: \(machine)")
    }

    @Test("containerd CRI: containerd SIGKILLed under running pods and restarted stops and removes every pod")
    func killedAndRestarted() throws {
        let containerd = try ContainerdNode()
        let node = containerd.node
        let sandboxes = [try containerd.runPod(.pod("pod-a", ports: [(host: 8081, container: 80)])),
                         try containerd.runPod(.pod("pod-b"))]
        try node.settleLinks()
        let processes = try containerd.podProcesses()
        #expect(sandboxes.allSatisfy { processes[$0.id]?.isEmpty == false }, "each pod's pause should run: \(processes)")

        try containerd.killContainerd()
        #expect(try !containerd.containerdRuns(), "containerd survived SIGKILL")
        // The shims and the pods outlive their daemon: the same processes, and the network still works.
        #expect(try containerd.podProcesses() == processes)
        let during = try node.ping(from: sandboxes[0].podName, to: sandboxes[1].ip)
        #expect(during.succeeded, "pod-a to pod-b with containerd dead: \(during)")

        try containerd.restartContainerd()
        let listed = try containerd.list()
        #expect(Set(listed.compactMap { $0["id"] as? String }) == Set(sandboxes.map(\.id)), "after the restart: \(listed)")
        #expect(listed.allSatisfy { $0["state"] as? String == "SANDBOX_READY" }, "after the restart: \(listed)")
        for sandbox in sandboxes {
            let status = try containerd.status(sandbox.id)
            #expect(status["ip"] as? String == sandbox.ip, "after the restart: \(status)")
            #expect(status["netns"] as? String == sandbox.netns, "after the restart: \(status)")
        }
        let after = try node.ping(from: sandboxes[1].podName, to: sandboxes[0].ip)
        #expect(after.succeeded, "pod-b to pod-a after the restart: \(after)")
        // pod-a's hostPort, mapped by podwire at RunPodSandbox, outlives containerd's death.
        let mapped = try node.podwireElements(network: Self.network, set: "hp4any")
        #expect(mapped == [TestNode.hostPortElement(hostPort: 8081, owner: "\(sandboxes[0].id)/eth0", podIP: sandboxes[0].ip, containerPort: 80)],
                "hp4any after the restart: \(String(describing: mapped))")

        // A kubelet stops a pod at least once before it removes it, and may stop it again.
        for sandbox in sandboxes {
            try containerd.stop(sandbox.id)
            try containerd.stop(sandbox.id)
            try containerd.remove(sandbox.id)
        }
        try containerd.expectNothingLeft(of: sandboxes)
        let machine = containerd.close()
        #expect(machine.isEmpty, "left on this machine: \(machine)")
    }

    @Test("containerd CRI: a host-network sandbox (namespace_options.network = NODE) runs without any CNI call")
    func hostNetworkSandbox() throws {
        let containerd = try ContainerdNode()
        let node = containerd.node
        var request = CRIPodRequest.pod("host-net")
        request.hostNetwork = true
        let sandbox = try containerd.runPod(request)
        let status = try containerd.status(sandbox.id)
        #expect(status["state"] as? String == "SANDBOX_READY", "\(status)")
        // No netns of its own, so nothing for CNI to wire: no veth, no address, no cached result.
        #expect(sandbox.ip.isEmpty && sandbox.netns.isEmpty, "\(sandbox)")
        #expect(try node.links().map(\.ifname) == ["lo"])
        #expect(try node.listDirectory("/var/lib/cni/results").isEmpty)
        #expect(try node.listDirectory("\(Self.dataDir)/\(Self.network)").filter { $0.hasPrefix(Self.subnetPrefix) }.isEmpty)
        #expect(try containerd.podProcesses()[sandbox.id]?.isEmpty == false, "the pause process should run")

        try containerd.stopAndRemove([sandbox])
        try containerd.expectNothingLeft(of: [sandbox])
        let machine = containerd.close()
        #expect(machine.isEmpty, "left on this machine: \(machine)")
    }
}
