internal import CNetlink
import CLinuxShim
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A route in the main table, in the terms `ip route` prints.
public struct RouteSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Scope: UInt8, Sendable {
        case universe = 0
        case link = 253
        case host = 254
    }

    public var destination: IPNetwork
    public var gateway: IPAddress?
    public var linkIndex: Int32
    public var source: IPAddress?
    public var scope: Scope
    /// The metric; nil leaves the kernel's default (0 for IPv4, 1024 for IPv6).
    public var priority: UInt32?
    public var table: UInt32?
    /// `proto boot` unless said otherwise: what `ip route add` and the reference plugin write, and
    /// what `ip route` prints without a "proto" word.
    public var protocolNumber: UInt8

    public init(destination: IPNetwork, gateway: IPAddress? = nil, linkIndex: Int32, source: IPAddress? = nil,
                scope: Scope = .universe, priority: UInt32? = nil, table: UInt32? = nil,
                protocolNumber: UInt8 = CLinuxShim_RTPROT_BOOT) {
        self.destination = destination
        self.gateway = gateway
        self.linkIndex = linkIndex
        self.source = source
        self.scope = scope
        self.priority = priority
        self.table = table
        self.protocolNumber = protocolNumber
    }

    public var description: String {
        var text = destination.prefixLength == 0 ? "default" : destination.prefixLength == destination.address.bitWidth
            ? destination.address.description : destination.description
        if let gateway { text += " via \(gateway)" }
        text += " dev \(linkIndex)"
        if scope == .link { text += " scope link" } else if scope == .host { text += " scope host" }
        if let source { text += " src \(source)" }
        if let priority { text += " metric \(priority)" }
        if let table { text += " table \(table)" }
        return text
    }
}

extension RouteSocket {
    public enum RouteAddMode: Sendable {
        /// `ip route add`: fails with `isExists` when the route is there.
        case exclusive
        /// `ip route append`-like create without EXCL: an identical route is accepted silently.
        case create
        /// `ip route replace`: takes over a route to the same destination, wherever it pointed.
        case replace
    }

    /// `ip route add|replace <spec>`.
    public func addRoute(_ spec: RouteSpec, mode: RouteAddMode = .exclusive) throws(KernelError) {
        let route = try buildRoute(spec)
        defer { rtnl_route_put(route) }
        let flags: Int32 = switch mode {
        case .exclusive: NLM_F_CREATE | NLM_F_EXCL
        case .create: NLM_F_CREATE
        case .replace: NLM_F_CREATE | NLM_F_REPLACE
        }
        try submit("ip route \(mode == .replace ? "replace" : "add") \(spec)") { rtnl_route_build_add_request(route, flags, $0) }
    }

    /// `ip route show table all` for one family, as specs (single-nexthop routes; multipath ones
    /// are reported by their first nexthop).
    public func routes(family: IPFamily) throws(KernelError) -> [RouteSpec] {
        var cache: OpaquePointer? = nil
        try netlinkCall("ip route show") { rtnl_route_alloc_cache(socket, family == .v4 ? AF_INET : AF_INET6, 0, &cache) }
        defer { nl_cache_free(cache) }
        var result: [RouteSpec] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            object = nl_cache_get_next(current)
            guard let dst = rtnl_route_get_dst(current), let address = Self.ipAddress(dst),
                  let destination = IPNetwork(address: address, prefixLength: Int(nl_addr_get_prefixlen(dst)))
            else { continue }
            var linkIndex: Int32 = 0
            var gateway: IPAddress? = nil
            if rtnl_route_get_nnexthops(current) > 0, let hop = rtnl_route_nexthop_n(current, 0) {
                linkIndex = rtnl_route_nh_get_ifindex(hop)
                gateway = Self.ipAddress(rtnl_route_nh_get_gateway(hop))
            }
            result.append(RouteSpec(
                destination: destination, gateway: gateway, linkIndex: linkIndex,
                source: Self.ipAddress(rtnl_route_get_pref_src(current)),
                scope: RouteSpec.Scope(rawValue: rtnl_route_get_scope(current)) ?? .universe,
                priority: rtnl_route_get_priority(current), table: rtnl_route_get_table(current),
                protocolNumber: rtnl_route_get_protocol(current)))
        }
        return result
    }

    /// The MTU of the link that carries the namespace's preferred IPv4 default route (IPv6 if
    /// there is none), or nil without a default route.
    public func defaultRouteLinkMTU() throws(KernelError) -> Int? {
        for family in [IPFamily.v4, .v6] {
            let defaults = try routes(family: family).filter {
                $0.destination.prefixLength == 0 && ($0.table ?? 254) == 254 && $0.linkIndex > 0
            }
            guard let best = defaults.min(by: { ($0.priority ?? 0) < ($1.priority ?? 0) }) else { continue }
            var found: OpaquePointer? = nil
            let rc = rtnl_link_get_kernel(socket, best.linkIndex, nil, &found)
            if rc < 0 { throw KernelError("ip link show index \(best.linkIndex)", netlinkCode: rc) }
            defer { rtnl_link_put(found) }
            return Int(rtnl_link_get_mtu(found))
        }
        return nil
    }

    private func buildRoute(_ spec: RouteSpec) throws(KernelError) -> OpaquePointer {
        guard let route = rtnl_route_alloc(), let hop = rtnl_route_nh_alloc() else {
            throw KernelError("rtnl_route_alloc", errno: ENOMEM)
        }
        rtnl_route_set_family(route, UInt8(spec.destination.family == .v4 ? AF_INET : AF_INET6))
        rtnl_route_set_table(route, spec.table ?? UInt32(RT_TABLE_MAIN.rawValue))
        rtnl_route_set_type(route, UInt8(RTN_UNICAST))
        rtnl_route_set_scope(route, spec.scope.rawValue)
        rtnl_route_set_protocol(route, spec.protocolNumber)
        if let priority = spec.priority { rtnl_route_set_priority(route, priority) }
        do {
            try withAddress(spec.destination.networkAddress, prefixLength: spec.destination.prefixLength) {
                (dst: OpaquePointer) throws(KernelError) in
                try netlinkCall("set route destination") { rtnl_route_set_dst(route, dst) }
            }
            if let source = spec.source {
                try withAddress(source, prefixLength: source.bitWidth) { (src: OpaquePointer) throws(KernelError) in
                    try netlinkCall("set route source") { rtnl_route_set_pref_src(route, src) }
                }
            }
            rtnl_route_nh_set_ifindex(hop, spec.linkIndex)
            if let gateway = spec.gateway {
                try withAddress(gateway, prefixLength: gateway.bitWidth) { (gw: OpaquePointer) throws(KernelError) in
                    rtnl_route_nh_set_gateway(hop, gw)
                }
            }
            rtnl_route_add_nexthop(route, hop)
        } catch {
            rtnl_route_nh_free(hop)
            rtnl_route_put(route)
            throw error
        }
        return route
    }
}
