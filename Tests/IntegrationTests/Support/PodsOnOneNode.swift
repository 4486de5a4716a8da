import Foundation
import Testing

/// The seed article's setup: pods on one Kindnet node (pod CIDR 10.244.1.0/24), each ADDed with
/// ifname eth0 and container ID = pod name, in order, so pod-a gets .2 and pod-b .3.
struct PodsOnOneNode {
    struct Attachment {
        var pod: String
        var netns: String
        var result: CNIResult
        var json: [String: Any]
        /// IP without prefix, e.g. 10.244.1.2.
        var address: String
        var hostVeth: String
        var hostVethMAC: String
    }

    let node: TestNode
    let cni: CNIRunner
    let attachments: [Attachment]
    /// net.ipv4.ip_forward of the node before the first ADD (a fresh netns starts at 0).
    let ipForwardBefore: String?

    var a: Attachment { attachments[0] }
    var b: Attachment { attachments[1] }

    /// `podConfigs` gives some pods a config of their own (the runtime's `runtimeConfig`, say).
    init(_ plugin: PluginUnderTest, pods: [String] = ["pod-a", "pod-b"], config: NetworkConfig? = nil,
         podConfigs: [String: NetworkConfig] = [:], sourceLocation: SourceLocation = #_sourceLocation) throws {
        node = try TestNode()
        cni = CNIRunner(node: node, plugin: plugin, config: config)
        ipForwardBefore = try node.sysctl("net.ipv4.ip_forward")
        var attachments: [Attachment] = []
        for pod in pods {
            let netns = try node.addPod(pod)
            let response = try cni.exec("ADD", containerID: pod, netns: netns, ifname: "eth0", config: podConfigs[pod],
                                        sourceLocation: sourceLocation)
            let result = try cni.expectAddSucceeded(response, sourceLocation: sourceLocation)
            let ip = try #require(result.ips?.first, "no IP in \(response)", sourceLocation: sourceLocation)
            let host = try #require(result.interfaces?.first, "no interfaces in \(response)",
                                    sourceLocation: sourceLocation)
            attachments.append(Attachment(
                pod: pod, netns: netns, result: result, json: response.json ?? [:],
                address: String(ip.address.prefix { $0 != "/" }),
                hostVeth: host.name, hostVethMAC: host.mac ?? ""))
        }
        self.attachments = attachments
    }

    /// Everything in the node and pods that could be left behind, for before/after comparisons.
    struct Snapshot: Equatable, CustomStringConvertible {
        var nodeLinks: [String]
        var nodeRoutes: [String]
        var nodeAddresses: [String]
        var addressFiles: [String]
        var podState: [String: [String]]

        var description: String {
            """
            node links: \(nodeLinks)
            node routes: \(nodeRoutes)
            node addresses: \(nodeAddresses)
            IPAM address files: \(addressFiles)
            pods: \(podState)
            """
        }
    }

    func snapshot() throws -> Snapshot {
        let links = try node.links()
        var pods: [String: [String]] = [:]
        for attachment in attachments {
            let podLinks = try node.links(inPod: attachment.pod).map(\.ifname).sorted()
            let podAddresses = try podLinks.flatMap { try node.addresses(of: $0, inPod: attachment.pod).map(\.cidr) }
            pods[attachment.pod] = podLinks + podAddresses + (try node.routeLines(inPod: attachment.pod))
        }
        return Snapshot(
            nodeLinks: links.map(\.ifname).sorted(),
            nodeRoutes: try node.check(["ip", "-4", "route", "show", "table", "all"])
                .split(separator: "\n").map(String.init).sorted(),
            nodeAddresses: try links.flatMap { link in
                try node.addresses(of: link.ifname).map { "\(link.ifname) \($0.cidr)" }
            }.sorted(),
            addressFiles: try addressFiles(),
            podState: pods)
    }

    /// The IPAM store's per-address files (not `lock` or `last_reserved_ip.*`).
    func addressFiles() throws -> [String] {
        let directory = "\(cni.config.dataDir)/\(cni.config.name)"
        return try node.listDirectory(directory).filter { $0.first?.isNumber == true || $0.contains(":") }
    }

    /// IPv4 routes in any table of the node that mention the pod network.
    func nodeRoutesToPods() throws -> [String] {
        try node.check(["ip", "-4", "route", "show", "table", "all"])
            .split(separator: "\n").map(String.init).filter { $0.contains("10.244.1.") }
    }
}
