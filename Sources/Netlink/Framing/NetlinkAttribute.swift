internal import CNFTables

/// One netlink attribute as podwire sends it: a payload, or attributes nested inside it.
///
/// nf_tables wants every integer in network byte order, strings NUL-terminated, and every nest
/// flagged NLA_F_NESTED (as libnftnl sends them).
struct NetlinkAttribute: Equatable, Sendable {
    enum Payload: Equatable, Sendable {
        case bytes([UInt8])
        case nested([NetlinkAttribute])
    }

    var type: UInt16
    var payload: Payload

    static func bytes(_ type: UInt16, _ bytes: [UInt8]) -> NetlinkAttribute {
        NetlinkAttribute(type: type, payload: .bytes(bytes))
    }

    static func u32(_ type: UInt16, _ value: UInt32) -> NetlinkAttribute {
        bytes(type, withUnsafeBytes(of: value.bigEndian) { Array($0) })
    }

    static func string(_ type: UInt16, _ text: String) -> NetlinkAttribute {
        bytes(type, Array(text.utf8) + [0])
    }

    static func nest(_ type: UInt16, _ children: [NetlinkAttribute]) -> NetlinkAttribute {
        NetlinkAttribute(type: type, payload: .nested(children))
    }

    /// Appends the encoded attribute, padded to 4 bytes. Writes in place, with no array made on
    /// the way: an ADD encodes a few hundred attributes.
    func encode(into buffer: inout [UInt8]) {
        let start = buffer.count
        appendZeros(4, to: &buffer)
        let flaggedType: UInt16
        switch payload {
        case .bytes(let bytes):
            buffer += bytes
            flaggedType = type
        case .nested(let children):
            for child in children { child.encode(into: &buffer) }
            flaggedType = type | CNFTables_NLA_F_NESTED
        }
        store(UInt16(buffer.count - start), in: &buffer, at: start)
        store(flaggedType, in: &buffer, at: start + 2)
        appendZeros((4 - buffer.count % 4) % 4, to: &buffer)
    }

    /// Whether `received` (a kernel dump of the same object) says at least what this attribute
    /// says: every attribute sent is there with the same value; the kernel may add others
    /// (defaults it fills in, counters).
    func isSatisfied(by received: [ReceivedAttribute]) -> Bool {
        guard let match = received.first(where: { $0.type == type }) else { return false }
        switch payload {
        case .bytes(let bytes):
            return Array(match.payload) == bytes
        case .nested(let children):
            let inner = ReceivedAttribute.parse(match.payload)
            return children.allSatisfy { $0.isSatisfied(by: inner) }
        }
    }
}

/// An attribute in a message from the kernel; its payload is a slice of the received bytes.
struct ReceivedAttribute: Sendable {
    /// The type without the NLA_F_NESTED / NLA_F_NET_BYTEORDER flags.
    var type: UInt16
    var payload: ArraySlice<UInt8>

    /// The attributes in `bytes`, walked by `NetlinkMessage.Attributes`, each payload kept as a
    /// slice of `bytes` (nf_tables replies outlive the receive buffer); a truncated or malformed
    /// tail is ignored.
    static func parse(_ bytes: ArraySlice<UInt8>) -> [ReceivedAttribute] {
        bytes.withUnsafeBytes { raw in
            var result: [ReceivedAttribute] = []
            guard let base = raw.baseAddress else { return result }
            for attribute in NetlinkMessage.Attributes(raw) {
                let start = bytes.startIndex + (attribute.payload.baseAddress.map { $0 - base } ?? 0)
                result.append(ReceivedAttribute(type: attribute.type, payload: bytes[start..<start + attribute.payload.count]))
            }
            return result
        }
    }

    /// A 32-bit value in network byte order, as nf_tables sends them.
    var u32: UInt32? {
        guard payload.count == 4 else { return nil }
        return payload.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    /// A NUL-terminated string attribute.
    var string: String {
        String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self)
    }

    var nested: [ReceivedAttribute] { Self.parse(payload) }
}

extension Array where Element == ReceivedAttribute {
    subscript(type: UInt16) -> ReceivedAttribute? { first { $0.type == type } }
}

/// Netlink headers are in host byte order (only nf_tables payloads are big-endian).
func hostBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// `value` in host byte order over the bytes of `buffer` from `offset` (which must exist).
@inline(__always)
func store<T: FixedWidthInteger>(_ value: T, in buffer: inout [UInt8], at offset: Int) {
    withUnsafeBytes(of: value) { bytes in
        for index in 0..<bytes.count { buffer[offset + index] = bytes[index] }
    }
}

@inline(__always)
func appendZeros(_ count: Int, to buffer: inout [UInt8]) {
    for _ in 0..<count { buffer.append(0) }
}
