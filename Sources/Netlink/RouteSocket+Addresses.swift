internal import CNetlink
import CLinuxShim
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
    public func addAddress(_ address: IPNetwork, linkIndex: Int32, noDAD: Bool = false, noPrefixRoute: Bool = false) throws(KernelError) {
        guard let entry = rtnl_addr_alloc() else { throw KernelError("rtnl_addr_alloc", errno: ENOMEM) }
        defer { rtnl_addr_put(entry) }
        rtnl_addr_set_ifindex(entry, linkIndex)
        try withAddress(address.address, prefixLength: address.prefixLength) { (local: OpaquePointer) throws(KernelError) in
            try netlinkCall("set local address") { rtnl_addr_set_local(entry, local) }
        }
        if address.family == .v4 && address.prefixLength < 31 {
            try withAddress(address.lastAddress, prefixLength: address.bitWidth) { (broadcast: OpaquePointer) throws(KernelError) in
                try netlinkCall("set broadcast address") { rtnl_addr_set_broadcast(entry, broadcast) }
            }
        }
        if noDAD { rtnl_addr_set_flags(entry, CLinuxShim_IFA_F_NODAD) }
        if noPrefixRoute { rtnl_addr_set_flags(entry, CLinuxShim_IFA_F_NOPREFIXROUTE) }
        try submit("ip addr add \(address) dev \(linkIndex)") { rtnl_addr_build_add_request(entry, NLM_F_CREATE | NLM_F_EXCL, $0) }
    }

    /// `ip addr show`: every address in the namespace, optionally of one link.
    public func addresses(linkIndex: Int32? = nil) throws(KernelError) -> [AddressInfo] {
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

extension IPNetwork {
    var bitWidth: Int { address.bitWidth }
}
