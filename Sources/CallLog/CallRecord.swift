import CNIProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One line of the call log: one CNI invocation, as JSON on a single line.
///
///     {"time":"2026-12-07T10:01:02.345678Z","command":"ADD","network":"kindnet","containerID":"…",
///      "ifname":"eth0","ips":["10.244.1.2/24"],"ms":1.834,"phases":{"start":0.412,"config":0.051,…},"pid":4242}
///
/// A failed call has `"error":{"code":105,"msg":"…"}` instead of `ips`. Durations are
/// milliseconds with microsecond precision; `ms` runs from the process's start (see `CallTimer`)
/// to the end of the call, and `phases` shares it out.
public struct CallRecord: Sendable {
    public var command: String
    public var network: String
    public var containerID: String
    public var ifname: String
    /// ADD's result's addresses (CIDR text); nil for verbs without a result (no `ips` key).
    public var ips: [String]?
    public var error: (code: Int, message: String)?
    public var totalNanoseconds: Int64
    public var phases: [(phase: CallPhase, nanoseconds: Int64)]
    /// Wall-clock time of the call's end.
    public var time: timespec
    public var pid: Int32

    public init(command: String, network: String, containerID: String, ifname: String, ips: [String]?,
                error: (code: Int, message: String)?, timer: CallTimer) {
        self.command = command
        self.network = network
        self.containerID = containerID
        self.ifname = ifname
        self.ips = ips
        self.error = error
        totalNanoseconds = timer.total
        phases = timer.phases
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        time = now
        pid = getpid()
    }

    /// The line, newline included, written with one `write`.
    public func line() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(384)
        out.append(contentsOf: "{\"time\":\"".utf8)
        out.append(contentsOf: Self.utcText(time).utf8)
        out.append(contentsOf: "\",\"command\":".utf8)
        JSONText.appendString(command, to: &out)
        out.append(contentsOf: ",\"network\":".utf8)
        JSONText.appendString(network, to: &out)
        out.append(contentsOf: ",\"containerID\":".utf8)
        JSONText.appendString(containerID, to: &out)
        out.append(contentsOf: ",\"ifname\":".utf8)
        JSONText.appendString(ifname, to: &out)
        if let error {
            out.append(contentsOf: ",\"error\":{\"code\":".utf8)
            out.append(contentsOf: String(error.code).utf8)
            out.append(contentsOf: ",\"msg\":".utf8)
            JSONText.appendString(error.message, to: &out)
            out.append(UInt8(ascii: "}"))
        } else if let ips {
            out.append(contentsOf: ",\"ips\":[".utf8)
            for (position, ip) in ips.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                JSONText.appendString(ip, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(contentsOf: ",\"ms\":".utf8)
        Self.appendMilliseconds(totalNanoseconds, to: &out)
        out.append(contentsOf: ",\"phases\":{".utf8)
        for (position, entry) in phases.enumerated() {
            if position > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: entry.phase.name.utf8)
            out.append(contentsOf: "\":".utf8)
            Self.appendMilliseconds(entry.nanoseconds, to: &out)
        }
        out.append(contentsOf: "},\"pid\":".utf8)
        out.append(contentsOf: String(pid).utf8)
        out.append(contentsOf: "}\n".utf8)
        return out
    }

    /// Milliseconds with three decimals ("1.834", "0.007"), from nanoseconds, without Double
    /// formatting (whose shortest-digits search is slow and prints "1.834000001").
    static func appendMilliseconds(_ nanoseconds: Int64, to out: inout [UInt8]) {
        let microseconds = max(0, (nanoseconds + 500) / 1000)
        out.append(contentsOf: String(microseconds / 1000).utf8)
        out.append(UInt8(ascii: "."))
        let fraction = microseconds % 1000
        out.append(UInt8(ascii: "0") + UInt8(fraction / 100))
        out.append(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(fraction % 10))
    }

    /// RFC 3339 in UTC with microseconds: "2026-12-07T10:01:02.345678Z". Worked out here: glibc's
    /// gmtime_r reads the time zone file first, six system calls a call does not need.
    static func utcText(_ time: timespec) -> String {
        let seconds = Int64(time.tv_sec)
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // Howard Hinnant's civil_from_days: the proleptic Gregorian date of a day number.
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func digits(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return digits(year, 4) + "-" + digits(month, 2) + "-" + digits(day, 2)
            + "T" + digits(secondOfDay / 3600, 2) + ":" + digits(secondOfDay / 60 % 60, 2) + ":" + digits(secondOfDay % 60, 2)
            + "." + digits(Int64(time.tv_nsec) / 1000, 6) + "Z"
    }
}
