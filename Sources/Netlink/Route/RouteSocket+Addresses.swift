internal import CNetlink
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An address on a link (`ip addr show`).
public struct AddressInfo: Sendable, Equatable {
    public var linkIndex: Int32
    public var address: IPNetwork
    public var flags: UInt32
}

extension RouteSocket {
    /// `ip addr add <address> [brd +] dev <index> [nodad] [noprefixroute]`.
    ///
    /// IPv4 addresses shorter than /31 get the subnet's broadcast address, as `ip addr add ... brd +`
    /// and the reference plugin do. With `noPrefixRoute` the kernel adds no connected route for
    /// the subnet, now or when the link comes back up. Fails with `isExists` when the link already
    /// holds the address.
    public func addAddress(_ address: IPNetwork, linkIndex: Int32, noDAD: Bool = false, noPrefixRoute: Bool = false) throws(NetlinkError) {
        let request = try Self.addAddressRequest(address, linkIndex: linkIndex, noDAD: noDAD, noPrefixRoute: noPrefixRoute)
        try submit("ip addr add \(address) dev \(linkIndex)") { $0.pointee = request; return 0 }
    }

    /// The RTM_NEWADDR request `addAddress` sends, built by libnl (the caller owns it).
    static func addAddressRequest(_ address: IPNetwork, linkIndex: Int32, noDAD: Bool,
                                  noPrefixRoute: Bool) throws(NetlinkError) -> OpaquePointer {
        guard let entry = rtnl_addr_alloc() else { throw NetlinkError("rtnl_addr_alloc", errno: ENOMEM) }
        defer { rtnl_addr_put(entry) }
        rtnl_addr_set_ifindex(entry, linkIndex)
        try withLibnlAddress(address.address, prefixLength: address.prefixLength) { (local: OpaquePointer) throws(NetlinkError) in
            try netlinkCall("set local address") { rtnl_addr_set_local(entry, local) }
        }
        if address.family == .v4 && address.prefixLength < 31 {
            try withLibnlAddress(address.lastAddress, prefixLength: address.bitWidth) { (broadcast: OpaquePointer) throws(NetlinkError) in
                try netlinkCall("set broadcast address") { rtnl_addr_set_broadcast(entry, broadcast) }
            }
        }
        if noDAD { rtnl_addr_set_flags(entry, UInt32(IFA_F_NODAD)) }
        if noPrefixRoute { rtnl_addr_set_flags(entry, UInt32(IFA_F_NOPREFIXROUTE)) }
        var request: OpaquePointer? = nil
        let rc = rtnl_addr_build_add_request(entry, NLM_F_CREATE | NLM_F_EXCL, &request)
        guard rc >= 0, let request else {
            throw NetlinkError("build the request to ip addr add \(address) dev \(linkIndex)", netlinkCode: rc < 0 ? rc : -NLE_NOMEM)
        }
        return request
    }

    /// `ip addr show`: every address in the namespace, optionally of one link.
    public func addresses(linkIndex: Int32? = nil) throws(NetlinkError) -> [AddressInfo] {
        var cache: OpaquePointer? = nil
        try netlinkCall("ip addr show") { rtnl_addr_alloc_cache(socket, &cache) }
        defer { nl_cache_free(cache) }
        var result: [AddressInfo] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            object = nl_cache_get_next(current)
            let index = rtnl_addr_get_ifindex(current)
            if let linkIndex, index != linkIndex { continue }
            guard let local = rtnl_addr_get_local(current), let ip = Self.ipAddress(local),
                  let network = IPNetwork(address: ip, prefixLength: Int(nl_addr_get_prefixlen(local)))
            else { continue }
            result.append(AddressInfo(linkIndex: index, address: network, flags: rtnl_addr_get_flags(current)))
        }
        return result
    }
}

extension RouteSocket {
    /// The bytes of `message`, a request libnl built, which is freed: what `transact` and
    /// `nl_send_sync` send, before they set NLM_F_REQUEST, NLM_F_ACK, the sequence number and the port.
    static func requestBytes(freeing message: OpaquePointer) -> [UInt8] {
        defer { nlmsg_free(message) }
        let header = nlmsg_hdr(message)!
        return Array(UnsafeRawBufferPointer(start: header, count: Int(header.pointee.nlmsg_len)))
    }
}

extension IPNetwork {
    var bitWidth: Int { address.bitWidth }
}
