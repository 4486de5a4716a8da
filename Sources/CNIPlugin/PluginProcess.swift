import LinuxSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process side of a CNI plugin: environment and stdin in, exactly one document on stdout.
public enum PluginProcess {
    /// Runs `handler` as the whole process and exits with its status; `afterOutput` runs once
    /// the document is out (the runtime may already be reading it).
    public static func main(name: String, handler: ((String) -> String?, [UInt8]) -> PluginOutcome,
                            afterOutput: () -> Void = {}) -> Never {
        if environmentVariable("CNI_COMMAND") == nil {
            // Run by hand: say what this is on stderr, as the reference plugins do; stdout stays protocol-only.
            writeAll(2, Array("\(name) \(PluginFrame.version): CNI plugin; CNI protocol versions supported: \(PluginFrame.supportedVersionsText)\n".utf8))
            exit(0)
        }
        let outcome = handler(environmentVariable, readStandardInput())
        writeAll(1, outcome.stdout)
        afterOutput()
        // Everything went out through write(2) and nothing is buffered; exit's handlers (libnl's
        // destructors unregistering its link types, stdio clean-up) would only cost time.
        _exit(outcome.exitCode)
    }

    /// One variable of the process environment, as libc's getenv finds it: the first entry whose
    /// name matches byte for byte, its value everything after that first "=" (Go reads the
    /// environment the same way). Not a dictionary of the whole environment: hashing every
    /// variable on every pod start, for the six a plugin reads, showed in the ADD bench.
    static func environmentVariable(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// Reads all of stdin; runtimes close it after the config. A read error ends the input: the
    /// config then fails to parse, with a message that says so.
    static func readStandardInput() -> [UInt8] {
        (try? FileDescriptorIO.readAll(0, operation: "read stdin")) ?? []
    }

    /// stdout and stderr are all a plugin has to report with: a failed write is nothing to act on.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        try? FileDescriptorIO.writeAll(fd, bytes, operation: "write")
    }

    /// One line on stderr for what went wrong but does not fail the call (stdout carries only
    /// the CNI document).
    public static func warn(_ line: String) {
        writeAll(2, Array((line + "\n").utf8))
    }
}
