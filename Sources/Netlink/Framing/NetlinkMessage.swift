internal import CNFTables
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One netlink message: `struct nlmsghdr` (16 bytes, host byte order) and its payload, read in
/// place from a receive buffer (valid only while that buffer is).
///
/// Every netlink family podwire speaks is framed here: rtnetlink requests built by libnl are
/// batched and their acks read with `Messages`, nf_tables messages are built with `append`
/// (family header + attributes), and the link monitor reads notifications with `Messages`.
/// Reading never copies into arrays: each new array element type costs the Swift runtime a
/// metadata instantiation at every plugin start, and an ADD reads a handful of messages.
struct NetlinkMessage {
    static let headerSize = MemoryLayout<nlmsghdr>.size

    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    /// The bytes after the header, up to the message's length (not its padding).
    var payload: UnsafeRawBufferPointer

    /// The messages in `bytes`, as recv returns them; a truncated tail is ignored.
    struct Messages: Sequence, IteratorProtocol {
        var remaining: UnsafeRawBufferPointer

        init(_ bytes: UnsafeRawBufferPointer) { remaining = bytes }

        mutating func next() -> NetlinkMessage? {
            guard remaining.count >= NetlinkMessage.headerSize else { return nil }
            let length = Int(remaining.loadUnaligned(as: UInt32.self))
            guard length >= NetlinkMessage.headerSize, length <= remaining.count else { return nil }
            let message = NetlinkMessage(type: remaining.loadUnaligned(fromByteOffset: 4, as: UInt16.self),
                                         flags: remaining.loadUnaligned(fromByteOffset: 6, as: UInt16.self),
                                         sequence: remaining.loadUnaligned(fromByteOffset: 8, as: UInt32.self),
                                         payload: UnsafeRawBufferPointer(rebasing: remaining[NetlinkMessage.headerSize..<length]))
            remaining = UnsafeRawBufferPointer(rebasing: remaining[Swift.min(NetlinkMessage.aligned(length), remaining.count)...])
            return message
        }
    }

    /// Appends one message: the header, `familyHeader` (nfgenmsg, ifinfomsg, ...) and the
    /// attributes, the whole padded to 4 bytes. The header's length is filled in last.
    static func append(to buffer: inout [UInt8], type: UInt16, flags: UInt16, sequence: UInt32, port: UInt32 = 0,
                       familyHeader: [UInt8], attributes: [NetlinkAttribute]) {
        let start = buffer.count
        appendZeros(headerSize, to: &buffer)
        buffer += familyHeader
        appendZeros(aligned(buffer.count) - buffer.count, to: &buffer)
        for attribute in attributes { attribute.encode(into: &buffer) }
        // struct nlmsghdr: length, type, flags, sequence, port, in host byte order.
        store(UInt32(buffer.count - start), in: &buffer, at: start)
        store(type, in: &buffer, at: start + 4)
        store(flags, in: &buffer, at: start + 6)
        store(sequence, in: &buffer, at: start + 8)
        store(port, in: &buffer, at: start + 12)
    }

    static func aligned(_ length: Int) -> Int { (length + 3) & ~3 }

    var isError: Bool { type == UInt16(NLMSG_ERROR) }

    /// An NLMSG_ERROR's errno (positive; 0 for an ack); nil for any other message. A truncated
    /// one reads as EBADMSG.
    var errorCode: Int32? {
        guard isError else { return nil }
        guard payload.count >= 4 else { return EBADMSG }
        return -payload.loadUnaligned(as: Int32.self)
    }

    /// The kernel's extended-ack message of an NLMSG_ERROR, if it sent one.
    var errorText: String? {
        guard isError, flags & UInt16(NLM_F_ACK_TLVS) != 0, payload.count >= 4 + Self.headerSize else { return nil }
        // With NETLINK_CAP_ACK only the request's header is echoed, unless the kernel says it kept all.
        var echoed = Self.headerSize
        if flags & UInt16(NLM_F_CAPPED) == 0 {
            echoed = Int(payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        }
        let tlvStart = 4 + Self.aligned(echoed)
        guard tlvStart <= payload.count,
              let text = Attributes(UnsafeRawBufferPointer(rebasing: payload[tlvStart...])).first(UInt16(NLMSGERR_ATTR_MSG.rawValue))
        else { return nil }
        let string = String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
        return string.isEmpty ? nil : string
    }

    /// NLMSG_DONE's status: a dump the kernel could not finish ends with a negative errno.
    var doneStatus: Int32 {
        payload.count >= 4 ? payload.loadUnaligned(as: Int32.self) : 0
    }

    /// The attributes in `bytes` (each a 16-bit length, a 16-bit type, data padded to 4 bytes),
    /// read in place; a truncated tail is ignored. Types come without the nested/byte-order flags.
    struct Attributes: Sequence, IteratorProtocol {
        var remaining: UnsafeRawBufferPointer

        init(_ bytes: UnsafeRawBufferPointer) { remaining = bytes }

        mutating func next() -> (type: UInt16, payload: UnsafeRawBufferPointer)? {
            guard remaining.count >= 4 else { return nil }
            let length = Int(remaining.loadUnaligned(as: UInt16.self))
            let type = remaining.loadUnaligned(fromByteOffset: 2, as: UInt16.self) & CNFTables_NLA_TYPE_MASK
            guard length >= 4, length <= remaining.count else { return nil }
            let payload = UnsafeRawBufferPointer(rebasing: remaining[4..<length])
            remaining = UnsafeRawBufferPointer(rebasing: remaining[Swift.min(NetlinkMessage.aligned(length), remaining.count)...])
            return (type, payload)
        }

        /// The payload of the first attribute of `type`.
        func first(_ type: UInt16) -> UnsafeRawBufferPointer? {
            for attribute in self where attribute.type == type { return attribute.payload }
            return nil
        }

        /// The first attribute of `type` as a 32-bit value in host byte order, as rtnetlink sends them.
        func hostInt32(_ type: UInt16) -> Int32? {
            guard let payload = first(type), payload.count >= 4 else { return nil }
            return payload.loadUnaligned(as: Int32.self)
        }
    }
}

/// Sends `buffer` to the kernel (netlink port 0) on `fd`, in one sendto.
func sendToKernel(_ fd: Int32, _ buffer: [UInt8], what: @autoclosure () -> String) throws(NetlinkError) {
    var kernel = sockaddr_nl()
    kernel.nl_family = sa_family_t(AF_NETLINK)
    try socketCall("send \(what())") {
        buffer.withUnsafeBytes { bytes in
            withUnsafePointer(to: &kernel) { address in
                address.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
        }
    }
}
