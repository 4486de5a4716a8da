#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Per-namespace sysctls under /proc/sys. The path follows the *calling thread's* network
/// namespace: these are the node's values.
public enum Sysctl {
    /// Reads a sysctl's value, trimmed.
    public static func read(_ name: String) throws(SystemError) -> String {
        let path = "/proc/sys/" + name
        let fd = try valueOrErrno("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = try valueOrErrno("read \(path)") { buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) } }
        return String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: " \n\t")
    }

    /// Writes `value` without reading first, for a freshly created interface whose value is
    /// known to be the default.
    public static func set(_ name: String, to value: String) throws(SystemError) {
        let path = "/proc/sys/" + name
        let fd = try valueOrErrno("open \(path) for writing") { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        let text = Array((value + "\n").utf8)
        try FileDescriptorIO.writeAll(fd, text, operation: "sysctl -w \(name)=\(value)")
    }

    /// Writes `value` unless the sysctl already holds it; writing is what costs (ip_forward's
    /// write resets every interface's forwarding flag), so a matching value is left alone.
    public static func ensure(_ name: String, is value: String) throws(SystemError) {
        if (try? read(name)) == value { return }
        try set(name, to: value)
    }

    /// `ensure`, holding an exclusive flock on the sysctl's file from the read to the write, so
    /// that podwire processes starting pods at once check and write it one at a time.
    ///
    /// For the `forwarding` switches that matters: the kernel applies such a write under the
    /// rtnl lock, and when that is busy (another pod's veth being created) it puts the old value
    /// back and restarts the write. A concurrent writer can read the value in between, or apply
    /// it while it is put back: 40 ADDs at once on a fresh node ended with ip_forward 1 and every
    /// interface's forwarding flag 0.
    public static func ensureSerialized(_ name: String, is value: String) throws(SystemError) {
        let path = "/proc/sys/" + name
        let fd = try valueOrErrno("open \(path)") { open(path, O_RDWR | O_CLOEXEC) }
        defer { close(fd) } // releases the lock
        try valueOrErrno("lock \(path)") { flock(fd, LOCK_EX) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = try valueOrErrno("read \(path)") { buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) } }
        if String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: " \n\t") == value { return }
        let text = Array((value + "\n").utf8)
        try valueOrErrno("sysctl -w \(name)=\(value)") { text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } }
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
