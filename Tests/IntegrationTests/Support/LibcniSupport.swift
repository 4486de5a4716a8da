import Foundation
import Testing

// Helpers for the runtime suites: the project's libcni client (Tests/Runtimes/libcni), a pod run
// through it, and what a container runtime's node must look like once its pods are gone (shared
// with the podman suite).

/// Files of this package, found from this source file.
enum PackageFiles {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // Support
        .deletingLastPathComponent()  // IntegrationTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
}

/// `podwire-libcni`, built from Tests/Runtimes/libcni against Debian's libcni by its build.sh, once
/// per test process, into `.build-libcni/` (stamped by its sources, so later processes reuse it).
enum LibcniClient {
    static let buildScript = PackageFiles.path("Tests/Runtimes/libcni/build.sh")
    static let buildDirectory = PackageFiles.path(".build-libcni")

    private static let built: (path: String?, problem: String?) = {
        let bash: String
        do {
            bash = try TestNode.tool("bash")
        } catch {
            return (nil, "\(error)")
        }
        let result: CommandResult
        do {
            result = try TestNode.execute(bash, [buildScript, buildDirectory],
                                          environment: ["PATH": TestNode.defaultPath, "LC_ALL": "C"], timeout: 300)
        } catch {
            return (nil, "`bash \(buildScript) \(buildDirectory)` could not run: \(error)")
        }
        let path = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.succeeded, FileManager.default.isExecutableFile(atPath: path) else {
            return (nil, "building the libcni client failed (needs golang-go and golang-github-appc-cni-dev): "
                + "`bash \(buildScript) \(buildDirectory)` \(result)")
        }
        return (path, nil)
    }()

    /// The client's path; fails the test naming why it could not be built.
    static func require(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try #require(built.path, "\(built.problem ?? "libcni client not built")", sourceLocation: sourceLocation)
    }
}

/// A real-root node as containerd's CRI plugin and CRI-O run CNI on it: the node's conflist
/// (`conf/10-podwire.conflist`: podwire alone, with the portMappings capability and ipMasq) in a
/// configuration directory, podwire and podwire-ipam in a CNI bin directory before Debian's, pod
/// namespaces pinned in /run/netns, and libcni's cache in a directory of the node.
final class LibcniNode {
    static let confDirectory = "/run/cni/net.d"
    static let binDirectory = "/run/cni/bin"
    static let cacheDirectory = "/run/cni/cache"
    /// A directory holding only `iptables`: a chained portmap's CHECK then cannot reach ip6tables.
    static let ipv4OnlyPath = "/run/ipv4-only"

    let node: TestNode
    let client: String
    let conflist: Conflist

    /// `dualStack` adds fd00:10:244:1::/64 (and `::/0`) to the shipped list's podwire-ipam and
    /// fd00:10:244::/48 to its nonMasqueradeCIDRs.
    init(conflist custom: Conflist? = nil, dualStack: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) throws {
        client = try LibcniClient.require(sourceLocation: sourceLocation)
        let podwire = try PluginUnderTest.podwire.requireBinary(sourceLocation: sourceLocation)
        let ipam = try #require(PodwireBinary.locateIPAM().path, "\(PodwireBinary.locateIPAM().reason ?? "podwire-ipam not found")",
                                sourceLocation: sourceLocation)
        var conflist = try custom ?? Conflist.shipped(sourceLocation: sourceLocation)
        if dualStack { conflist = conflist.dualStack() }
        self.conflist = conflist
        let text = try #require(String(data: try JSONSerialization.data(withJSONObject: conflist.object,
                                                                         options: [.prettyPrinted, .sortedKeys]),
                                       encoding: .utf8))
        node = try TestNode(realRoot: true)
        try node.check(["mkdir", "-p", Self.confDirectory, Self.binDirectory, Self.cacheDirectory, Self.ipv4OnlyPath])
        let write = try node.run(["sh", "-c", "cat > \"$0\"", "\(Self.confDirectory)/10-podwire.conflist"], stdin: Data(text.utf8))
        try #require(write.succeeded, "\(write)", sourceLocation: sourceLocation)
        try node.check(["ln", "-s", podwire, "\(Self.binDirectory)/podwire"])
        try node.check(["ln", "-s", ipam, "\(Self.binDirectory)/podwire-ipam"])
        try node.check(["sh", "-c", "ln -s \"$(command -v iptables)\" \(Self.ipv4OnlyPath)/iptables"])
    }

    /// The libcni client's command line for `command` on one attachment.
    func clientArguments(_ command: String, containerID: String, pod: String, netns: String,
                         capabilityArgs: [String: Any]) throws -> [String] {
        let capabilities = try JSONSerialization.data(withJSONObject: capabilityArgs, options: [.sortedKeys])
        return [client,
                "-confdir", Self.confDirectory, "-network", conflist.name,
                "-path", "\(Self.binDirectory):\(PluginUnderTest.referenceDirectory)",
                "-cache", Self.cacheDirectory,
                "-id", containerID, "-netns", netns, "-ifname", "eth0",
                "-pod-namespace", "default", "-pod-name", pod, "-pod-uid", "0b5e55ed-0000-4000-8000-\(String(containerID.suffix(12)))",
                "-capability-args", String(decoding: capabilities, as: UTF8.self),
                command]
    }
}

/// One pod sandbox run through libcni on a `LibcniNode`, with a Kubernetes pod's CNI_ARGS and
/// capability arguments (portMappings by default `hostPort: 8080, containerPort: 80`).
final class LibcniPod {
    static let confDirectory = LibcniNode.confDirectory
    static let binDirectory = LibcniNode.binDirectory
    static let cacheDirectory = LibcniNode.cacheDirectory
    static let ipv4OnlyPath = LibcniNode.ipv4OnlyPath
    /// A runtime's sandbox ID: 64 hex digits.
    static let containerID = "7e57ab1ec0ffee5a1d2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081"
    static let pod = "pod-a"
    /// What kubelet hands the runtime for `hostPort: 8080, containerPort: 80`, as go-cni passes it
    /// (capitalised keys: go-cni's PortMapping has no JSON tags), and pod annotations, a
    /// capability the list's plugins do not declare (libcni must drop it).
    static var capabilityArgs: [String: Any] {
        ["portMappings": [["HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""]],
         "io.kubernetes.cri.pod-annotations": ["podwire.test/annotation": "present"]]
    }

    let host: LibcniNode
    let name: String
    let id: String
    var capabilityArgs: [String: Any]
    var node: TestNode { host.node }
    var conflist: Conflist { host.conflist }
    var client: String { host.client }
    var netns: String { node.netnsPath(name) }
    var cacheFile: String { "\(Self.cacheDirectory)/results/\(conflist.name)-\(id)-eth0" }

    /// The first pod of a node of its own.
    convenience init(sourceLocation: SourceLocation = #_sourceLocation) throws {
        try self.init(on: LibcniNode(sourceLocation: sourceLocation))
    }

    /// A pod on `host`; its namespace is made now.
    init(on host: LibcniNode, name: String = LibcniPod.pod, id: String = LibcniPod.containerID,
         portMappings: [[String: Any]]? = nil) throws {
        self.host = host
        self.name = name
        self.id = id
        var capabilities = Self.capabilityArgs
        if let portMappings { capabilities["portMappings"] = portMappings }
        capabilityArgs = capabilities
        try host.node.addPod(name)
    }

    /// Runs the client: `add`, `check`, `del` or `cached`. `netns` nil passes the pod's; `path`
    /// replaces PATH (which libcni hands every plugin it execs).
    func libcni(_ command: String, netns: String? = nil, path: String? = nil) throws -> CommandResult {
        var environment: [String: String] = [:]
        if let path { environment["PATH"] = path }
        return try node.run(try host.clientArguments(command, containerID: id, pod: name, netns: netns ?? self.netns,
                                                     capabilityArgs: capabilityArgs),
                            environment: environment, timeout: 60)
    }

    /// ADD through libcni; the list's result, parsed. Waits for the kernel's deferred link work,
    /// as the pod's first packet would.
    func add(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let add = try libcni("add")
        try #require(add.succeeded, "libcni ADD: \(add)", sourceLocation: sourceLocation)
        try node.settleLinks()
        return try #require(try JSONSerialization.jsonObject(with: Data(add.stdout.utf8)) as? [String: Any],
                            "ADD printed no JSON object: \(add)", sourceLocation: sourceLocation)
    }

    /// The host veth a result names (the interface without a sandbox).
    static func hostVeth(in result: [String: Any]) -> String? {
        (result["interfaces"] as? [[String: Any]])?.first { $0["sandbox"] == nil }?["name"] as? String
    }

    /// The pod's addresses in a result, without prefix length.
    static func addresses(in result: [String: Any]) -> [String] {
        ((result["ips"] as? [[String: Any]]) ?? []).compactMap { ($0["address"] as? String)?.split(separator: "/").first.map(String.init) }
    }

    /// DEL through libcni, expected to succeed and print nothing.
    func del(netns: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let del = try libcni("del", netns: netns)
        #expect(del.succeeded && del.stdout.isEmpty, "libcni DEL: \(del)", sourceLocation: sourceLocation)
    }

    /// The node after a runtime tore the pod down: the pod's netns removed as the runtime does,
    /// then nothing of the pod may be left.
    func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) throws {
        if try node.fileExists(netns) { try node.removePod(name) }
        let leftovers = try node.runtimeLeftovers(network: conflist.name, dataDir: conflist.dataDir,
                                                  attachments: [id], podNetworkPrefix: "10.244.",
                                                  cacheDirectories: [Self.cacheDirectory])
        #expect(leftovers.isEmpty, "left on the node:\n\(leftovers.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }
}

// MARK: - What a runtime's node must look like once its pods are gone

extension TestNode {
    /// Everything a pod could have left on the node, each named; empty when the node is as a
    /// runtime found it (ports aside: portmap's shared CNI-HOSTPORT-* chains stay, as they do on
    /// every node):
    ///
    /// - links other than `lo` (host veths), routes into the pod network;
    /// - in the IPAM store: address files, podwire's index of an attachment;
    /// - iptables nat rules or chains naming an attachment or a pod address, portmap's per-pod
    ///   `CNI-DN-` chains; any nftables rule or set element (podwire's masq sets) doing so;
    /// - libcni result cache entries, namespaces in /run/netns;
    /// - any process still running in the node (a runtime's monitor, runc, a container), after a
    ///   grace period for runtimes that finish their cleanup in the background.
    func runtimeLeftovers(network: String, dataDir: String, attachments: [String], podNetworkPrefix: String,
                          cacheDirectories: [String], processGrace: TimeInterval = 10) throws -> [String] {
        var left: [String] = []
        for link in try links() where link.ifname != "lo" { left.append("link \(link.ifname)") }
        for route in try routes() where route.dst.hasPrefix(podNetworkPrefix) {
            left.append("route \(route.dst) dev \(route.dev ?? "?")")
        }
        let store = "\(dataDir)/\(network)"
        // What stays once every address is released: the lock, each range set's last reservation,
        // podwire's index directory with its stamp.
        for entry in try listDirectory(store) where entry != "lock" && entry != ".podwire" && !entry.hasPrefix("last_reserved_ip.") {
            left.append("IPAM store \(store)/\(entry)")
        }
        for entry in try listDirectory("\(store)/.podwire") where entry != "stamp" {
            left.append("podwire index entry \(store)/.podwire/\(entry)")
        }
        // A pod's address (not a prefix such as an exempt 10.244.0.0/16) as nft and iptables print it.
        let podAddress = try Regex("(^|[^0-9.])" + NSRegularExpression.escapedPattern(for: podNetworkPrefix) + "[0-9]+\\.[0-9]+($|[^0-9./])")
        let mentionsPod: (String) -> Bool = { line in
            attachments.contains { line.contains($0) } || line.contains(podAddress)
        }
        for rule in try natRules() where mentionsPod(rule) || rule.contains("CNI-DN-") {
            left.append("iptables nat: \(rule)")
        }
        for line in try check(["nft", "list", "ruleset"]).split(separator: "\n") where mentionsPod(String(line)) {
            left.append("nftables: \(line.trimmingCharacters(in: .whitespaces))")
        }
        for directory in cacheDirectories {
            for entry in try listDirectory("\(directory)/results") { left.append("libcni cache \(directory)/results/\(entry)") }
        }
        for entry in try listDirectory("/run/netns") { left.append("network namespace /run/netns/\(entry)") }

        let deadline = Date().addingTimeInterval(processGrace)
        var processes = processesInside()
        while !processes.isEmpty && Date() < deadline {
            usleep(50_000)
            processes = processesInside()
        }
        left += processes.map { "process \(TestNode.describeProcess($0))" }
        return left
    }

    /// Removes what `addOutside` made: the node's end of the link first (deleting the pair at
    /// once; a namespace's own links go only when the kernel gets round to freeing it), then the
    /// namespace.
    func removeOutside() throws {
        try check(["ip", "link", "del", "out0"])
        try removePod("outside")
    }
}
