#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process side of a CNI plugin: environment and stdin in, exactly one document on stdout.
public enum PluginProcess {
    /// Runs `handler` as the whole process and exits with its status.
    public static func main(name: String, handler: ([String: String], [UInt8]) -> PluginOutcome) -> Never {
        let environment = ProcessInfo.processInfo.environment
        if environment["CNI_COMMAND"] == nil {
            // Run by hand: say what this is on stderr, as the reference plugins do; stdout stays protocol-only.
            writeAll(2, Array("\(name) \(Podwire.version): CNI plugin; CNI protocol versions supported: \(Podwire.supportedVersionsText)\n".utf8))
            exit(0)
        }
        let outcome = handler(environment, readStandardInput())
        writeAll(1, outcome.stdout)
        exit(outcome.exitCode)
    }

    /// Reads all of stdin; runtimes close it after the config.
    static func readStandardInput() -> [UInt8] {
        var input: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            input += chunk[0..<count]
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
