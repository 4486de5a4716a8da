import Foundation
import Testing

/// podwire under a real container engine: Debian's podman 4.3 with its CNI backend, runc and
/// cgroupfs, in a real-root node (Tests/Runtimes/podman/podman.sh keeps every file podman uses in
/// the node). The network is the node's conflist, conf/10-podwire.conflist: podwire alone, with the
/// portMappings capability and its masquerade on, so that a pod also leaves nftables state (a
/// masquerade element, and a hostPort element when it publishes a port) to clean up.
@Suite("podman with the CNI backend runs containers on a podwire network", .needs(.realRoot))
struct RuntimePodmanTests {
    /// `conf/10-podwire.conflist` as shipped: podwire alone, with `ipMasq` (the cluster's pod CIDR
    /// exempt) and the portMappings capability.
    static func network(sourceLocation: SourceLocation = #_sourceLocation) throws -> Conflist {
        let conflist = try Conflist.shipped(sourceLocation: sourceLocation)
        let podwire = try #require(conflist.plugins.first, "\(conflist.object)", sourceLocation: sourceLocation)
        try #require(conflist.plugins.count == 1 && podwire["type"] as? String == "podwire" && podwire["ipMasq"] as? Bool == true
                     && (podwire["capabilities"] as? [String: Any])?["portMappings"] as? Bool == true,
                     "the shipped conflist is not podwire alone with ipMasq and portMappings: \(conflist.object)",
                     sourceLocation: sourceLocation)
        return conflist
    }

    /// The IPv4 address on eth0 as the container sees it (`ip -4 -o addr show eth0`).
    static func containerAddress(_ podman: PodmanNode, _ container: String,
                                 sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let output = try podman.podmanOK(["exec", container, "ip", "-4", "-o", "addr", "show", "eth0"],
                                         sourceLocation: sourceLocation)
        let match = try #require(output.firstMatch(of: /inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/),
                                 "no IPv4 address on \(container)'s eth0: \(output)", sourceLocation: sourceLocation)
        #expect(match.2 == "24", "\(container)'s eth0: \(output)", sourceLocation: sourceLocation)
        return String(match.1)
    }

    @Test("podman run: two containers get addresses from the network's range and ping each other; rm -f leaves nothing")
    func twoContainersPingEachOther() throws {
        let podman = try PodmanNode(conflist: try Self.network())
        defer {
            let problems = podman.close()
            #expect(problems.isEmpty, "cleanup:\n\(problems.joined(separator: "\n"))")
        }
        let node = podman.node
        let network = podman.conflist.name
        let idA = try podman.runIdle("a")
        let idB = try podman.runIdle("b")

        let addressA = try Self.containerAddress(podman, "a")
        let addressB = try Self.containerAddress(podman, "b")
        #expect(Set([addressA, addressB]) == ["10.244.1.2", "10.244.1.3"], "a has \(addressA), b has \(addressB)")
        // podman's own record of the attachment is podwire's result.
        let inspected = try podman.podmanOK(["inspect", "--format", "{{(index .NetworkSettings.Networks \"\(network)\").IPAddress}}", "a", "b"])
        #expect(inspected.split(separator: "\n").map(String.init) == [addressA, addressB], "podman inspect: \(inspected)")

        for (from, to) in [("a", addressB), ("b", addressA)] {
            let ping = try podman.podman(["exec", from, "ping", "-c1", "-W2", to])
            #expect(ping.succeeded && ping.stdout.contains("1 packets received"), "\(from) -> \(to): \(ping)")
        }

        // What podwire made for each, as the kernel and its stores show it.
        let links = try node.ipObjects(["link", "show"])
        for (id, address) in [(idA, addressA), (idB, addressB)] {
            let veth = try #require(links.first { ($0["ifalias"] as? String) == "podwire \(network) \(id) eth0" }?["ifname"] as? String,
                                    "no host veth with podwire's alias for \(id) in \(links)")
            #expect(try node.routes().contains { $0.dst == address && $0.dev == veth && $0.scope == "host" },
                    "no host route \(address) dev \(veth)")
            #expect(try node.addresses(of: veth).map(\.cidr) == ["10.244.1.1/32"])
            #expect(try node.readFile(podman.conflist.addressFile(address)) == "\(id)\r\neth0")
            #expect(try node.fileExists("/var/lib/cni/results/\(network)-\(id)-eth0"), "podman's libcni cache has no entry for \(id)")
        }
        #expect(try node.masqMembers() == ["\(addressA) \(idA)/eth0", "\(addressB) \(idB)/eth0"].sorted())
        #expect(try node.listDirectory("/run/netns").count == 2, "podman's netns pins for a and b")
        // Each container's cgroups, which the last check must find gone.
        let cgroups = try podman.cgroups()
        for id in [idA, idB] {
            #expect(cgroups.contains { $0.hasSuffix("/libpod-\(id)") }, "no cgroup of \(id) under the kit's parent: \(cgroups)")
        }

        try podman.podmanOK(["rm", "-f", "a", "b"])

        #expect(try node.masqMembers().isEmpty, "masq4 still holds elements")
        let left = try podman.leftovers(attachments: [idA, idB])
        #expect(left.isEmpty, "left on the node after podman rm -f:\n\(left.joined(separator: "\n"))")
    }

    @Test("podman run -p 8080:80: podwire maps the port in its hp4any map and a client outside the node reaches the container; rm -f unmaps it")
    func publishedPort() throws {
        let podman = try PodmanNode(conflist: try Self.network())
        defer {
            let problems = podman.close()
            #expect(problems.isEmpty, "cleanup:\n\(problems.joined(separator: "\n"))")
        }
        let node = podman.node
        let network = podman.conflist.name
        // The outside first: `ip netns add` turns /run/netns into a bind mount of itself, and a
        // container's netns pinned there before that would stay pinned under it.
        try node.addOutside()
        let id = try podman.podmanOK(["run", "-d", "--name", "web", "-p", "8080:80", "--network", network, PodmanNode.image]
                                     + PodmanNode.idleCommand).trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(id.wholeMatch(of: /[0-9a-f]{64}/) != nil, "podman run printed \(id.debugDescription), not an ID")
        let address = try Self.containerAddress(podman, "web")

        // podman's CNI backend hands podwire runtimeConfig.portMappings (camelCase, no hostIP):
        // the node's port 8080 on every address goes to the container's port 80.
        let element = TestNode.hostPortElement(hostPort: 8080, owner: "\(id)/eth0", podIP: address, containerPort: 80)
        let hp4any = try node.check(["nft", "list", "map", "inet", TestNode.podwireTable(network: network), "hp4any"])
        #expect(hp4any.contains(element), "missing `\(element)` in:\n\(hp4any)")
        let sets = try node.podwireSets(network: network)
        #expect(sets["hp4any"] == [element], "\(sets)")
        #expect(sets["masq4"] == ["\(address) comment \"\(id)/eth0\""], "\(sets)")

        // A listener on port 80 in the container's netns, a client outside connecting to the node.
        let netns = try podman.podmanOK(["inspect", "--format", "{{.NetworkSettings.SandboxKey}}", "web"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(netns.hasPrefix("/run/netns/"), "podman inspect SandboxKey: \(netns)")
        let run = try node.connectThroughHostPort(pod: "web", netns: netns, address: Masq.nodeOutside, port: 8080)
        #expect(run.succeeded, "\(run)")
        #expect(run.stdout == "hello from web to \(Masq.outside)\n", "\(run)")

        try podman.podmanOK(["rm", "-f", "web"])
        try node.removeOutside()
        let elements = try node.podwirePerPodElements(network: network)
        #expect(elements.isEmpty, "podwire's table still holds after podman rm -f:\n\(elements.joined(separator: "\n"))")
        let left = try podman.leftovers(attachments: [id])
        #expect(left.isEmpty, "left on the node after podman rm -f:\n\(left.joined(separator: "\n"))")
    }

    @Test("podman run --rm: the container has its podwire address and reaches its gateway; its exit releases everything")
    func runRemoveReleases() throws {
        let podman = try PodmanNode(conflist: try Self.network())
        defer {
            let problems = podman.close()
            #expect(problems.isEmpty, "cleanup:\n\(problems.joined(separator: "\n"))")
        }
        let cidFile = "/run/run-rm.cid"
        let run = try podman.podman(["run", "--rm", "--cidfile", cidFile, "--network", podman.conflist.name, PodmanNode.image, "sh", "-c",
                                     "ip -4 -o addr show eth0 && ip -4 route && ping -c1 -W2 10.244.1.1"])
        #expect(run.succeeded, "\(run)")
        #expect(run.stdout.contains("inet 10.244.1.2/24 "), "\(run)")
        #expect(run.stdout.contains("default via 10.244.1.1 dev eth0"), "\(run)")
        #expect(run.stdout.contains("1 packets received"), "\(run)")

        let id = try #require(try podman.node.readFile(cidFile), "podman wrote no --cidfile")
        #expect(id.wholeMatch(of: /[0-9a-f]{64}/) != nil, "container ID \(id.debugDescription)")
        let left = try podman.leftovers(attachments: [id])
        #expect(left.isEmpty, "left on the node after the container exited:\n\(left.joined(separator: "\n"))")
    }
}
