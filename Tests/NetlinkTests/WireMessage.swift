import Testing

// Netlink messages taken apart for comparing podwire's requests with the ones `nft` and `ip`
// send. Both sides are decoded into the same tree, the documented differences are applied to
// the reference's tree, and the two are compared as bytes, re-encoded: a tree re-encodes to the
// exact bytes it was decoded from (checked for every capture), so what is compared is the wire
// format itself, not an interpretation of it.
//
// Written from the kernel's UAPI (linux/netlink.h), independently of the Netlink module's framing.

/// One netlink message: nlmsghdr, the family header (nfgenmsg, ifinfomsg, ifaddrmsg, rtmsg),
/// and the attributes.
struct WireMessage: Equatable, CustomStringConvertible {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var port: UInt32
    var familyHeader: [UInt8]
    var attributes: [WireAttribute]

    /// How a netlink family lays out its messages.
    struct Layout: Sendable {
        /// The size of the family header of a message of this type.
        var familyHeaderSize: @Sendable (_ messageType: UInt16) -> Int
        /// For an attribute (its raw type, NLA_F_* included) at `path` (the types of the nests
        /// it is in, then its own, NLA_F_* masked) of a message of `messageType`: nil for a leaf,
        /// else the size of the fixed header its nested attributes follow (0 for a plain nest).
        var nestedHeaderSize: @Sendable (_ messageType: UInt16, _ path: [UInt16], _ rawType: UInt16) -> Int?
    }

    /// The messages in `bytes`, as one send() carries them (each padded to 4 bytes).
    static func decodeAll(_ bytes: [UInt8], layout: Layout) -> [WireMessage] {
        var result: [WireMessage] = []
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(read(UInt32.self, bytes, offset))
            guard length >= 16, offset + length <= bytes.count else {
                Issue.record("truncated netlink message at byte \(offset) of \(bytes.count)")
                break
            }
            let type = read(UInt16.self, bytes, offset + 4)
            let headerSize = layout.familyHeaderSize(type)
            let payload = Array(bytes[(offset + 16)..<(offset + length)])
            let attributeStart = min(aligned(headerSize), payload.count)
            result.append(WireMessage(
                type: type, flags: read(UInt16.self, bytes, offset + 6),
                sequence: read(UInt32.self, bytes, offset + 8), port: read(UInt32.self, bytes, offset + 12),
                familyHeader: Array(payload.prefix(headerSize)),
                attributes: WireAttribute.decodeAll(payload[attributeStart...], messageType: type, path: [], layout: layout)))
            offset += aligned(length)
        }
        if offset != bytes.count { Issue.record("\(bytes.count - offset) bytes after the last netlink message") }
        return result
    }

    /// The message's bytes, padded to 4 (nlmsg_len counts the padding of the last attribute, as
    /// libnl, libmnl and iproute2 all write it).
    var encoded: [UInt8] {
        var body = familyHeader
        body += [UInt8](repeating: 0, count: aligned(body.count) - body.count)
        for attribute in attributes { attribute.encode(into: &body) }
        return bytes(UInt32(16 + body.count)) + bytes(type) + bytes(flags) + bytes(sequence) + bytes(port) + body
    }

    // MARK: Editing

    /// Applies `body` to the attribute lists at `path`: the message's own attributes for [], else
    /// the children of every attribute of type `path[0]`, and so on down.
    mutating func edit(_ path: [UInt16], _ body: (inout [WireAttribute]) -> Void) {
        WireAttribute.edit(&attributes, path[...], body)
    }

    /// Removes the attributes of type `type` at `path`.
    mutating func remove(_ type: UInt16, at path: [UInt16] = []) {
        edit(path) { $0.removeAll { $0.type == type } }
    }

    /// Puts the attributes at `path` in the order of their types in `order` (which must name them all).
    mutating func reorder(at path: [UInt16] = [], _ order: [UInt16]) {
        edit(path) { $0.reorder(order) }
    }

    /// Applies `body` to each attribute of type `type` at `path`.
    mutating func update(_ type: UInt16, at path: [UInt16] = [], _ body: (inout WireAttribute) -> Void) {
        edit(path) { attributes in
            for index in attributes.indices where attributes[index].type == type { body(&attributes[index]) }
        }
    }

    /// Inserts `attribute` at `index` of the attributes at `path`.
    mutating func insert(_ attribute: WireAttribute, at index: Int, in path: [UInt16] = []) {
        edit(path) { $0.insert(attribute, at: index) }
    }

    /// The first attribute of type `type` at `path`.
    func attribute(_ type: UInt16, at path: [UInt16] = []) -> WireAttribute? {
        var found: WireAttribute? = nil
        var copy = self
        copy.edit(path) { attributes in found = found ?? attributes.first { $0.type == type } }
        return found
    }

    var description: String {
        "type \(hex(type)) flags \(hex(flags)) seq \(sequence) port \(port) header \(hexString(familyHeader))\n"
            + attributes.map { $0.description(indent: 1) }.joined()
    }
}

/// One attribute: a payload, or attributes nested after a fixed header.
struct WireAttribute: Equatable {
    enum Value: Equatable {
        case bytes([UInt8])
        case nested(header: [UInt8], [WireAttribute])
    }

    /// As sent: NLA_F_NESTED and NLA_F_NET_BYTEORDER included.
    var rawType: UInt16
    var value: Value

    /// The type without NLA_F_NESTED and NLA_F_NET_BYTEORDER.
    var type: UInt16 { rawType & 0x3fff }

    static func bytes(_ rawType: UInt16, _ bytes: [UInt8]) -> WireAttribute { WireAttribute(rawType: rawType, value: .bytes(bytes)) }

    /// A 32-bit value in host byte order, as rtnetlink takes them.
    static func hostU32(_ rawType: UInt16, _ value: UInt32) -> WireAttribute { .bytes(rawType, NetlinkTests.bytes(value)) }

    var payload: [UInt8]? {
        if case .bytes(let bytes) = value { return bytes }
        return nil
    }

    static func decodeAll(_ bytes: ArraySlice<UInt8>, messageType: UInt16, path: [UInt16],
                          layout: WireMessage.Layout) -> [WireAttribute] {
        var result: [WireAttribute] = []
        var offset = bytes.startIndex
        while offset + 4 <= bytes.endIndex {
            let length = Int(read(UInt16.self, bytes, offset))
            let rawType = read(UInt16.self, bytes, offset + 2)
            guard length >= 4, offset + length <= bytes.endIndex else {
                Issue.record("truncated attribute at \(path) + \(rawType & 0x3fff)")
                return result
            }
            let payload = bytes[(offset + 4)..<(offset + length)]
            let here = path + [rawType & 0x3fff]
            if let headerSize = layout.nestedHeaderSize(messageType, here, rawType) {
                let start = payload.startIndex + min(headerSize, payload.count)
                result.append(WireAttribute(rawType: rawType, value: .nested(
                    header: Array(payload[..<start]),
                    decodeAll(payload[start...], messageType: messageType, path: here, layout: layout))))
            } else {
                result.append(.bytes(rawType, Array(payload)))
            }
            offset += aligned(length)
        }
        if offset < bytes.endIndex { Issue.record("\(bytes.endIndex - offset) stray bytes after the attributes at \(path)") }
        return result
    }

    func encode(into buffer: inout [UInt8]) {
        var payload: [UInt8]
        switch value {
        case .bytes(let bytes):
            payload = bytes
        case .nested(let header, let children):
            payload = header
            for child in children { child.encode(into: &payload) }
        }
        buffer += NetlinkTests.bytes(UInt16(4 + payload.count)) + NetlinkTests.bytes(rawType) + payload
        buffer += [UInt8](repeating: 0, count: aligned(buffer.count) - buffer.count)
    }

    static func edit(_ attributes: inout [WireAttribute], _ path: ArraySlice<UInt16>, _ body: (inout [WireAttribute]) -> Void) {
        guard let first = path.first else { return body(&attributes) }
        for index in attributes.indices where attributes[index].type == first {
            guard case .nested(let header, var children) = attributes[index].value else { continue }
            edit(&children, path.dropFirst(), body)
            attributes[index].value = .nested(header: header, children)
        }
    }

    func description(indent: Int) -> String {
        let pad = String(repeating: "  ", count: indent)
        switch value {
        case .bytes(let bytes):
            return "\(pad)\(type)\(rawType != type ? " (raw \(hex(rawType)))" : ""): \(hexString(bytes))\n"
        case .nested(let header, let children):
            let fixed = header.isEmpty ? "" : " header \(hexString(header))"
            return "\(pad)\(type)\(rawType != type ? " (raw \(hex(rawType)))" : "") {\(fixed)\n"
                + children.map { $0.description(indent: indent + 1) }.joined() + "\(pad)}\n"
        }
    }
}

extension [WireAttribute] {
    /// Puts the attributes in the order of their types in `order` (which must name them all).
    mutating func reorder(_ order: [UInt16]) {
        #expect(allSatisfy { order.contains($0.type) }, "reordering as \(order) would drop an attribute")
        self = order.flatMap { type in filter { $0.type == type } }
    }
}

// MARK: Comparing

/// Expects `podwire` and `reference` (a capture with its documented differences applied) to be
/// the same bytes, message for message, once each message's sequence number and port are zeroed
/// on both sides: the sender numbers its messages (nft from 0, ip from the clock, podwire from 1)
/// and the port is the socket's.
func expectSameWire(_ podwire: [WireMessage], _ reference: [WireMessage], _ what: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    func unnumbered(_ messages: [WireMessage]) -> [WireMessage] {
        messages.map { var message = $0; message.sequence = 0; message.port = 0; return message }
    }
    let ours = unnumbered(podwire), theirs = unnumbered(reference)
    #expect(!theirs.isEmpty, "\(what): no reference message", sourceLocation: sourceLocation)
    #expect(ours.count == theirs.count, "\(what): podwire sends \(ours.count) messages, the reference \(theirs.count)",
            sourceLocation: sourceLocation)
    for (index, (mine, other)) in zip(ours, theirs).enumerated() {
        let same = mine.encoded == other.encoded // (not in #expect: it would print both as decimal arrays)
        #expect(same, """
            \(what), message \(index): podwire
            \(hexString(mine.encoded))
            \(mine)reference
            \(hexString(other.encoded))
            \(other)
            """, sourceLocation: sourceLocation)
    }
}

/// Expects `bytes` to decode into messages that re-encode to exactly `bytes`: nothing the
/// comparison would not see (padding, a length counted differently) is lost by decoding.
func expectRoundTrip(_ bytes: [UInt8], layout: WireMessage.Layout, _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    let reencoded = WireMessage.decodeAll(bytes, layout: layout).flatMap(\.encoded)
    let same = reencoded == bytes
    #expect(same, "\(what) does not survive decoding:\n\(hexString(bytes))\n\(hexString(reencoded))",
            sourceLocation: sourceLocation)
}

// MARK: Bytes

/// Bytes from hex digits; whitespace and newlines (one message a line) are ignored.
func hexBytes(_ text: String) -> [UInt8] {
    let digits = text.unicodeScalars.filter { !$0.properties.isWhitespace }.map { UInt8(ascii: $0) }
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    func value(_ digit: UInt8) -> UInt8 {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: preconditionFailure("not a lowercase hex digit: \(digit)")
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { value(digits[$0]) << 4 | value(digits[$0 + 1]) }
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
}

func hex<T: FixedWidthInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }

/// Netlink headers and rtnetlink values are in host byte order (tests run little-endian hosts).
func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

func read<T: FixedWidthInteger, C: RandomAccessCollection<UInt8>>(_ type: T.Type, _ bytes: C, _ offset: Int) -> T where C.Index == Int {
    var value = T.zero
    for (shift, byte) in bytes[offset...].prefix(MemoryLayout<T>.size).enumerated() { value |= T(byte) << (8 * shift) }
    return value
}

func aligned(_ length: Int) -> Int { (length + 3) & ~3 }
