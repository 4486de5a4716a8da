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
    public static func readAll(_ fd: Int32, limit: Int = .max, shortReadIsEnd: Bool = false,
                               operation: @autoclosure () -> String) throws(SystemError) -> [UInt8] {
        var bytes: [UInt8] = []
        var failure: SystemError?
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { chunk in
            while bytes.count < limit {
                let count = read(fd, chunk.baseAddress, min(chunk.count, limit - bytes.count))
                if count < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    failure = SystemError(operation(), errno: code)
                    return
                }
                if count == 0 { break }
                bytes.append(contentsOf: chunk[0..<count])
                if shortReadIsEnd && count < chunk.count { break }
            }
        }
        if let failure { throw failure }
        return bytes
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
