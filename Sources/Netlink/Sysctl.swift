#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Per-namespace sysctls under /proc/sys. The path follows the *calling thread's* network
/// namespace: these are the node's values.
public enum Sysctl {
    /// Reads a sysctl's value, trimmed.
    public static func read(_ name: String) throws(KernelError) -> String {
        let path = "/proc/sys/" + name
        let fd = try systemCall("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = try systemCall("read \(path)") { Int32(buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }) }
        return String(decoding: buffer[0..<Int(count)], as: UTF8.self).trimmingCharacters(in: " \n\t")
    }

    /// Writes `value` without reading first, for a freshly created interface whose value is
    /// known to be the default.
    public static func set(_ name: String, to value: String) throws(KernelError) {
        let path = "/proc/sys/" + name
        let fd = try systemCall("open \(path) for writing") { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        let text = Array((value + "\n").utf8)
        try systemCall("sysctl -w \(name)=\(value)") { Int32(text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }) }
    }

    /// Writes `value` unless the sysctl already holds it; writing is what costs (ip_forward's
    /// write resets every interface's forwarding flag), so a matching value is left alone.
    public static func ensure(_ name: String, is value: String) throws(KernelError) {
        if (try? read(name)) == value { return }
        try set(name, to: value)
    }
}

extension String {
    func trimmingCharacters(in characters: String) -> String {
        let set = Set(characters)
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
