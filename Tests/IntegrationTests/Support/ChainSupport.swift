import Foundation
import Testing

// Helpers for the standalone-IPAM and chaining suites: locating podwire-ipam, a conflist runner
// that drives a plugin list the way libcni does, and readers for the node's nat rules.

extension PodwireBinary {
    /// `podwire-ipam`, built next to `podwire` (same directory, same rules for finding it).
    static func locateIPAM() -> (path: String?, reason: String?) { locateBeside("podwire-ipam") }

    /// Another product of the package, built next to `podwire`.
    static func locateBeside(_ product: String) -> (path: String?, reason: String?) {
        let podwire = locate()
        guard let path = podwire.path else { return (nil, podwire.reason) }
        let candidate = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(product).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return (candidate, nil) }
        return (nil, "\(product) not found next to \(path); build the \(product) product")
    }
}

extension PluginUnderTest {
    /// One of Debian's main plugins (`ptp`, `bridge`) delegating IPAM to podwire-ipam, which it
    /// finds on CNI_PATH exactly as it would find host-local.
    static func debian(_ type: String, ipam: String = "podwire-ipam") -> PluginUnderTest {
        let located = PodwireBinary.locateIPAM()
        let directory = located.path.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
        return PluginUnderTest(
            label: "\(type)+\(ipam)", type: type, ipamType: ipam, binary: "\(referenceDirectory)/\(type)",
            missingReason: nil, cniPath: [directory, referenceDirectory].compactMap { $0 }.joined(separator: ":"),
            isReference: false)
    }

    /// podwire-ipam run directly, with no main plugin, as a main plugin would exec it.
    static var podwireIPAM: PluginUnderTest {
        let located = PodwireBinary.locateIPAM()
        let directory = located.path.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
        return PluginUnderTest(
            label: "podwire-ipam", type: "podwire-ipam", ipamType: "podwire-ipam", binary: located.path,
            missingReason: located.reason, cniPath: directory ?? "", isReference: false)
    }
}

extension NetworkConfig {
    /// The same document with `key` set (or removed when `value` is nil).
    func with(_ key: String, _ value: Any?) -> NetworkConfig {
        var copy = self
        copy.object[key] = value
        return copy
    }
}

/// JSON text with sorted keys, for comparing documents whatever their key order.
func canonicalJSON(_ value: Any) -> String {
    guard JSONSerialization.isValidJSONObject(value),
          let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
    else { return String(describing: value) }
    return String(decoding: data, as: UTF8.self)
}

// MARK: - A plugin list run as libcni runs it

/// A network configuration list (`.conflist`).
struct Conflist {
    var object: [String: Any]

    var name: String { object["name"] as? String ?? "" }
    var cniVersion: String { object["cniVersion"] as? String ?? "" }
    var plugins: [[String: Any]] { object["plugins"] as? [[String: Any]] ?? [] }

    /// The repository's node conflist, `conf/10-podwire.conflist`.
    static func shipped(sourceLocation: SourceLocation = #_sourceLocation) throws -> Conflist {
        let path = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Support
            .deletingLastPathComponent()  // IntegrationTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
            .appendingPathComponent("conf/10-podwire.conflist").path
        let data = try #require(FileManager.default.contents(atPath: path), "cannot read \(path)",
                                sourceLocation: sourceLocation)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any],
                                  "\(path) is not a JSON object", sourceLocation: sourceLocation)
        return Conflist(object: object)
    }

    /// The node list as it was before podwire mapped hostPorts itself: the shipped podwire entry
    /// without its `capabilities` (so the runtime hands it no portMappings; its ipMasq and
    /// ip-masq-agent keys stay), then Debian's `portmap` with the portMappings capability. A node
    /// that kept such a list must go on working: podwire then maps nothing, portmap everything.
    static func legacyWithPortmap(sourceLocation: SourceLocation = #_sourceLocation) throws -> Conflist {
        var conflist = try shipped(sourceLocation: sourceLocation)
        var plugins = conflist.plugins
        try #require(plugins.count == 1 && plugins[0]["type"] as? String == "podwire",
                     "conf/10-podwire.conflist is not one podwire entry: \(conflist.object)", sourceLocation: sourceLocation)
        plugins[0].removeValue(forKey: "capabilities")
        plugins.append(["type": "portmap", "capabilities": ["portMappings": true]])
        conflist.object["plugins"] = plugins
        return conflist
    }

    /// The list with an IPv6 range (fd00:10:244:1::/64, route ::/0) beside each podwire-ipam's
    /// IPv4 one, and fd00:10:244::/48 not masqueraded.
    func dualStack() -> Conflist {
        var copy = self
        var plugins = self.plugins
        for index in plugins.indices {
            guard var ipam = plugins[index]["ipam"] as? [String: Any], ipam["type"] as? String == "podwire-ipam" else { continue }
            ipam["ranges"] = (ipam["ranges"] as? [Any] ?? []) + [[["subnet": "fd00:10:244:1::/64"]]]
            ipam["routes"] = (ipam["routes"] as? [Any] ?? []) + [["dst": "::/0"]]
            plugins[index]["ipam"] = ipam
            if let cidrs = plugins[index]["nonMasqueradeCIDRs"] as? [String] {
                plugins[index]["nonMasqueradeCIDRs"] = cidrs + ["fd00:10:244::/48"]
            }
        }
        copy.object["plugins"] = plugins
        return copy
    }

    /// The IPAM `dataDir` of the first plugin that has one.
    var dataDir: String {
        plugins.lazy.compactMap { ($0["ipam"] as? [String: Any])?["dataDir"] as? String }.first ?? "/var/lib/cni/networks"
    }

    func addressFile(_ address: String) -> String { "\(dataDir)/\(name)/\(address)" }
}

/// What one list operation did: each plugin's response, in the order they ran.
struct ChainOutcome {
    var steps: [(type: String, response: CNIResponse)]

    /// Whether every plugin that ran succeeded (the runner stops at the first failure, as libcni does).
    var succeeded: Bool { steps.allSatisfy { $0.response.succeeded } }
    var failure: (type: String, response: CNIResponse)? { steps.first { !$0.response.succeeded } }
    /// The last plugin's output: for ADD, the list's result that libcni caches.
    var final: [String: Any]? { steps.last?.response.json }

    func response(of type: String) -> CNIResponse? { steps.first { $0.type == type }?.response }

    var description: String { steps.map { "\($0.type): \($0.response)" }.joined(separator: "\n") }
}

/// Runs a conflist inside a node as libcni does (AddNetworkList, CheckNetworkList, DelNetworkList):
/// each plugin gets its own object plus the list's `name` and `cniVersion`, `runtimeConfig` holding
/// the capabilities it declares that the runtime supplies, and `prevResult`: on ADD the previous
/// plugin's result (none for the first), on CHECK and DEL the list's final ADD result. ADD and CHECK
/// run in list order, DEL in reverse; each stops at the first failure.
struct ChainRunner {
    let node: TestNode
    let conflist: Conflist
    /// The runtime's CNI_PATH: where plugin binaries are found, and handed to each plugin.
    let cniPath: String
    /// What the runtime supplies per capability (`portMappings`, `bandwidth`, ...).
    var capabilityArgs: [String: Any] = [:]

    /// CNI_PATH with podwire's build directory first and Debian's plugins after it.
    static var defaultCNIPath: String {
        let directory = PodwireBinary.locate().path.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
        return [directory, PluginUnderTest.referenceDirectory].compactMap { $0 }.joined(separator: ":")
    }

    /// The plugin binary for `type`, looked up on CNI_PATH in order (libcni's FindInPath).
    func binary(for type: String) -> String? {
        for directory in cniPath.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(type)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// The stdin libcni builds for one plugin of the list.
    func pluginConfig(_ plugin: [String: Any], prevResult: [String: Any]?) -> NetworkConfig {
        var object = plugin
        object["name"] = conflist.name
        object["cniVersion"] = conflist.cniVersion
        if let prevResult { object["prevResult"] = prevResult }
        // The spec has the runtime replace `capabilities` by the matching `runtimeConfig`.
        let capabilities = object.removeValue(forKey: "capabilities") as? [String: Any] ?? [:]
        var runtimeConfig: [String: Any] = [:]
        for (capability, enabled) in capabilities where (enabled as? Bool) == true {
            if let value = capabilityArgs[capability] { runtimeConfig[capability] = value }
        }
        if !runtimeConfig.isEmpty { object["runtimeConfig"] = runtimeConfig }
        return NetworkConfig(object: object)
    }

    private func runner(for plugin: [String: Any], sourceLocation: SourceLocation) throws -> (String, CNIRunner) {
        let type = try #require(plugin["type"] as? String, "plugin without a type in \(plugin)", sourceLocation: sourceLocation)
        let path = binary(for: type)
        let underTest = PluginUnderTest(label: type, type: type, ipamType: "", binary: path,
                                        missingReason: path == nil ? "\(type) not found on CNI_PATH \(cniPath)" : nil,
                                        cniPath: cniPath, isReference: false)
        return (type, CNIRunner(node: node, plugin: underTest))
    }

    /// libcni's CNI_ARGS for a Kubernetes pod.
    static func kubernetesArgs(pod: String, containerID: String) -> String {
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=\(pod);K8S_POD_INFRA_CONTAINER_ID=\(containerID)"
    }

    func add(pod: String, containerID: String, ifname: String = "eth0",
             sourceLocation: SourceLocation = #_sourceLocation) throws -> ChainOutcome {
        var outcome = ChainOutcome(steps: [])
        var previous: [String: Any]? = nil
        for plugin in conflist.plugins {
            let (type, cni) = try runner(for: plugin, sourceLocation: sourceLocation)
            let response = try cni.exec("ADD", containerID: containerID, netns: node.netnsPath(pod), ifname: ifname,
                                        args: Self.kubernetesArgs(pod: pod, containerID: containerID),
                                        config: pluginConfig(plugin, prevResult: previous), sourceLocation: sourceLocation)
            outcome.steps.append((type, response))
            guard response.succeeded else { break }
            previous = response.json
        }
        return outcome
    }

    /// CHECK every plugin in list order with the list's cached ADD result. `environment` is added
    /// to every plugin's environment (a PATH, say).
    func check(pod: String, containerID: String, ifname: String = "eth0", result: [String: Any],
               only types: Set<String>? = nil, environment: [String: String] = [:],
               sourceLocation: SourceLocation = #_sourceLocation) throws -> ChainOutcome {
        var outcome = ChainOutcome(steps: [])
        for plugin in conflist.plugins {
            let (type, cni) = try runner(for: plugin, sourceLocation: sourceLocation)
            if let types, !types.contains(type) { continue }
            let response = try cni.exec("CHECK", containerID: containerID, netns: node.netnsPath(pod), ifname: ifname,
                                        args: Self.kubernetesArgs(pod: pod, containerID: containerID),
                                        config: pluginConfig(plugin, prevResult: result), extraEnvironment: environment,
                                        sourceLocation: sourceLocation)
            outcome.steps.append((type, response))
            guard response.succeeded else { break }
        }
        return outcome
    }

    /// DEL every plugin in reverse order with the list's cached ADD result (nil: none cached).
    func del(pod: String, containerID: String, netns: String? = nil, ifname: String = "eth0", result: [String: Any]?,
             sourceLocation: SourceLocation = #_sourceLocation) throws -> ChainOutcome {
        var outcome = ChainOutcome(steps: [])
        for plugin in conflist.plugins.reversed() {
            let (type, cni) = try runner(for: plugin, sourceLocation: sourceLocation)
            let response = try cni.exec("DEL", containerID: containerID, netns: netns ?? node.netnsPath(pod),
                                        ifname: ifname, args: Self.kubernetesArgs(pod: pod, containerID: containerID),
                                        config: pluginConfig(plugin, prevResult: result), sourceLocation: sourceLocation)
            outcome.steps.append((type, response))
            guard response.succeeded else { break }
        }
        return outcome
    }
}

// MARK: - The node's nat table

extension TestNode {
    /// `iptables -t nat -S` in the node, one rule or chain declaration per line.
    func natRules(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        try check(["iptables", "-t", "nat", "-S"]).split(separator: "\n").map(String.init)
    }

    /// portmap's per-container DNAT chain: `CNI-DN-` and sha512(network name + container ID) in
    /// hex, cut to iptables' 28 characters.
    func portmapDNATChain(network: String, containerID: String) throws -> String {
        let digest = try check(["sh", "-c", "printf %s \"$0\" | sha512sum", network + containerID])
        return String(("CNI-DN-" + digest.prefix { $0.isHexDigit }).prefix(28))
    }
}

// MARK: - podwire's per-network nftables table

extension TestNode {
    /// podwire's per-network table: `inet podwire-<network>`.
    static func podwireTable(network: String) -> String { "podwire-\(network)" }

    /// The sets and maps of podwire's table that hold one element per pod (masquerade, hostPorts
    /// and their hairpin SNAT pairs), as opposed to `exempt4`/`exempt6`, which hold the config.
    static let podwirePerPodSets = ["masq4", "masq6", "hp4", "hp4any", "hp6", "hp6any", "hpsnat4", "hpsnat6"]

    /// Every set and map of podwire's table for `network` with its elements, each written as
    /// `nft list` writes it (`tcp . 8080 comment "<id>/eth0" : 10.244.1.2 . 80`, `10.244.1.2
    /// comment "<id>/eth0"`), read from `nft -j`. Empty when the table does not exist.
    func podwireSets(network: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: [String]] {
        let table = Self.podwireTable(network: network)
        let listed = try run(["nft", "-j", "list", "table", "inet", table])
        if !listed.succeeded && listed.stderr.contains("No such file or directory") { return [:] }
        try #require(listed.succeeded, "nft -j list table inet \(table): \(listed)", sourceLocation: sourceLocation)
        let root = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [String: Any],
                                "nft -j printed no JSON object: \(listed.stdout)", sourceLocation: sourceLocation)
        var sets: [String: [String]] = [:]
        for item in (root["nftables"] as? [[String: Any]]) ?? [] {
            guard let object = (item["set"] ?? item["map"]) as? [String: Any], let name = object["name"] as? String else { continue }
            sets[name] = ((object["elem"] as? [Any]) ?? []).map(Self.nftElementText)
        }
        return sets
    }

    /// The elements of one of podwire's sets or maps; nil when the table or that set does not exist.
    func podwireElements(network: String, set: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String]? {
        try podwireSets(network: network, sourceLocation: sourceLocation)[set]
    }

    /// The per-pod elements podwire's table holds (see `podwirePerPodSets`), each as "set: element".
    func podwirePerPodElements(network: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let sets = try podwireSets(network: network, sourceLocation: sourceLocation)
        return Self.podwirePerPodSets.flatMap { name in (sets[name] ?? []).map { "\(name): \($0)" } }
    }

    /// One element of `nft -j`'s `elem` array in nft's own text syntax.
    static func nftElementText(_ element: Any) -> String {
        // A map element is [key, data]; the key may carry a comment (and a counter) in an `elem` wrapper.
        if let pair = element as? [Any], pair.count == 2 {
            return nftElementText(pair[0]) + " : " + nftExpressionText(pair[1])
        }
        if let wrapped = (element as? [String: Any])?["elem"] as? [String: Any] {
            let comment = (wrapped["comment"] as? String).map { " comment \"\($0)\"" } ?? ""
            return nftExpressionText(wrapped["val"] ?? "") + comment
        }
        return nftExpressionText(element)
    }

    private static func nftExpressionText(_ value: Any) -> String {
        if let text = value as? String { return text }
        if let number = value as? Int { return String(number) }
        if let number = value as? NSNumber { return number.stringValue }
        guard let object = value as? [String: Any] else { return String(describing: value) }
        if let parts = object["concat"] as? [Any] { return parts.map(nftExpressionText).joined(separator: " . ") }
        if let prefix = object["prefix"] as? [String: Any] {
            return "\(nftExpressionText(prefix["addr"] ?? ""))/\(nftExpressionText(prefix["len"] ?? ""))"
        }
        if let range = object["range"] as? [Any], range.count == 2 {
            return "\(nftExpressionText(range[0]))-\(nftExpressionText(range[1]))"
        }
        return String(describing: value)
    }

    /// podwire's hostPort map element forwarding `hostPort` to the pod's `containerPort`, commented
    /// with its attachment (`owner`, "<containerID>/<ifname>"), as `nft list map` prints it.
    static func hostPortElement(proto: String = "tcp", hostPort: Int, owner: String, podIP: String, containerPort: Int) -> String {
        "\(proto) . \(hostPort) comment \"\(owner)\" : \(podIP) . \(containerPort)"
    }
}
