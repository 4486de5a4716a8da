internal import CNetlink
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension RouteSocket {
    /// Whether `address` is one of the namespace's own (`ip route get <address>` answers with a
    /// `local` route): the test nftables' `fib daddr type local` makes, asked of the same FIB.
    /// An address the kernel cannot route is not local.
    public func isLocalAddress(_ address: IPAddress) throws(NetlinkError) -> Bool {
        guard let message = nlmsg_alloc_simple(Int32(RTM_GETROUTE), 0) else { throw NetlinkError("nlmsg_alloc", errno: ENOMEM) }
        defer { nlmsg_free(message) }
        var header = rtmsg()
        header.rtm_family = UInt8(address.family == .v4 ? AF_INET : AF_INET6)
        header.rtm_dst_len = UInt8(address.bitWidth)
        try netlinkCall("build ip route get \(address)") { nlmsg_append(message, &header, MemoryLayout<rtmsg>.size, 4) }
        try netlinkCall("build ip route get \(address)") {
            address.bytes.withUnsafeBytes { nla_put(message, Int32(RTA_DST.rawValue), Int32($0.count), $0.baseAddress) }
        }
        var local = false
        do {
            try transact(QueuedRequest(message: message) { "ip route get \(address)" }) { reply in
                guard reply.type == UInt16(RTM_NEWROUTE), reply.payload.count >= MemoryLayout<rtmsg>.size else { return }
                local = reply.payload.loadUnaligned(as: rtmsg.self).rtm_type == UInt8(RTN_LOCAL)
            }
        } catch where error.isUnreachable {
            return false
        }
        return local
    }
}
