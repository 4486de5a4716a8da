internal import CNFTables
import Netlink
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One nf_tables request: an `NFT_MSG_*` message for the inet family.
struct NFTRequest: Sendable {
    var message: UInt32
    /// NLM_F_CREATE, NLM_F_APPEND, NLM_F_DUMP ... (NLM_F_REQUEST and, in batches, NLM_F_ACK are added).
    var flags: Int32 = 0
    var attributes: [NetlinkAttribute]
    /// The request as an `nft` command, for error messages.
    var what: String
}

/// A message the kernel answered a dump or get with.
struct NFTReply {
    var attributes: [ReceivedAttribute]
}

/// A NETLINK_NETFILTER socket in the calling thread's network namespace.
///
/// Changes go in batches (NFNL_MSG_BATCH_BEGIN ... END), which nf_tables applies as one
/// transaction: all of it or nothing, never interleaved with another process's batch.
final class NFTSocket {
    let fd: Int32
    private var sequence: UInt32 = 0
    /// Not zeroed: a socket that reads one short answer should not fault in 128 KiB first (a
    /// zero-filled array cost every DEL and every ipMasq ADD 32 page faults).
    private let receive = UnsafeMutableRawBufferPointer.allocate(byteCount: NFTSocket.receiveSize, alignment: 16)

    init() throws(KernelError) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_NETFILTER)
        if fd < 0 { throw KernelError("open a netfilter netlink socket", errno: errno) }
        self.fd = fd
        // Best effort: the kernel's own words for a refusal (extended ack), and acks that do not
        // echo the whole request back.
        var on: Int32 = 1
        _ = setsockopt(fd, CNFTables_SOL_NETLINK, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fd, CNFTables_SOL_NETLINK, NETLINK_CAP_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit {
        close(fd)
        receive.deallocate()
    }

    // MARK: Batches

    /// Sends `requests` as one transaction and waits for every ack. The first request the kernel
    /// refused becomes the error (later refusals usually follow from it).
    func commit(_ requests: [NFTRequest]) throws(KernelError) {
        guard !requests.isEmpty else { return }
        var buffer: [UInt8] = []
        let first = nextSequence()
        appendMessage(&buffer, type: UInt16(CNFTables_MSG_BATCH_BEGIN), flags: Int32(NLM_F_REQUEST), sequence: first,
                      family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES), attributes: [])
        var pending: [UInt32: String] = [:]
        for request in requests {
            let sequence = nextSequence()
            pending[sequence] = request.what
            appendMessage(&buffer, type: Self.messageType(request.message),
                          flags: Int32(NLM_F_REQUEST | NLM_F_ACK) | request.flags, sequence: sequence,
                          family: UInt8(NFPROTO_INET), resourceID: 0, attributes: request.attributes)
        }
        appendMessage(&buffer, type: UInt16(CNFTables_MSG_BATCH_END), flags: Int32(NLM_F_REQUEST), sequence: nextSequence(),
                      family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES), attributes: [])
        try send(buffer, what: requests[0].what)

        // nfnetlink runs the whole batch inside sendto(), so every ack is queued by now: read
        // them without blocking, as nft does.
        var refusals: [(sequence: UInt32, code: Int32, text: String?)] = []
        while true {
            let count = recv(fd, receive.baseAddress, Self.receiveSize, Int32(MSG_DONTWAIT))
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { break }
                throw KernelError("read the kernel's answer to \(requests[0].what)", errno: code)
            }
            for message in Self.messages(in: received(count)) where message.type == UInt16(NLMSG_ERROR) {
                guard let error = Self.errorAck(message) else { continue }
                pending[message.sequence] = nil
                if error.code != 0 {
                    refusals.append((message.sequence, error.code, error.text))
                }
            }
        }
        if let refusal = refusals.min(by: { $0.sequence < $1.sequence }) {
            // The kernel answers for the batch as a whole with the sequence of its first message.
            let index = Int(refusal.sequence &- first) - 1
            let what = requests.indices.contains(index) ? requests[index].what : "commit the nftables transaction"
            throw KernelError(what + (refusal.text.map { " (kernel: \($0))" } ?? ""), errno: refusal.code)
        }
        if let missing = pending.min(by: { $0.key < $1.key }) {
            throw KernelError("\(missing.value): the kernel did not answer", errno: EPROTO)
        }
    }

    // MARK: Dumps and gets

    /// Sends one get (or, with NLM_F_DUMP in the request's flags, dump) and returns the kernel's
    /// replies. A refusal (ENOENT for a missing table, say) is thrown.
    func query(_ request: NFTRequest) throws(KernelError) -> [NFTReply] {
        for _ in 0..<5 {
            var buffer: [UInt8] = []
            let sequence = nextSequence()
            // A get ends with an ack; a dump ends with NLMSG_DONE, so it asks for none.
            let isDump = request.flags & Int32(NLM_F_DUMP) == Int32(NLM_F_DUMP)
            appendMessage(&buffer, type: Self.messageType(request.message),
                          flags: Int32(NLM_F_REQUEST) | (isDump ? 0 : Int32(NLM_F_ACK)) | request.flags,
                          sequence: sequence, family: UInt8(NFPROTO_INET), resourceID: 0, attributes: request.attributes)
            try send(buffer, what: request.what)
            var replies: [NFTReply] = []
            var interrupted = false
            receiving: while true {
                let count = recv(fd, receive.baseAddress, Self.receiveSize, 0)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw KernelError("read the answer to \(request.what)", errno: errno)
                }
                if count == 0 { throw KernelError("\(request.what): the kernel did not answer", errno: EPROTO) }
                for message in Self.messages(in: received(count)) where message.sequence == sequence {
                    if message.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                    switch message.type {
                    case UInt16(NLMSG_ERROR):
                        guard let error = Self.errorAck(message) else { continue }
                        if error.code != 0 {
                            throw KernelError(request.what + (error.text.map { " (kernel: \($0))" } ?? ""), errno: error.code)
                        }
                        if !isDump { break receiving }
                    case UInt16(NLMSG_DONE):
                        if message.payload.count >= 4 {
                            let status = readHost(Int32.self, message.payload, at: message.payload.startIndex)
                            if status < 0 { throw KernelError(request.what, errno: -status) }
                        }
                        break receiving
                    default:
                        guard message.payload.count >= 4 else { continue }
                        replies.append(NFTReply(attributes: ReceivedAttribute.parse(message.payload.dropFirst(4))))
                    }
                }
            }
            // The ruleset changed during the dump: its pieces may not fit together; ask again.
            if !interrupted { return replies }
        }
        throw KernelError("\(request.what): the ruleset kept changing during the dump", errno: EAGAIN)
    }

    // MARK: Framing

    static let receiveSize = 1 << 17

    /// The `count` bytes the last recv put in the buffer.
    private func received(_ count: Int) -> ArraySlice<UInt8> {
        Array(UnsafeRawBufferPointer(rebasing: receive[0..<count]))[...]
    }

    static func messageType(_ message: UInt32) -> UInt16 {
        UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(message)
    }

    private func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// nlmsghdr + nfgenmsg + attributes.
    private func appendMessage(_ buffer: inout [UInt8], type: UInt16, flags: Int32, sequence: UInt32, family: UInt8,
                               resourceID: UInt16, attributes: [NetlinkAttribute]) {
        let start = buffer.count
        buffer += [UInt8](repeating: 0, count: 16)
        buffer += [family, UInt8(NFNETLINK_V0)] + hostBytes(resourceID.bigEndian)
        for attribute in attributes { attribute.encode(into: &buffer) }
        let header = hostBytes(UInt32(buffer.count - start)) + hostBytes(type) + hostBytes(UInt16(truncatingIfNeeded: flags))
            + hostBytes(sequence) + hostBytes(UInt32(0))
        buffer.replaceSubrange(start..<start + 16, with: header)
    }

    private func send(_ buffer: [UInt8], what: String) throws(KernelError) {
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        while true {
            let sent = buffer.withUnsafeBytes { bytes in
                withUnsafePointer(to: &kernel) { address in
                    address.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                    }
                }
            }
            if sent >= 0 { return }
            if errno == EINTR { continue }
            throw KernelError("send \(what)", errno: errno)
        }
    }

    struct Message {
        var type: UInt16
        var flags: UInt16
        var sequence: UInt32
        var payload: ArraySlice<UInt8>
    }

    static func messages(in bytes: ArraySlice<UInt8>) -> [Message] {
        var result: [Message] = []
        var offset = bytes.startIndex
        while offset + 16 <= bytes.endIndex {
            let length = Int(readHost(UInt32.self, bytes, at: offset))
            guard length >= 16, offset + length <= bytes.endIndex else { break }
            result.append(Message(type: readHost(UInt16.self, bytes, at: offset + 4),
                                  flags: readHost(UInt16.self, bytes, at: offset + 6),
                                  sequence: readHost(UInt32.self, bytes, at: offset + 8),
                                  payload: bytes[(offset + 16)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
        return result
    }

    /// An NLMSG_ERROR's errno (0 for an ack) and the kernel's extended-ack message, if any.
    static func errorAck(_ message: Message) -> (code: Int32, text: String?)? {
        let payload = message.payload
        guard payload.count >= 4 + 16 else { return nil }
        let code = -readHost(Int32.self, payload, at: payload.startIndex)
        guard message.flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return (code, nil) }
        // With NETLINK_CAP_ACK only the request's header is echoed, unless the kernel says it kept all.
        var echoed = 16
        if message.flags & UInt16(NLM_F_CAPPED) == 0 {
            echoed = Int(readHost(UInt32.self, payload, at: payload.startIndex + 4))
        }
        let tlvStart = payload.startIndex + 4 + ((echoed + 3) & ~3)
        guard tlvStart <= payload.endIndex else { return (code, nil) }
        let text = ReceivedAttribute.parse(payload[tlvStart...])[UInt16(NLMSGERR_ATTR_MSG.rawValue)]?.string
        return (code, text.flatMap { $0.isEmpty ? nil : $0 })
    }
}
