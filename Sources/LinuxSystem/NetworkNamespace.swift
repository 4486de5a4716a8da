import CLinuxShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An open network namespace file (`/run/netns/x`, `/proc/<pid>/ns/net`).
///
/// podwire never runs its own code inside a pod's namespace. A netlink socket stays bound to the
/// namespace it was created in, so `RouteSocket(in:)` enters once, only to create its socket, on
/// a short-lived C thread (`CNetlinkSockets_socket_in_netns_start`): `setns` changes only the calling
/// thread, and that thread is never the caller's and never runs Swift concurrency.
public final class NetworkNamespace {
    public let fd: Int32
    public let path: String

    /// Opens `path` and checks it is a namespace file (nsfs or procfs); a regular file or a
    /// directory there is refused, since setns on it would fail later with a less clear error.
    public init(path: String) throws(SystemError) {
        let fd = try valueOrErrno("open network namespace \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        var type: Int = 0
        if CLinuxShim_fstatfs_type(fd, &type) != 0 {
            let code = errno
            close(fd)
            throw SystemError("statfs \(path)", errno: code)
        }
        guard type == CLinuxShim_NSFS_MAGIC || type == CLinuxShim_PROC_SUPER_MAGIC else {
            close(fd)
            throw SystemError("\(path) is not a network namespace (filesystem magic 0x\(String(UInt(bitPattern: type), radix: 16)))", errno: EINVAL)
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
    public static func ofCurrentThread() throws(SystemError) -> NetworkNamespace {
        let fd = try valueOrErrno("open /proc/thread-self/ns/net") { open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC) }
        return NetworkNamespace(fd: fd, path: "/proc/thread-self/ns/net")
    }

    /// The namespace's identity: two files name the same namespace when their inodes match.
    public var inode: UInt64 {
        var info = stat()
        return fstat(fd, &info) == 0 ? UInt64(info.st_ino) : 0
    }
}
