import CLinuxShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process side of a CNI plugin: environment and stdin in, exactly one document on stdout.
public enum PluginProcess {
    /// Runs `handler` as the whole process and exits with its status.
    public static func main(name: String, handler: ([String: String], [UInt8]) -> PluginOutcome) -> Never {
        let environment = processEnvironment()
        if environment["CNI_COMMAND"] == nil {
            // Run by hand: say what this is on stderr, as the reference plugins do; stdout stays protocol-only.
            writeAll(2, Array("\(name) \(Podwire.version): CNI plugin; CNI protocol versions supported: \(Podwire.supportedVersionsText)\n".utf8))
            exit(0)
        }
        let outcome = handler(environment, readStandardInput())
        writeAll(1, outcome.stdout)
        exit(outcome.exitCode)
    }

    /// The process environment straight from `environ`: ProcessInfo would cost a quarter of a
    /// millisecond of Foundation start-up on every pod start for the same dictionary.
    ///
    /// Each entry is split at its first "=" byte, as Go and libc split it, not at a Character:
    /// an "=" followed by a combining mark is no "=" to Swift's Character comparison (the same
    /// reason CNI_ARGS is split on bytes), and grapheme breaking is the slow part besides.
    static func processEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        guard var entry = CLinuxShim_environ() else { return environment }
        while let current = entry.pointee {
            let length = strlen(current)
            current.withMemoryRebound(to: UInt8.self, capacity: length) { start in
                let bytes = UnsafeBufferPointer(start: start, count: length)
                if let equals = bytes.firstIndex(of: UInt8(ascii: "=")) {
                    environment[String(decoding: bytes[..<equals], as: UTF8.self)] =
                        String(decoding: bytes[(equals + 1)...], as: UTF8.self)
                }
            }
            entry += 1
        }
        return environment
    }

    /// Reads all of stdin; runtimes close it after the config. The chunk lives on the stack and
    /// is not zeroed: a zero-filled 64 KiB heap buffer cost about a dozen page faults per start.
    static func readStandardInput() -> [UInt8] {
        var input: [UInt8] = []
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 8192) { chunk in
            while true {
                let count = read(0, chunk.baseAddress, chunk.count)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                input.append(contentsOf: chunk[0..<count])
            }
        }
        return input
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return }
            offset += count
        }
    }
}
