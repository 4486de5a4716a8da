internal import CNFTables
import LinuxSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One nf_tables request: an `NFT_MSG_*` message for the inet family.
package struct NFTRequest: Sendable {
    var message: UInt32
    /// NLM_F_CREATE, NLM_F_APPEND, NLM_F_DUMP ... (NLM_F_REQUEST and, in batches, NLM_F_ACK are added).
    var flags: Int32 = 0
    var attributes: [NetlinkAttribute]
    /// The request as an `nft` command, for error messages: made only when one is, since an ADD
    /// sends a dozen requests and formatting each one's text cost more than encoding it.
    var describe: @Sendable () -> String
    package var what: String { describe() }

    init(message: UInt32, flags: Int32 = 0, attributes: [NetlinkAttribute], what: @autoclosure @escaping @Sendable () -> String) {
        self.message = message
        self.flags = flags
        self.attributes = attributes
        self.describe = what
    }
}

/// A message the kernel answered a dump or get with.
package struct NFTReply {
    var attributes: [ReceivedAttribute]
}

/// A NETLINK_NETFILTER socket in the calling thread's network namespace.
///
/// Changes go in batches (NFNL_MSG_BATCH_BEGIN ... END), which nf_tables applies as one
/// transaction: all of it or nothing, never interleaved with another process's batch.
package final class NFTSocket {
    let fd: Int32
    private var sequence: UInt32 = 0
    /// Not zeroed: a socket that reads one short answer should not fault in 128 KiB first (a
    /// zero-filled array showed as page faults on every DEL and every ipMasq ADD).
    private let receive = UnsafeMutableRawBufferPointer.allocate(byteCount: NFTSocket.receiveSize, alignment: 16)

    package init() throws(NetlinkError) {
        fd = try openNetfilterSocket()
    }

    deinit {
        close(fd)
        receive.deallocate()
    }

    // MARK: Batches

    /// Sends `requests` as one transaction and waits for every ack. The first request the kernel
    /// refused becomes the error (later refusals usually follow from it).
    ///
    /// With `ifGeneration`, the kernel applies the batch only if the ruleset is still at that
    /// generation (`NFT.getGeneration`), else refuses all of it with ERESTART: what was read
    /// before deciding what to write is then known unchanged when the write lands.
    package func commit(_ requests: [NFTRequest], ifGeneration generation: UInt32? = nil) throws(NetlinkError) {
        guard !requests.isEmpty else { return }
        // BATCH_BEGIN takes the first sequence number, the requests the next ones, BATCH_END the last.
        let first = sequence &+ 1
        sequence &+= UInt32(truncatingIfNeeded: requests.count + 2)
        try send(Self.encodeBatch(requests, firstSequence: first, generation: generation), what: requests[0].what)
        // Which requests the kernel has answered, by their place in the batch (a Dictionary keyed
        // by sequence would cost the runtime a generic instantiation on every commit).
        var answered = [Bool](repeating: false, count: requests.count)

        // nfnetlink runs the whole batch inside sendto(), so every ack is queued by now: read
        // them without blocking, as nft does.
        var refusals: [(sequence: UInt32, code: Int32, text: String?)] = []
        while true {
            let count = retryingInterrupts { recv(fd, receive.baseAddress, Self.receiveSize, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                let code = errno
                if code == EAGAIN || code == EWOULDBLOCK { break }
                throw NetlinkError("read the kernel's answer to \(requests[0].what)", errno: code)
            }
            for message in NetlinkMessage.Messages(received(count)) {
                guard let code = message.errorCode else { continue }
                let index = Int(message.sequence &- first) - 1
                if answered.indices.contains(index) { answered[index] = true }
                if code != 0 {
                    refusals.append((message.sequence, code, message.errorText))
                }
            }
        }
        if let refusal = refusals.min(by: { $0.sequence < $1.sequence }) {
            // The kernel answers for the batch as a whole with the sequence of its first message.
            let index = Int(refusal.sequence &- first) - 1
            let what = requests.indices.contains(index) ? requests[index].what : "commit the nftables transaction"
            throw NetlinkError(what + (refusal.text.map { " (kernel: \($0))" } ?? ""), errno: refusal.code)
        }
        if let missing = answered.firstIndex(of: false) {
            throw NetlinkError("\(requests[missing].what): the kernel did not answer", errno: EPROTO)
        }
    }

    // MARK: Dumps and gets

    /// Sends one get (or, with NLM_F_DUMP in the request's flags, dump) and returns the kernel's
    /// replies. A refusal (ENOENT for a missing table, say) is thrown.
    package func query(_ request: NFTRequest) throws(NetlinkError) -> [NFTReply] {
        for _ in 0..<5 {
            let sequence = nextSequence()
            let isDump = request.flags & Int32(NLM_F_DUMP) == Int32(NLM_F_DUMP)
            try send(Self.encodeQuery(request, sequence: sequence), what: request.what)
            var replies: [NFTReply] = []
            var interrupted = false
            receiving: while true {
                let count = try socketCall("read the answer to \(request.what)") { recv(fd, receive.baseAddress, Self.receiveSize, 0) }
                if count == 0 { throw NetlinkError("\(request.what): the kernel did not answer", errno: EPROTO) }
                for message in NetlinkMessage.Messages(received(count)) where message.sequence == sequence {
                    if message.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                    switch message.type {
                    case UInt16(NLMSG_ERROR):
                        let code = message.errorCode ?? EBADMSG
                        if code != 0 {
                            throw NetlinkError(request.what + (message.errorText.map { " (kernel: \($0))" } ?? ""), errno: code)
                        }
                        if !isDump { break receiving }
                    case UInt16(NLMSG_DONE):
                        let status = message.doneStatus
                        if status < 0 { throw NetlinkError(request.what, errno: -status) }
                        break receiving
                    default:
                        guard message.payload.count >= 4 else { continue }
                        // Copied out: the receive buffer is reused by the next recv.
                        replies.append(NFTReply(attributes: ReceivedAttribute.parse(Array(message.payload[4...])[...])))
                    }
                }
            }
            // The ruleset changed during the dump: its pieces may not fit together; ask again.
            if !interrupted { return replies }
        }
        throw NetlinkError("\(request.what): the ruleset kept changing during the dump", errno: EAGAIN)
    }

    /// The answers to several gets sent at once: each request's replies, and the errno of each
    /// one the kernel refused (0 where it answered).
    package struct Answers {
        package var replies: [[NFTReply]]
        package var errors: [Int32]
    }

    /// Sends every request (gets, no dumps: a socket runs one dump at a time) in one sendto, and
    /// reads the answers: one round trip instead of one per request. A refusal is not thrown
    /// but kept in `errors` (ENOENT for an element that is not there is an answer too).
    package func queryEach(_ requests: [NFTRequest]) throws(NetlinkError) -> Answers {
        precondition(requests.allSatisfy { $0.flags & Int32(NLM_F_DUMP) != Int32(NLM_F_DUMP) }, "queryEach sends gets only")
        var answers = Answers(replies: [[NFTReply]](repeating: [], count: requests.count),
                              errors: [Int32](repeating: 0, count: requests.count))
        guard let firstRequest = requests.first else { return answers }
        let first = sequence &+ 1
        var buffer: [UInt8] = []
        for request in requests {
            buffer += Self.encodeQuery(request, sequence: nextSequence())
        }
        try send(buffer, what: firstRequest.what)
        var open = requests.count
        while open > 0 {
            let count = try socketCall("read the answer to \(firstRequest.what)") { recv(fd, receive.baseAddress, Self.receiveSize, 0) }
            if count == 0 { throw NetlinkError("\(firstRequest.what): the kernel did not answer", errno: EPROTO) }
            for message in NetlinkMessage.Messages(received(count)) {
                let index = Int(message.sequence &- first)
                guard requests.indices.contains(index) else { continue }
                if message.type == UInt16(NLMSG_ERROR) {
                    answers.errors[index] = message.errorCode ?? EBADMSG
                    open -= 1
                } else if message.payload.count >= 4 {
                    answers.replies[index].append(NFTReply(attributes: ReceivedAttribute.parse(Array(message.payload[4...])[...])))
                }
            }
        }
        return answers
    }

    // MARK: Framing

    static let receiveSize = 1 << 17

    /// The `count` bytes the last recv put in the buffer.
    private func received(_ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: receive[0..<count])
    }

    static func messageType(_ message: UInt32) -> UInt16 {
        UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(message)
    }

    private func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// The bytes `commit` sends for `requests`: BATCH_BEGIN with sequence number `firstSequence`,
    /// each request (with NLM_F_REQUEST and NLM_F_ACK) numbered from the next one, then BATCH_END.
    static func encodeBatch(_ requests: [NFTRequest], firstSequence: UInt32, generation: UInt32? = nil) -> [UInt8] {
        var buffer: [UInt8] = []
        var sequence = firstSequence
        // NFNL_BATCH_GENID (linux/netfilter/nfnetlink.h), big-endian like every nfnetlink u32.
        let condition = generation.map { [NetlinkAttribute.u32(UInt16(NFNL_BATCH_GENID.rawValue), $0)] } ?? []
        appendMessage(&buffer, type: UInt16(CNFTables_MSG_BATCH_BEGIN), flags: Int32(NLM_F_REQUEST), sequence: sequence,
                      family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES), attributes: condition)
        for request in requests {
            sequence &+= 1
            appendMessage(&buffer, type: messageType(request.message),
                          flags: Int32(NLM_F_REQUEST | NLM_F_ACK) | request.flags, sequence: sequence,
                          family: UInt8(NFPROTO_INET), resourceID: 0, attributes: request.attributes)
        }
        appendMessage(&buffer, type: UInt16(CNFTables_MSG_BATCH_END), flags: Int32(NLM_F_REQUEST), sequence: sequence &+ 1,
                      family: UInt8(AF_UNSPEC), resourceID: UInt16(NFNL_SUBSYS_NFTABLES), attributes: [])
        return buffer
    }

    /// The bytes `query` sends for `request`: a get asks for an ack (it ends with one), a dump
    /// does not (it ends with NLMSG_DONE).
    static func encodeQuery(_ request: NFTRequest, sequence: UInt32) -> [UInt8] {
        var buffer: [UInt8] = []
        let isDump = request.flags & Int32(NLM_F_DUMP) == Int32(NLM_F_DUMP)
        appendMessage(&buffer, type: messageType(request.message),
                      flags: Int32(NLM_F_REQUEST) | (isDump ? 0 : Int32(NLM_F_ACK)) | request.flags,
                      sequence: sequence, family: UInt8(NFPROTO_INET), resourceID: 0, attributes: request.attributes)
        return buffer
    }

    /// nlmsghdr + nfgenmsg + attributes.
    private static func appendMessage(_ buffer: inout [UInt8], type: UInt16, flags: Int32, sequence: UInt32, family: UInt8,
                                      resourceID: UInt16, attributes: [NetlinkAttribute]) {
        NetlinkMessage.append(to: &buffer, type: type, flags: UInt16(truncatingIfNeeded: flags), sequence: sequence,
                              familyHeader: [family, UInt8(NFNETLINK_V0)] + hostBytes(resourceID.bigEndian), attributes: attributes)
    }

    private func send(_ buffer: [UInt8], what: String) throws(NetlinkError) {
        try sendToKernel(fd, buffer, what: what)
    }

}
