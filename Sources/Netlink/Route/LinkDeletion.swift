internal import CNetlink
internal import CNFTables
import CNetlinkSockets
import LinuxSystem
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `ip link del dev <index>`, sent from a thread of its own (`CNetlinkSockets_send`).
///
/// The kernel unlists a deleted link, flushes its addresses and routes and announces RTM_DELLINK
/// at once, then waits for RCU grace periods (most of a DEL's time) before it answers the
/// request. `waitUntilRemoved()` returns at the announcement, so work that must follow the
/// removal (a DEL releasing the pod's address) can run during that wait; `finish()` waits for the
/// answer. The listening socket is open before the request is sent, so the announcement cannot
/// be missed, except when the kernel drops notifications under load: then `waitUntilRemoved()`
/// says it cannot tell and the caller waits for `finish()`.
public final class LinkDeletion {
    public let link: LinkInfo
    private let monitor: LinkMonitor
    private let requestSocket: Int32
    private var call: OpaquePointer?

    init(link: LinkInfo, request: [UInt8]) throws(NetlinkError) {
        self.link = link
        monitor = try LinkMonitor()
        requestSocket = Int32(try socketCall("open a netlink socket") {
            CNetlinkSockets_open(NETLINK_ROUTE, 0, 0)
        })
        guard let call = request.withUnsafeBytes({ CNetlinkSockets_send_start(requestSocket, $0.baseAddress, $0.count) }) else {
            let code = errno
            close(requestSocket)
            throw NetlinkError("start ip link del \(link.name)", errno: code)
        }
        self.call = call
    }

    /// True once the kernel announced the link's removal: it is gone from the namespace with its
    /// addresses and routes. False when the request was answered first or the announcement could
    /// not be read; `finish()` then says what happened.
    public func waitUntilRemoved() -> Bool {
        guard let call else { return false }
        return monitor.waitForRemoval(of: link.index, orUntilReadable: CNetlinkSockets_send_done_fd(call))
    }

    /// Waits for the kernel's answer. Returns false when the link was already gone.
    @discardableResult
    public func finish() throws(NetlinkError) -> Bool {
        guard let call else { return true }
        self.call = nil
        if CNetlinkSockets_send_finish(call) != 0 {
            throw NetlinkError("send ip link del \(link.name)", errno: errno)
        }
        // The answer was queued before the send returned.
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let received = try socketCall("read the answer to ip link del \(link.name)") {
                buffer.withUnsafeMutableBytes { recv(requestSocket, $0.baseAddress, $0.count, 0) }
            }
            let answer = buffer.withUnsafeBytes { bytes -> Int32? in
                for message in NetlinkMessage.Messages(UnsafeRawBufferPointer(rebasing: bytes[0..<received])) {
                    if let code = message.errorCode { return code }
                }
                return nil
            }
            if let code = answer {
                if code == 0 { return true }
                let error = NetlinkError("ip link del \(link.name)", errno: code)
                if error.isNotFound { return false }
                throw error
            }
        }
    }

    deinit {
        if let call { _ = CNetlinkSockets_send_finish(call) }
        close(requestSocket)
    }
}

/// A NETLINK_ROUTE socket subscribed to link notifications (`ip monitor link`).
final class LinkMonitor {
    let fd: Int32

    init() throws(NetlinkError) {
        fd = Int32(try socketCall("listen for link changes") { CNetlinkSockets_open(NETLINK_ROUTE, UInt32(RTMGRP_LINK), 1) })
    }

    deinit { close(fd) }

    /// Reads notifications until one announces RTM_DELLINK for `index` (true) or `doneFD`
    /// becomes readable first (false). False too when the monitor fails, or the kernel dropped
    /// notifications (ENOBUFS): the caller then cannot tell, and must wait for the request.
    func waitForRemoval(of index: Int32, orUntilReadable doneFD: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: doneFD, events: Int16(POLLIN), revents: 0)]
            if retryingInterrupts({ poll(&fds, 2, -1) }) < 0 { return false }
            // Notifications first: the kernel announces the removal before it answers the request.
            while fds[0].revents != 0 {
                let received = retryingInterrupts { buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
                if received < 0 {
                    let code = errno
                    if code == EAGAIN || code == EWOULDBLOCK { break }
                    return false
                }
                let removed = buffer.withUnsafeBytes { bytes in
                    NetlinkMessage.Messages(UnsafeRawBufferPointer(rebasing: bytes[0..<received])).contains { message in
                        guard message.type == UInt16(RTM_DELLINK), message.payload.count >= MemoryLayout<ifinfomsg>.size else { return false }
                        // AF_BRIDGE deletions announce a port leaving its bridge, not the link going.
                        return message.payload[0] == UInt8(AF_UNSPEC) && message.payload.loadUnaligned(fromByteOffset: 4, as: Int32.self) == index
                    }
                }
                if removed { return true }
            }
            if fds[1].revents != 0 { return false }
        }
    }
}
