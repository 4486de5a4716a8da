/// An IPv4 address as a host-order 32-bit integer.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Parses dotted-quad text ("10.244.1.2"); leading zeros and out-of-range octets are rejected,
    /// as Go's net.ParseIP does, so both plugins agree on what a valid address is.
    public init?(_ text: some StringProtocol) {
        // The octets accumulate into one integer: no array, which would be one more generic type
        // for the runtime to set up in a short-lived plugin process.
        var result: UInt32 = 0
        var octets = 0
        var current: UInt32 = 0
        var digits = 0
        var leadingZero = false
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, octets < 3 else { return nil }
                result = result << 8 | current
                octets += 1
                current = 0
                digits = 0
                leadingZero = false
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                if digits == 1 && leadingZero { return nil }
                if digits == 0 && byte == UInt8(ascii: "0") { leadingZero = true }
                current = current * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard digits <= 3, current <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, octets == 3 else { return nil }
        value = result << 8 | current
    }

    public var bytes: [UInt8] {
        [UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
         UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 4, "an IPv4 address has 4 bytes")
        value = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public var description: String {
        var text = AddressText(capacity: 15)
        var shift: UInt32 = 24
        while true {
            text.appendDecimal(UInt8(truncatingIfNeeded: value >> shift))
            if shift == 0 { break }
            text.append(".")
            shift -= 8
        }
        return text.string
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}

/// An IPv6 address as a host-order 128-bit integer (high and low halves).
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses RFC 4291 text, including "::" compression and an embedded IPv4 tail ("::ffff:1.2.3.4").
    public init?(_ text: some StringProtocol) {
        let string = String(text)
        guard !string.isEmpty, !string.contains("%") else { return nil }
        // A lone leading or trailing ":" is not half of a "::".
        if (string.hasPrefix(":") && !string.hasPrefix("::")) || (string.hasSuffix(":") && !string.hasSuffix("::")) { return nil }
        var groups: [UInt16] = []
        var compressAt: Int? = nil
        var parts = string.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        // "::x" and "x::" produce an empty first or last part that belongs to the "::".
        if string.hasPrefix("::") { parts.removeFirst() }
        if string.hasSuffix("::") { parts.removeLast() }
        for (index, part) in parts.enumerated() {
            if part.isEmpty {
                guard compressAt == nil else { return nil }
                compressAt = groups.count
                continue
            }
            if part.contains(".") {
                guard index == parts.count - 1, let v4 = IPv4Address(part) else { return nil }
                groups.append(UInt16(v4.value >> 16))
                groups.append(UInt16(v4.value & 0xffff))
                continue
            }
            // UInt16(_:radix:) also takes a sign ("+1"), which is not IPv6 text.
            guard part.utf8.count <= 4, !part.hasPrefix("+"), !part.hasPrefix("-"),
                  let group = UInt16(part, radix: 16) else { return nil }
            groups.append(group)
        }
        if let at = compressAt {
            guard groups.count < 8 else { return nil }
            groups.insert(contentsOf: Array(repeating: 0, count: 8 - groups.count), at: at)
        } else if string.hasPrefix(":") || string.hasSuffix(":") {
            return nil
        }
        guard groups.count == 8 else { return nil }
        high = groups[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = groups[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 16, "an IPv6 address has 16 bytes")
        let array = Array(bytes)
        high = array[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = array[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64($0))) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64($0))) }
    }

    var groups: [UInt16] {
        (0..<4).map { UInt16(truncatingIfNeeded: high >> (48 - 16 * UInt64($0))) }
            + (0..<4).map { UInt16(truncatingIfNeeded: low >> (48 - 16 * UInt64($0))) }
    }

    /// RFC 5952 text: lowercase, no leading zeros, the longest run of two or more zero groups as "::".
    public var description: String {
        let groups = self.groups
        var bestStart = -1, bestLength = 0, runStart = -1
        for index in 0...8 {
            if index < 8 && groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength { bestStart = runStart; bestLength = index - runStart }
                runStart = -1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        var text = AddressText(capacity: 39)
        var index = 0
        while index < 8 {
            if index == bestStart {
                text.append("::")
                index += bestLength
                continue
            }
            if !text.isEmpty && !text.endsWithColon { text.append(":") }
            text.appendHex(groups[index])
            index += 1
        }
        return text.string
    }

    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

/// Either family; what configs, results and the IPAM store carry.
public enum IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    public init?(_ text: some StringProtocol) {
        if let v4 = IPv4Address(text) {
            self = .v4(v4)
        } else if let v6 = IPv6Address(text) {
            // Go's net.ParseIP treats "::ffff:a.b.c.d" as IPv4; so do we, for host-local's file names.
            if v6.high == 0 && v6.low >> 32 == 0xffff {
                self = .v4(IPv4Address(UInt32(truncatingIfNeeded: v6.low)))
            } else {
                self = .v6(v6)
            }
        } else {
            return nil
        }
    }

    public var family: IPFamily {
        switch self {
        case .v4: .v4
        case .v6: .v6
        }
    }

    public var bitWidth: Int { family.bitWidth }

    /// `0.0.0.0` or `::`.
    public var isUnspecified: Bool {
        switch self {
        case .v4(let a): a.value == 0
        case .v6(let a): a.high == 0 && a.low == 0
        }
    }

    public var bytes: [UInt8] {
        switch self {
        case .v4(let a): a.bytes
        case .v6(let a): a.bytes
        }
    }

    public var description: String {
        switch self {
        case .v4(let a): a.description
        case .v6(let a): a.description
        }
    }

    /// The address `count` places after this one, or nil past the end of the family's space.
    public func advanced(by count: UInt64) -> IPAddress? {
        switch self {
        case .v4(let a):
            let (sum, overflow) = a.value.addingReportingOverflow(UInt32(truncatingIfNeeded: count))
            guard count <= UInt64(UInt32.max), !overflow else { return nil }
            return .v4(IPv4Address(sum))
        case .v6(let a):
            let (low, carry) = a.low.addingReportingOverflow(count)
            let (high, overflow) = a.high.addingReportingOverflow(carry ? 1 : 0)
            guard !overflow else { return nil }
            return .v6(IPv6Address(high: high, low: low))
        }
    }

    /// The address just after this one, or nil at the end of the family's space.
    public var next: IPAddress? { advanced(by: 1) }

    /// The address just before this one, or nil at the start of the family's space.
    public var previous: IPAddress? {
        switch self {
        case .v4(let a):
            a.value == 0 ? nil : .v4(IPv4Address(a.value - 1))
        case .v6(let a):
            if a.low == 0 && a.high == 0 { nil } else {
                .v6(IPv6Address(high: a.low == 0 ? a.high - 1 : a.high, low: a.low &- 1))
            }
        }
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case let (.v4(a), .v4(b)): a < b
        case let (.v6(a), .v6(b)): a < b
        case (.v4, .v6): true
        case (.v6, .v4): false
        }
    }
}

public enum IPFamily: Sendable, Hashable {
    case v4, v6

    public var bitWidth: Int { self == .v4 ? 32 : 128 }
    /// The "version" string CNI 0.3.x/0.4.0 results carry.
    public var cniVersionString: String { self == .v4 ? "4" : "6" }
}

/// Address text built from bytes: addresses, MACs, interface names. String interpolation of
/// integers and `String(_:radix:)` go through generic integer formatting, whose conformances the
/// runtime looks up on first use: a noticeable part of a plugin process that formats a few
/// addresses and exits.
public struct AddressText {
    private var bytes: [UInt8] = []

    public init(capacity: Int) { bytes.reserveCapacity(capacity) }

    var isEmpty: Bool { bytes.isEmpty }
    var endsWithColon: Bool { bytes.last == UInt8(ascii: ":") }
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    public mutating func append(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func appendDecimal(_ value: UInt8) {
        if value >= 100 { bytes.append(UInt8(ascii: "0") + value / 100) }
        if value >= 10 { bytes.append(UInt8(ascii: "0") + value / 10 % 10) }
        bytes.append(UInt8(ascii: "0") + value % 10)
    }

    /// Lowercase, without leading zeros ("db8", "0").
    mutating func appendHex(_ value: UInt16) {
        var digits = 1
        while digits < 4 && value >> (4 * UInt16(digits)) != 0 { digits += 1 }
        appendHex(UInt64(value), digits: digits)
    }

    /// The low `digits` hex digits of `value`, lowercase, leading zeros kept ("02", "0a1b2c3d").
    public mutating func appendHex(_ value: UInt64, digits: Int) {
        var shift = 4 * (digits - 1)
        while shift >= 0 {
            let digit = UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0x0f
            bytes.append(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10)
            shift -= 4
        }
    }
}
