import CNIProtocol
import Foundation
import Testing
@testable import PodwireControl

/// `podwirectl stats`'s arithmetic: the call log's lines read back, percentiles, errors, the slowest
/// phase, and the Prometheus text.
@Suite("Call log stats")
struct CallStatsTests {
    /// One log line as podwire writes it.
    static func line(_ command: String, ms: String, network: String = "kindnet", containerID: String = "c1",
                     error: Int? = nil, phases: String = #"{"start":0.412,"config":0.051}"#,
                     time: String = "2026-12-07T10:04:07.061831Z") -> String {
        let outcome = error.map { #""error":{"code":\#($0),"msg":"failed"}"# } ?? #""ips":["10.244.1.2/24"]"#
        return #"{"time":"\#(time)","command":"\#(command)","network":"\#(network)","containerID":"\#(containerID)","#
            + #""ifname":"eth0",\#(outcome),"ms":\#(ms),"phases":\#(phases),"pid":3911}"#
    }

    static func stats(_ lines: [String]) -> CallStats {
        CallStats(files: [Array((lines.joined(separator: "\n") + "\n").utf8)])
    }

    static func close(_ value: Double?, _ expected: Double) -> Bool {
        guard let value else { return false }
        return abs(value - expected) < 1e-9
    }

    // MARK: Percentiles

    @Test("percentiles interpolate linearly between the closest ranks (odd count, hand-computed)")
    func percentilesOdd() {
        // Sorted 1 2 3 4 5: rank 0.9 × 4 = 3.6 → 4 + 0.6 × (5 − 4); 0.99 × 4 = 3.96 → 4.96.
        let sorted: [Double] = [1, 2, 3, 4, 5]
        #expect(Percentile.of(sorted, 50) == 3)
        #expect(Self.close(Percentile.of(sorted, 90), 4.6))
        #expect(Self.close(Percentile.of(sorted, 99), 4.96))
        #expect(Percentile.of(sorted, 0) == 1)
        #expect(Percentile.of(sorted, 100) == 5)
        #expect(Percentile.of(sorted, 25) == 2)
    }

    @Test("percentiles of an even count (hand-computed)")
    func percentilesEven() {
        // Sorted 0.1 0.2 0.3 0.7: rank 1.5 → (0.2 + 0.3) / 2; 2.7 → 0.3 + 0.7 × 0.4; 2.97 → 0.3 + 0.97 × 0.4.
        let sorted = [0.1, 0.2, 0.3, 0.7]
        #expect(Self.close(Percentile.of(sorted, 50), 0.25))
        #expect(Self.close(Percentile.of(sorted, 90), 0.58))
        #expect(Self.close(Percentile.of(sorted, 99), 0.688))
    }

    @Test("p50 is exactly Python's statistics.median; p90 and p99 are statistics.quantiles(n=100, method=\"inclusive\")")
    func percentilesAgainstPython() {
        // The expected values are what Python 3.11 printed (repr) for these lists.
        let cases: [(data: [Double], median: Double, p90: Double, p99: Double)] = [
            ([1.834, 0.412, 2.101, 0.463], 1.1485, 2.0209, 2.09299),
            ([1.834, 0.412, 2.101, 0.463, 9.87], 1.834, 6.762399999999999, 9.559239999999999),
            ([0.3, 0.1, 0.7, 0.2], 0.25, 0.58, 0.688),
            ([0.101, 0.203, 0.307, 0.409, 0.511, 0.613, 0.717, 0.819, 0.923, 1.031, 1.137], 0.613, 1.031, 1.1264),
        ]
        for (data, median, p90, p99) in cases {
            let sorted = data.sorted()
            #expect(Percentile.of(sorted, 50) == median, "\(data)")
            #expect(Self.close(Percentile.of(sorted, 90), p90), "\(data)")
            #expect(Self.close(Percentile.of(sorted, 99), p99), "\(data)")
        }
        // Where median's (a + b) / 2 and quantiles' (a × 50 + b × 50) / 100 part in the last bit,
        // p50 is median's and p90 quantiles': 3.5774999999999997 and 3.5775 (shown 3.577 and 3.578).
        #expect(Percentile.of([3.577, 3.578], 50) == 3.5774999999999997)
        #expect(Percentile.of([0.1, 0.2, 0.3, 0.4, 3.577, 3.578], 90) == 3.5775)
        #expect(CallStats.fixed(Percentile.of([0.1, 0.2, 0.3, 0.4, 3.577, 3.578], 90)) == "3.578")
        #expect(Percentile.of([], 50) == nil)
        #expect(Percentile.of([2.5], 99) == 2.5)
    }

    @Test("milliseconds are shown to the microsecond, rounded half up as their decimal form reads")
    func roundingToMicroseconds() {
        // 3.5775 * 1000 is 3577.4999999999995 in binary: rounding the product would say 3.577.
        #expect(CallStats.fixed(3.5775) == "3.578")
        #expect(CallStats.fixed(12.3875) == "12.388")
        #expect(CallStats.fixed(1.9999996) == "2.000")
        #expect(CallStats.fixed(2) == "2.000")
        #expect(CallStats.fixed(0.0005) == "0.001")
        #expect(CallStats.fixed(0.00001) == "0.000")
        #expect(CallStats.fixed(0.1 + 0.2) == "0.300")
        #expect(CallStats.fixed(nil) == "-")
        #expect(CallStats.rounded(3.5775) == .number(3.578))
    }

    @Test("per command: count, percentiles of ms over every call (failed ones too), max")
    func perCommand() throws {
        let stats = Self.stats([
            Self.line("ADD", ms: "5"), Self.line("ADD", ms: "1"), Self.line("ADD", ms: "3", error: 4),
            Self.line("ADD", ms: "2"), Self.line("ADD", ms: "4"),
            Self.line("DEL", ms: "0.3"), Self.line("DEL", ms: "0.1"), Self.line("DEL", ms: "0.7"), Self.line("DEL", ms: "0.2"),
        ])
        let byCommand = Dictionary(uniqueKeysWithValues: stats.commandStats.map { ($0.command, $0) })
        #expect(stats.commandStats.map(\.command) == ["ADD", "DEL", "CHECK", "GC", "STATUS"])
        let add = try #require(byCommand["ADD"])
        #expect(add.count == 5)
        #expect(add.p50 == 3)
        #expect(Self.close(add.p90, 4.6))
        #expect(Self.close(add.p99, 4.96))
        #expect(add.max == 5)
        let del = try #require(byCommand["DEL"])
        #expect(del.count == 4)
        #expect(del.p50 == 0.25)
        #expect(Self.close(del.p90, 0.58))
        #expect(del.max == 0.7)
        let check = try #require(byCommand["CHECK"])
        #expect(check.count == 0 && check.p50 == nil && check.max == nil && check.slowest == nil)
        #expect(stats.skipped == 0)
    }

    @Test("errors are counted by CNI code, per command")
    func errorsByCode() throws {
        let stats = Self.stats([
            Self.line("ADD", ms: "1", error: 4), Self.line("ADD", ms: "1", error: 11), Self.line("ADD", ms: "1", error: 4),
            Self.line("ADD", ms: "1"), Self.line("DEL", ms: "1", error: 5), Self.line("STATUS", ms: "1", error: 50),
        ])
        let byCommand = Dictionary(uniqueKeysWithValues: stats.commandStats.map { ($0.command, $0) })
        #expect(byCommand["ADD"]?.errorsByCode == [4: 2, 11: 1])
        #expect(byCommand["ADD"]?.errors == 3)
        #expect(byCommand["DEL"]?.errorsByCode == [5: 1])
        #expect(byCommand["STATUS"]?.errorsByCode == [50: 1])
        #expect(byCommand["GC"]?.errors == 0)
        #expect(stats.text(files: []).contains("3 (code 4: 2, code 11: 1)"))
    }

    @Test("the slowest phase has the highest median over the command's calls, not the highest single value")
    func slowestPhase() throws {
        let stats = Self.stats([
            Self.line("ADD", ms: "7", phases: #"{"start":5.0,"config":0.1,"veth":1.0}"#),
            Self.line("ADD", ms: "2", phases: #"{"start":0.2,"config":0.1,"veth":1.2}"#),
            Self.line("ADD", ms: "2", phases: #"{"start":0.3,"config":0.1,"veth":0.9}"#),
            // A phase only one call passed: 0 for the others, so its median is 0.
            Self.line("ADD", ms: "9", phases: #"{"start":0.3,"config":0.1,"veth":0.9,"vethWait":8.0}"#),
            Self.line("DEL", ms: "1", phases: #"{"start":0.4,"veth":0.4}"#),
            Self.line("GC", ms: "1", phases: "{}"),
        ])
        let byCommand = Dictionary(uniqueKeysWithValues: stats.commandStats.map { ($0.command, $0) })
        // start: 0.2 0.3 0.3 5.0 → 0.3; veth: 0.9 0.9 1.0 1.2 → 0.95; vethWait: 0 0 0 8 → 0.
        let add = try #require(byCommand["ADD"]?.slowest)
        #expect(add.phase == "veth")
        #expect(add.p50 == 0.95)
        // A tie goes to the phase met first in a call.
        #expect(byCommand["DEL"]?.slowest == CommandStats.Slowest(phase: "start", p50: 0.4))
        #expect(byCommand["GC"]?.slowest == nil)
        #expect(stats.text(files: []).contains("veth 0.950"))
    }

    // MARK: Reading lines

    @Test("lines that are not call-log lines are skipped and counted; blank lines are neither")
    func skippedLines() {
        let good = Self.line("ADD", ms: "1.5")
        let text = [
            good,
            "not json",
            #"{"command":"ADD","ms":1.5"#,  // cut short
            #"["ADD",1.5]"#,
            #"{"ms":1.5}"#,  // no command
            #"{"command":"ADD","ms":"1.5"}"#,  // ms not a number
            #"{"command":"ADD","ms":-1}"#,
            #"{"command":"ADD","ms":1,"error":{"msg":"no code"}}"#,
            #"{"command":"ADD","ms":1,"phases":{"veth":"slow"}}"#,
            "",
            "   ",
            #"{"command":"DEL","ms":2,"extra":"a key of a later version"}"#,
            String(good.dropLast(20)),  // the last line, without its newline: a write still going on
        ].joined(separator: "\n")
        let stats = CallStats(files: [Array(text.utf8)])
        #expect(stats.entries.map(\.command) == ["ADD", "DEL"])
        #expect(stats.skipped == 9)
        #expect(stats.text(files: []).contains("9 lines skipped"))
        #expect(stats.json(files: [])["skipped"] == .number(9))
    }

    @Test("a line is read back field by field")
    func entryFields() throws {
        let line = #"{"time":"2026-12-07T10:04:07.061831Z","command":"ADD","network":"t","containerID":"c\"1","ifname":"eth0","#
            + #""ips":["10.244.1.2/24","fd00::2/64"],"ms":1.834,"phases":{"start":0.412,"veth":0.463},"pid":3911}"#
        let entry = try #require(CallLogEntry(line: ArraySlice(line.utf8)))
        #expect(entry == CallLogEntry(time: "2026-12-07T10:04:07.061831Z", command: "ADD", network: "t", containerID: "c\"1",
                                      ifname: "eth0", ips: ["10.244.1.2/24", "fd00::2/64"], errorCode: nil, milliseconds: 1.834,
                                      phases: ["start": 0.412, "veth": 0.463]))
        let failed = try #require(CallLogEntry(line: ArraySlice(Self.line("ADD", ms: "0.5", error: 4).utf8)))
        #expect(failed.errorCode == 4 && failed.ips == nil)
    }

    @Test("the rotated file is read first, and a line cut short at the end of one file does not swallow the next file's first")
    func rotatedFileFirst() throws {
        let directory = try CallLogTestDirectory()
        let path = directory.path + "/calls.jsonl"
        try directory.write(path + ".1", Self.line("ADD", ms: "1", containerID: "old", time: "2026-12-07T10:00:00.000000Z") + "\n"
                            + #"{"command":"ADD","ms"#)
        try directory.write(path, Self.line("DEL", ms: "2", containerID: "new", time: "2026-12-07T11:00:00.000000Z") + "\n")
        let files = try CallLogReader.read(path: path)
        #expect(files.map(\.path) == [path + ".1", path])
        let stats = CallStats(files: files.map(\.bytes))
        #expect(stats.entries.map(\.containerID) == ["old", "new"])
        #expect(stats.skipped == 1)
        let json = stats.json(files: files.map(\.path))
        #expect(json["first"] == .string("2026-12-07T10:00:00.000000Z"))
        #expect(json["last"] == .string("2026-12-07T11:00:00.000000Z"))
        #expect(json["files"] == .array([.string(path + ".1"), .string(path)]))
        #expect(stats.text(files: files.map(\.path)).hasPrefix("call log: \(path).1, \(path)\n2 calls from 2026-12-07T10:00:00.000000Z"))
    }

    @Test("only one of the two files, neither, or something that is not a file")
    func readerEdges() throws {
        let directory = try CallLogTestDirectory()
        let path = directory.path + "/calls.jsonl"
        #expect(throws: ControlError.self) { try CallLogReader.read(path: path) }
        try directory.write(path + ".1", Self.line("ADD", ms: "1") + "\n")
        #expect(try CallLogReader.read(path: path).map(\.path) == [path + ".1"])
        try directory.write(path, Self.line("ADD", ms: "1") + "\n")
        unlink(path + ".1")
        #expect(try CallLogReader.read(path: path).map(\.path) == [path])
        // A FIFO is refused without waiting for a writer.
        let fifo = directory.path + "/fifo"
        try #require(mkfifo(fifo, 0o600) == 0)
        do {
            _ = try CallLogReader.read(path: fifo)
            Issue.record("a FIFO was read")
        } catch {
            #expect(error.message.contains("not a regular file"), "\(error)")
            #expect(error.exitCode == 2)
        }
    }

    // MARK: Output

    @Test("the text table is aligned: numbers to the right, one row per command")
    func textTable() {
        let stats = Self.stats([Self.line("ADD", ms: "12.5"), Self.line("ADD", ms: "1.25"), Self.line("DEL", ms: "0.5", error: 5)])
        let lines = stats.text(files: []).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = lines[2]
        #expect(header.hasPrefix("command  calls  p50 ms  p90 ms  p99 ms  max ms  slowest phase (p50 ms)  errors"))
        let add = lines[3]
        #expect(add.hasPrefix("ADD          2   6.875  11.375  12.388  12.500  start 0.412"), "\(add)")
        let del = lines[4]
        #expect(del.hasSuffix("1 (code 5: 1)"), "\(del)")
        // Every column of numbers ends where its header ends.
        for column in ["calls", "p50 ms", "max ms"] {
            let end = header.range(of: column)!.upperBound.utf16Offset(in: header)
            #expect(add.utf16.count >= end && Array(add.utf8)[end - 1] != UInt8(ascii: " "), "\(column): \(add)")
        }
        #expect(lines.count == 9 && lines[8] == "", "no skipped line when none was: \(lines)")
    }

    @Test("the JSON document: every command, ms rounded to the microsecond, null for commands without calls")
    func jsonDocument() throws {
        let stats = Self.stats([Self.line("ADD", ms: "1"), Self.line("ADD", ms: "2", error: 4)])
        let json = stats.json(files: ["/run/calls.jsonl"])
        let text = String(decoding: CNIJSON.encode(json), as: UTF8.self)
        let decoded = try CNIJSON.parse(Array(text.utf8), what: "stats")
        #expect(decoded == json)
        #expect(json["calls"] == .number(2))
        #expect(json["commands"]?["ADD"]?["count"] == .number(2))
        #expect(json["commands"]?["ADD"]?["errorsByCode"] == .object(["4": .number(1)]))
        #expect(json["commands"]?["ADD"]?["ms"] == .object(["p50": .number(1.5), "p90": .number(1.9), "p99": .number(1.99),
                                                            "max": .number(2)]))
        #expect(json["commands"]?["ADD"]?["slowestPhase"] == .object(["name": .string("start"), "p50": .number(0.412)]))
        #expect(json["commands"]?["GC"]?["ms"] == .null)
        #expect(json["commands"]?["GC"]?["count"] == .number(0))
    }

    @Test("the Prometheus text: HELP and TYPE, cumulative buckets by command and network, +Inf equal to the count")
    func prometheusText() {
        let stats = Self.stats([
            Self.line("ADD", ms: "0.5"), Self.line("ADD", ms: "1"), Self.line("ADD", ms: "1.001"), Self.line("ADD", ms: "7.5", error: 4),
            Self.line("ADD", ms: "6000", error: 11), Self.line("ADD", ms: "3", network: "other"),
            Self.line("DEL", ms: "0.25"),
            "not a call",
        ])
        let expected = """
            # HELP podwire_cni_call_duration_seconds Duration of podwire's CNI calls, from the plugin's exec to the end of the call, read from its call log.
            # TYPE podwire_cni_call_duration_seconds histogram
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="0.001"} 2
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="0.002"} 3
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="0.005"} 3
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="0.01"} 4
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="0.02"} 4
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="0.05"} 4
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="0.1"} 4
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="0.25"} 4
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="0.5"} 4
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="1"} 4
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="2.5"} 4
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="5"} 4
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="kindnet",le="+Inf"} 5
            podwire_cni_call_duration_seconds_sum{command="ADD",network="kindnet"} 6.010001
            podwire_cni_call_duration_seconds_count{command="ADD",network="kindnet"} 5
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="0.001"} 0
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="0.002"} 0
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="0.005"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="0.01"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="0.02"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="0.05"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="0.1"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="0.25"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="0.5"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="1"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="2.5"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="5"} 1
            podwire_cni_call_duration_seconds_bucket{command="ADD",network="other",le="+Inf"} 1
            podwire_cni_call_duration_seconds_sum{command="ADD",network="other"} 0.003000
            podwire_cni_call_duration_seconds_count{command="ADD",network="other"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="0.001"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="0.002"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="0.005"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="0.01"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="0.02"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="0.05"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="0.1"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="0.25"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="0.5"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="1"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="2.5"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="5"} 1
            podwire_cni_call_duration_seconds_bucket{command="DEL",network="kindnet",le="+Inf"} 1
            podwire_cni_call_duration_seconds_sum{command="DEL",network="kindnet"} 0.000250
            podwire_cni_call_duration_seconds_count{command="DEL",network="kindnet"} 1
            # HELP podwire_cni_call_errors_total podwire's CNI calls that ended in an error, by CNI error code, read from its call log.
            # TYPE podwire_cni_call_errors_total counter
            podwire_cni_call_errors_total{command="ADD",network="kindnet",code="4"} 1
            podwire_cni_call_errors_total{command="ADD",network="kindnet",code="11"} 1
            # HELP podwire_cni_call_log_skipped_lines Lines of podwire's call log that could not be read as calls.
            # TYPE podwire_cni_call_log_skipped_lines gauge
            podwire_cni_call_log_skipped_lines 1

            """
        #expect(stats.prometheus() == expected)
    }

    @Test("every bucket series is cumulative and its +Inf bucket is the count, for durations across all the bounds")
    func prometheusCumulative() throws {
        // 0.1 ms to 10 s in steps that land on, below and above each bound.
        var lines: [String] = []
        for micro in [100, 999, 1_000, 1_001, 2_000, 4_999, 5_000, 9_999, 10_000, 20_001, 49_999, 100_000, 250_000,
                      250_001, 500_000, 999_999, 1_000_000, 2_500_000, 4_999_999, 5_000_000, 5_000_001, 10_000_000] {
            lines.append(Self.line("CHECK", ms: CallStats.fixed(Double(micro) / 1000)))
        }
        let text = Self.stats(lines).prometheus()
        var buckets: [(le: String, count: Int)] = []
        var count: Int?
        for line in text.split(separator: "\n") where line.hasPrefix("podwire_cni_call_duration_seconds")
            && !line.hasPrefix("podwire_cni_call_duration_seconds_sum") {
            let value = try #require(Int(line.split(separator: " ").last!))
            if let le = line.firstMatch(of: /le="([^"]+)"/)?.1 {
                buckets.append((String(le), value))
            } else if line.hasPrefix("podwire_cni_call_duration_seconds_count") {
                count = value
            }
        }
        #expect(buckets.map(\.le) == CallStats.bucketBounds.map(\.le) + ["+Inf"])
        #expect(buckets.map(\.count) == [3, 5, 7, 9, 9, 11, 12, 13, 15, 17, 18, 20, 22])
        #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.count <= $1.count })
        #expect(buckets.last?.count == count && count == lines.count)
        #expect(text.contains("podwire_cni_call_duration_seconds_sum{command=\"CHECK\",network=\"kindnet\"} 30.705098\n"))
    }

    @Test("label values are escaped as the text format wants")
    func prometheusEscaping() {
        let stats = CallStats(files: [Array(#"{"command":"ADD","network":"a\"b\\c\nd","ms":1,"error":{"code":7}}"#.utf8)])
        #expect(stats.prometheus().contains(#"podwire_cni_call_errors_total{command="ADD",network="a\"b\\c\nd",code="7"} 1"#))
    }

    @Test("a file is written whole: a temporary name beside it, mode 0644, then renamed; nothing left on failure")
    func textfileWrittenWhole() throws {
        let directory = try CallLogTestDirectory()
        let path = directory.path + "/podwire.prom"
        try directory.write(path, "old")
        let previous = umask(0o077)
        defer { umask(previous) }
        try PrometheusTextfile.write("new\n", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "new\n")
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o644)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["podwire.prom"])
        #expect(throws: ControlError.self) { try PrometheusTextfile.write("x", to: directory.path + "/missing/x.prom") }
        // A directory in the way of the rename: the temporary file goes again.
        try #require(mkdir(directory.path + "/busy.prom", 0o755) == 0)
        #expect(throws: ControlError.self) { try PrometheusTextfile.write("x", to: directory.path + "/busy.prom") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["busy.prom", "podwire.prom"])
    }
}

/// A directory of the test's own under $TMPDIR, removed with what it holds.
final class CallLogTestDirectory {
    let path: String

    init() throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/podwire-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        path = String(cString: made)
    }

    func write(_ file: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
