internal import CNetlink
import CNetlinkSockets
import LinuxSystem
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
    final class QueuedRequest {
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
    public init() throws(NetlinkError) {
        nlmsg_set_default_size(Self.requestBufferSize)
        guard let socket = nl_socket_alloc() else { throw NetlinkError("nl_socket_alloc", errno: ENOMEM) }
        let rc = nl_connect(socket, NETLINK_ROUTE)
        if rc < 0 {
            nl_socket_free(socket)
            throw NetlinkError("connect rtnetlink socket", netlinkCode: rc)
        }
        // libnl keeps peeking here (see receiveWithoutPeeking): the node's links include physical
        // NICs, whose RTM_NEWLINK with every SR-IOV VF listed can outgrow any fixed buffer.
        self.socket = socket
    }

    /// A socket in `namespace`: created on a thread that entered it, used from any thread after.
    public convenience init(in namespace: NetworkNamespace) throws(NetlinkError) {
        try self.init(opening: PendingRouteSocket(in: namespace))
    }

    /// The socket `pending` was making; waits for its thread.
    public init(opening pending: PendingRouteSocket) throws(NetlinkError) {
        nlmsg_set_default_size(Self.requestBufferSize)
        let fd = pending.finish()
        guard fd >= 0 else { throw NetlinkError("open a netlink socket in \(pending.path)", errno: errno) }
        guard let socket = nl_socket_alloc() else {
            close(fd)
            throw NetlinkError("nl_socket_alloc", errno: ENOMEM)
        }
        let rc = nl_socket_set_fd(socket, NETLINK_ROUTE, fd)
        if rc < 0 {
            close(fd)
            nl_socket_free(socket)
            throw NetlinkError("adopt the netlink socket opened in \(pending.path)", netlinkCode: rc)
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
                build: (UnsafeMutablePointer<OpaquePointer?>) -> Int32) throws(NetlinkError) {
        var message: OpaquePointer? = nil
        let rc = build(&message)
        guard rc >= 0, let message else { throw NetlinkError("build the request to " + operation(), netlinkCode: rc < 0 ? rc : -NLE_NOMEM) }
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
    public func batch(_ body: () throws(NetlinkError) -> Void) throws(NetlinkError) {
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
    func transact(_ first: QueuedRequest, reply: (NetlinkMessage) -> Void = { _ in }) throws(NetlinkError) {
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
            bytes += [UInt8](repeating: 0, count: NetlinkMessage.aligned(bytes.count) - bytes.count)
            request = current.next
        }
        let fd = nl_socket_get_fd(socket)
        let sent = try socketCall("send \(count) netlink requests") { bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
        guard sent == bytes.count else { throw NetlinkError("send \(count) netlink requests", errno: EMSGSIZE) }

        let capacity = 32768
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 8)
        defer { buffer.deallocate() }
        var answered = 0
        var refusedIndex = -1, refusedCode: Int32 = 0
        while answered < count {
            let received = try socketCall("read the answers to \(count) netlink requests") { recv(fd, buffer.baseAddress, capacity, 0) }
            for message in NetlinkMessage.Messages(UnsafeRawBufferPointer(rebasing: buffer[0..<received])) {
                let index = Int(message.sequence) - 1
                guard index >= 0 && index < count else { continue }
                if let code = message.errorCode {
                    answered += 1
                    if code != 0 && (refusedIndex < 0 || index < refusedIndex) { (refusedIndex, refusedCode) = (index, code) }
                } else {
                    reply(message)
                }
            }
        }
        guard refusedIndex >= 0 else { return }
        var refused = first
        for _ in 0..<refusedIndex { refused = refused.next! }
        throw NetlinkError(refused.operation(), errno: refusedCode)
    }
}
