@testable import CallLog
import Foundation
import Testing
@testable import PodwireControl

/// The writing side of the call log: the exact line, rotation, concurrent appends, and what the
/// log refuses to write to.
@Suite("Call log file")
struct CallLogTests {
    /// 2026-12-07T10:04:07.061831Z, pid 3911: the README's example line.
    static func record(containerID: String = "c1", ips: [String]? = ["10.244.1.2/24"],
                       error: (code: Int, message: String)? = nil) -> CallRecord {
        var record = CallRecord(command: "ADD", network: "t", containerID: containerID, ifname: "eth0", ips: ips,
                                error: error, timer: CallTimer())
        record.time = timespec(tv_sec: 1_796_637_847, tv_nsec: 61_831_999)
        record.pid = 3911
        record.totalNanoseconds = 1_834_499
        record.phases = [(.start, 412_000), (.config, 50_500), (.veth, 462_501), (.ipam, 53_000), (.podSide, 97_000),
                         (.hostSide, 80_000), (.work, 10_000), (.output, 7_499)]
        return record
    }

    @Test("times are RFC 3339 UTC, worked out without the time zone file", arguments: [
        (Int64(0), 0, "1970-01-01T00:00:00.000000Z"),
        (Int64(951_782_400), 5_000, "2000-02-29T00:00:00.000005Z"),
        (Int64(1_709_251_199), 999_999_999, "2024-02-29T23:59:59.999999Z"),
        (Int64(1_796_640_196), 680_123_000, "2026-12-07T10:43:16.680123Z"),
        (Int64(4_102_444_800), 0, "2100-01-01T00:00:00.000000Z"),
        (Int64(-1), 0, "1969-12-31T23:59:59.000000Z"),
    ])
    func utcText(seconds: Int64, nanoseconds: Int, expected: String) {
        #expect(CallRecord.utcText(timespec(tv_sec: Int(seconds), tv_nsec: nanoseconds)) == expected)
    }

    @Test("CallRecord.line(): the exact bytes, a quote in the container ID escaped")
    func lineBytes() {
        let line = Self.record(containerID: #"c"1\x"#).line()
        let expected = #"{"time":"2026-12-07T10:04:07.061831Z","command":"ADD","network":"t","containerID":"c\"1\\x","ifname":"eth0","#
            + #""ips":["10.244.1.2/24"],"ms":1.834,"phases":{"start":0.412,"config":0.051,"veth":0.463,"ipam":0.053,"#
            + #""podSide":0.097,"hostSide":0.080,"work":0.010,"output":0.007},"pid":3911}"# + "\n"
        #expect(String(decoding: line, as: UTF8.self) == expected)
        #expect(line == Array(expected.utf8))
        // And stats reads it back as it was.
        let entry = CallLogEntry(line: ArraySlice(line.dropLast()))
        #expect(entry?.containerID == #"c"1\x"#)
        #expect(entry?.milliseconds == 1.834)
        #expect(entry?.phases["output"] == 0.007)
    }

    @Test("a failed call's line has its error instead of ips; a verb without a result has neither")
    func errorLine() {
        let failed = String(decoding: Self.record(ips: ["10.244.1.2/24"], error: (4, "interface eth0 already exists")).line(), as: UTF8.self)
        #expect(failed.contains(#","ifname":"eth0","error":{"code":4,"msg":"interface eth0 already exists"},"ms":1.834,"#))
        #expect(!failed.contains("ips"))
        let del = String(decoding: Self.record(ips: nil).line(), as: UTF8.self)
        #expect(del.contains(#","ifname":"eth0","ms":1.834,"#))
    }

    @Test("rotation: a full log moves to .1 and a new one starts; a second rotation replaces .1")
    func rotation() throws {
        let directory = try CallLogTestDirectory()
        let path = directory.path + "/log/calls.jsonl"  // the directory is made by the first append
        let log = CallLogFile(path: path, maxBytes: 300)
        func line(_ number: Int) -> [UInt8] {
            // 100 bytes with the newline.
            let text = #"{"n":\#(number),"pad":""#
            return Array((text + String(repeating: "x", count: 100 - text.utf8.count - 3) + "\"}\n").utf8)
        }
        #expect(line(1).count == 100)
        for number in 1...3 { try log.append(line(number)) }  // exactly full: 300 bytes
        #expect(try String(contentsOfFile: path, encoding: .utf8).utf8.count == 300)
        #expect(!FileManager.default.fileExists(atPath: path + ".1"))

        try log.append(line(4))  // would pass 300: rotated first
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".1")) == Data(line(1) + line(2) + line(3)))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(line(4)))

        for number in 5...7 { try log.append(line(number)) }  // 5 and 6 fill it, 7 rotates again
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".1")) == Data(line(4) + line(5) + line(6)))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(line(7)))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/log").sorted() == ["calls.jsonl", "calls.jsonl.1"])

        // A line longer than the limit still goes in, alone in a fresh file.
        let long = Array((String(repeating: "y", count: 400) + "\n").utf8)
        try log.append(long)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(long))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".1")) == Data(line(7)))
    }

    /// Lines "w<thread>-<n> " padded to `width` bytes, appended by `threads` threads at once.
    static func appendConcurrently(_ log: CallLogFile, threads: Int, lines: Int, width: Int) -> [String] {
        let failures = Failures()
        let group = DispatchGroup()
        for thread in 0..<threads {
            group.enter()
            Thread.detachNewThread {
                for number in 0..<lines {
                    let head = "w\(thread)-\(number) "
                    do {
                        try log.append(Array((head + String(repeating: "z", count: width - head.count - 2) + ".\n").utf8))
                    } catch {
                        failures.add("\(error)")
                    }
                }
                group.leave()
            }
        }
        group.wait()
        return failures.all
    }

    /// Each whole line is "w<thread>-<n> zzz….": same width, one marker, one dot at its end.
    static func wholeLines(_ path: String, width: Int) throws -> [String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        #expect(text.isEmpty || text.hasSuffix("\n"), "\(path) ends mid-line")
        let lines = text.split(separator: "\n").map(String.init)
        for line in lines {
            #expect(line.utf8.count == width - 1 && line.hasPrefix("w") && line.hasSuffix("z.")
                        && line.split(separator: " ").count == 2 && line.filter({ $0 == "." }).count == 1,
                    "not a whole line: \(line.prefix(80))")
        }
        return lines.map { String($0.prefix { $0 != " " }) }
    }

    @Test("8 threads appending at once: every line whole, none lost, none twice")
    func concurrentAppends() throws {
        let directory = try CallLogTestDirectory()
        let path = directory.path + "/calls.jsonl"
        let width = 300
        let failures = Self.appendConcurrently(CallLogFile(path: path), threads: 8, lines: 250, width: width)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        let markers = try Self.wholeLines(path, width: width)
        #expect(markers.count == 2000)
        #expect(Set(markers).count == 2000)
    }

    @Test("8 threads appending at once through rotations: every line whole, none twice, the files bounded")
    func concurrentAppendsWithRotation() throws {
        let directory = try CallLogTestDirectory()
        let path = directory.path + "/calls.jsonl"
        let width = 200, maxBytes = 4096
        let failures = Self.appendConcurrently(CallLogFile(path: path, maxBytes: maxBytes), threads: 8, lines: 100, width: width)
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        let markers = try Self.wholeLines(path + ".1", width: width) + Self.wholeLines(path, width: width)
        #expect(Set(markers).count == markers.count, "a line written twice")
        #expect(!markers.isEmpty)
        // A line is appended when the file had room at the last look; others may append between
        // that look and the write, one line each at most.
        for file in [path, path + ".1"] {
            var info = stat()
            #expect(stat(file, &info) == 0 && Int(info.st_size) <= maxBytes + 8 * width, "\(file): \(info.st_size) bytes")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["calls.jsonl", "calls.jsonl.1"])
    }

    /// Runs `append` on a thread of its own; a call still blocked after 5 s fails the test instead
    /// of hanging it.
    static func appendWithin5s(_ log: CallLogFile) -> Result<Void, any Error>? {
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        Thread.detachNewThread {
            do {
                try log.append(Array("{}\n".utf8))
                outcome.set(.success(()))
            } catch {
                outcome.set(.failure(error))
            }
            done.signal()
        }
        guard done.wait(timeout: .now() + 5) == .success else { return nil }
        return outcome.value
    }

    @Test("a FIFO, a directory or a symlink at the path is refused, without blocking")
    func refusesNonFiles() throws {
        let directory = try CallLogTestDirectory()
        let fifo = directory.path + "/fifo.jsonl"
        try #require(mkfifo(fifo, 0o600) == 0)
        // No reader: the open fails at once (ENXIO) instead of waiting for one.
        let alone = try #require(Self.appendWithin5s(CallLogFile(path: fifo)), "append blocked on a FIFO without a reader")
        #expect(throws: (any Error).self) { try alone.get() }
        // With a reader, the open succeeds, and the check that it is a regular file refuses it.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        try #require(reader >= 0)
        defer { close(reader) }
        let read = try #require(Self.appendWithin5s(CallLogFile(path: fifo)), "append blocked on a FIFO with a reader")
        #expect(throws: (any Error).self) { try read.get() }
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(Glibc.read(reader, &buffer, buffer.count) <= 0, "nothing may have been written into the FIFO")

        let subdirectory = directory.path + "/dir.jsonl"
        try #require(mkdir(subdirectory, 0o755) == 0)
        let intoDirectory = try #require(Self.appendWithin5s(CallLogFile(path: subdirectory)))
        #expect(throws: (any Error).self) { try intoDirectory.get() }

        let target = directory.path + "/target"
        try #require(symlink(target, directory.path + "/link.jsonl") == 0)
        let throughLink = try #require(Self.appendWithin5s(CallLogFile(path: directory.path + "/link.jsonl")))
        #expect(throws: (any Error).self) { try throughLink.get() }
        #expect(!FileManager.default.fileExists(atPath: target), "the log followed a symlink")

        // A directory that cannot be made (a regular file is in its way).
        try directory.write(directory.path + "/plain", "")
        let underFile = try #require(Self.appendWithin5s(CallLogFile(path: directory.path + "/plain/calls.jsonl")))
        #expect(throws: (any Error).self) { try underFile.get() }
    }
}

private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ failure: String) { lock.withLock { list.append(failure) } }
    var all: [String] { lock.withLock { list } }
}

private final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Void, any Error>?
    func set(_ value: Result<Void, any Error>) { lock.withLock { result = value } }
    var value: Result<Void, any Error>? { lock.withLock { result } }
}
