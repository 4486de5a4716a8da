import CLinuxShim
import LinuxSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An open directory that everything in the store is reached through (openat and friends), so
/// a rename of a parent between calls cannot redirect a write, and no name is resolved twice.
final class Directory {
    let fd: Int32
    /// For messages only.
    let path: String

    /// Nothing inside the store is reached through a symlink: one planted there could aim the
    /// plugin's reads and writes anywhere. No fd leaks into an exec'd child. O_NONBLOCK because a
    /// FIFO planted in the store would otherwise block the open, with the lock held, until some
    /// writer came; this way it reads as empty.
    static let readFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
    static let directoryFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Opens an administrator-chosen directory, creating it (and its parents) when missing. Unlike
    /// everything inside the store, it may sit behind a symlink: the administrator put it there.
    convenience init(path: String, create: Bool) throws(SystemError) {
        var fd = retryingInterrupts { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if fd < 0 && errno == ENOENT && create {
            try Self.makeDirectories(path)
            fd = retryingInterrupts { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        }
        guard fd >= 0 else { throw SystemError("open", errno: errno) }
        self.init(fd: fd, path: path)
    }

    /// `mkdir -p`, for the dataDir only: inside the store every directory is made with `mkdirat`.
    private static func makeDirectories(_ path: String) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += prefix.isEmpty || prefix.hasSuffix("/") ? String(component) : "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw SystemError("mkdir \(prefix)", errno: errno)
            }
        }
    }

    func child(_ name: String) -> String { Self.child(name, of: path) }

    static func child(_ name: String, of path: String) -> String { path.hasSuffix("/") ? path + name : path + "/" + name }

    /// `path` opened as a directory, its last component not followed (as `subdirectory` opens it):
    /// one open where the step-by-step way takes two. nil on any failure; the caller then goes step
    /// by step, which creates what is missing and names what is wrong.
    static func openExisting(_ path: String) -> Directory? {
        let fd = retryingInterrupts { open(path, directoryFlags) }
        return fd >= 0 ? Directory(fd: fd, path: path) : nil
    }

    /// Opens (and with `create`, makes) a subdirectory; a symlink in its place fails with ELOOP.
    func subdirectory(_ name: String, create: Bool) throws(SystemError) -> Directory {
        var fd = retryingInterrupts { openat(self.fd, name, Self.directoryFlags) }
        if fd < 0 && errno == ENOENT && create {
            if mkdirat(self.fd, name, 0o755) != 0 && errno != EEXIST { throw SystemError("mkdir", errno: errno) }
            fd = retryingInterrupts { openat(self.fd, name, Self.directoryFlags) }
        }
        if fd < 0 {
            let code = errno
            // O_NOFOLLOW|O_DIRECTORY reports a symlink as ENOTDIR on some kernels; name it plainly.
            throw SystemError("open", errno: isSymlink(name) ? ELOOP : code)
        }
        return Directory(fd: fd, path: child(name))
    }

    func isSymlink(_ name: String) -> Bool {
        var info = stat()
        return fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    /// An fd for `name` opened with `flags` (O_NOFOLLOW and O_CLOEXEC always added).
    func openFile(_ name: String, _ flags: Int32, mode: mode_t = 0o600) throws(SystemError) -> Int32 {
        try valueOrErrno("open") { openat(self.fd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode) }
    }

    /// The file's bytes, or nil when it does not exist. A symlink fails with ELOOP.
    func read(_ name: String, limit: Int = 65536) throws(SystemError) -> [UInt8]? {
        let fd = retryingInterrupts { openat(self.fd, name, Self.readFlags) }
        if fd < 0 {
            let code = errno
            if code == ENOENT { return nil }
            throw SystemError("open", errno: code)
        }
        defer { close(fd) }
        // The store's files are regular files of a few dozen bytes, read under its lock: a short read
        // is their end, and stopping there spares the read that would only return 0. Anything else
        // placed in the store merely reads short.
        return try FileDescriptorIO.readAll(fd, limit: limit, shortReadIsEnd: true, operation: "read")
    }

    /// Creates `name` only if nothing (not even a dangling symlink) has that name; false if taken.
    func createExclusive(_ name: String, contents: [UInt8]) throws(SystemError) -> Bool {
        let fd = retryingInterrupts { openat(self.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        if fd < 0 {
            let code = errno
            if code == EEXIST { return false }
            throw SystemError("open", errno: code)
        }
        do {
            try FileDescriptorIO.writeAll(fd, contents, operation: "write")
        } catch {
            close(fd)
            // A half-written record would read as someone else's address forever.
            unlinkat(self.fd, name, 0)
            throw error
        }
        if close(fd) != 0 && errno != EINTR {
            let failure = SystemError("close", errno: errno)
            unlinkat(self.fd, name, 0)
            throw failure
        }
        return true
    }

    /// Creates `name` or overwrites it in place, then cuts it to `contents.count` bytes.
    ///
    /// Not O_TRUNC: on ext4, truncating a file to zero and rewriting it costs far more (it frees the
    /// blocks and forces their reallocation on close), and these rewrites happen on every ADD. A
    /// crash between the write and the ftruncate leaves garbage, which every reader of these files
    /// already tolerates.
    func replace(_ name: String, contents: [UInt8]) throws(SystemError) {
        let fd = try openFile(name, O_WRONLY | O_CREAT)
        defer { close(fd) }
        try FileDescriptorIO.writeAll(fd, contents, operation: "write")
        try valueOrErrno("ftruncate") { ftruncate(fd, off_t(contents.count)) }
    }

    /// Removes `name`; false when it was already gone.
    @discardableResult
    func remove(_ name: String) throws(SystemError) -> Bool {
        if unlinkat(fd, name, 0) == 0 { return true }
        let code = errno
        if code == ENOENT { return false }
        throw SystemError("unlink", errno: code)
    }

    struct Entry {
        var name: String
        /// d_type; DT_UNKNOWN on filesystems that do not report it.
        var type: UInt8
    }

    /// Every entry but "." and "..", through a fresh open file description so `fd` keeps no offset.
    func entries() throws(SystemError) -> [Entry] {
        let listFD = try valueOrErrno("open") { openat(self.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard let stream = fdopendir(listFD) else {
            let failure = SystemError("fdopendir", errno: errno)
            close(listFD)
            throw failure
        }
        defer { closedir(stream) }
        var result: [Entry] = []
        while true {
            // readdir returns NULL both at the end and on failure; only errno tells them apart.
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw SystemError("readdir", errno: errno) }
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

    func status() throws(SystemError) -> stat {
        var info = stat()
        try valueOrErrno("fstat") { fstat(fd, &info) }
        return info
    }

    /// Sets the mtime, which is what the index stamp records; atime is left as it is (UTIME_OMIT).
    func setModificationTime(_ time: timespec) throws(SystemError) {
        var times = [timespec(tv_sec: 0, tv_nsec: CLinuxShim_UTIME_OMIT), time]
        try valueOrErrno("futimens") { futimens(fd, &times) }
    }
}
