internal import CNFTables
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One netlink message: `struct nlmsghdr` (16 bytes, host byte order) and its payload.
///
/// Every netlink family podwire speaks is framed here: rtnetlink requests built by libnl are
/// batched and their acks read with `parse` and `errorAck`, nf_tables messages are built with
/// `append` (family header + attributes), and the link monitor reads notifications with `parse`.
struct NetlinkMessage {
    static let headerSize = MemoryLayout<nlmsghdr>.size

    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    /// The bytes after the header, up to the message's length (not its padding).
    var payload: ArraySlice<UInt8>

    /// The messages in `bytes`, as recv returns them; a truncated tail is ignored.
    static func parse(_ bytes: ArraySlice<UInt8>) -> [NetlinkMessage] {
        var result: [NetlinkMessage] = []
        var offset = bytes.startIndex
        while offset + headerSize <= bytes.endIndex {
            let length = Int(readHost(UInt32.self, bytes, at: offset))
            guard length >= headerSize, offset + length <= bytes.endIndex else { break }
            result.append(NetlinkMessage(type: readHost(UInt16.self, bytes, at: offset + 4),
                                         flags: readHost(UInt16.self, bytes, at: offset + 6),
                                         sequence: readHost(UInt32.self, bytes, at: offset + 8),
                                         payload: bytes[(offset + headerSize)..<(offset + length)]))
            offset += aligned(length)
        }
        return result
    }

    /// Appends one message: the header, `familyHeader` (nfgenmsg, ifinfomsg, ...) and the
    /// attributes, the whole padded to 4 bytes. The header's length is filled in last.
    static func append(to buffer: inout [UInt8], type: UInt16, flags: UInt16, sequence: UInt32, port: UInt32 = 0,
                       familyHeader: [UInt8], attributes: [NetlinkAttribute]) {
        let start = buffer.count
        buffer += [UInt8](repeating: 0, count: headerSize)
        buffer += familyHeader
        buffer += [UInt8](repeating: 0, count: aligned(buffer.count) - buffer.count)
        for attribute in attributes { attribute.encode(into: &buffer) }
        let header = hostBytes(UInt32(buffer.count - start)) + hostBytes(type) + hostBytes(flags)
            + hostBytes(sequence) + hostBytes(port)
        buffer.replaceSubrange(start..<start + headerSize, with: header)
    }

    static func aligned(_ length: Int) -> Int { (length + 3) & ~3 }

    var isError: Bool { type == UInt16(NLMSG_ERROR) }
    var isDone: Bool { type == UInt16(NLMSG_DONE) }

    /// An NLMSG_ERROR's errno (positive; 0 for an ack) and the kernel's extended-ack message, if
    /// any; nil for any other message or a truncated one.
    var errorAck: (code: Int32, text: String?)? {
        guard isError, payload.count >= 4 + Self.headerSize else { return nil }
        let code = -readHost(Int32.self, payload, at: payload.startIndex)
        guard flags & UInt16(NLM_F_ACK_TLVS) != 0 else { return (code, nil) }
        // With NETLINK_CAP_ACK only the request's header is echoed, unless the kernel says it kept all.
        var echoed = Self.headerSize
        if flags & UInt16(NLM_F_CAPPED) == 0 {
            echoed = Int(readHost(UInt32.self, payload, at: payload.startIndex + 4))
        }
        let tlvStart = payload.startIndex + 4 + Self.aligned(echoed)
        guard tlvStart <= payload.endIndex else { return (code, nil) }
        let text = ReceivedAttribute.parse(payload[tlvStart...])[UInt16(NLMSGERR_ATTR_MSG.rawValue)]?.string
        return (code, text.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// NLMSG_DONE's status: a dump the kernel could not finish ends with a negative errno.
    var doneStatus: Int32 {
        payload.count >= 4 ? readHost(Int32.self, payload, at: payload.startIndex) : 0
    }
}
