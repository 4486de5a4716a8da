internal import CNetlink
import CNetlinkSockets
import LinuxSystem
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A link as the kernel reports it (`ip -d link show`).
public struct LinkInfo: Sendable, Equatable {
    public var index: Int32
    public var name: String
    public var mac: String
    public var mtu: Int
    public var isUp: Bool
    /// The rtnl kind ("veth"), empty for devices without one.
    public var kind: String
    public var alias: String
    /// IFLA_LINK: a veth's peer's index (in the peer's namespace); 0 when the kernel gives none.
    public var peerIndex: Int32 = 0
    /// IFLA_LINK_NETNSID: the namespace the peer is in, as this namespace numbers it (`ip netns
    /// list-id`); nil when the peer is in this namespace or the kernel gives none.
    public var peerNetnsID: Int32? = nil

    public init(index: Int32, name: String, mac: String, mtu: Int, isUp: Bool, kind: String, alias: String,
                peerIndex: Int32 = 0, peerNetnsID: Int32? = nil) {
        self.index = index
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.isUp = isUp
        self.kind = kind
        self.alias = alias
        self.peerIndex = peerIndex
        self.peerNetnsID = peerNetnsID
    }
}

extension RouteSocket {
    // MARK: Links

    /// The indexes of a new veth pair's two ends, each in its own namespace.
    public struct VethIndexes: Sendable, Equatable {
        public var local: Int32
        public var peer: Int32
    }

    /// `ip link add <name> address <mac> mtu <mtu> numtxqueues 1 numrxqueues 1 type veth
    ///  peer name <peerName> address <peerMAC> mtu <mtu> numtxqueues 1 numrxqueues 1 netns <pid>`,
    /// sent on this socket: the first end is born in this socket's namespace, the peer in the
    /// namespace of process `peerNamespacePID`.
    ///
    /// ADD sends it on a socket in the pod's namespace, so eth0 is born in the pod and the host end
    /// in podwire's own namespace: one request creates both ends where they belong, and nothing is
    /// moved between namespaces afterwards (moving is the slow part of veth setup). Both ends are
    /// born down: the caller sets the host end's per-interface sysctls before it comes up.
    ///
    /// Each end has one transmit and one receive queue. Left unset, the kernel gives a veth one
    /// of each per possible CPU, each with its own sysfs entries to create and remove, which a
    /// pod's veth never uses: without XDP a veth hands packets to the receiving CPU's backlog and
    /// transmits locklessly. Those queues are a visible share of the pair's creation time, and it
    /// grows with the node's CPU count.
    ///
    /// The request asks for an echo (NLM_F_ECHO, honoured for link creation from Linux 6.3): the
    /// new link comes back with its index and, as IFLA_LINK, its peer's, so no `ip link show` of
    /// either end is needed. nil from older kernels.
    /// Fails with `isExists` when either name is taken; nothing is created then.
    @discardableResult
    public func addVethPair(name: String, mac: [UInt8], peerName: String, peerMAC: [UInt8],
                            peerNamespacePID: Int32, mtu: Int?) throws(NetlinkError) -> VethIndexes? {
        let request = try Self.addVethPairRequest(name: name, mac: mac, peerName: peerName, peerMAC: peerMAC,
                                                  peerNamespacePID: peerNamespacePID, mtu: mtu)
        defer { nlmsg_free(request) }
        var indexes: VethIndexes? = nil
        let creation = QueuedRequest(message: request) { "ip link add \(name) type veth peer name \(peerName) netns \(peerNamespacePID)" }
        try transact(creation) { message in
            if message.type == UInt16(RTM_NEWLINK) { indexes = Self.vethIndexes(message.payload) }
        }
        return indexes
    }

    /// The RTM_NEWLINK request `addVethPair` sends (NLM_F_ECHO included), built by libnl (the
    /// caller owns it).
    static func addVethPairRequest(name: String, mac: [UInt8], peerName: String, peerMAC: [UInt8],
                                   peerNamespacePID: Int32, mtu: Int?) throws(NetlinkError) -> OpaquePointer {
        guard let link = rtnl_link_veth_alloc() else { throw NetlinkError("rtnl_link_veth_alloc", errno: ENOMEM) }
        defer { rtnl_link_veth_release(link) }
        let peer = rtnl_link_veth_get_peer(link)
        defer { rtnl_link_put(peer) }
        rtnl_link_set_name(link, name)
        rtnl_link_set_name(peer, peerName)
        try withLibnlLinkAddress(mac) { rtnl_link_set_addr(link, $0) }
        try withLibnlLinkAddress(peerMAC) { rtnl_link_set_addr(peer, $0) }
        if let mtu {
            rtnl_link_set_mtu(link, UInt32(mtu))
            rtnl_link_set_mtu(peer, UInt32(mtu))
        }
        rtnl_link_set_num_tx_queues(link, 1)
        rtnl_link_set_num_rx_queues(link, 1)
        rtnl_link_set_num_tx_queues(peer, 1)
        rtnl_link_set_num_rx_queues(peer, 1)
        rtnl_link_set_ns_pid(peer, peerNamespacePID)
        var request: OpaquePointer? = nil
        try netlinkCall("build the request to create \(name)") { rtnl_link_build_add_request(link, NLM_F_CREATE | NLM_F_EXCL, &request) }
        nlmsg_hdr(request)!.pointee.nlmsg_flags |= UInt16(NLM_F_ECHO)
        return request!
    }

    /// A veth's index (ifinfomsg) and its peer's (IFLA_LINK) from an RTM_NEWLINK payload.
    static func vethIndexes(_ payload: UnsafeRawBufferPointer) -> VethIndexes? {
        let infoSize = MemoryLayout<ifinfomsg>.size
        guard payload.count >= infoSize,
              let peer = NetlinkMessage.Attributes(UnsafeRawBufferPointer(rebasing: payload[infoSize...])).hostInt32(UInt16(IFLA_LINK))
        else { return nil }
        return VethIndexes(local: payload.loadUnaligned(fromByteOffset: 4, as: Int32.self), peer: peer)
    }

    /// `ip link show <name>`; nil when there is no such link.
    public func link(named name: String) throws(NetlinkError) -> LinkInfo? {
        var found: OpaquePointer? = nil
        let rc = rtnl_link_get_kernel(socket, 0, name, &found)
        if rc < 0 {
            let error = NetlinkError("ip link show \(name)", netlinkCode: rc)
            if error.isNotFound { return nil }
            throw error
        }
        defer { rtnl_link_put(found) }
        return Self.linkInfo(found!)
    }

    /// `ip link show` of every link in the namespace.
    public func links() throws(NetlinkError) -> [LinkInfo] {
        var cache: OpaquePointer? = nil
        try netlinkCall("ip link show") { rtnl_link_alloc_cache(socket, AF_UNSPEC, &cache) }
        defer { nl_cache_free(cache) }
        var result: [LinkInfo] = []
        var object = nl_cache_get_first(cache)
        while let current = object {
            result.append(Self.linkInfo(current))
            object = nl_cache_get_next(current)
        }
        return result
    }

    static func linkInfo(_ link: OpaquePointer) -> LinkInfo {
        var mac = ""
        if let address = rtnl_link_get_addr(link), nl_addr_get_len(address) > 0 {
            let bytes = UnsafeRawBufferPointer(start: nl_addr_get_binary_addr(address), count: Int(nl_addr_get_len(address)))
            mac = formatMAC(Array(bytes))
        }
        var netnsID: Int32 = -1
        let hasNetnsID = rtnl_link_get_link_netnsid(link, &netnsID) == 0 && netnsID >= 0
        return LinkInfo(
            index: rtnl_link_get_ifindex(link),
            name: rtnl_link_get_name(link).map { String(cString: $0) } ?? "",
            mac: mac,
            mtu: Int(rtnl_link_get_mtu(link)),
            isUp: rtnl_link_get_flags(link) & UInt32(IFF_UP) != 0,
            kind: rtnl_link_get_type(link).map { String(cString: $0) } ?? "",
            alias: rtnl_link_get_ifalias(link).map { String(cString: $0) } ?? "",
            peerIndex: Int32(rtnl_link_get_link(link)),
            peerNetnsID: hasNetnsID ? netnsID : nil)
    }

    /// `ip link set dev <index> [alias <alias>] up`, in one request; with `ipv4Forwarding`, also
    /// `sysctl net.ipv4.conf.<dev>.forwarding=1` in the same request (IFLA_INET_CONF): the kernel
    /// sets the interface's flag as the sysctl would, without a /proc/sys path walk per pod.
    ///
    /// With `routeLocalnet`, also `sysctl net.ipv4.conf.<dev>.route_localnet=1`, so packets from
    /// and to 127.0.0.0/8 may be routed through the link (hostPorts reached on 127.0.0.1).
    public func setUp(linkIndex: Int32, alias: String? = nil, ipv4Forwarding: Bool = false, routeLocalnet: Bool = false) throws(NetlinkError) {
        let request = try Self.setUpRequest(linkIndex: linkIndex, alias: alias, ipv4Forwarding: ipv4Forwarding, routeLocalnet: routeLocalnet)
        try submit(Self.setUpOperation(linkIndex: linkIndex, alias: alias, ipv4Forwarding: ipv4Forwarding)) {
            $0.pointee = request
            return 0
        }
    }

    /// The RTM_NEWLINK request `setUp` sends, built by libnl (the caller owns it).
    static func setUpRequest(linkIndex: Int32, alias: String?, ipv4Forwarding: Bool, routeLocalnet: Bool = false) throws(NetlinkError) -> OpaquePointer {
        try changeLinkRequest(index: linkIndex,
                              operation: setUpOperation(linkIndex: linkIndex, alias: alias, ipv4Forwarding: ipv4Forwarding)) {
            if let alias { rtnl_link_set_ifalias($0, alias) }
            if ipv4Forwarding { _ = rtnl_link_inet_set_conf($0, UInt32(IPV4_DEVCONF_FORWARDING), 1) }
            if routeLocalnet { _ = rtnl_link_inet_set_conf($0, UInt32(IPV4_DEVCONF_ROUTE_LOCALNET), 1) }
            rtnl_link_set_flags($0, UInt32(IFF_UP))
        }
    }

    /// Only built when the kernel refuses: the message for an error, not work on every ADD.
    static func setUpOperation(linkIndex: Int32, alias: String?, ipv4Forwarding: Bool) -> String {
        "ip link set dev \(linkIndex)" + (alias.map { " alias \($0)" } ?? "")
            + " up" + (ipv4Forwarding ? " (and its IPv4 forwarding on)" : "")
    }

    /// A change request for link `index`: `apply` sets on an empty link what is to change.
    /// `operation` is only built if the request cannot be built.
    private static func changeLinkRequest(index: Int32, operation: @autoclosure () -> String,
                                          _ apply: (OpaquePointer) -> Void) throws(NetlinkError) -> OpaquePointer {
        guard let target = rtnl_link_alloc(), let change = rtnl_link_alloc() else { throw NetlinkError("rtnl_link_alloc", errno: ENOMEM) }
        defer {
            rtnl_link_put(target)
            rtnl_link_put(change)
        }
        rtnl_link_set_ifindex(target, index)
        apply(change)
        var request: OpaquePointer? = nil
        let rc = rtnl_link_build_change_request(target, change, 0, &request)
        guard rc >= 0, let request else {
            throw NetlinkError("build the request to " + operation(), netlinkCode: rc < 0 ? rc : -NLE_NOMEM)
        }
        return request
    }

    /// `ip link del <name>`. Returns false when the link was already gone (DEL is idempotent).
    /// Deleting either end of a veth removes both, with their addresses and routes.
    @discardableResult
    public func deleteLink(named name: String) throws(NetlinkError) -> Bool {
        guard let link = rtnl_link_alloc() else { throw NetlinkError("rtnl_link_alloc", errno: ENOMEM) }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        let rc = rtnl_link_delete(socket, link)
        if rc < 0 {
            let error = NetlinkError("ip link del \(name)", netlinkCode: rc)
            if error.isNotFound { return false }
            throw error
        }
        return true
    }

    /// `ip link del dev <index>` for a caller with work to do while the kernel finishes it; see
    /// `LinkDeletion`. The link is named by its index, not its name: the kernel hands indexes out
    /// cyclically, so a link that took the name since `link` was looked up is left alone.
    public func startDeletingLink(_ link: LinkInfo) throws(NetlinkError) -> LinkDeletion {
        guard let target = rtnl_link_alloc() else { throw NetlinkError("rtnl_link_alloc", errno: ENOMEM) }
        defer { rtnl_link_put(target) }
        rtnl_link_set_ifindex(target, link.index)
        var built: OpaquePointer? = nil
        try netlinkCall("build ip link del \(link.name)") { rtnl_link_build_delete_request(target, &built) }
        defer { nlmsg_free(built) }
        let header = nlmsg_hdr(built)!
        header.pointee.nlmsg_flags |= UInt16(NLM_F_REQUEST | NLM_F_ACK)
        header.pointee.nlmsg_seq = 1
        return try LinkDeletion(link: link, request: Array(UnsafeRawBufferPointer(start: header, count: Int(header.pointee.nlmsg_len))))
    }
}
