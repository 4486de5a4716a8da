internal import CNetlink
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Addresses between podwire's types and libnl's `nl_addr`, for the request builders (which need
// no socket) and for reading what libnl parsed.
extension RouteSocket {
    /// `mac` as a libnl link-layer address, for `body` only.
    static func withLibnlLinkAddress(_ mac: [UInt8], _ body: (OpaquePointer) -> Void) throws(NetlinkError) {
        guard let address = mac.withUnsafeBytes({ nl_addr_build(AF_LLC, $0.baseAddress, $0.count) }) else {
            throw NetlinkError("nl_addr_build", errno: ENOMEM)
        }
        defer { nl_addr_put(address) }
        body(address)
    }

    /// `address`/`prefixLength` as a libnl address, for `body` only.
    static func withLibnlAddress<T>(_ address: IPAddress, prefixLength: Int,
                                    _ body: (OpaquePointer) throws(NetlinkError) -> T) throws(NetlinkError) -> T {
        let family = address.family == .v4 ? AF_INET : AF_INET6
        guard let built = address.bytes.withUnsafeBytes({ nl_addr_build(family, $0.baseAddress, $0.count) }) else {
            throw NetlinkError("nl_addr_build", errno: ENOMEM)
        }
        defer { nl_addr_put(built) }
        nl_addr_set_prefixlen(built, Int32(prefixLength))
        return try body(built)
    }

    /// An address libnl parsed; nil for a family or length podwire does not know.
    static func ipAddress(_ address: OpaquePointer?) -> IPAddress? {
        guard let address else { return nil }
        let length = Int(nl_addr_get_len(address))
        let family = nl_addr_get_family(address)
        if length == 0 {
            // libnl gives a default route's destination no bytes at all.
            if family == AF_INET { return .v4(IPv4Address(0)) }
            if family == AF_INET6 { return .v6(IPv6Address(high: 0, low: 0)) }
            return nil
        }
        let bytes = UnsafeRawBufferPointer(start: nl_addr_get_binary_addr(address), count: length)
        switch (family, length) {
        case (AF_INET, 4): return .v4(IPv4Address(bytes: bytes))
        case (AF_INET6, 16): return .v6(IPv6Address(bytes: bytes))
        default: return nil
        }
    }
}
