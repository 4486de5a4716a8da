internal import CNFTables
import CNetlinkSockets
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A NETLINK_NETFILTER socket, as nf_tables and ctnetlink both use it. Best effort beyond the
/// socket: the kernel's own words for a refusal (extended ack), and acks that do not echo the
/// whole request back.
func openNetfilterSocket() throws(NetlinkError) -> Int32 {
    let fd = Int32(try socketCall("open a netfilter netlink socket") {
        CNetlinkSockets_open(NETLINK_NETFILTER, 0, 0)
    })
    var on: Int32 = 1
    _ = setsockopt(fd, CNFTables_SOL_NETLINK, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
    _ = setsockopt(fd, CNFTables_SOL_NETLINK, NETLINK_CAP_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
    return fd
}
