import Foundation
import Testing

/// podwire under a real container engine: Debian's podman 4.3 with its CNI backend, runc and
/// cgroupfs, in a real-root node (Tests/Runtimes/podman/podman.sh keeps every file podman uses in
/// the node). The network is the node's conflist, podwire then Debian's portmap, with podwire's
/// masquerade on, so that a pod also leaves nftables state to clean up.
@Suite("podman with the CNI backend runs containers on a podwire network", .needs(.realRoot))
struct RuntimePodmanTests {
    /// `conf/10-podwire.conflist` with `ipMasq` (and the cluster's pod CIDR exempt) on podwire.
    static func network(sourceLocation: SourceLocation = #_sourceLocation) throws -> Conflist {
        var conflist = try Conflist.shipped(sourceLocation: sourceLocation)
        var plugins = conflist.plugins
        try #require(plugins.first?["type"] as? String == "podwire", "\(conflist.object)", sourceLocation: sourceLocation)
        plugins[0]["ipMasq"] = true
        plugins[0]["noMasqueradeCIDRs"] = ["10.244.0.0/16"]
        conflist.object["plugins"] = plugins
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
