internal import CNetlink
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension RouteSocket {
    /// The MTU of the link that carries the namespace's preferred IPv4 default route (IPv6 if
    /// there is none), or nil without a default route.
    ///
    /// Asked as `ip route get fibmatch` for an address no network routes specifically, which is
    /// one request whatever the size of the routing table: reading the whole table made an ADD
    /// without `mtu` slower with every pod on the node (a /32 route each). Only when that lookup
    /// does not land on the main table's default route (a more specific route covers the probe,
    /// a rule sends it to another table, the default route is multipath or has no device) is the
    /// table read, and its lowest-metric default route used, as before.
    public func defaultRouteLinkMTU() throws(NetlinkError) -> Int? {
        if let index = try defaultRouteLink(.v4) { return try linkMTU(index: index) }
        if let index = try defaultRouteLink(.v6) { return try linkMTU(index: index) }
        return nil
    }

    /// The device of `family`'s preferred default route in the main table, or nil.
    func defaultRouteLink(_ family: IPFamily) throws(NetlinkError) -> Int32? {
        switch try lookUpDefaultRoute(family) {
        case .link(let index): return index
        case .noRoute: return nil
        case .inconclusive:
            let defaults = try routes(family: family).filter {
                $0.destination.prefixLength == 0 && ($0.table ?? 254) == 254 && $0.linkIndex > 0
            }
            return defaults.min(by: { ($0.priority ?? 0) < ($1.priority ?? 0) })?.linkIndex
        }
    }

    enum DefaultRouteLookup {
        case link(Int32)
        case noRoute
        case inconclusive
    }

    /// Addresses reserved so that no network routes them (RFC 5737 TEST-NET-1, RFC 6666 discard-only):
    /// the kernel's answer for them is the default route, unless someone routes them on purpose.
    static func defaultRouteProbe(_ family: IPFamily) -> IPAddress {
        family == .v4 ? .v4(IPv4Address(0xc000_0201)) : .v6(IPv6Address(high: 0x0100_0000_0000_0000, low: 1))
    }

    /// `ip route get fibmatch <probe>`: the route entry the kernel would use, not a cached result.
    func lookUpDefaultRoute(_ family: IPFamily) throws(NetlinkError) -> DefaultRouteLookup {
        let probe = Self.defaultRouteProbe(family)
        guard let message = nlmsg_alloc_simple(Int32(RTM_GETROUTE), 0) else { throw NetlinkError("nlmsg_alloc", errno: ENOMEM) }
        defer { nlmsg_free(message) }
        var header = rtmsg()
        header.rtm_family = UInt8(family == .v4 ? AF_INET : AF_INET6)
        header.rtm_dst_len = UInt8(probe.bitWidth)
        header.rtm_flags = UInt32(RTM_F_FIB_MATCH)
        try netlinkCall("build ip route get \(probe)") { nlmsg_append(message, &header, MemoryLayout<rtmsg>.size, 4) }
        try netlinkCall("build ip route get \(probe)") {
            probe.bytes.withUnsafeBytes { nla_put(message, Int32(RTA_DST.rawValue), Int32($0.count), $0.baseAddress) }
        }
        var answer = DefaultRouteLookup.inconclusive
        do {
            try transact(QueuedRequest(message: message) { "ip route get fibmatch \(probe)" }) { reply in
                guard reply.type == UInt16(RTM_NEWROUTE) else { return }
                answer = Self.defaultRoute(inAnswer: reply.payload)
            }
        } catch where error.isUnreachable {
            return .noRoute
        }
        return answer
    }

    /// The device of an RTM_NEWROUTE that is the main table's unicast default route with one
    /// nexthop; `.inconclusive` for anything else.
    static func defaultRoute(inAnswer payload: UnsafeRawBufferPointer) -> DefaultRouteLookup {
        let headerSize = MemoryLayout<rtmsg>.size
        guard payload.count >= headerSize else { return .inconclusive }
        let header = payload.loadUnaligned(as: rtmsg.self)
        let attributes = NetlinkMessage.Attributes(UnsafeRawBufferPointer(rebasing: payload[NetlinkMessage.aligned(headerSize)...]))
        let table = attributes.hostInt32(UInt16(RTA_TABLE.rawValue)).map(UInt32.init(bitPattern:)) ?? UInt32(header.rtm_table)
        guard header.rtm_dst_len == 0, header.rtm_type == UInt8(RTN_UNICAST), table == UInt32(RT_TABLE_MAIN.rawValue),
              let device = attributes.hostInt32(UInt16(RTA_OIF.rawValue)), device > 0
        else { return .inconclusive }
        return .link(device)
    }

    /// `ip link show index <index>`'s MTU.
    func linkMTU(index: Int32) throws(NetlinkError) -> Int {
        var found: OpaquePointer? = nil
        let rc = rtnl_link_get_kernel(socket, index, nil, &found)
        if rc < 0 { throw NetlinkError("ip link show index \(index)", netlinkCode: rc) }
        defer { rtnl_link_put(found) }
        return Int(rtnl_link_get_mtu(found))
    }
}
