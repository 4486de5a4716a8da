import Foundation
import Testing

/// The call log through the real binary: one line per call a runtime makes, a log that cannot be
/// written never failing a call, rotation, and `podwirectl stats` reading it back.
@Suite("Call log and podwirectl stats", .serialized,
       .needs(.namespaces))
struct CallLogTests {
    /// Under the node's /run, in a directory the plugin makes itself.
    static let logPath = "/run/podwire/calls.jsonl"

    static func config(version: String = "1.0.0", log: String = logPath, name: String = "kindnet",
                       subnet: String = "10.244.1.0/24") -> NetworkConfig {
        NetworkConfig.kindnet(for: .podwire, version: version, name: name, subnet: subnet).setting("callLog", log)
    }

    @Test("ADD, a failing ADD and DEL each add exactly one line, with the call's command, attachment, addresses or error; stats counts them")
    func oneLinePerCall() throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: .podwire, config: Self.config())
        try node.addPod("pod-a")

        let added = try cni.expectAddSucceeded(try cni.add(pod: "pod-a"))
        var lines = try Self.logLines(node)
        try #require(lines.count == 1, "\(lines)")
        let addresses = try #require(added.ips?.map(\.address))
        #expect(addresses == ["10.244.1.2/24"])
        try Self.expectLine(lines[0], command: "ADD", containerID: "pod-a", ips: addresses)

        // The same attachment again: the pod already has eth0.
        let repeated = try cni.add(pod: "pod-a")
        let error = try cni.expectFailure(repeated)
        #expect(error.code == 4, "\(repeated)")
        lines = try Self.logLines(node)
        try #require(lines.count == 2, "\(lines)")
        try Self.expectLine(lines[1], command: "ADD", containerID: "pod-a", errorCode: error.code)
        #expect((lines[1]["error"] as? [String: Any])?["msg"] as? String == error.msg)

        cni.expectDelSucceeded(try cni.del(pod: "pod-a"))
        lines = try Self.logLines(node)
        try #require(lines.count == 3, "\(lines)")
        try Self.expectLine(lines[2], command: "DEL", containerID: "pod-a")

        // VERSION, and a call whose config cannot be read, are not logged.
        #expect(try cni.version().succeeded)
        let unreadable = try cni.exec("ADD", containerID: "pod-b", netns: node.netnsPath("pod-a"), ifname: "eth0",
                                      stdin: Data(#"{"cniVersion":"1.0.0","name":"kindnet","#.utf8))
        #expect(try cni.expectFailure(unreadable).code == 6)
        #expect(try Self.logLines(node).count == 3)
        // Nothing on stderr for a log that could be written.
        #expect(try cni.del(pod: "pod-a").stderr.isEmpty)
        #expect(try Self.logLines(node).count == 4)

        // stats, from --log and from the network's own callLog.
        let control = try PodwireBinary.requireControl()
        let stats = try Self.statsJSON(node, [control, "stats", "--log", Self.logPath, "--json"])
        #expect(stats["calls"] as? Int == 4)
        #expect(stats["skipped"] as? Int == 0)
        #expect(stats["files"] as? [String] == [Self.logPath])
        let commands = try #require(stats["commands"] as? [String: [String: Any]])
        #expect(commands["ADD"]?["count"] as? Int == 2)
        #expect(commands["ADD"]?["errors"] as? Int == 1)
        #expect(commands["ADD"]?["errorsByCode"] as? [String: Int] == ["4": 1])
        #expect(commands["DEL"]?["count"] as? Int == 2)
        #expect(commands["DEL"]?["errors"] as? Int == 0)
        #expect(commands["CHECK"]?["count"] as? Int == 0)
        let addMax = try #require((commands["ADD"]?["ms"] as? [String: Double])?["max"])
        #expect(addMax == lines[0...1].map { $0["ms"] as? Double ?? 0 }.max())

        let conflist = "/run/net.d/10-podwire.conflist"
        var plugin = Self.config().object
        plugin["name"] = nil
        plugin["cniVersion"] = nil
        let list = try JSONSerialization.data(withJSONObject: ["cniVersion": "1.0.0", "name": "kindnet", "plugins": [plugin]],
                                              options: [.sortedKeys, .withoutEscapingSlashes])
        try node.check(["mkdir", "-p", "/run/net.d"])
        #expect(try node.run(["sh", "-c", "cat > \(conflist)"], stdin: list).succeeded)
        #expect(try Self.statsJSON(node, [control, "stats", "--conflist", conflist, "--json"])["calls"] as? Int == 4)
        let table = try node.run([control, "stats", "--conflist", conflist])
        #expect(table.succeeded, "\(table)")
        #expect(table.stdout.firstMatch(of: #/\nADD +2 /#) != nil, "\(table)")

        // A network without a call log, and no --log: exit 2, saying so.
        let bare = NetworkConfig.kindnet(for: .podwire).object.filter { $0.key != "name" && $0.key != "cniVersion" }
        let bareList = try JSONSerialization.data(withJSONObject: ["cniVersion": "1.0.0", "name": "kindnet", "plugins": [bare]])
        #expect(try node.run(["sh", "-c", "cat > /run/net.d/bare.conflist"], stdin: bareList).succeeded)
        let none = try node.run([control, "stats", "--conflist", "/run/net.d/bare.conflist"])
        #expect(none.status == 2 && none.stdout.isEmpty, "\(none)")
        #expect(none.stderr.contains("no call log") && none.stderr.contains("--log"), "\(none)")
    }

    @Test("a log whose directory cannot be made: ADD still succeeds with its normal result, and says so in one line on stderr")
    func unwritableLog() throws {
        let node = try TestNode()
        // A regular file where the log's directory would go.
        try node.check(["touch", "/run/plain"])
        let cni = CNIRunner(node: node, plugin: .podwire, config: Self.config(log: "/run/plain/calls.jsonl"))
        let reference = CNIRunner(node: node, plugin: .podwire, config: Self.config(log: "/run/other/calls.jsonl", name: "other", subnet: "10.244.2.0/24"))
        try node.addPod("pod-a")
        try node.addPod("pod-b")

        let response = try cni.add(pod: "pod-a")
        let result = try cni.expectAddSucceeded(response)
        #expect(result.ips?.map(\.address) == ["10.244.1.2/24"])
        #expect(result.ips?.first?.gateway == "10.244.1.1")
        #expect(result.interfaces?.map(\.name).contains("eth0") == true)
        let stderr = response.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(stderr.count == 2 && stderr[1].isEmpty, "one line on stderr: \(response)")
        #expect(stderr[0].hasPrefix("podwire: could not write the call log: "), "\(response)")
        #expect(stderr[0].contains("/run/plain"), "\(response)")
        #expect(try node.readFile("/run/plain") == "")

        // The same result, key for key, as an ADD whose log could be written.
        let logged = try reference.add(pod: "pod-b")
        try reference.expectAddSucceeded(logged)
        #expect(logged.stderr.isEmpty, "\(logged)")
        #expect(Set(response.json?.keys.map { $0 } ?? []) == Set(logged.json?.keys.map { $0 } ?? []))
        #expect(try node.link("eth0", inPod: "pod-a")?.isUp == true)
        #expect(try node.ping(from: "pod-a", to: "10.244.1.1").succeeded)
        #expect(try node.readFile("/run/other/calls.jsonl")?.split(separator: "\n").count == 1)

        // DEL too.
        let deleted = try cni.del(pod: "pod-a")
        cni.expectDelSucceeded(deleted)
        #expect(deleted.stderr.hasPrefix("podwire: could not write the call log: "), "\(deleted)")
    }

    @Test("callLogMaxBytes 4096: the log rotates to .1, no line is lost across the two files, and stats reads both (JSON and Prometheus)")
    func rotationAndStats() throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: .podwire, config: Self.config(version: "1.1.0").setting("callLogMaxBytes", 4096))
        for pod in ["pod-a", "pod-b"] {
            try node.addPod(pod)
            try cni.expectAddSucceeded(try cni.add(pod: pod))
        }
        _ = try cni.expectFailure(try cni.add(pod: "pod-a", containerID: "pod-a"))  // eth0 is there: code 4
        var calls = 3
        // STATUS lines are about 230 bytes: well past one rotation, short of a second.
        while try !node.fileExists(Self.logPath + ".1") {
            cni.expectSilentSuccess(try cni.networkCommand("STATUS"))
            calls += 1
            try #require(calls < 40, "no rotation after \(calls) calls")
        }
        let statusCalls = calls - 3 + 5
        for _ in 0..<5 { cni.expectSilentSuccess(try cni.networkCommand("STATUS")) }
        cni.expectDelSucceeded(try cni.del(pod: "pod-b"))
        calls += 6

        let rotated = try #require(try node.readFile(Self.logPath + ".1"))
        let current = try #require(try node.readFile(Self.logPath))
        #expect(rotated.utf8.count <= 4096 && rotated.utf8.count > 4096 - 400, "\(rotated.utf8.count) bytes in .1")
        #expect(current.utf8.count <= 4096)
        let lines = try Self.parse(rotated) + Self.parse(current)
        #expect(lines.count == calls, "one line per call across both files")
        #expect(lines.map { $0["command"] as? String ?? "" }
                == ["ADD", "ADD", "ADD"] + Array(repeating: "STATUS", count: statusCalls) + ["DEL"])
        #expect(try node.listDirectory("/run/podwire") == ["calls.jsonl", "calls.jsonl.1"])

        let control = try PodwireBinary.requireControl()
        let stats = try Self.statsJSON(node, [control, "stats", "--log", Self.logPath, "--json"])
        #expect(stats["calls"] as? Int == calls)
        #expect(stats["files"] as? [String] == [Self.logPath + ".1", Self.logPath])
        let commands = try #require(stats["commands"] as? [String: [String: Any]])
        #expect(commands["ADD"]?["count"] as? Int == 3)
        #expect(commands["ADD"]?["errorsByCode"] as? [String: Int] == ["4": 1])
        #expect(commands["STATUS"]?["count"] as? Int == statusCalls)
        #expect(commands["DEL"]?["count"] as? Int == 1)

        // The textfile collector's file, as Prometheus's own Python client parses it.
        let prom = "/run/textfile/podwire.prom"
        try node.check(["mkdir", "/run/textfile"])
        let written = try node.run([control, "stats", "--log", Self.logPath, "--prometheus", prom])
        #expect(written.succeeded && written.stdout.isEmpty, "\(written)")
        #expect(try node.listDirectory("/run/textfile") == ["podwire.prom"], "no temporary file left")
        let parser = #"""
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            families = {}
            for family in text_string_to_metric_families(open(sys.argv[1]).read()):
                families[family.name] = {"type": family.type,
                                         "samples": [[s.name, s.labels, s.value] for s in family.samples]}
            print(json.dumps(families))
            """#
        let parsed = try node.run(["/usr/bin/python3", "-B", "-c", parser, prom])
        try #require(parsed.succeeded,
                     "prometheus_client could not parse the file (python3-prometheus-client is in Scripts/lib/deps.sh): \(parsed)")
        let families = try #require(try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? [String: [String: Any]])
        // The parser names a counter's family without its _total.
        #expect(families.mapValues { $0["type"] as? String ?? "" }
                == ["podwire_cni_call_duration_seconds": "histogram", "podwire_cni_call_errors": "counter",
                    "podwire_cni_call_log_skipped_lines": "gauge"])
        func samples(_ family: String, _ name: String) -> [(labels: [String: String], value: Double)] {
            let all = families[family]?["samples"] as? [[Any]] ?? []
            return all.filter { $0.first as? String == name }.map { ($0[1] as? [String: String] ?? [:], $0[2] as? Double ?? -1) }
        }
        let counts = samples("podwire_cni_call_duration_seconds", "podwire_cni_call_duration_seconds_count")
        #expect(Dictionary(uniqueKeysWithValues: counts.map { ($0.labels["command"] ?? "", $0.value) })
                == ["ADD": 3, "STATUS": Double(statusCalls), "DEL": 1])
        #expect(counts.allSatisfy { $0.labels["network"] == "kindnet" })
        let infinity = samples("podwire_cni_call_duration_seconds", "podwire_cni_call_duration_seconds_bucket")
            .filter { $0.labels["le"] == "+Inf" }
        #expect(Dictionary(uniqueKeysWithValues: infinity.map { ($0.labels["command"] ?? "", $0.value) })
                == ["ADD": 3, "STATUS": Double(statusCalls), "DEL": 1])
        let errors = samples("podwire_cni_call_errors", "podwire_cni_call_errors_total")
        #expect(errors.count == 1)
        #expect(errors.first?.labels == ["command": "ADD", "network": "kindnet", "code": "4"])
        #expect(errors.first?.value == 1)
    }

    // MARK: Support


    static func statsJSON(_ node: TestNode, _ argv: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let result = try node.run(argv)
        try #require(result.succeeded, "\(result)", sourceLocation: sourceLocation)
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                            "not one JSON object: \(result)", sourceLocation: sourceLocation)
    }

    static func logLines(_ node: TestNode, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        try parse(try node.readFile(logPath) ?? "", sourceLocation: sourceLocation)
    }

    /// Every line a JSON object, the text ending with a newline.
    static func parse(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        #expect(text.isEmpty || text.hasSuffix("\n"), "the log ends mid-line", sourceLocation: sourceLocation)
        return try text.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)",
                         sourceLocation: sourceLocation)
        }
    }

    static let phaseNames: Set<String> = ["start", "config", "veth", "ipam", "podSide", "hostSide", "masquerade", "hostPorts",
                                          "conntrack", "vethWait", "work", "output"]

    /// The line of one call of pod `containerID`'s eth0 on kindnet: `ips` for a successful ADD,
    /// `errorCode` for a failed call; `ms` positive, at least its phases' sum less rounding.
    static func expectLine(_ line: [String: Any], command: String, containerID: String, ips: [String]? = nil,
                           errorCode: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(line["command"] as? String == command, "\(line)", sourceLocation: sourceLocation)
        #expect(line["network"] as? String == "kindnet", "\(line)", sourceLocation: sourceLocation)
        #expect(line["containerID"] as? String == containerID, "\(line)", sourceLocation: sourceLocation)
        #expect(line["ifname"] as? String == "eth0", "\(line)", sourceLocation: sourceLocation)
        #expect(line["ips"] as? [String] == ips, "\(line)", sourceLocation: sourceLocation)
        #expect((line["error"] as? [String: Any])?["code"] as? Int == errorCode, "\(line)", sourceLocation: sourceLocation)
        #expect((line["pid"] as? Int ?? 0) > 0, "\(line)", sourceLocation: sourceLocation)
        let time = try #require(line["time"] as? String, sourceLocation: sourceLocation)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/) != nil, "\(time)", sourceLocation: sourceLocation)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: time) {
            #expect(abs(date.timeIntervalSinceNow) < 300, "\(time) is not now", sourceLocation: sourceLocation)
        } else {
            Issue.record("unreadable time \(time)", sourceLocation: sourceLocation)
        }

        let ms = try #require(line["ms"] as? Double, "\(line)", sourceLocation: sourceLocation)
        let phases = try #require(line["phases"] as? [String: Double], "\(line)", sourceLocation: sourceLocation)
        #expect(Set(phases.keys).isSubset(of: phaseNames), "\(phases)", sourceLocation: sourceLocation)
        for phase in ["start", "config", "output"] {
            #expect(phases[phase] != nil, "every call passes \(phase): \(phases)", sourceLocation: sourceLocation)
        }
        if command == "ADD" && errorCode == nil {
            for phase in ["veth", "ipam", "podSide", "hostSide"] {
                #expect(phases[phase] != nil, "a successful ADD passes \(phase): \(phases)", sourceLocation: sourceLocation)
            }
        }
        // Each value is rounded to the microsecond on its own: half a microsecond each at most.
        let sum = phases.values.reduce(0, +)
        let rounding = 0.0005 * Double(phases.count + 1) + 1e-9
        #expect(ms > 0, "\(line)", sourceLocation: sourceLocation)
        #expect(ms >= sum - rounding, "ms \(ms) < the phases' sum \(sum)", sourceLocation: sourceLocation)
        #expect(ms <= sum + rounding, "the phases share out ms \(ms), their sum is \(sum)", sourceLocation: sourceLocation)
    }
}
