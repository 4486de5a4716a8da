import Foundation
import SeededRandom
import Testing

// Helpers for the concurrency and crash-safety suites. Everything that has to happen at once, or
// many times over, runs as one bash script inside the node: a CNI runtime execs plugins from the
// node itself, and a round trip per command through nsenter would dwarf what is being measured.

// MARK: - Network

/// The network these suites use: the Kindnet walkthrough's, in cniVersion 1.1.0 so the same config
/// also serves GC.
struct StormNetwork {
    static let name = "kindnet"
    static let dataDir = "/run/cni-ipam-state"
    static var storeDirectory: String { "\(dataDir)/\(name)" }
    /// Where `StormNode` writes the configs inside the node.
    static let addConfigPath = "/run/storm/net.json"
    static let gcConfigPath = "/run/storm/gc.json"

    /// `range` narrows the pool (e.g. ("10.244.1.2", "10.244.1.33")) so addresses are reused quickly.
    static func config(range: (start: String, end: String)? = nil,
                       validAttachments: [(containerID: String, ifname: String)]? = nil) -> Data {
        var rangeObject: [String: Any] = ["subnet": "10.244.1.0/24"]
        if let range {
            rangeObject["rangeStart"] = range.start
            rangeObject["rangeEnd"] = range.end
        }
        var object: [String: Any] = [
            "cniVersion": "1.1.0",
            "name": name,
            "type": "podwire",
            "mtu": 1500,
            "ipam": [
                "type": "podwire-ipam",
                "dataDir": dataDir,
                "ranges": [[rangeObject]],
                "routes": [["dst": "0.0.0.0/0"]],
            ] as [String: Any],
        ]
        if let validAttachments {
            object["cni.dev/valid-attachments"] = validAttachments.map { ["containerID": $0.containerID, "ifname": $0.ifname] }
        }
        // Built from JSON types only, so serialization cannot fail.
        return try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }
}

/// The host veth podwire derives for an attachment (README: "veth + 8 hex digits derived from the
/// container ID and interface name"), recomputed here so a test can find the veth of an ADD that
/// was killed before it printed a result. FNV-1a 64 over "containerID/ifname", folded to 32 bits.
struct StormHostVeth: Equatable {
    let name: String
    /// The "signature" MAC: 02:<the 4 bytes of the hash>:70.
    let mac: String

    init(containerID: String, ifname: String = "eth0") {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array(containerID.utf8) + [UInt8(ascii: "/")] + Array(ifname.utf8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let folded = UInt32(truncatingIfNeeded: hash >> 32) ^ UInt32(truncatingIfNeeded: hash)
        name = "veth" + String(format: "%08x", folded)
        mac = String(format: "02:%02x:%02x:%02x:%02x:70", (folded >> 24) & 0xff, (folded >> 16) & 0xff,
                     (folded >> 8) & 0xff, folded & 0xff)
    }

    static func alias(containerID: String, ifname: String = "eth0") -> String {
        "podwire \(StormNetwork.name) \(containerID) \(ifname)"
    }
}

// MARK: - Seeded randomness

/// The storms' generator: seeded from an environment variable when a failing run is replayed.
typealias StormRandom = SplitMix64

extension SplitMix64 {
    /// The seed from `environmentKey` (decimal or 0x-hex) when set, else a fresh one.
    static func seeded(from environmentKey: String) -> SplitMix64 {
        let text = ProcessInfo.processInfo.environment[environmentKey] ?? ""
        let parsed = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
        return SplitMix64(seed: parsed ?? UInt64.random(in: 1...UInt64.max))
    }
}

// MARK: - Running CNI commands in bulk inside the node

/// One plugin invocation of a batch.
struct StormJob {
    var command: String
    var containerID: String
    /// CNI_NETNS; the pod name's path by default.
    var netns: String
    var ifname = "eth0"
    var configPath = StormNetwork.addConfigPath
    /// How often an ADD answered with an exhausted range (code 102) is tried again, as a runtime
    /// retries a pod; 0 for every other job.
    var retriesWhileExhausted = 0

    static func gc(configPath: String = StormNetwork.gcConfigPath) -> StormJob {
        StormJob(command: "GC", containerID: "", netns: "", ifname: "", configPath: configPath)
    }

    static func add(_ pod: String, containerID: String? = nil, retriesWhileExhausted: Int = 0) -> StormJob {
        StormJob(command: "ADD", containerID: containerID ?? pod, netns: "/run/netns/\(pod)",
                 retriesWhileExhausted: retriesWhileExhausted)
    }

    static func del(_ pod: String, containerID: String? = nil) -> StormJob {
        StormJob(command: "DEL", containerID: containerID ?? pod, netns: "/run/netns/\(pod)")
    }
}

/// What one job of a batch did.
struct StormOutcome: CustomStringConvertible {
    var job: StormJob
    var status: Int32
    var stdout: String
    var stderr: String
    /// Seconds (bash's EPOCHREALTIME) right before the plugin was first exec'd and right after it
    /// last exited.
    var started: Double
    var ended: Double
    /// How many times the plugin ran (more than once only for an ADD retried while exhausted).
    var attempts: Int

    var succeeded: Bool { status == 0 }

    var description: String {
        "\(job.command) \(job.containerID): exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)"
    }

    /// The ADD result, decoded; nil (with an issue recorded) when the job did not print one.
    func result(sourceLocation: SourceLocation = #_sourceLocation) -> CNIResult? {
        guard succeeded else {
            Issue.record("\(self)", sourceLocation: sourceLocation)
            return nil
        }
        do {
            return try JSONDecoder().decode(CNIResult.self, from: Data(stdout.utf8))
        } catch {
            Issue.record("cannot decode the result of \(self): \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }
}

/// A pod's attachment as its ADD result describes it.
struct StormAttachment: Equatable, CustomStringConvertible {
    var pod: String
    var containerID: String
    /// Without the prefix length.
    var address: String
    var hostVeth: String
    var hostMAC: String

    init?(pod: String, containerID: String, result: CNIResult) {
        guard let ip = result.ips?.first, let host = result.interfaces?.first else { return nil }
        self.pod = pod
        self.containerID = containerID
        address = String(ip.address.prefix { $0 != "/" })
        hostVeth = host.name
        hostMAC = host.mac ?? ""
    }

    var description: String { "\(containerID)=\(address)@\(hostVeth)" }
}

/// The largest number of jobs that were running at the same instant.
func stormPeakConcurrency(_ outcomes: [StormOutcome]) -> Int {
    var events: [(time: Double, change: Int)] = []
    for outcome in outcomes {
        events.append((outcome.started, 1))
        events.append((outcome.ended, -1))
    }
    // An end and a start at the same instant do not overlap.
    events.sort { (a: (time: Double, change: Int), b: (time: Double, change: Int)) -> Bool in
        a.time != b.time ? a.time < b.time : a.change < b.change
    }
    var running = 0, peak = 0
    for event in events {
        running += event.change
        peak = max(peak, running)
    }
    return peak
}

/// A node driven by the storm suites: the configs written into it, the binary at hand, and bash
/// scripts for what must happen all at once.
struct StormNode {
    let node: TestNode
    let binary: String
    let cniPath: String

    init(plugin: PluginUnderTest = .podwire, range: (start: String, end: String)? = nil) throws {
        binary = try plugin.requireBinary()
        cniPath = plugin.cniPath
        node = try TestNode()
        try node.check(["mkdir", "-p", "/run/storm"])
        try node.check(["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])
        try writeFile(StormNetwork.addConfigPath, StormNetwork.config(range: range))
    }

    func writeFile(_ path: String, _ contents: Data) throws {
        let result = try node.run(["sh", "-c", "cat > \"$1\"", "sh", path], stdin: contents)
        guard result.succeeded else { throw TestNodeError.commandFailed(argv: ["write", path], result: result) }
    }

    /// Runs a bash script in the node with BIN, CNI_PATH and the snapshot function defined; throws
    /// unless it exits 0. Returns stdout.
    ///
    /// `set -euo pipefail`: any command that fails ends the script with its status, so a script
    /// reports every line's outcome, not only its last one's. A command whose failure is an outcome
    /// to look at (a plugin's exit status) is written `status=0; command || status=$?`.
    @discardableResult
    func bash(_ script: String, timeout: TimeInterval = 120) throws -> String {
        let full = "set -euo pipefail\n" + Self.snapshotFunction + "\n" + script
        let result = try node.run(["bash", "-c", full],
                                  environment: ["BIN": binary, "CNI_PATH": cniPath, "STORE": StormNetwork.storeDirectory],
                                  timeout: timeout)
        guard result.succeeded else { throw TestNodeError.commandFailed(argv: ["bash", "-c", script], result: result) }
        return result.stdout
    }

    /// Creates pod network namespaces in one go.
    ///
    /// Here and on the node, new interfaces skip IPv6 duplicate address detection: their link-local
    /// addresses and routes then settle within linkwatch's second instead of two (see `settle`).
    func addPods(_ pods: [String]) throws {
        try bash(pods.map {
            "ip netns add \($0)\nnsenter --net=/run/netns/\($0) sysctl -qw net.ipv6.conf.default.accept_dad=0"
        }.joined(separator: "\n"))
    }

    /// Waits until the kernel has finished what it does by itself after interfaces come up
    /// (operstate through linkwatch, IPv6 link-local addresses with their routes), so a baseline
    /// snapshot does not differ from a later one by work the kernel merely had not done yet.
    /// Not a timed check: it waits for stability, for at most 20 s, and fails only if it never comes.
    /// Only the node and `pods` are watched: pods without interfaces have nothing to settle.
    func settle(pods: [String]) throws {
        let podList = pods.joined(separator: " ")
        try bash("""
            unsettled() {
                local ns links
                for ns in "" \(podList); do
                    local ipn=(ip)
                    if [ -n "$ns" ]; then ipn=(ip -n "$ns"); fi
                    "${ipn[@]}" -6 -o address show tentative
                    links=$("${ipn[@]}" -o link show)
                    # grep finding nothing is the settled answer, not a failure.
                    grep -E '[<,]UP[,>]' <<<"$links" | grep -E 'NO-CARRIER|state (DOWN|LOWERLAYERDOWN|DORMANT)' || true
                done
            }
            for attempt in $(seq 1 200); do
                if [ -z "$(unsettled)" ]; then
                    first=$(podwire_snapshot \(podList))
                    sleep 0.1
                    [ -z "$(unsettled)" ] && [ "$first" = "$(podwire_snapshot \(podList))" ] && exit 0
                fi
                sleep 0.1
            done
            echo "the node did not settle: $(unsettled)" >&2
            exit 1
            """)
    }

    /// Starts every job at once and waits for all of them.
    ///
    /// Each job is a background subshell that blocks on a shared lock the script holds, so all
    /// of them are forked and waiting before the lock is released: the plugin processes then start
    /// together rather than one fork apart.
    func runConcurrently(_ jobs: [StormJob]) throws -> [StormOutcome] {
        try run(jobs, together: true)
    }

    /// Runs the jobs one after the other, as a runtime cleaning up pod by pod does.
    func runSequentially(_ jobs: [StormJob]) throws -> [StormOutcome] {
        try run(jobs, together: false)
    }

    private func run(_ jobs: [StormJob], together: Bool) throws -> [StormOutcome] {
        var script = """
            dir=$(mktemp -d /run/storm/batch.XXXXXX)
            exec 9>"$dir/gun"
            flock -x 9
            # GC and STATUS name no attachment: a runtime leaves those variables out, and so do we.
            job() {
                local id=$1 command=$2 container=$3 netns=$4 ifname=$5 conf=$6 retries=$7
                local vars=("CNI_COMMAND=$command")
                if [ -n "$container" ]; then vars+=("CNI_CONTAINERID=$container"); fi
                if [ -n "$netns" ]; then vars+=("CNI_NETNS=$netns"); fi
                if [ -n "$ifname" ]; then vars+=("CNI_IFNAME=$ifname"); fi
                local start=$EPOCHREALTIME status attempts=0
                while :; do
                    attempts=$((attempts + 1))
                    status=0
                    env "${vars[@]}" "$BIN" <"$conf" >"$dir/$id.out" 2>"$dir/$id.err" || status=$?
                    if [ "$status" -ne 0 ] && [ "$attempts" -le "$retries" ] && grep -Eq '"code": ?102[,}]' "$dir/$id.out"; then
                        sleep 0.002
                        continue
                    fi
                    break
                done
                echo "$status $start $EPOCHREALTIME $attempts" >"$dir/$id.rc"
            }
            pids=()
            launch() {
                ( flock -s "$dir/gun" true; job "$@" ) 9>&- &
                pids+=($!)
            }

            """
        for (index, job) in jobs.enumerated() {
            script += (together ? "launch" : "job")
                + " \(index) \(job.command) \(Self.quote(job.containerID)) \(Self.quote(job.netns)) "
                + "\(Self.quote(job.ifname)) \(Self.quote(job.configPath)) \(job.retriesWhileExhausted)\n"
        }
        script += """
            # Every subshell is forked by now; give them a moment to block on the lock, then fire.
            \(together ? "sleep 0.1" : "")
            exec 9>&-
            # wait for each job by its PID, so a subshell that died (set -e) fails the script.
            for pid in "${pids[@]}"; do wait "$pid"; done
            for id in $(seq 0 \(jobs.count - 1)); do
                rc=$(cat "$dir/$id.rc")
                echo "@job $id $rc"
                base64 -w0 "$dir/$id.out"; echo
                base64 -w0 "$dir/$id.err"; echo
            done
            rm -rf "$dir"
            """
        let output = try bash(script)
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var outcomes: [StormOutcome] = []
        var reported = Set<Int>()
        var position = 0
        while position < lines.count {
            let header = lines[position].split(separator: " ")
            guard header.first == "@job", header.count == 6, let index = Int(header[1]), index < jobs.count,
                  let status = Int32(header[2]), let started = Double(header[3]), let ended = Double(header[4]),
                  let attempts = Int(header[5]), position + 2 < lines.count
            else {
                position += 1
                continue
            }
            let decode = { (text: String) in String(decoding: Data(base64Encoded: text) ?? Data(), as: UTF8.self) }
            reported.insert(index)
            outcomes.append(StormOutcome(job: jobs[index], status: status, stdout: decode(lines[position + 1]),
                                         stderr: decode(lines[position + 2]), started: started, ended: ended,
                                         attempts: attempts))
            position += 3
        }
        guard outcomes.count == jobs.count, reported == Set(jobs.indices) else {
            throw TestNodeError.unexpectedOutput(argv: ["batch"], output: output,
                                                 reason: "\(outcomes.count) outcomes for \(jobs.count) jobs")
        }
        return outcomes
    }

    /// Everything of the node, its pods (all of them, or only `pods`) and the IPAM store that a
    /// leak could show in.
    func snapshot(pods: [String]? = nil) throws -> StormSnapshot {
        StormSnapshot(parsing: try bash("podwire_snapshot \(pods?.joined(separator: " ") ?? "")"))
    }

    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Prints the node's state as "@section" headers followed by lines; pod sections for the pods
    /// named as arguments, or for every pod without any.
    ///
    /// Kept whole, not filtered for "10.244": a leak of anything (an IPv6 link-local route of a
    /// forgotten veth, a local-table entry for the gateway) must show. Normalised only where the
    /// kernel changes things by itself as time passes: IPv6 DAD drops "tentative" a second or two
    /// after an interface comes up. Bookkeeping files of the store (lock, round-robin cursor, index
    /// stamp) are listed by name: their contents legitimately change with every operation.
    static let snapshotFunction = #"""
        podwire_snapshot() {
            local ns file
            echo "@node links"
            ip -d -o link show | sed -E 's/ +/ /g'
            echo "@node addresses"
            ip -o address show | sed -E 's/ tentative//; s/ +/ /g'
            echo "@node routes"
            ip -4 route show table all
            ip -6 route show table all
            local pods=("$@")
            if [ $# -eq 0 ]; then pods=($(ls /run/netns | LC_ALL=C sort)); fi
            for ns in "${pods[@]}"; do
                echo "@pod $ns"
                ip -n "$ns" -d address show | sed -E 's/ tentative//; s/ +/ /g'
                ip -n "$ns" -4 route show table all
                ip -n "$ns" -6 route show table all
            done
            echo "@store"
            if [ -d "$STORE" ]; then
                (cd "$STORE" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r file; do
                    case "$file" in
                    ./lock | ./last_reserved_ip.* | ./.podwire | ./.podwire/stamp) echo "$file" ;;
                    *) if [ -f "$file" ]; then echo "$file = $(tr '\r\n' '^|' <"$file")"; else echo "$file (not a file)"; fi ;;
                    esac
                done)
            else
                echo "(no store directory)"
            fi
        }
        """#
}

// MARK: - Snapshots

/// The node's state by section ("node links", "node routes", "pod <name>", "store", ...).
struct StormSnapshot: Equatable {
    var sections: [String: [String]]

    init(parsing text: String) {
        var sections: [String: [String]] = [:]
        var current = ""
        for line in text.split(separator: "\n").map(String.init) {
            if line.hasPrefix("@") {
                current = String(line.dropFirst())
                sections[current, default: []] = sections[current] ?? []
            } else if !line.trimmingCharacters(in: .whitespaces).isEmpty {
                sections[current, default: []].append(line.trimmingCharacters(in: .whitespaces))
            }
        }
        // Order within a dump is the kernel's (ifindex, insertion); what matters is the set.
        self.sections = sections.mapValues { $0.sorted() }
    }

    subscript(section: String) -> [String] { sections[section] ?? [] }

    /// How `addressFiles` shows the file of `address` holding host-local's record of the attachment.
    static func addressFile(_ address: String, _ containerID: String, ifname: String = "eth0") -> String {
        "./\(address) = \(containerID)^|\(ifname)"
    }

    /// The store's per-address files, CR shown as "^" and LF as "|" ("./10.244.1.2 = ctr^|eth0").
    var addressFiles: [String] {
        self["store"].filter { $0.hasPrefix("./") && $0.dropFirst(2).first?.isNumber == true }
    }

    /// The store's index entries ("./.podwire/ctr:eth0 = ...").
    var indexEntries: [String] {
        self["store"].filter { $0.hasPrefix("./.podwire/") && $0 != "./.podwire/stamp" }
    }

    /// Host veths of the node, by name.
    var vethNames: [String] {
        self["node links"].compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { return nil }
            let name = fields[1].prefix { $0 != "@" && $0 != ":" }
            return name.hasPrefix("veth") ? String(name) : nil
        }.sorted()
    }

    /// Main-table /32 routes of the node to the pod network, as "address dev".
    var hostRoutes: [String] {
        self["node routes"].compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 3, fields[0].hasPrefix("10.244."), !fields[0].contains("/"), fields[1] == "dev",
                  !line.contains("table ") else { return nil }
            return "\(fields[0]) \(fields[2])"
        }.sorted()
    }

    /// A readable account of how `self` differs from `other`, section by section; empty when equal.
    func differences(from other: StormSnapshot) -> String {
        var report: [String] = []
        for section in Set(sections.keys).union(other.sections.keys).sorted() {
            let mine = self[section], theirs = other[section]
            guard mine != theirs else { continue }
            let gone = theirs.filter { !mine.contains($0) }, added = mine.filter { !theirs.contains($0) }
            var lines = ["[\(section)]"]
            lines += gone.map { "  - \($0)" }
            lines += added.map { "  + \($0)" }
            if gone.isEmpty && added.isEmpty { lines.append("  (same lines, different multiplicity)") }
            report.append(lines.joined(separator: "\n"))
        }
        return report.joined(separator: "\n")
    }
}
