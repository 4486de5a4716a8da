import CallLog
import CNIProtocol
import LinuxSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One line of podwire's call log, as `podwirectl stats` reads it back (see `CallRecord` in
/// CallLog for the writing side).
public struct CallLogEntry: Sendable, Equatable {
    /// RFC 3339 UTC, as written; "" when the line has none.
    public var time: String
    public var command: String
    public var network: String
    public var containerID: String
    public var ifname: String
    public var ips: [String]?
    /// The CNI error code of a failed call; nil when it succeeded.
    public var errorCode: Int?
    /// From the process's start to the end of the call.
    public var milliseconds: Double
    /// Milliseconds by phase name, for the phases the call passed.
    public var phases: [String: Double]

    public init(time: String = "", command: String, network: String = "", containerID: String = "", ifname: String = "",
                ips: [String]? = nil, errorCode: Int? = nil, milliseconds: Double, phases: [String: Double] = [:]) {
        self.time = time
        self.command = command
        self.network = network
        self.containerID = containerID
        self.ifname = ifname
        self.ips = ips
        self.errorCode = errorCode
        self.milliseconds = milliseconds
        self.phases = phases
    }

    /// Reads one line (without its newline); nil when it is not a call-log line: not one JSON
    /// object, no `command` string, no finite `ms` of at least 0, or a `phases`, `error` or `ips`
    /// of the wrong shape. Keys the reader does not know are ignored.
    public init?(line: ArraySlice<UInt8>) {
        guard let value = try? CNIJSON.parse(Array(line), what: "a call log line"), case .object(let object) = value,
              case .string(let command)? = object["command"], !command.isEmpty,
              case .number(let milliseconds)? = object["ms"], milliseconds.isFinite, milliseconds >= 0
        else { return nil }
        func text(_ key: String) -> String? {
            switch object[key] {
            case nil, .null?: ""
            case .string(let value)?: value
            default: nil
            }
        }
        guard let time = text("time"), let network = text("network"), let containerID = text("containerID"),
              let ifname = text("ifname")
        else { return nil }
        var phases: [String: Double] = [:]
        switch object["phases"] {
        case nil, .null?:
            break
        case .object(let entries)?:
            for (name, value) in entries {
                guard case .number(let spent) = value, spent.isFinite, spent >= 0 else { return nil }
                phases[name] = spent
            }
        default:
            return nil
        }
        var errorCode: Int?
        switch object["error"] {
        case nil, .null?:
            break
        case .object(let error)?:
            guard let code = error["code"]?.intValue else { return nil }
            errorCode = code
        default:
            return nil
        }
        var ips: [String]?
        switch object["ips"] {
        case nil, .null?:
            break
        case .array(let items)?:
            var addresses: [String] = []
            for item in items {
                guard case .string(let address) = item else { return nil }
                addresses.append(address)
            }
            ips = addresses
        default:
            return nil
        }
        self.init(time: time, command: command, network: network, containerID: containerID, ifname: ifname,
                  ips: ips, errorCode: errorCode, milliseconds: milliseconds, phases: phases)
    }
}

/// Percentiles by linear interpolation between the closest ranks: numpy's default, and Python's
/// `statistics.quantiles(data, n=100, method="inclusive")`, whose arithmetic this follows (a rank
/// that falls on a value gives that value). The 50th percentile is exactly `statistics.median`:
/// the mean of the middle two for an even count, which quantiles' arithmetic can miss by a bit
/// ((3.577 + 3.578) / 2 is 3.5774999999999997, (3.577 × 50 + 3.578 × 50) / 100 is 3.5775).
public enum Percentile {
    /// The `percent`th percentile (0 to 100) of `sorted` (ascending); nil when it is empty.
    public static func of(_ sorted: [Double], _ percent: Int) -> Double? {
        precondition((0...100).contains(percent), "a percentile is between 0 and 100")
        guard let first = sorted.first else { return nil }
        if sorted.count == 1 { return first }
        // The rank percent/100 × (n − 1), as a whole part `index` and hundredths `delta`.
        let scaled = percent * (sorted.count - 1)
        let index = scaled / 100, delta = scaled % 100
        if delta == 0 { return sorted[index] }
        // statistics.median's own arithmetic; quantiles' below can differ from it in the last bit.
        if percent == 50 { return (sorted[index] + sorted[index + 1]) / 2 }
        return (sorted[index] * Double(100 - delta) + sorted[index + 1] * Double(delta)) / 100
    }
}

/// What `podwirectl stats` shows of one command.
public struct CommandStats: Sendable, Equatable {
    public struct Slowest: Sendable, Equatable {
        public var phase: String
        /// The phase's median over the command's calls, in milliseconds.
        public var p50: Double
    }

    public var command: String
    public var count: Int
    /// Failed calls by CNI error code.
    public var errorsByCode: [Int: Int]
    /// Milliseconds; nil without calls.
    public var p50: Double?
    public var p90: Double?
    public var p99: Double?
    public var max: Double?
    /// The phase with the highest median among the command's calls, a call that did not pass it
    /// counting 0 (the first in `CallPhase` order on a tie); nil when no call recorded a phase.
    public var slowest: Slowest?

    public var errors: Int { errorsByCode.values.reduce(0, +) }

    /// `entries` are this command's calls, failed ones included.
    init(command: String, entries: [CallLogEntry]) {
        self.command = command
        count = entries.count
        errorsByCode = [:]
        for case let code? in entries.map(\.errorCode) { errorsByCode[code, default: 0] += 1 }
        let durations = entries.map(\.milliseconds).sorted()
        p50 = Percentile.of(durations, 50)
        p90 = Percentile.of(durations, 90)
        p99 = Percentile.of(durations, 99)
        max = durations.last
        // A call that did not pass a phase (a failed ADD stops early; only some DELs wait for
        // the veth) spent nothing in it: the medians are over all of the command's calls.
        let names = CallStats.phaseOrder(entries.flatMap(\.phases.keys))
        for name in names {
            guard let median = Percentile.of(entries.map { $0.phases[name] ?? 0 }.sorted(), 50) else { continue }
            if slowest == nil || median > slowest!.p50 { slowest = Slowest(phase: name, p50: median) }
        }
    }
}

/// The call log summed up: per command its calls, errors by code, percentiles of `ms` and its
/// slowest phase; and the Prometheus text of a node_exporter textfile collector. Pure: the files
/// are read by `CallLogReader`.
public struct CallStats: Sendable {
    /// The verbs a runtime logs, in the order they are shown (VERSION is never logged).
    public static let commands = ["ADD", "DEL", "CHECK", "GC", "STATUS"]

    /// The lines read, oldest first.
    public private(set) var entries: [CallLogEntry] = []
    /// Lines that are not call-log lines (blank lines are not counted).
    public private(set) var skipped = 0

    public init() {}

    /// Each file's bytes, the oldest file first (the rotated `<path>.1`, then `<path>`).
    public init(files: [[UInt8]]) {
        for bytes in files { add(bytes) }
    }

    /// Adds one file's lines. A last line without its newline (a write in progress, or a file
    /// cut short) is read like any other: it counts as skipped only if it does not parse.
    public mutating func add(_ bytes: [UInt8]) {
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { continue }
            if let entry = CallLogEntry(line: line) {
                entries.append(entry)
            } else {
                skipped += 1
            }
        }
    }

    /// The five commands, then any other the log holds (a newer plugin's), by name.
    public var commandStats: [CommandStats] {
        var byCommand: [String: [CallLogEntry]] = [:]
        for entry in entries { byCommand[entry.command, default: []].append(entry) }
        let others = byCommand.keys.filter { !Self.commands.contains($0) }.sorted()
        return (Self.commands + others).map { CommandStats(command: $0, entries: byCommand[$0] ?? []) }
    }

    /// Phase names in `CallPhase`'s order (ADD's path through a call), unknown names after, by name.
    static func phaseOrder(_ names: some Sequence<String>) -> [String] {
        let known = CallPhase.allCases.map(\.name)
        let present = Set(names)
        return known.filter(present.contains) + present.subtracting(known).sorted()
    }

    // MARK: Text

    /// The table `podwirectl stats` prints; `files` are the files read, oldest first.
    public func text(files: [String]) -> String {
        var out = files.isEmpty ? "" : "call log: \(files.joined(separator: ", "))\n"
        out += "\(entries.count) call\(entries.count == 1 ? "" : "s")"
        if let first = entries.first?.time, let last = entries.last?.time, !first.isEmpty, !last.isEmpty {
            out += " from \(first) to \(last)"
        }
        out += "\n\n"
        var rows = [["command", "calls", "p50 ms", "p90 ms", "p99 ms", "max ms", "slowest phase (p50 ms)", "errors"]]
        for stats in commandStats {
            let errorText: String
            if stats.errors == 0 {
                errorText = "0"
            } else {
                let codes = stats.errorsByCode.keys.sorted().map { "code \($0): \(stats.errorsByCode[$0]!)" }
                errorText = "\(stats.errors) (\(codes.joined(separator: ", ")))"
            }
            rows.append([stats.command, String(stats.count), Self.fixed(stats.p50), Self.fixed(stats.p90), Self.fixed(stats.p99),
                         Self.fixed(stats.max), stats.slowest.map { "\($0.phase) \(Self.fixed($0.p50))" } ?? "-", errorText])
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! }
        // The command and the text columns to the left, the numbers to the right.
        let leftAligned: Set<Int> = [0, 6, 7]
        for row in rows {
            var cells: [String] = []
            for (column, cell) in row.enumerated() {
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                cells.append(leftAligned.contains(column) ? cell + padding : padding + cell)
            }
            var line = cells.joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            out += line + "\n"
        }
        if skipped > 0 { out += "\n\(skipped) line\(skipped == 1 ? "" : "s") skipped (not call-log lines)\n" }
        return out
    }

    /// Milliseconds with three decimals, "-" for none.
    static func fixed(_ milliseconds: Double?) -> String {
        guard let milliseconds else { return "-" }
        let micro = microseconds(milliseconds)
        let fraction = String(micro % 1000)
        return "\(micro / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// Milliseconds (not negative) rounded to whole microseconds, half up, as their shortest
    /// decimal form reads: 3.5775 is 3578 µs, though `3.5775 * 1000` is 3577.4999999999995.
    static func microseconds(_ milliseconds: Double) -> Int64 {
        let text = milliseconds.description
        guard milliseconds >= 0, milliseconds < 1e12, !text.contains("e"), let dot = text.firstIndex(of: "."),
              let whole = Int64(text[..<dot])
        else { return Int64((milliseconds * 1000).rounded()) }
        let digits = Array(text[text.index(after: dot)...].utf8).map { Int64($0) - Int64(UInt8(ascii: "0")) }
        var micro = whole * 1000
        for (position, digit) in digits.prefix(3).enumerated() { micro += digit * [100, 10, 1][position] }
        if digits.count > 3 && digits[3] >= 5 { micro += 1 }
        return micro
    }

    // MARK: JSON

    /// The document `podwirectl stats --json` prints: milliseconds rounded to the microsecond,
    /// as the log has them; a command without calls has null percentiles.
    ///
    ///     {"calls":25,"commands":{"ADD":{"count":12,"errors":1,"errorsByCode":{"4":1},
    ///      "ms":{"max":9.87,"p50":1.834,"p90":2.101,"p99":3.4},"slowestPhase":{"name":"veth","p50":0.463}},…},
    ///      "files":["/run/podwire/calls.jsonl.1","/run/podwire/calls.jsonl"],"first":"…","last":"…","skipped":0}
    public func json(files: [String]) -> JSONValue {
        var commands: [String: JSONValue] = [:]
        for stats in commandStats {
            var object: [String: JSONValue] = [:]
            object["count"] = .number(Double(stats.count))
            object["errors"] = .number(Double(stats.errors))
            var codes: [String: JSONValue] = [:]
            for (code, count) in stats.errorsByCode { codes[String(code)] = .number(Double(count)) }
            object["errorsByCode"] = .object(codes)
            if let p50 = stats.p50, let p90 = stats.p90, let p99 = stats.p99, let max = stats.max {
                object["ms"] = .object(["p50": Self.rounded(p50), "p90": Self.rounded(p90), "p99": Self.rounded(p99),
                                        "max": Self.rounded(max)])
            } else {
                object["ms"] = .null
            }
            object["slowestPhase"] = stats.slowest.map { .object(["name": .string($0.phase), "p50": Self.rounded($0.p50)]) } ?? .null
            commands[stats.command] = .object(object)
        }
        return .object([
            "files": .array(files.map(JSONValue.string)),
            "calls": .number(Double(entries.count)),
            "skipped": .number(Double(skipped)),
            "first": entries.first.map { .string($0.time) } ?? .null,
            "last": entries.last.map { .string($0.time) } ?? .null,
            "commands": .object(commands),
        ])
    }

    static func rounded(_ milliseconds: Double) -> JSONValue {
        .number(Double(microseconds(milliseconds)) / 1000)
    }

    // MARK: Prometheus

    /// The histogram's upper bounds in seconds, as written in `le`, with the same in microseconds.
    public static let bucketBounds: [(le: String, microseconds: Int64)] = [
        ("0.001", 1_000), ("0.002", 2_000), ("0.005", 5_000), ("0.01", 10_000), ("0.02", 20_000), ("0.05", 50_000),
        ("0.1", 100_000), ("0.25", 250_000), ("0.5", 500_000), ("1", 1_000_000), ("2.5", 2_500_000), ("5", 5_000_000),
    ]

    /// A node_exporter textfile collector file (Prometheus text format 0.0.4): the calls' durations
    /// as a histogram by command and network, failed calls as a counter by command, network and
    /// code, and the lines skipped. Series appear for what the log holds; the values cover what the
    /// log still holds, so they fall when rotation drops old calls (Prometheus reads that as a
    /// counter reset).
    public func prometheus() -> String {
        struct Key: Hashable, Comparable {
            var command: String
            var network: String
            static func < (a: Key, b: Key) -> Bool {
                let order = { (command: String) in CallStats.commands.firstIndex(of: command) ?? CallStats.commands.count }
                return (order(a.command), a.command, a.network) < (order(b.command), b.command, b.network)
            }
        }
        var durations: [Key: [Int64]] = [:]
        var errors: [Key: [Int: Int]] = [:]
        for entry in entries {
            let key = Key(command: entry.command, network: entry.network)
            durations[key, default: []].append(Self.microseconds(entry.milliseconds))
            if let code = entry.errorCode { errors[key, default: [:]][code, default: 0] += 1 }
        }
        var out = """
            # HELP podwire_cni_call_duration_seconds Duration of podwire's CNI calls, from the plugin's exec to the end of the call, read from its call log.
            # TYPE podwire_cni_call_duration_seconds histogram

            """
        for key in durations.keys.sorted() {
            let values = durations[key]!
            let labels = "command=\"\(Self.labelValue(key.command))\",network=\"\(Self.labelValue(key.network))\""
            for bound in Self.bucketBounds {
                let within = values.filter { $0 <= bound.microseconds }.count
                out += "podwire_cni_call_duration_seconds_bucket{\(labels),le=\"\(bound.le)\"} \(within)\n"
            }
            out += "podwire_cni_call_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(values.count)\n"
            out += "podwire_cni_call_duration_seconds_sum{\(labels)} \(Self.seconds(microseconds: values.reduce(0, +)))\n"
            out += "podwire_cni_call_duration_seconds_count{\(labels)} \(values.count)\n"
        }
        out += """
            # HELP podwire_cni_call_errors_total podwire's CNI calls that ended in an error, by CNI error code, read from its call log.
            # TYPE podwire_cni_call_errors_total counter

            """
        for key in errors.keys.sorted() {
            let byCode = errors[key]!
            for code in byCode.keys.sorted() {
                out += "podwire_cni_call_errors_total{command=\"\(Self.labelValue(key.command))\","
                    + "network=\"\(Self.labelValue(key.network))\",code=\"\(code)\"} \(byCode[code]!)\n"
            }
        }
        out += """
            # HELP podwire_cni_call_log_skipped_lines Lines of podwire's call log that could not be read as calls.
            # TYPE podwire_cni_call_log_skipped_lines gauge
            podwire_cni_call_log_skipped_lines \(skipped)

            """
        return out
    }

    /// Seconds with six decimals, from whole microseconds: exact, and never in exponent form.
    static func seconds(microseconds: Int64) -> String {
        let fraction = String(microseconds % 1_000_000)
        return "\(microseconds / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    /// A label value as the text format escapes it: backslash, double quote and line feed.
    static func labelValue(_ text: String) -> String {
        var out = ""
        for character in text.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }
}

/// Reads the call log from disk.
public enum CallLogReader {
    /// The rotated `<path>.1` (when there is one), then `<path>`: the paths read and their bytes,
    /// oldest first. `<path>` is opened first: a rotation between the two opens then leaves both
    /// descriptors on the same file, which is read once, so no line is read twice; and nothing
    /// written before the call is lost. Neither file existing is an error (nothing was logged
    /// there, or the path is wrong).
    public static func read(path: String) throws(ControlError) -> [(path: String, bytes: [UInt8])] {
        let rotatedPath = path + ".1"
        let current = try open(path)
        defer { if let current { close(current.fd) } }
        let rotated = try open(rotatedPath)
        defer { if let rotated { close(rotated.fd) } }
        guard current != nil || rotated != nil else {
            throw ControlError(.access, "no call log at \(path) (nor \(rotatedPath)): podwire has logged no call there yet")
        }
        var files: [(path: String, bytes: [UInt8])] = []
        if let rotated, current.map({ $0.device != rotated.device || $0.inode != rotated.inode }) ?? true {
            files.append((rotatedPath, try readAll(rotated.fd, rotatedPath)))
        }
        if let current { files.append((path, try readAll(current.fd, path))) }
        return files
    }

    /// An open regular file, or nil when it does not exist. Never blocks on a FIFO.
    private static func open(_ path: String) throws(ControlError) -> (fd: Int32, device: UInt64, inode: UInt64)? {
        let fd = retryingInterrupts { Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
        if fd < 0 {
            let code = errno
            if code == ENOENT { return nil }
            throw ControlError(.access, "cannot read \(path): \(String(cString: strerror(code)))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw ControlError(.access, "cannot read \(path): \(String(cString: strerror(code)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw ControlError(.access, "cannot read \(path): not a regular file")
        }
        return (fd, UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// A log larger than this is not podwire's (its rotation keeps each file near `callLogMaxBytes`).
    public static let maximumFileBytes = 1 << 30

    private static func readAll(_ fd: Int32, _ path: String) throws(ControlError) -> [UInt8] {
        let bytes: [UInt8]
        do {
            bytes = try FileDescriptorIO.readAll(fd, limit: maximumFileBytes + 1, operation: "read \(path)")
        } catch {
            throw ControlError(.access, "cannot read \(path): \(error.reason)")
        }
        guard bytes.count <= maximumFileBytes else {
            throw ControlError(.access, "cannot read \(path): larger than \(maximumFileBytes >> 20) MiB, not a call log")
        }
        return bytes
    }
}

/// The file `podwirectl stats --prometheus` writes for node_exporter's textfile collector.
public enum PrometheusTextfile {
    /// Writes `text` to `path` whole or not at all: into a new file beside it (the same
    /// directory, so the rename cannot cross file systems; a name node_exporter's collector
    /// ignores, as it reads only `*.prom`), flushed, mode 0644, then renamed over `path`.
    public static func write(_ text: String, to path: String) throws(ControlError) {
        let bytes = Array(text.utf8)
        let slash = path.utf8.lastIndex(of: UInt8(ascii: "/"))
        let directory = slash.map { String(path[..<$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !name.isEmpty else { throw ControlError(.usage, "\(path) names a directory, not a file") }
        let temporary = (slash == nil ? "" : directory + "/") + ".\(name).\(getpid()).tmp"
        let fd = retryingInterrupts { Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644) }
        guard fd >= 0 else { throw ControlError(.access, "cannot write \(path) (as \(temporary) first): \(String(cString: strerror(errno)))") }
        var failure: String?
        do throws(SystemError) {
            try FileDescriptorIO.writeAll(fd, bytes, operation: "write \(temporary)")
            // The umask may have taken bits a collector running as another user needs.
            if fchmod(fd, 0o644) != 0 { throw SystemError("chmod \(temporary)", errno: errno) }
            if fsync(fd) != 0 { throw SystemError("fsync \(temporary)", errno: errno) }
        } catch {
            failure = "cannot write \(temporary): \(error.reason)"
        }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 {
            failure = "cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))"
        }
        if let failure {
            unlink(temporary)
            throw ControlError(.access, failure)
        }
    }
}
