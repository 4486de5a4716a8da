import CLinuxShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process side of a CNI plugin: environment and stdin in, exactly one document on stdout.
public enum PluginProcess {
    /// Runs `handler` as the whole process and exits with its status.
    public static func main(name: String, handler: ((String) -> String?, [UInt8]) -> PluginOutcome) -> Never {
        if environmentVariable("CNI_COMMAND") == nil {
            // Run by hand: say what this is on stderr, as the reference plugins do; stdout stays protocol-only.
            writeAll(2, Array("\(name) \(Podwire.version): CNI plugin; CNI protocol versions supported: \(Podwire.supportedVersionsText)\n".utf8))
            exit(0)
        }
        let outcome = handler(environmentVariable, readStandardInput())
        writeAll(1, outcome.stdout)
        // Everything went out through write(2) and nothing is buffered; exit's handlers (libnl's
        // destructors unregistering its link types, stdio clean-up) would only cost time.
        _exit(outcome.exitCode)
    }

    /// One variable of the process environment, as libc's getenv finds it: the first entry whose
    /// name matches byte for byte, its value everything after that first "=" (Go reads the
    /// environment the same way). A dictionary of the whole environment cost about 0.1 ms of
    /// hashing and generic set-up on every pod start, for the six variables a plugin reads.
    static func environmentVariable(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
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
