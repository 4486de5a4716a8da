internal import CNetlink
import CLinuxShim
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
}

/// An rtnetlink socket bound to one network namespace for its whole life, with `ip`-style verbs.
///
/// Each verb's doc names the `ip` command it equals and what it does when the object exists or
/// is missing, since CNI's ADD must not clobber and its DEL must be idempotent.
public final class RouteSocket {
    let socket: OpaquePointer
    /// Requests held back by `batch`, oldest first; nil when each verb is sent and answered on its
    /// own. A chain of class nodes: an array of a new element type is one more generic type for
    /// the runtime to build on every ADD.
    private var queued: QueuedRequest? = nil
    private var lastQueued: QueuedRequest? = nil
    private var batching = false

    /// A request built by libnl and the `ip` command it equals (built only for an error message),
    /// linked to the one sent after it.
    private final class QueuedRequest {
        let message: OpaquePointer
        let operation: () -> String
        var next: QueuedRequest?
        init(message: OpaquePointer, operation: @escaping () -> String) {
            self.message = message
            self.operation = operation
        }
    }

    /// The buffer libnl gives each request it builds (its default is a page, zeroed on allocation).
    /// podwire's largest request, a link change carrying a 255-byte alias, is under 400 bytes; a
    /// request that outgrew it would fail to build (NLE_NOMEM), never be cut. An ADD builds about ten.
    static let requestBufferSize = 1024

    /// A socket in the calling thread's namespace.
    public init() throws(KernelError) {
        nlmsg_set_default_size(Self.requestBufferSize)
        guard let socket = nl_socket_alloc() else { throw KernelError("nl_socket_alloc", errno: ENOMEM) }
        let rc = nl_connect(socket, NETLINK_ROUTE)
        if rc < 0 {
            nl_socket_free(socket)
            throw KernelError("connect rtnetlink socket", netlinkCode: rc)
        }
        // libnl keeps peeking here (see receiveWithoutPeeking): the node's links include physical
        // NICs, whose RTM_NEWLINK with every SR-IOV VF listed can outgrow any fixed buffer.
        self.socket = socket
    }

    /// A socket in `namespace`: created on a thread that entered it, used from any thread after.
    public convenience init(in namespace: NetworkNamespace) throws(KernelError) {
        try self.init(opening: PendingRouteSocket(in: namespace))
    }

    /// The socket `pending` was making; waits for its thread.
    public init(opening pending: PendingRouteSocket) throws(KernelError) {
        nlmsg_set_default_size(Self.requestBufferSize)
        let fd = pending.finish()
        guard fd >= 0 else { throw KernelError("open a netlink socket in \(pending.path)", errno: errno) }
        guard let socket = nl_socket_alloc() else {
            close(fd)
            throw KernelError("nl_socket_alloc", errno: ENOMEM)
        }
        let rc = nl_socket_set_fd(socket, NETLINK_ROUTE, fd)
        if rc < 0 {
            close(fd)
            nl_socket_free(socket)
            throw KernelError("adopt the netlink socket opened in \(pending.path)", netlinkCode: rc)
        }
        Self.receiveWithoutPeeking(socket)
        self.socket = socket
    }

    /// libnl peeks at every answer to size its buffer, then reads it again: two recvmsg calls per
    /// message. A pod's namespace holds only small links (lo, veths, at most a VF, which lists no
    /// VFs of its own), so one 32 KiB buffer (the kernel's dump chunk) makes it one call there. A
    /// message that would not fit fails with NLE_MSG_TRUNC rather than being cut.
    private static func receiveWithoutPeeking(_ socket: OpaquePointer) {
        nl_socket_disable_msg_peek(socket)
        _ = nl_socket_set_msg_buf_size(socket, 32768)
    }

    deinit { nl_socket_free(socket) }

    // MARK: Sending

    /// Sends one request built by libnl and waits for the kernel's answer (`nl_send_sync`, which
    /// frees the message), or inside `batch` holds it back for the batch's single send.
    func submit(_ operation: @escaping @autoclosure () -> String,
                build: (UnsafeMutablePointer<OpaquePointer?>) -> Int32) throws(KernelError) {
        var message: OpaquePointer? = nil
        let rc = build(&message)
        guard rc >= 0, let message else { throw KernelError("build the request to " + operation(), netlinkCode: rc < 0 ? rc : -NLE_NOMEM) }
        if batching {
            let request = QueuedRequest(message: message, operation: operation)
            if let last = lastQueued { last.next = request } else { queued = request }
            lastQueued = request
            return
        }
        try netlinkCall(operation()) { nl_send_sync(socket, message) }
    }

    /// `ip -batch`: the change requests `body` makes (addresses, routes, link changes) go to the
    /// kernel in one sendmsg. The kernel handles them in order, each as if sent alone, and answers
    /// each: one round trip instead of one per request. Throws the first refusal, naming its
    /// request; the kernel has still handled the requests after it (the caller undoes them all
    /// together, as ADD does by deleting the veth).
    public func batch(_ body: () throws(KernelError) -> Void) throws(KernelError) {
        batching = true
        defer {
            var request = queued
            while let current = request {
                nlmsg_free(current.message)
                request = current.next
            }
            (queued, lastQueued) = (nil, nil)
            batching = false
        }
        try body()
        guard let first = queued else { return }
        try transact(first)
    }

    /// Sends the chain of requests from `first` in one sendmsg and reads until the kernel has
    /// answered each; `reply` sees every other message addressed to them (what NLM_F_ECHO sends
    /// back). Throws the first refusal, naming its request. The messages stay the caller's.
    private func transact(_ first: QueuedRequest, reply: (nlmsghdr, UnsafeRawPointer) -> Void = { _, _ in }) throws(KernelError) {
        // Sequence numbers 1...n: libnl's own are clock-based and it keeps counting undisturbed.
        let port = nl_socket_get_local_port(socket)
        var bytes: [UInt8] = []
        var count = 0
        var request: QueuedRequest? = first
        while let current = request {
            count += 1
            let header = nlmsg_hdr(current.message)!
            header.pointee.nlmsg_seq = UInt32(count)
            header.pointee.nlmsg_pid = port
            header.pointee.nlmsg_flags |= UInt16(NLM_F_REQUEST | NLM_F_ACK)
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: header, count: Int(header.pointee.nlmsg_len)))
            while bytes.count % 4 != 0 { bytes.append(0) }
            request = current.next
        }
        let fd = nl_socket_get_fd(socket)
        let sent = try systemCall("send \(count) netlink requests") {
            Int32(truncatingIfNeeded: bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) })
        }
        guard Int(sent) == bytes.count else { throw KernelError("send \(count) netlink requests", errno: EMSGSIZE) }

        let capacity = 32768
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        defer { buffer.deallocate() }
        var answered = 0
        var refusedIndex = -1, refusedCode: Int32 = 0
        let headerSize = MemoryLayout<nlmsghdr>.size
        while answered < count {
            let received = try systemCall("read the answers to \(count) netlink requests") {
                Int32(truncatingIfNeeded: recv(fd, buffer, capacity, 0))
            }
            var offset = 0
            while offset + headerSize <= Int(received) {
                let header = buffer.load(fromByteOffset: offset, as: nlmsghdr.self)
                let length = Int(header.nlmsg_len)
                guard length >= headerSize, offset + length <= Int(received) else { break }
                let index = Int(header.nlmsg_seq) - 1
                if index >= 0 && index < count {
                    if header.nlmsg_type == UInt16(NLMSG_ERROR) {
                        guard length >= headerSize + 4 else { break }
                        answered += 1
                        let code = buffer.load(fromByteOffset: offset + headerSize, as: Int32.self)
                        if code != 0 && (refusedIndex < 0 || index < refusedIndex) { (refusedIndex, refusedCode) = (index, code) }
                    } else {
                        reply(header, UnsafeRawPointer(buffer + offset + headerSize))
                    }
                }
                offset += (length + 3) & ~3
            }
        }
        guard refusedIndex >= 0 else { return }
        var refused = first
        for _ in 0..<refusedIndex { refused = refused.next! }
        throw KernelError(refused.operation(), errno: -refusedCode)
    }

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
    /// transmits locklessly. On 2 CPUs that alone was a fifth of the pair's creation time; it
    /// grows with the node's CPU count.
    ///
    /// The request asks for an echo (NLM_F_ECHO, honoured for link creation from Linux 6.3): the
    /// new link comes back with its index and, as IFLA_LINK, its peer's, so no `ip link show` of
    /// either end is needed. nil from older kernels.
    /// Fails with `isExists` when either name is taken; nothing is created then.
    @discardableResult
    public func addVethPair(name: String, mac: [UInt8], peerName: String, peerMAC: [UInt8],
                            peerNamespacePID: Int32, mtu: Int?) throws(KernelError) -> VethIndexes? {
        guard let link = rtnl_link_veth_alloc() else { throw KernelError("rtnl_link_veth_alloc", errno: ENOMEM) }
        defer { rtnl_link_veth_release(link) }
        let peer = rtnl_link_veth_get_peer(link)
        defer { rtnl_link_put(peer) }
        rtnl_link_set_name(link, name)
        rtnl_link_set_name(peer, peerName)
        try withLinkAddress(mac) { rtnl_link_set_addr(link, $0) }
        try withLinkAddress(peerMAC) { rtnl_link_set_addr(peer, $0) }
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
        defer { nlmsg_free(request) }
        nlmsg_hdr(request)!.pointee.nlmsg_flags |= UInt16(NLM_F_ECHO)
        var indexes: VethIndexes? = nil
        let creation = QueuedRequest(message: request!) { "ip link add \(name) type veth peer name \(peerName) netns \(peerNamespacePID)" }
        try transact(creation) { header, payload in
            if header.nlmsg_type == UInt16(RTM_NEWLINK) {
                indexes = Self.vethIndexes(payload, length: Int(header.nlmsg_len) - MemoryLayout<nlmsghdr>.size)
            }
        }
        return indexes
    }

    /// A veth's index (ifinfomsg) and its peer's (IFLA_LINK) from an RTM_NEWLINK payload.
    static func vethIndexes(_ payload: UnsafeRawPointer, length: Int) -> VethIndexes? {
        let infoSize = 16 // struct ifinfomsg: family, pad, type, index, flags, change
        guard length >= infoSize,
              let peer = int32Attribute(UInt16(IFLA_LINK), in: payload, from: infoSize, to: length) else { return nil }
        return VethIndexes(local: payload.load(fromByteOffset: 4, as: Int32.self), peer: peer)
    }

    /// The 32-bit value of the first attribute of `type` among the attributes that fill
    /// `payload[offset..<length]` (each a 16-bit length, a 16-bit type, data padded to 4 bytes).
    static func int32Attribute(_ type: UInt16, in payload: UnsafeRawPointer, from offset: Int, to length: Int) -> Int32? {
        var offset = offset
        while offset + 4 <= length {
            let attributeLength = Int(payload.load(fromByteOffset: offset, as: UInt16.self))
            let attributeType = payload.load(fromByteOffset: offset + 2, as: UInt16.self) & 0x3fff // no nested/byte-order bits
            guard attributeLength >= 4, offset + attributeLength <= length else { return nil }
            if attributeType == type, attributeLength >= 8 { return payload.load(fromByteOffset: offset + 4, as: Int32.self) }
            offset += (attributeLength + 3) & ~3
        }
        return nil
    }

    /// `ip link show <name>`; nil when there is no such link.
    public func link(named name: String) throws(KernelError) -> LinkInfo? {
        var found: OpaquePointer? = nil
        let rc = rtnl_link_get_kernel(socket, 0, name, &found)
        if rc < 0 {
            let error = KernelError("ip link show \(name)", netlinkCode: rc)
            if error.isNotFound { return nil }
            throw error
        }
        defer { rtnl_link_put(found) }
        return Self.linkInfo(found!)
    }

    /// `ip link show` of every link in the namespace.
    public func links() throws(KernelError) -> [LinkInfo] {
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
        return LinkInfo(
            index: rtnl_link_get_ifindex(link),
            name: rtnl_link_get_name(link).map { String(cString: $0) } ?? "",
            mac: mac,
            mtu: Int(rtnl_link_get_mtu(link)),
            isUp: rtnl_link_get_flags(link) & UInt32(IFF_UP) != 0,
            kind: rtnl_link_get_type(link).map { String(cString: $0) } ?? "",
            alias: rtnl_link_get_ifalias(link).map { String(cString: $0) } ?? "")
    }

    /// `ip link set dev <index> [alias <alias>] up`, in one request; with `ipv4Forwarding`, also
    /// `sysctl net.ipv4.conf.<dev>.forwarding=1` in the same request (IFLA_INET_CONF): the kernel
    /// sets the interface's flag as the sysctl would, without a /proc/sys path walk per pod.
    public func setUp(linkIndex: Int32, alias: String? = nil, ipv4Forwarding: Bool = false) throws(KernelError) {
        try changeLink(index: linkIndex, operation: "ip link set dev \(linkIndex)" + (alias.map { " alias \($0)" } ?? "")
                       + " up" + (ipv4Forwarding ? " (and its IPv4 forwarding on)" : "")) {
            if let alias { rtnl_link_set_ifalias($0, alias) }
            if ipv4Forwarding { _ = rtnl_link_inet_set_conf($0, UInt32(IPV4_DEVCONF_FORWARDING), 1) }
            rtnl_link_set_flags($0, UInt32(IFF_UP))
        }
    }

    /// `sysctl net.ipv4.ip_forward` (IPv4) or `net.ipv6.conf.all.forwarding` (IPv6), asked with
    /// RTM_GETNETCONF (`ip netconf show`) on this socket rather than read from /proc/sys: one round
    /// trip, no path walk. nil when the kernel answers without the value.
    public func allForwarding(family: IPFamily) throws(KernelError) -> Bool? {
        guard let message = nlmsg_alloc_simple(Int32(RTM_GETNETCONF), 0) else { throw KernelError("nlmsg_alloc", errno: ENOMEM) }
        defer { nlmsg_free(message) }
        var header = netconfmsg(ncm_family: UInt8(family == .v4 ? AF_INET : AF_INET6))
        try netlinkCall("build the netconf request") { nlmsg_append(message, &header, MemoryLayout<netconfmsg>.size, 4) }
        try netlinkCall("build the netconf request") { nla_put_s32(message, Int32(NETCONFA_IFINDEX), -1) } // NETCONFA_IFINDEX_ALL
        var forwarding: Bool? = nil
        try transact(QueuedRequest(message: message) { "ip netconf show (family \(family))" }) { header, payload in
            guard header.nlmsg_type == UInt16(RTM_NEWNETCONF) else { return }
            // struct netconfmsg, padded to 4 bytes, then the attributes.
            let value = Self.int32Attribute(UInt16(NETCONFA_FORWARDING), in: payload, from: 4,
                                            to: Int(header.nlmsg_len) - MemoryLayout<nlmsghdr>.size)
            if let value { forwarding = value != 0 }
        }
        return forwarding
    }

    /// `operation` is only built when the kernel refuses: the message for an error, not work on every ADD.
    private func changeLink(index: Int32, operation: @escaping @autoclosure () -> String, _ apply: (OpaquePointer) -> Void) throws(KernelError) {
        guard let target = rtnl_link_alloc(), let change = rtnl_link_alloc() else { throw KernelError("rtnl_link_alloc", errno: ENOMEM) }
        defer {
            rtnl_link_put(target)
            rtnl_link_put(change)
        }
        rtnl_link_set_ifindex(target, index)
        apply(change)
        try submit(operation()) { rtnl_link_build_change_request(target, change, 0, $0) }
    }

    /// `ip link del <name>`. Returns false when the link was already gone (DEL is idempotent).
    /// Deleting either end of a veth removes both, with their addresses and routes.
    @discardableResult
    public func deleteLink(named name: String) throws(KernelError) -> Bool {
        guard let link = rtnl_link_alloc() else { throw KernelError("rtnl_link_alloc", errno: ENOMEM) }
        defer { rtnl_link_put(link) }
        rtnl_link_set_name(link, name)
        let rc = rtnl_link_delete(socket, link)
        if rc < 0 {
            let error = KernelError("ip link del \(name)", netlinkCode: rc)
            if error.isNotFound { return false }
            throw error
        }
        return true
    }

    /// `ip link del dev <index>` for a caller with work to do while the kernel finishes it; see
    /// `LinkDeletion`. The link is named by its index, not its name: the kernel hands indexes out
    /// cyclically, so a link that took the name since `link` was looked up is left alone.
    public func startDeletingLink(_ link: LinkInfo) throws(KernelError) -> LinkDeletion {
        guard let target = rtnl_link_alloc() else { throw KernelError("rtnl_link_alloc", errno: ENOMEM) }
        defer { rtnl_link_put(target) }
        rtnl_link_set_ifindex(target, link.index)
        var built: OpaquePointer? = nil
        try netlinkCall("build ip link del \(link.name)") { rtnl_link_build_delete_request(target, &built) }
        defer { nlmsg_free(built) }
        let header = nlmsg_hdr(built)!
        header.pointee.nlmsg_flags |= UInt16(NLM_F_REQUEST | NLM_F_ACK)
        header.pointee.nlmsg_seq = 1
        return try LinkDeletion(link: link, request: UnsafeRawBufferPointer(start: header, count: Int(header.pointee.nlmsg_len)))
    }

    // MARK: Helpers

    func withLinkAddress(_ mac: [UInt8], _ body: (OpaquePointer) -> Void) throws(KernelError) {
        guard let address = mac.withUnsafeBytes({ nl_addr_build(AF_LLC, $0.baseAddress, $0.count) }) else {
            throw KernelError("nl_addr_build", errno: ENOMEM)
        }
        defer { nl_addr_put(address) }
        body(address)
    }

    func withAddress<T>(_ address: IPAddress, prefixLength: Int, _ body: (OpaquePointer) throws(KernelError) -> T) throws(KernelError) -> T {
        let family = address.family == .v4 ? AF_INET : AF_INET6
        guard let built = address.bytes.withUnsafeBytes({ nl_addr_build(family, $0.baseAddress, $0.count) }) else {
            throw KernelError("nl_addr_build", errno: ENOMEM)
        }
        defer { nl_addr_put(built) }
        nl_addr_set_prefixlen(built, Int32(prefixLength))
        return try body(built)
    }

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

/// "02:42:ac:11:00:02".
public func formatMAC(_ bytes: [UInt8]) -> String {
    var text = AddressText(capacity: bytes.count * 3)
    for (index, byte) in bytes.enumerated() {
        if index > 0 { text.append(":") }
        text.appendHex(UInt64(byte), digits: 2)
    }
    return text.string
}

/// A `RouteSocket(in:)` under way: its thread enters the namespace and makes the socket while the
/// caller goes on (about 50 us that way overlap with other work). `RouteSocket(opening:)` waits
/// for it; a pending socket dropped unused is waited for and closed.
public final class PendingRouteSocket {
    let path: String
    private var call: OpaquePointer?

    public init(in namespace: NetworkNamespace) throws(KernelError) {
        path = namespace.path
        guard let call = CLinuxShim_socket_in_netns_start(namespace.fd, AF_NETLINK,
                                                          Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE) else {
            throw KernelError("start a thread to open a netlink socket in \(namespace.path)", errno: errno)
        }
        self.call = call
    }

    /// The socket's fd, or -1 with errno set; only the first call waits, later ones return -1/EBADF.
    func finish() -> Int32 {
        guard let call else {
            errno = EBADF
            return -1
        }
        self.call = nil
        return CLinuxShim_socket_in_netns_finish(call)
    }

    deinit {
        let fd = finish()
        if fd >= 0 { close(fd) }
    }
}

/// `ip link del dev <index>`, sent from a thread of its own (`CLinuxShim_netlink_call`).
///
/// The kernel unlists a deleted link, flushes its addresses and routes and announces RTM_DELLINK
/// at once, then waits for RCU grace periods (~15 ms on a 250 Hz kernel) before it answers the
/// request. `waitUntilRemoved()` returns at the announcement, so work that must follow the
/// removal (a DEL releasing the pod's address) can run during that wait; `finish()` waits for the
/// answer. The listening socket is open before the request is sent, so the announcement cannot
/// be missed, except when the kernel drops notifications under load: then `waitUntilRemoved()`
/// says it cannot tell and the caller waits for `finish()`.
public final class LinkDeletion {
    public let link: LinkInfo
    private let monitor: Int32
    private var call: OpaquePointer?

    init(link: LinkInfo, request: UnsafeRawBufferPointer) throws(KernelError) {
        self.link = link
        monitor = try systemCall("listen for link changes") { CLinuxShim_link_monitor_open() }
        guard let call = CLinuxShim_netlink_call_start(NETLINK_ROUTE, request.baseAddress, request.count) else {
            let code = errno
            close(monitor)
            throw KernelError("start ip link del \(link.name)", errno: code)
        }
        self.call = call
    }

    /// True once the kernel announced the link's removal: it is gone from the namespace with its
    /// addresses and routes. False when the request was answered first or the announcement could
    /// not be read; `finish()` then says what happened.
    public func waitUntilRemoved() -> Bool {
        guard let call else { return false }
        return CLinuxShim_link_monitor_wait_removed(monitor, link.index, CLinuxShim_netlink_call_done_fd(call)) == 1
    }

    /// Waits for the kernel's answer. Returns false when the link was already gone.
    @discardableResult
    public func finish() throws(KernelError) -> Bool {
        guard let call else { return true }
        self.call = nil
        let rc = CLinuxShim_netlink_call_finish(call)
        if rc < 0 {
            let error = KernelError("ip link del \(link.name)", errno: -rc)
            if error.isNotFound { return false }
            throw error
        }
        return true
    }

    deinit {
        if let call { _ = CLinuxShim_netlink_call_finish(call) }
        close(monitor)
    }
}
