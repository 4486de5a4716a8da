#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which one and its errno. Callers add the path when making a CNIError.
struct SystemCallError: Error, Equatable {
    var operation: String
    var code: Int32

    init(_ operation: String, _ code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    /// strerror text, e.g. "No such file or directory".
    var text: String { String(cString: strerror(code)) }
}

enum FileIO {
    /// Opens that never follow a symlink in the store and never leak into exec'd children.
    static let readFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
    static let directoryFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC

    static func retrying(_ call: () -> Int32) -> Int32 {
        var result: Int32
        repeat { result = call() } while result < 0 && errno == EINTR
        return result
    }

    /// Reads at most `limit` bytes of an open file. With `shortReadIsEnd`, a read that returns
    /// less than asked for ends it: true of regular files, and it spares the read that would only
    /// return 0 (the store's files are a few dozen bytes, read under its lock; anything else
    /// placed in the store merely reads short).
    static func readAll(_ fd: Int32, limit: Int, operation: String, shortReadIsEnd: Bool = false) throws(SystemCallError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while bytes.count < limit {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemCallError(operation)
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            if shortReadIsEnd && count < chunk.count { break }
        }
        return bytes.count > limit ? Array(bytes[..<limit]) : bytes
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], operation: String) throws(SystemCallError) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemCallError(operation)
            }
            offset += count
        }
    }

    /// A file named by an administrator (resolvConf): symlinks are followed like any program would.
    static func readFile(atPath path: String, limit: Int) throws(SystemCallError) -> [UInt8] {
        let fd = retrying { open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemCallError("open") }
        defer { close(fd) }
        return try readAll(fd, limit: limit, operation: "read")
    }

    /// `mkdir -p` for the administrator-chosen dataDir (which may legitimately sit behind a symlink).
    static func makeDirectories(_ path: String) throws(SystemCallError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += prefix.isEmpty || prefix.hasSuffix("/") ? String(component) : "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw SystemCallError("mkdir \(prefix)")
            }
        }
    }
}

/// An open directory that everything in the store is reached through (openat and friends), so
/// a rename of a parent between calls cannot redirect a write, and no name is resolved twice.
final class Directory {
    let fd: Int32
    /// For messages only.
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Opens an administrator-chosen directory, creating it (and its parents) when missing.
    static func open(path: String, create: Bool) throws(SystemCallError) -> Directory {
        var fd = FileIO.retrying { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if fd < 0 && errno == ENOENT && create {
            try FileIO.makeDirectories(path)
            fd = FileIO.retrying { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        }
        guard fd >= 0 else { throw SystemCallError("open") }
        return Directory(fd: fd, path: path)
    }

    func child(_ name: String) -> String { Self.child(name, of: path) }

    static func child(_ name: String, of path: String) -> String { path.hasSuffix("/") ? path + name : path + "/" + name }

    /// `path` opened as a directory, its last component not followed (as `subdirectory` opens it):
    /// one open where the step-by-step way takes two. nil on any failure; the caller then goes step
    /// by step, which creates what is missing and names what is wrong.
    static func openExisting(_ path: String) -> Directory? {
        let fd = FileIO.retrying { Glibc.open(path, FileIO.directoryFlags) }
        return fd >= 0 ? Directory(fd: fd, path: path) : nil
    }

    /// Opens (and with `create`, makes) a subdirectory; a symlink in its place fails with ELOOP.
    func subdirectory(_ name: String, create: Bool) throws(SystemCallError) -> Directory {
        var fd = FileIO.retrying { openat(self.fd, name, FileIO.directoryFlags) }
        if fd < 0 && errno == ENOENT && create {
            if mkdirat(self.fd, name, 0o755) != 0 && errno != EEXIST { throw SystemCallError("mkdir") }
            fd = FileIO.retrying { openat(self.fd, name, FileIO.directoryFlags) }
        }
        if fd < 0 {
            let code = errno
            // O_NOFOLLOW|O_DIRECTORY reports a symlink as ENOTDIR on some kernels; name it plainly.
            throw SystemCallError("open", isSymlink(name) ? ELOOP : code)
        }
        return Directory(fd: fd, path: child(name))
    }

    func isSymlink(_ name: String) -> Bool {
        var info = stat()
        return fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    /// An fd for `name` opened with `flags` (O_NOFOLLOW and O_CLOEXEC always added).
    func openFile(_ name: String, _ flags: Int32, mode: mode_t = 0o600) throws(SystemCallError) -> Int32 {
        let fd = FileIO.retrying { openat(self.fd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemCallError("open") }
        return fd
    }

    /// The file's bytes, or nil when it does not exist. A symlink fails with ELOOP.
    func read(_ name: String, limit: Int = 65536) throws(SystemCallError) -> [UInt8]? {
        let fd = FileIO.retrying { openat(self.fd, name, FileIO.readFlags) }
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw SystemCallError("open")
        }
        defer { close(fd) }
        return try FileIO.readAll(fd, limit: limit, operation: "read", shortReadIsEnd: true)
    }

    /// Creates `name` only if nothing (not even a dangling symlink) has that name; false if taken.
    func createExclusive(_ name: String, contents: [UInt8]) throws(SystemCallError) -> Bool {
        let fd = FileIO.retrying { openat(self.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        if fd < 0 {
            if errno == EEXIST { return false }
            throw SystemCallError("open")
        }
        do {
            try FileIO.writeAll(fd, contents, operation: "write")
        } catch {
            close(fd)
            // A half-written record would read as someone else's address forever.
            unlinkat(self.fd, name, 0)
            throw error
        }
        if close(fd) != 0 && errno != EINTR {
            let failure = SystemCallError("close")
            unlinkat(self.fd, name, 0)
            throw failure
        }
        return true
    }

    /// Creates `name` or overwrites it in place, then cuts it to `contents.count` bytes.
    ///
    /// Not O_TRUNC: on ext4, truncating a file to zero and rewriting it costs ~30 times more (it
    /// frees the blocks and forces their reallocation on close), and these rewrites happen on
    /// every ADD. A crash between the write and the ftruncate leaves garbage, which every reader
    /// of these files already tolerates.
    func replace(_ name: String, contents: [UInt8]) throws(SystemCallError) {
        let fd = try openFile(name, O_WRONLY | O_CREAT)
        defer { close(fd) }
        try FileIO.writeAll(fd, contents, operation: "write")
        guard FileIO.retrying({ ftruncate(fd, off_t(contents.count)) }) == 0 else { throw SystemCallError("ftruncate") }
    }

    /// Removes `name`; false when it was already gone.
    @discardableResult
    func remove(_ name: String) throws(SystemCallError) -> Bool {
        if unlinkat(fd, name, 0) == 0 { return true }
        if errno == ENOENT { return false }
        throw SystemCallError("unlink")
    }

    struct Entry {
        var name: String
        /// d_type; DT_UNKNOWN on filesystems that do not report it.
        var type: UInt8
    }

    /// Every entry but "." and "..", through a fresh open file description so `fd` keeps no offset.
    func entries() throws(SystemCallError) -> [Entry] {
        let listFD = FileIO.retrying { openat(self.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard listFD >= 0 else { throw SystemCallError("open") }
        guard let stream = fdopendir(listFD) else {
            let failure = SystemCallError("fdopendir")
            close(listFD)
            throw failure
        }
        defer { closedir(stream) }
        var result: [Entry] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw SystemCallError("readdir") }
                break
            }
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            result.append(Entry(name: name, type: entry.pointee.d_type))
        }
        return result
    }

    func status() throws(SystemCallError) -> stat {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SystemCallError("fstat") }
        return info
    }

    func setModificationTime(_ time: timespec) throws(SystemCallError) {
        // UTIME_OMIT ((1 << 30) - 2) is a macro Swift cannot import: leave atime alone.
        var times = [timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2), time]
        guard futimens(fd, &times) == 0 else { throw SystemCallError("futimens") }
    }
}
