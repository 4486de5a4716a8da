internal import CNetlink
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A route on a link, as the kernel reports it or podwire asks for it (`ip route`).
public struct RouteSpec: Sendable, Equatable, CustomStringConvertible {
    public typealias Scope = IPRoute.Scope

    public var route: IPRoute
    public var linkIndex: Int32
    /// `proto boot` unless said otherwise: what `ip route add` and the reference plugin write, and
    /// what `ip route` prints without a "proto" word.
    public var protocolNumber: UInt8

    public init(route: IPRoute, linkIndex: Int32, protocolNumber: UInt8 = RouteSpec.bootProtocol) {
        self.route = route
        self.linkIndex = linkIndex
        self.protocolNumber = protocolNumber
    }

    public init(destination: IPNetwork, gateway: IPAddress? = nil, linkIndex: Int32, source: IPAddress? = nil,
                scope: Scope = .universe, priority: UInt32? = nil, table: UInt32? = nil,
                protocolNumber: UInt8 = RouteSpec.bootProtocol) {
        self.init(route: IPRoute(destination: destination, gateway: gateway, source: source, scope: scope, priority: priority, table: table),
                  linkIndex: linkIndex, protocolNumber: protocolNumber)
    }

    /// RTPROT_BOOT, which `ip route` prints without a "proto" word.
    public static let bootProtocol = UInt8(RTPROT_BOOT)

    public var destination: IPNetwork { route.destination }
    public var gateway: IPAddress? { route.gateway }
    public var source: IPAddress? { route.source }
    public var scope: Scope { route.scope }
    public var priority: UInt32? { route.priority }
    public var table: UInt32? { route.table }

    public var description: String { route.text(device: String(linkIndex)) }
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
    public func addRoute(_ spec: RouteSpec, mode: RouteAddMode = .exclusive) throws(NetlinkError) {
        let request = try Self.addRouteRequest(spec, mode: mode)
        try submit(Self.addRouteOperation(spec, mode: mode)) { $0.pointee = request; return 0 }
    }

    /// The RTM_NEWROUTE request `addRoute` sends, built by libnl (the caller owns it).
    static func addRouteRequest(_ spec: RouteSpec, mode: RouteAddMode) throws(NetlinkError) -> OpaquePointer {
        let route = try buildRoute(spec)
        defer { rtnl_route_put(route) }
        let flags: Int32 = switch mode {
        case .exclusive: NLM_F_CREATE | NLM_F_EXCL
        case .create: NLM_F_CREATE
        case .replace: NLM_F_CREATE | NLM_F_REPLACE
        }
        var request: OpaquePointer? = nil
        let rc = rtnl_route_build_add_request(route, flags, &request)
        guard rc >= 0, let request else {
            throw NetlinkError("build the request to " + addRouteOperation(spec, mode: mode), netlinkCode: rc < 0 ? rc : -NLE_NOMEM)
        }
        return request
    }

    static func addRouteOperation(_ spec: RouteSpec, mode: RouteAddMode) -> String {
        "ip route \(mode == .replace ? "replace" : "add") \(spec)"
    }

    /// `ip route del <spec>`, the route as `routes(family:)` reported it (its table, scope,
    /// protocol and metric must match). false when there was no such route.
    @discardableResult
    public func deleteRoute(_ spec: RouteSpec) throws(NetlinkError) -> Bool {
        let route = try Self.buildRoute(spec)
        defer { rtnl_route_put(route) }
        let rc = rtnl_route_delete(socket, route, 0)
        if rc < 0 {
            let error = NetlinkError("ip route del \(spec)", netlinkCode: rc)
            if error.isNotFound { return false }
            throw error
        }
        return true
    }

    /// `ip route show table all` for one family, as specs (single-nexthop routes; multipath ones
    /// are reported by their first nexthop).
    public func routes(family: IPFamily) throws(NetlinkError) -> [RouteSpec] {
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

    private static func buildRoute(_ spec: RouteSpec) throws(NetlinkError) -> OpaquePointer {
        guard let route = rtnl_route_alloc(), let hop = rtnl_route_nh_alloc() else {
            throw NetlinkError("rtnl_route_alloc", errno: ENOMEM)
        }
        rtnl_route_set_family(route, UInt8(spec.destination.family == .v4 ? AF_INET : AF_INET6))
        rtnl_route_set_table(route, spec.table ?? UInt32(RT_TABLE_MAIN.rawValue))
        rtnl_route_set_type(route, UInt8(RTN_UNICAST))
        rtnl_route_set_scope(route, spec.scope.rawValue)
        rtnl_route_set_protocol(route, spec.protocolNumber)
        if let priority = spec.priority { rtnl_route_set_priority(route, priority) }
        do {
            try withLibnlAddress(spec.destination.networkAddress, prefixLength: spec.destination.prefixLength) {
                (dst: OpaquePointer) throws(NetlinkError) in
                try netlinkCall("set route destination") { rtnl_route_set_dst(route, dst) }
            }
            if let source = spec.source {
                try withLibnlAddress(source, prefixLength: source.bitWidth) { (src: OpaquePointer) throws(NetlinkError) in
                    try netlinkCall("set route source") { rtnl_route_set_pref_src(route, src) }
                }
            }
            rtnl_route_nh_set_ifindex(hop, spec.linkIndex)
            if let gateway = spec.gateway {
                try withLibnlAddress(gateway, prefixLength: gateway.bitWidth) { (gw: OpaquePointer) throws(NetlinkError) in
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
