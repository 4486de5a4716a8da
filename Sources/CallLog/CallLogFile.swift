import LinuxSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The call log on disk: JSON lines appended by every plugin call, bounded by rotation.
///
/// Each line goes out in one `write` on an `O_APPEND` descriptor, so lines of concurrent calls
/// never interleave. When the file would pass `maxBytes`, it is renamed to `<path>.1` first
/// (replacing the one before), so the log never takes more than twice `maxBytes`. Two calls that
/// find it full at once rotate it once: the rename happens under an `flock` of the full file,
/// and only while the path still names that file.
public struct CallLogFile: Sendable {
    public var path: String
    public var maxBytes: Int

    /// 8 MiB: about 25,000 calls, a busy node's day, in at most 16 MiB of /run's memory.
    public static let defaultMaxBytes = 8 << 20

    public init(path: String, maxBytes: Int = CallLogFile.defaultMaxBytes) {
        self.path = path
        self.maxBytes = maxBytes
    }

    public var rotatedPath: String { path + ".1" }

    public func append(_ line: [UInt8]) throws(SystemError) {
        var (fd, info) = try open()
        if info.st_size > 0 && Int(info.st_size) + line.count > maxBytes {
            rotate(fd, info)
            close(fd)
            fd = try open().fd
        }
        defer { close(fd) }
        let written = line.withUnsafeBytes { buffer in retryingInterrupts { write(fd, buffer.baseAddress, buffer.count) } }
        if written < 0 { throw SystemError("write \(path)", errno: errno) }
        // A regular file takes the whole write unless it is out of space; a second write could
        // land between another call's lines.
        if written != line.count { throw SystemError("write \(path) (\(written) of \(line.count) bytes)", errno: ENOSPC) }
    }

    /// Opens the log for appending, making its directory (one level, 0755) when missing. Not
    /// through a symlink, and never blocking on a FIFO put in its place. Returns it with its
    /// size and identity.
    func open() throws(SystemError) -> (fd: Int32, info: stat) {
        let flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK
        var fd = retryingInterrupts { Glibc.open(path, flags, 0o644) }
        if fd < 0 && errno == ENOENT, let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")), slash != path.utf8.startIndex {
            let directory = String(path[..<slash])
            if mkdir(directory, 0o755) != 0 && errno != EEXIST { throw SystemError("mkdir \(directory)", errno: errno) }
            fd = retryingInterrupts { Glibc.open(path, flags, 0o644) }
        }
        guard fd >= 0 else { throw SystemError("open \(path)", errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let code = errno
            close(fd)
            throw SystemError("fstat \(path)", errno: code)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw SystemError("open \(path): not a regular file", errno: EINVAL)
        }
        return (fd, info)
    }

    /// Renames the full log away, unless another call already has.
    func rotate(_ fd: Int32, _ info: stat) {
        guard flock(fd, LOCK_EX) == 0 else { return }
        defer { flock(fd, LOCK_UN) }
        var current = stat()
        guard lstat(path, &current) == 0, current.st_dev == info.st_dev, current.st_ino == info.st_ino else { return }
        _ = rename(path, rotatedPath)
    }
}
