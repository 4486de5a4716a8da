import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// A containerd node for the CRI suite: a real-root TestNode running Debian's containerd with its
// CRI plugin (Tests/Runtimes/containerd/node.sh), pods asked for through the project's own CRI
// client (Tests/Runtimes/cri/cri.py) as a kubelet asks, a pause image built from source.

/// The runtime kits under Tests/Runtimes and what they need from the machine.
enum ContainerdKit {
    static let runtimes = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // Support
        .deletingLastPathComponent()  // IntegrationTests
        .deletingLastPathComponent()  // Tests
        .appendingPathComponent("Runtimes").path
    static var nodeScript: String { "\(runtimes)/containerd/node.sh" }
    static var criClient: String { "\(runtimes)/cri/cri.py" }
    static var imageBuilder: String { "\(runtimes)/image.py" }
    static var pauseSource: String { "\(runtimes)/pause/pause.c" }
    /// Debian's python3, for which python3-grpcio is installed (not a pyenv one first on PATH).
    static let python = "/usr/bin/python3"
    static let pauseImage = "localhost/podwire-pause:1"

    /// Tools the node runs, with the Debian package that brings each.
    static let tools: [(tool: String, package: String)] = [
        ("containerd", "containerd"), ("ctr", "containerd"), ("containerd-shim-runc-v2", "containerd"),
        ("runc", "runc"), ("gcc", "gcc"), ("perl", "perl-base"), ("iptables", "iptables"), ("nft", "nftables"),
        ("ping", "iputils-ping"), ("setsid", "util-linux"), ("bash", "bash"),
    ]

    /// Everything the kit needs, probed once: a missing piece fails every test naming it.
    static let problem: String? = {
        var missing: [String] = []
        for (tool, package) in tools where (try? TestNode.tool(tool)) == nil {
            missing.append("\(tool) (apt-get install \(package))")
        }
        for file in [nodeScript, criClient, imageBuilder, pauseSource] where !FileManager.default.fileExists(atPath: file) {
            missing.append("\(file) (part of this repository)")
        }
        if !FileManager.default.isExecutableFile(atPath: "\(PluginUnderTest.referenceDirectory)/loopback") {
            missing.append("\(PluginUnderTest.referenceDirectory)/loopback, which the CRI execs for every pod (apt-get install containernetworking-plugins)")
        }
        if !FileManager.default.fileExists(atPath: "/usr/lib/\(machineTriple)/libc.a") {
            missing.append("/usr/lib/\(machineTriple)/libc.a for the static pause binary (apt-get install libc6-dev)")
        }
        if FileManager.default.isExecutableFile(atPath: python) {
            let probe = try? TestNode.execute(python, ["-c", "import grpc"], environment: ["PATH": TestNode.defaultPath], timeout: 30)
            if probe?.succeeded != true {
                missing.append("python module grpc for \(python): \(probe?.oneLine ?? "could not run") (apt-get install python3-grpcio)")
            }
        } else {
            missing.append("\(python) (apt-get install python3)")
        }
        return missing.isEmpty ? nil : "missing: " + missing.joined(separator: "; ")
    }()

    private static var machineTriple: String {
        var name = utsname()
        uname(&name)
        let machine = withUnsafeBytes(of: &name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "\(machine)-linux-gnu"
    }

    /// A fresh cgroup parent for one node's pods.
    static func newCgroupParent() -> String {
        "/podwire-test-" + String(UInt64.random(in: 0..<(1 << 48)), radix: 16)
    }
}

struct ContainerdKitError: Error, CustomStringConvertible {
    var description: String
}

/// A pod sandbox as RunPodSandbox + PodSandboxStatus reported it.
struct CRISandbox: Sendable, CustomStringConvertible {
    var name: String
    var id: String
    var ip: String
    /// The network namespace containerd made (`/var/run/netns/cni-...`); empty for host network.
    var netns: String

    /// The name TestNode's pod helpers take (`/run/netns/<name>`; /var/run is /run).
    var podName: String { URL(fileURLWithPath: netns).lastPathComponent }

    var description: String { "\(name) \(id.prefix(12)) \(ip) \(netns)" }
}

/// What a test asks RunPodSandbox for: the fields a kubelet fills for a pod.
struct CRIPodRequest {
    var name: String
    var uid: String
    var namespace = "default"
    var attempt = 0
    /// (hostPort, containerPort) TCP mappings.
    var ports: [(host: Int, container: Int)] = []
    var labels: [String: String] = [:]
    var annotations: [String: String] = [:]
    var hostNetwork = false

    /// A pod as a kubelet names it, with the labels a kubelet puts on every sandbox.
    static func pod(_ name: String, attempt: Int = 0, ports: [(host: Int, container: Int)] = []) -> CRIPodRequest {
        let uid = UUID().uuidString.lowercased()
        return CRIPodRequest(name: name, uid: uid, attempt: attempt, ports: ports,
                             labels: ["io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "default",
                                      "io.kubernetes.pod.uid": uid],
                             annotations: ["kubernetes.io/config.source": "api", "podwire.test/pod": name])
    }
}

/// A real-root node running containerd with its CRI plugin, wired to podwire through `conflist`
/// (by default the shipped one: podwire alone, mapping hostPorts and masquerading in its nftables
/// table `inet podwire-<network>`). Everything containerd keeps lives in the node's tmpfs (`dir`, /run, /var/lib/cni), so closing
/// the node leaves nothing on disk; its pods' cgroups are removed by `close()`.
final class ContainerdNode {
    static let dir = "/run/containerd-node"
    let node: TestNode
    /// The cgroup parent every RunPodSandbox names: runc makes each pod's cgroup below it.
    let cgroupParent: String
    /// Paths outside the node containerd would use by default, which did not exist before: they
    /// must still not exist after.
    private let absentOutside: [String]
    private var closed = false
    /// The conflist's network name: podwire's table is `inet podwire-<network>`.
    let network: String

    var socket: String { "\(Self.dir)/containerd.sock" }

    static let defaultPaths = ["/var/lib/containerd", "/run/containerd", "/opt/containerd", "/var/log/pods"]

    /// Starts containerd in a fresh node with `conflist` as its only network (the repository's
    /// conf/10-podwire.conflist by default) and podwire (PODWIRE_BIN, or the build's) on its bin_dir.
    init(conflist: Data? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        if let problem = ContainerdKit.problem {
            throw ContainerdKitError(description: "the containerd node kit cannot run here: \(problem)")
        }
        let podwire = try PluginUnderTest.podwire.requireBinary(sourceLocation: sourceLocation)
        let ipam = PodwireBinary.locateIPAM()
        try #require(ipam.path != nil, "\(ipam.reason ?? "podwire-ipam not found")", sourceLocation: sourceLocation)
        let conflistData = try conflist ?? Self.shippedConflist(sourceLocation: sourceLocation)
        let parsed = try? JSONSerialization.jsonObject(with: conflistData) as? [String: Any]
        network = try #require(parsed?["name"] as? String, "the conflist has no \"name\"", sourceLocation: sourceLocation)
        absentOutside = Self.defaultPaths.filter { !FileManager.default.fileExists(atPath: $0) }
        node = try TestNode(realRoot: true)
        cgroupParent = ContainerdKit.newCgroupParent()
        do {
            try start(podwireDirectory: URL(fileURLWithPath: podwire).deletingLastPathComponent().path, conflist: conflistData)
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    static func shippedConflist(sourceLocation: SourceLocation = #_sourceLocation) throws -> Data {
        let conflist = try Conflist.shipped(sourceLocation: sourceLocation)
        return try JSONSerialization.data(withJSONObject: conflist.object, options: [.sortedKeys])
    }

    private func start(podwireDirectory: String, conflist: Data) throws {
        let dir = Self.dir
        let script = """
            set -euo pipefail
            mkdir -p \(dir)/build \(dir)/net.d
            echo '\(cgroupParent)' > \(dir)/cgroup-parent
            cat > \(dir)/net.d/10-podwire.conflist
            cd \(dir)/build
            TMPDIR=\(dir)/build gcc -static -O2 -s -Wall -Werror -o pause '\(ContainerdKit.pauseSource)'
            \(ContainerdKit.python) '\(ContainerdKit.imageBuilder)' --binary pause --tag \(ContainerdKit.pauseImage) --out pause.tar >/dev/null
            bash '\(ContainerdKit.nodeScript)' cni-bin \(dir)/cni-bin '\(podwireDirectory)'
            bash '\(ContainerdKit.nodeScript)' start \(dir) \(dir)/cni-bin \(dir)/net.d \(dir)/build/pause.tar
            """
        let result = try node.run(["bash", "-c", script], stdin: conflist, timeout: 90)
        guard result.succeeded else {
            throw ContainerdKitError(description: "starting containerd failed: \(result)\n\(logTail())")
        }
    }

    /// The last lines of containerd's log, for failure messages.
    func logTail(_ lines: Int = 40) -> String {
        let tail = try? node.run(["tail", "-n", String(lines), "\(Self.dir)/containerd.log"])
        return "containerd.log (last \(lines) lines):\n" + (tail?.stdout ?? "(unreadable)")
    }

    // MARK: CRI calls

    /// Runs the CRI client inside the node; returns its JSON output.
    @discardableResult
    func cri(_ arguments: [String], timeout: TimeInterval = 60) throws -> Any {
        let result = try node.run([ContainerdKit.python, ContainerdKit.criClient, "--socket", socket] + arguments,
                                  timeout: timeout)
        guard result.succeeded else {
            throw ContainerdKitError(description: "cri.py \(arguments.joined(separator: " ")): \(result)\n\(logTail())")
        }
        do {
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        } catch {
            throw ContainerdKitError(description: "cri.py \(arguments.joined(separator: " ")) printed no JSON: \(result)")
        }
    }

    /// RunPodSandbox as a kubelet sends it (in the node's cgroup parent), then PodSandboxStatus.
    func runPod(_ request: CRIPodRequest) throws -> CRISandbox {
        var arguments = ["run", "--name", request.name, "--uid", request.uid, "--namespace", request.namespace,
                         "--attempt", String(request.attempt), "--cgroup-parent", cgroupParent,
                         "--log-dir", "\(Self.dir)/logs/\(request.namespace)_\(request.name)_\(request.uid)"]
        for port in request.ports { arguments += ["--port", "\(port.host):\(port.container)/tcp"] }
        for (key, value) in request.labels.sorted(by: { $0.key < $1.key }) { arguments += ["--label", "\(key)=\(value)"] }
        for (key, value) in request.annotations.sorted(by: { $0.key < $1.key }) { arguments += ["--annotation", "\(key)=\(value)"] }
        if request.hostNetwork { arguments.append("--host-network") }
        let answer = try cri(arguments)
        guard let object = answer as? [String: Any], let id = object["id"] as? String, let ip = object["ip"] as? String,
              let netns = object["netns"] as? String
        else { throw ContainerdKitError(description: "run printed \(answer), not {id, ip, netns}") }
        return CRISandbox(name: request.name, id: id, ip: ip, netns: netns)
    }

    func status(_ id: String) throws -> [String: Any] {
        let answer = try cri(["status", id])
        guard let object = answer as? [String: Any] else { throw ContainerdKitError(description: "status printed \(answer)") }
        return object
    }

    func list() throws -> [[String: Any]] {
        let answer = try cri(["list"])
        guard let items = answer as? [[String: Any]] else { throw ContainerdKitError(description: "list printed \(answer)") }
        return items
    }

    func stop(_ id: String) throws { try cri(["stop", id]) }
    func remove(_ id: String) throws { try cri(["remove", id]) }

    /// StopPodSandbox then RemovePodSandbox, as a kubelet ends a pod.
    func stopAndRemove(_ sandboxes: [CRISandbox]) throws {
        for sandbox in sandboxes {
            try stop(sandbox.id)
            try remove(sandbox.id)
        }
    }

    // MARK: The daemon

    func killContainerd() throws {
        try node.check(["bash", ContainerdKit.nodeScript, "kill", Self.dir])
    }

    func restartContainerd() throws {
        try node.check(["bash", ContainerdKit.nodeScript, "restart", Self.dir])
    }

    /// Whether containerd's daemon runs (its pid file names a live containerd).
    func containerdRuns() throws -> Bool {
        let result = try node.run(["sh", "-c", "pid=$(cat \(Self.dir)/containerd.pid) && [ \"$(cat /proc/$pid/comm)\" = containerd ] && ! grep -q '^State:.*Z' /proc/$pid/status"])
        return result.succeeded
    }

    /// podwire's host veth for a sandbox: the link whose alias names the sandbox's ID.
    func hostVeth(of sandbox: CRISandbox) throws -> String? {
        try node.ipObjects(["link", "show"])
            .first { ($0["ifalias"] as? String)?.contains(sandbox.id) == true }?["ifname"] as? String
    }

    // MARK: What is left

    /// PIDs of live (not zombie) processes in each pod's cgroup, by sandbox ID, on the pids hierarchy
    /// (or the unified one on a pure v2 machine).
    func podProcesses() throws -> [String: [Int32]] {
        let hierarchy = TestCgroups.hierarchies().first { $0.hasSuffix("/pids") } ?? "/sys/fs/cgroup"
        var processes: [String: [Int32]] = [:]
        let top = hierarchy + cgroupParent
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: top)) ?? [] {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: "\(top)/\(entry)", isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            let procs = (try? String(contentsOfFile: "\(top)/\(entry)/cgroup.procs", encoding: .utf8)) ?? ""
            processes[entry] = procs.split(separator: "\n").compactMap { Int32($0) }.filter { pid in
                let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
                return status.contains("\nState:") && !status.contains("\nState:\tZ")
            }
        }
        return processes
    }

    /// Everything of the node that a pod could leave behind, read in one script.
    struct Leftovers: CustomStringConvertible {
        var sections: [String: [String]]

        func lines(_ section: String) -> [String] { sections[section] ?? [] }

        var description: String {
            sections.keys.sorted().map { "@\($0):\n" + (sections[$0] ?? []).map { "  \($0)" }.joined(separator: "\n") }
                .joined(separator: "\n")
        }
    }

    func leftovers(dataDir: String = "/run/cni-ipam-state") throws -> Leftovers {
        let dir = Self.dir
        let script = """
            set -euo pipefail
            \(TestNode.existsFunction)
            own=$(readlink /proc/self/ns/mnt)
            echo @links; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//'
            # A probe's own failure must fail the script: only grep finding nothing is an answer.
            echo @routes; ip -4 route show; routes6=$(ip -6 route show); grep -v -e '^fe80::/64' -e '^multicast' <<<"$routes6" || true
            echo @ipam; if [ -d '\(dataDir)' ]; then find '\(dataDir)' -mindepth 1 ! -type d -printf '%P\\n'; fi
            echo @nat; iptables -t nat -S
            echo @nft; nft list ruleset
            echo @results; if exists /var/lib/cni/results; then ls -A /var/lib/cni/results; fi
            echo @netns; ls -A /run/netns
            echo @mounts; mountpoints=$(awk '{print $5}' /proc/self/mountinfo); grep -e '^\(dir)/' -e '^/run/netns/' <<<"$mountpoints" || true
            echo @shims
            for entry in /proc/[0-9]*; do
                [ "$(cat "$entry/comm" 2>/dev/null)" = containerd-shim ] || continue
                [ "$(readlink "$entry/ns/mnt" 2>/dev/null)" = "$own" ] || continue
                grep -q '^State:.*Z' "$entry/status" 2>/dev/null && continue
                tr '\\0' ' ' < "$entry/cmdline"; echo
            done
            echo @cgroups
            for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/*; do
                [ ! -L "$hierarchy" ] && [ -d "$hierarchy\(cgroupParent)" ] || continue
                find "$hierarchy\(cgroupParent)" -mindepth 1 -type d
                for procs in $(find "$hierarchy\(cgroupParent)" -name cgroup.procs); do
                    sed "s|^|$procs: |" "$procs"
                done
            done
            """
        let output = try node.check(["bash", "-c", script])
        var sections: [String: [String]] = [:]
        var current = ""
        for line in output.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("@") && !line.contains(" ") {
                current = String(line.dropFirst())
                sections[current] = []
            } else {
                sections[current, default: []].append(String(line))
            }
        }
        return Leftovers(sections: sections)
    }

    /// Asserts that nothing of `sandboxes` is left on the node: no host veth, no host route, no
    /// address file, no iptables nat rule or chain naming them (a chained portmap's), no nftables
    /// line naming them, no per-pod element at all in podwire's table (masquerade, hostPort maps,
    /// hairpin SNAT pairs: with ListPodSandbox empty the node has no pod to hold one), and no
    /// runtime state (ListPodSandbox, libcni's result cache, shims, pods' processes and cgroups, netns).
    func expectNothingLeft(of sandboxes: [CRISandbox], dataDir: String = "/run/cni-ipam-state",
                           sourceLocation: SourceLocation = #_sourceLocation) throws {
        let listed = try list()
        #expect(listed.isEmpty, "ListPodSandbox still lists \(listed)", sourceLocation: sourceLocation)
        let left = try leftovers(dataDir: dataDir)
        let ids = sandboxes.map(\.id), ips = sandboxes.map(\.ip).filter { !$0.isEmpty }
        func naming(_ line: String) -> Bool {
            ids.contains { line.contains($0) } || ips.contains { line.range(of: "\\b\(NSRegularExpression.escapedPattern(for: $0))\\b", options: .regularExpression) != nil }
        }
        #expect(left.lines("links") == ["lo"], "links left on the node:\n\(left)", sourceLocation: sourceLocation)
        let routes = left.lines("routes").filter { $0.contains("10.244.") || naming($0) }
        #expect(routes.isEmpty, "pod routes left on the node: \(routes)", sourceLocation: sourceLocation)
        // podwire-ipam's and host-local's bookkeeping stays; an address file is a leak.
        let addressFiles = left.lines("ipam").filter { path in
            let file = URL(fileURLWithPath: path).lastPathComponent
            return !(file == "lock" || file.hasPrefix("last_reserved_ip.") || path.contains(".podwire/"))
        }
        #expect(addressFiles.isEmpty, "IPAM files left in \(dataDir): \(addressFiles)", sourceLocation: sourceLocation)
        let nat = left.lines("nat").filter { $0.contains("CNI-DN-") || naming($0) }
        #expect(nat.isEmpty, "portmap rules or chains of the pods left in iptables nat:\n\(nat.joined(separator: "\n"))",
                sourceLocation: sourceLocation)
        let nft = left.lines("nft").filter(naming)
        #expect(nft.isEmpty, "nftables lines naming the pods: \(nft)", sourceLocation: sourceLocation)
        // Read set by set from `nft -j`, so an element is seen whatever the line it is printed on
        // and whatever it names (a comment of another attachment, an address reused since).
        let elements = try node.podwirePerPodElements(network: network, sourceLocation: sourceLocation)
        let table = TestNode.podwireTable(network: network)
        #expect(elements.isEmpty, "per-pod elements left in podwire's table inet \(table):\n\(elements.joined(separator: "\n"))",
                sourceLocation: sourceLocation)
        #expect(left.lines("results").isEmpty, "libcni result cache entries left: \(left.lines("results"))",
                sourceLocation: sourceLocation)
        #expect(left.lines("netns").isEmpty, "network namespaces left in /run/netns: \(left.lines("netns"))",
                sourceLocation: sourceLocation)
        #expect(left.lines("mounts").isEmpty, "mounts left: \(left.lines("mounts"))", sourceLocation: sourceLocation)
        #expect(left.lines("shims").isEmpty, "shims still running: \(left.lines("shims"))", sourceLocation: sourceLocation)
        #expect(left.lines("cgroups").isEmpty, "pod cgroups or processes left under \(cgroupParent): \(left.lines("cgroups"))",
                sourceLocation: sourceLocation)
    }

    // MARK: Closing

    /// Kills whatever containerd left (node.sh cleanup, then the node's own close, which SIGKILLs
    /// every process of its mount namespace and their descendants), then removes the node's cgroup
    /// tree on every hierarchy. Returns what is still left on this machine (nothing, normally).
    @discardableResult
    func close() -> [String] {
        guard !closed else { return [] }
        closed = true
        var problems: [String] = []
        if let cleanup = try? node.run(["bash", ContainerdKit.nodeScript, "cleanup", Self.dir], timeout: 60), !cleanup.succeeded {
            problems.append("node.sh cleanup: \(cleanup.oneLine)")
        }
        node.close()
        let cgroups = TestCgroups.removeTree(cgroupParent)
        if !cgroups.isEmpty { problems.append("cgroups not removed: \(cgroups)") }
        let appeared = absentOutside.filter { FileManager.default.fileExists(atPath: $0) }
        if !appeared.isEmpty { problems.append("appeared outside the node: \(appeared)") }
        return problems
    }
}
