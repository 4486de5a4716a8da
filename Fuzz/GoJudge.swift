// The first judge of podwire's JSON reader: Go's encoding/json, which containerd, CRI-O and libcni
// use to read the same CNI configs. podwire claims to read what they read, so on every input the
// two must accept and refuse alike and read the same value: numbers as the same IEEE-754 bits,
// strings as the same bytes, objects with the same keys (a repeated key keeps its last value in
// both). Fuzz/gojudge/main.go runs as a co-process started once per fuzzing process; each input
// goes to it over a pipe (see there for the protocol and the canonical rendering compared here).
//
// podwire is stricter than Go in three places, on purpose, and each is excused only where it
// applies (`goVerdict`):
// - invalid UTF-8 in a string, and a \u escape of an unpaired surrogate: Go substitutes U+FFFD,
//   podwire refuses (RFC 8259 text is UTF-8). Excused when podwire, reading the document with
//   exactly those bytes and escapes replaced the way Go replaces them, reads Go's value.
// - nesting deeper than JSONParser.maximumDepth (512): Go allows 10000. Excused when podwire's
//   refusal is its depth limit, at a bracket that opens level 513.
// - two keys of one object that differ in bytes but are canonically equivalent ("K" and the Kelvin
//   sign U+212A): one Swift dictionary key, two Go keys. Excused when podwire's refusal is that one,
//   at the later of two such keys of one object.

import CNIProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Go's answer for a document: its canonical rendering, or the error.
enum GoAnswer {
    case accepted([UInt8])
    case refused(String)
}

/// podwire's reading of a value in the judge's canonical rendering (Fuzz/gojudge/main.go).
func goRendering(_ value: JSONValue) -> [UInt8] {
    var output: [UInt8] = []
    func string(_ text: String) {
        output.append(UInt8(ascii: "s"))
        output += Array(String(text.utf8.count).utf8)
        output.append(UInt8(ascii: ":"))
        output += Array(text.utf8)
    }
    func render(_ value: JSONValue) {
        switch value {
        case .null: output.append(UInt8(ascii: "n"))
        case .bool(let flag): output.append(UInt8(ascii: flag ? "t" : "f"))
        case .number(let number):
            let hex = String(number.bitPattern, radix: 16)
            output += Array(("d" + String(repeating: "0", count: 16 - hex.count) + hex).utf8)
        case .string(let text): string(text)
        case .array(let items):
            output.append(UInt8(ascii: "["))
            items.forEach(render)
            output.append(UInt8(ascii: "]"))
        case .object(let object):
            output.append(UInt8(ascii: "{"))
            for key in object.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
                string(key)
                render(object[key]!)
            }
            output.append(UInt8(ascii: "}"))
        }
    }
    render(value)
    return output
}

/// Whether podwire and Go disagree about `bytes` in a way none of the exemptions above excuses:
/// nil when they agree, otherwise what differs. `reread` is podwire's reader (the self-checks
/// substitute readings; the fuzz target passes the real one).
func goVerdict(_ bytes: [UInt8], podwire: PodwireReading, go: GoAnswer,
               reread: ([UInt8]) -> PodwireReading = PodwireReading.init) -> String? {
    switch (podwire, go) {
    case (.value(let value), .accepted(let rendering)):
        let ours = goRendering(value)
        return ours == rendering ? nil : "podwire and Go read different values: podwire \(text(ours)), Go \(text(rendering))"
    case (.value(let value), .refused(let error)):
        return "podwire accepts what Go refuses (\(error)): \(text(goRendering(value)))"
    case (.refused, .refused):
        return nil
    case (.refused(let offset, let reason), .accepted(let rendering)):
        // Replace what Go replaces; podwire must then read exactly Go's value, or be refusing for
        // one of its other two deliberate limits.
        let replaced = goReplacingInvalidText(bytes)
        let again = replaced == bytes ? podwire : reread(replaced)
        switch again {
        case .value(let value):
            let ours = goRendering(value)
            if ours == rendering { return nil }
            return "with invalid text replaced as Go does, podwire reads \(text(ours)), Go \(text(rendering))"
        case .refused(let offset2, let reason2):
            if refusedForDepth(replaced, at: offset2, reason2) || refusedForEquivalentKeys(replaced, at: offset2, reason2) {
                return nil
            }
            return "podwire refuses what Go accepts (at byte \(offset): \(reason)): Go read \(text(rendering))"
        }
    }
}

/// podwire refused because of its own depth limit: at a bracket that opens level 513.
func refusedForDepth(_ bytes: [UInt8], at offset: Int, _ reason: String) -> Bool {
    reason == RefusalReason.depth && offset < bytes.count
        && (bytes[offset] == UInt8(ascii: "[") || bytes[offset] == UInt8(ascii: "{"))
        && openBrackets(bytes, before: offset) == 512
}

/// podwire refused a key at `offset` that is canonically equivalent to, but not the same bytes
/// as, an earlier key of the same object.
func refusedForEquivalentKeys(_ bytes: [UInt8], at offset: Int, _ reason: String) -> Bool {
    guard reason == RefusalReason.equivalentKeys else { return false }
    for members in Outline(bytes).objects {
        guard let position = members.firstIndex(where: { $0.keySpan.lowerBound == offset }) else { continue }
        let key = members[position].key
        return members[..<position].contains { $0.key == key && !$0.key.utf8.elementsEqual(key.utf8) }
    }
    return false
}

/// Bytes for a finding's message: printable ASCII as it is, the rest escaped.
func text(_ bytes: [UInt8]) -> String {
    var result = ""
    for byte in bytes.prefix(2000) {
        if (0x20..<0x7f).contains(byte) && byte != UInt8(ascii: "\\") {
            result.unicodeScalars.append(Unicode.Scalar(byte))
        } else {
            result += "\\x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16)
        }
    }
    return bytes.count > 2000 ? result + "..." : result
}

// MARK: - The co-process

/// The Go judge, started with the first input and kept for the life of the fuzzing process. It is
/// the binary podwire-gojudge next to this one (Scripts/fuzz.sh builds both into the same
/// directory); without it the target stops rather than run with one judge fewer.
nonisolated(unsafe) let goJudge = GoJudgeProcess()

final class GoJudgeProcess {
    private let requests: Int32
    private let answers: Int32

    init() {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { finding("cannot find this executable (/proc/self/exe) to find podwire-gojudge next to it") }
        let executable = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let path = String(executable[..<(executable.lastIndex(of: "/") ?? executable.startIndex)]) + "/podwire-gojudge"
        guard access(path, X_OK) == 0 else { finding("the Go judge \(path) is missing: build with Scripts/fuzz.sh") }

        var toJudge: [Int32] = [0, 0], fromJudge: [Int32] = [0, 0]
        guard pipe(&toJudge) == 0, pipe(&fromJudge) == 0 else { finding("pipe: errno \(errno)") }
        // Close-on-exec: libFuzzer's merge worker, also this binary, must not hold the judge's pipes.
        for descriptor in toJudge + fromJudge { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        // A judge that died must show up as a failed write (a finding with this input), not as a
        // SIGPIPE that ends the fuzzer without saving the input.
        signal(SIGPIPE, SIG_IGN)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, toJudge[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromJudge[1], 1)
        // One thread is plenty for one document at a time, and leaves the other core to the fuzzer.
        let arguments = [path, "GOMAXPROCS=1"].map { (text: String) in strdup(text) }
        defer { arguments.forEach { free($0) } }
        var pid = pid_t()
        let status = posix_spawn(&pid, path, &actions, nil, [arguments[0], nil], [arguments[1], nil])
        posix_spawn_file_actions_destroy(&actions)
        guard status == 0 else { finding("cannot start the Go judge \(path): error \(status)") }
        close(toJudge[0])
        close(fromJudge[1])
        requests = toJudge[1]
        answers = fromJudge[0]
    }

    /// Sends a document; `receive` gets Go's answer. One document at a time.
    func send(_ bytes: [UInt8]) {
        let count = UInt32(bytes.count)
        let header: [UInt8] = [UInt8(truncatingIfNeeded: count), UInt8(truncatingIfNeeded: count >> 8),
                               UInt8(truncatingIfNeeded: count >> 16), UInt8(truncatingIfNeeded: count >> 24)]
        write(header + bytes)
    }

    func receive() -> GoAnswer {
        let length = read(4).reversed().reduce(0) { $0 << 8 | Int($1) }
        let answer = read(length)
        switch answer.first {
        case UInt8(ascii: "A"): return .accepted(Array(answer.dropFirst()))
        case UInt8(ascii: "E"): return .refused(String(decoding: answer.dropFirst(), as: UTF8.self))
        default: finding("the Go judge answered \(text(answer))")
        }
    }

    private func write(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let written = bytes[sent...].withUnsafeBytes { Glibc.write(requests, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { finding("the Go judge stopped reading (errno \(errno)); a panic of its own would be in this log") }
            sent += written
        }
    }

    private func read(_ count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var received = 0
        while received < count {
            let got = buffer[received...].withUnsafeMutableBytes { Glibc.read(answers, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { finding("the Go judge exited without answering (a panic of its own would be in this log)") }
            received += got
        }
        return buffer
    }
}
