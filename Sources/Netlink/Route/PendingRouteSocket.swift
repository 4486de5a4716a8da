internal import CNetlink
import CNetlinkSockets
import LinuxSystem
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A `RouteSocket(in:)` under way: its thread enters the namespace and makes the socket while the
/// caller goes on (thread start and setns overlap with the config checks). `RouteSocket(opening:)` waits
/// for it; a pending socket dropped unused is waited for and closed.
public final class PendingRouteSocket {
    let path: String
    private var call: OpaquePointer?

    public init(in namespace: NetworkNamespace) throws(NetlinkError) {
        path = namespace.path
        guard let call = CNetlinkSockets_socket_in_netns_start(namespace.fd, NETLINK_ROUTE) else {
            throw NetlinkError("start a thread to open a netlink socket in \(namespace.path)", errno: errno)
        }
        self.call = call
    }

    /// The socket's fd, or -1 with errno set; only the first call waits, later ones return -1/EBADF.
    func finish() -> Int32 {
        guard let call else {
            errno = EBADF
            return -1
        }
        self.call = nil
        return CNetlinkSockets_socket_in_netns_finish(call)
    }

    deinit {
        let fd = finish()
        if fd >= 0 { close(fd) }
    }
}
