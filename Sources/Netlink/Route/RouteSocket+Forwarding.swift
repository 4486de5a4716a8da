internal import CNetlink
import CNetlinkSockets
import LinuxSystem
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension RouteSocket {
    /// `sysctl net.ipv4.ip_forward` (IPv4) or `net.ipv6.conf.all.forwarding` (IPv6), asked with
    /// RTM_GETNETCONF (`ip netconf show`) on this socket rather than read from /proc/sys: one round
    /// trip, no path walk. nil when the kernel answers without the value.
    public func allForwarding(family: IPFamily) throws(NetlinkError) -> Bool? {
        guard let message = nlmsg_alloc_simple(Int32(RTM_GETNETCONF), 0) else { throw NetlinkError("nlmsg_alloc", errno: ENOMEM) }
        defer { nlmsg_free(message) }
        var header = netconfmsg(ncm_family: UInt8(family == .v4 ? AF_INET : AF_INET6))
        try netlinkCall("build the netconf request") { nlmsg_append(message, &header, MemoryLayout<netconfmsg>.size, 4) }
        try netlinkCall("build the netconf request") { nla_put_s32(message, Int32(NETCONFA_IFINDEX), -1) } // NETCONFA_IFINDEX_ALL
        var forwarding: Bool? = nil
        try transact(QueuedRequest(message: message) { "ip netconf show (family \(family))" }) { message in
            guard message.type == UInt16(RTM_NEWNETCONF) else { return }
            // struct netconfmsg, padded to 4 bytes, then the attributes.
            let start = NetlinkMessage.aligned(MemoryLayout<netconfmsg>.size)
            guard message.payload.count >= start else { return }
            let attributes = NetlinkMessage.Attributes(UnsafeRawBufferPointer(rebasing: message.payload[start...]))
            if let value = attributes.hostInt32(UInt16(NETCONFA_FORWARDING)) { forwarding = value != 0 }
        }
        return forwarding
    }
}
