import CLinuxShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An open network namespace file (`/run/netns/x`, `/proc/<pid>/ns/net`).
///
/// `setns` changes only the calling thread, so code that must run inside the namespace runs on a
/// thread created for it (`run`), never on the caller's thread and never inside Swift concurrency.
/// Better still is not entering at all: a netlink socket stays bound to the namespace it was
/// created in, so `RouteSocket(in:)` enters once, only to create its socket.
public final class NetworkNamespace {
    let fd: Int32
    public let path: String

    /// Opens `path` and checks it is a namespace file (nsfs or procfs); a regular file or a
    /// directory there is refused, since setns on it would fail later with a less clear error.
    public init(path: String) throws(KernelError) {
        let fd = try systemCall("open network namespace \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        var type: Int = 0
        if CLinuxShim_fstatfs_type(fd, &type) != 0 {
            let code = errno
            close(fd)
            throw KernelError("statfs \(path)", errno: code)
        }
        guard type == CLinuxShim_NSFS_MAGIC || type == CLinuxShim_PROC_SUPER_MAGIC else {
            close(fd)
            throw KernelError("\(path) is not a network namespace (filesystem magic 0x\(String(UInt(bitPattern: type), radix: 16)))", errno: EINVAL)
        }
        self.fd = fd
        self.path = path
    }

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// The namespace of the calling thread.
    public static func ofCurrentThread() throws(KernelError) -> NetworkNamespace {
        let fd = try systemCall("open /proc/thread-self/ns/net") { open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC) }
        return NetworkNamespace(fd: fd, path: "/proc/thread-self/ns/net")
    }

    /// The namespace's identity: two files name the same namespace when their inodes match.
    public var inode: UInt64 {
        var info = stat()
        return fstat(fd, &info) == 0 ? UInt64(info.st_ino) : 0
    }

    /// Runs `body` on a new thread that has entered this namespace, and waits for it.
    /// The thread ends with `body`, so nothing has to be restored and nothing leaks into other code.
    public func run<T>(_ body: () throws -> T) throws -> T {
        try withoutActuallyEscaping(body) { body in
            var outcome: Result<T, any Error>? = nil
            let task = NamespaceThreadTask(fd: fd, path: path) {
                outcome = Result { try body() }
            }
            try task.runAndJoin()
            return try outcome!.get()
        }
    }
}

/// What the namespace thread runs; passed to pthread_create as an unmanaged pointer.
private final class NamespaceThreadTask {
    let fd: Int32
    let path: String
    let body: () -> Void
    var enterError: KernelError? = nil

    init(fd: Int32, path: String, body: @escaping () -> Void) {
        self.fd = fd
        self.path = path
        self.body = body
    }

    func runAndJoin() throws {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        // musl's default thread stack is 128 KiB; give the body the same room glibc's main thread has.
        pthread_attr_setstacksize(&attributes, 8 << 20)
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attributes, { raw in
            let task = Unmanaged<NamespaceThreadTask>.fromOpaque(raw!).takeRetainedValue()
            if CLinuxShim_setns(task.fd, CLinuxShim_CLONE_NEWNET) != 0 {
                task.enterError = KernelError("setns into \(task.path)", errno: errno)
            } else {
                task.body()
            }
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<NamespaceThreadTask>.fromOpaque(context).release()
            throw KernelError("pthread_create for namespace \(path)", errno: rc)
        }
        pthread_join(thread, nil)
        if let enterError { throw enterError }
    }
}
