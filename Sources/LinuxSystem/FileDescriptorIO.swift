#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Whole reads and writes on an open fd, EINTR retried, short writes continued.
public enum FileDescriptorIO {
    /// Reads until end of file or `limit` bytes. With `shortReadIsEnd`, a read that returns less
    /// than asked for ends it: true of regular files and /proc, and it spares the read that would
    /// only return 0.
    ///
    /// The kernel writes straight into the array's storage: no intermediate buffer, and no
    /// generic append (whose first use costs the Swift runtime a metadata instantiation at every
    /// plugin start).
    public static func readAll(_ fd: Int32, limit: Int = .max, shortReadIsEnd: Bool = false,
                               operation: @autoclosure () -> String) throws(SystemError) -> [UInt8] {
        var bytes: [UInt8] = []
        var capacity = Swift.min(limit, 4096)
        while true {
            var failure: Int32 = 0
            var finished = false
            let previous = bytes
            bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
                if !previous.isEmpty {
                    previous.withUnsafeBufferPointer { buffer.baseAddress!.initialize(from: $0.baseAddress!, count: $0.count) }
                }
                count = previous.count
                while count < capacity {
                    let wanted = capacity - count
                    let got = read(fd, buffer.baseAddress! + count, wanted)
                    if got < 0 {
                        if errno == EINTR { continue }
                        failure = errno
                        return
                    }
                    if got == 0 {
                        finished = true
                        return
                    }
                    count += got
                    if shortReadIsEnd && got < wanted {
                        finished = true
                        return
                    }
                }
            }
            if failure != 0 { throw SystemError(operation(), errno: failure) }
            if finished || bytes.count >= limit { return bytes }
            capacity = Swift.min(limit, capacity * 2)
        }
    }

    /// Writes all of `bytes`.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], operation: @autoclosure () -> String) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw SystemError(operation(), errno: code)
            }
            offset += count
        }
    }
}
