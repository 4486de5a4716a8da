import Testing
@testable import NetAddress

// MARK: - IPv4 parsing

@Suite("IPv4 parsing")
struct IPv4ParsingTests {
    @Test(arguments: [
        ("0.0.0.0", UInt32(0)),
        ("10.244.1.2", UInt32(0x0AF4_0102)),
        ("255.255.255.255", UInt32.max),
        ("192.168.0.1", UInt32(0xC0A8_0001)),
        ("1.0.10.100", UInt32(0x0100_0A64)),
    ])
    func validAddresses(text: String, value: UInt32) throws {
        let address = try #require(IPv4Address(text))
        #expect(address.value == value)
        #expect(address.description == text)
    }

    @Test(arguments: ["01.2.3.4", "1.02.3.4", "1.2.3.04", "1.2.3.00", "00.0.0.0", "010.1.1.1"])
    func leadingZerosRejected(text: String) {
        #expect(IPv4Address(text) == nil)
        #expect(IPAddress(text) == nil)
    }

    @Test(arguments: ["256.0.0.0", "1.2.3.256", "999.1.1.1", "1.2.3.1000", "4294967296.0.0.0"])
    func outOfRangeRejected(text: String) {
        #expect(IPv4Address(text) == nil)
    }

    @Test(arguments: [
        "", ".", "...", "1", "1.2", "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4.",
        "a.b.c.d", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4/24", "1.2.3.-4", "+1.2.3.4", "1.2.3.0x1",
        "１.2.3.4", "1.2.3.4\0", "1,2,3,4",
    ])
    func garbageRejected(text: String) {
        #expect(IPv4Address(text) == nil)
        #expect(IPAddress(text) == nil)
    }

    @Test func parsesSubstrings() throws {
        let text = "x10.0.0.1y"
        let inner = text.dropFirst().dropLast()
        #expect(try #require(IPv4Address(inner)).description == "10.0.0.1")
    }
}

// MARK: - IPv6 parsing

@Suite("IPv6 parsing")
struct IPv6ParsingTests {
    @Test func unspecifiedAndLoopback() throws {
        let any = try #require(IPv6Address("::"))
        #expect(any.high == 0 && any.low == 0)
        #expect(any.description == "::")
        let loopback = try #require(IPv6Address("::1"))
        #expect(loopback.high == 0 && loopback.low == 1)
        #expect(loopback.description == "::1")
    }

    @Test func podPrefix() throws {
        let address = try #require(IPv6Address("fd00:10:244::"))
        #expect(address.high == 0xfd00_0010_0244_0000)
        #expect(address.low == 0)
        #expect(address.description == "fd00:10:244::")
    }

    @Test(arguments: [
        ("1:2:3:4:5:6:7:8", UInt64(0x0001_0002_0003_0004), UInt64(0x0005_0006_0007_0008)),
        ("FFFF:ffff:FfFf:ffff:ffff:ffff:ffff:ffff", UInt64.max, UInt64.max),
        ("1::", UInt64(0x0001_0000_0000_0000), UInt64(0)),
        ("1::8", UInt64(0x0001_0000_0000_0000), UInt64(8)),
        ("::2:3:4:5:6:7:8", UInt64(0x0000_0002_0003_0004), UInt64(0x0005_0006_0007_0008)),
        ("1:2:3:4:5:6:7::", UInt64(0x0001_0002_0003_0004), UInt64(0x0005_0006_0007_0000)),
        ("0001:0002:0003:0004:0005:0006:0007:0008", UInt64(0x0001_0002_0003_0004), UInt64(0x0005_0006_0007_0008)),
        ("2001:db8::1:0:0:1", UInt64(0x2001_0db8_0000_0000), UInt64(0x0001_0000_0000_0001)),
    ])
    func validAddresses(text: String, high: UInt64, low: UInt64) throws {
        let address = try #require(IPv6Address(text))
        #expect(address.high == high)
        #expect(address.low == low)
    }

    @Test(arguments: [
        ("::1.2.3.4", UInt64(0), UInt64(0x0000_0000_0102_0304)),
        ("64:ff9b::192.0.2.33", UInt64(0x0064_ff9b_0000_0000), UInt64(0x0000_0000_c000_0221)),
        ("1:2:3:4:5:6:10.0.0.1", UInt64(0x0001_0002_0003_0004), UInt64(0x0005_0006_0a00_0001)),
        ("::ffff:1.2.3.4", UInt64(0), UInt64(0x0000_ffff_0102_0304)),
    ])
    func embeddedIPv4(text: String, high: UInt64, low: UInt64) throws {
        let address = try #require(IPv6Address(text))
        #expect(address.high == high)
        #expect(address.low == low)
    }

    @Test(arguments: [
        "", ":", ":::", "::::", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
        "12345::", "g::", "::g", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "fe80::1%eth0",
        ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:", ":1::", "::1:", ":1:2", "1:2:",
        "+1::", "::-0", "::+ff", "0x1::", "1.2.3.4::", "::1.2.3.4:5", "::1.2.3", "::1.2.3.04",
        "::256.1.1.1", "1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5:6:7::1.2.3.4", " ::1", "::1 ", "[::1]",
    ])
    func invalidRejected(text: String) {
        #expect(IPv6Address(text) == nil, "\(text) must not parse")
        #expect(IPAddress(text) == nil, "\(text) must not parse")
    }
}

// MARK: - IPAddress (either family)

@Suite("IPAddress")
struct IPAddressTests {
    @Test func familyDetection() throws {
        #expect(try #require(IPAddress("10.0.0.1")).family == .v4)
        #expect(try #require(IPAddress("fd00::1")).family == .v6)
        #expect(IPFamily.v4.bitWidth == 32)
        #expect(IPFamily.v6.bitWidth == 128)
        #expect(IPFamily.v4.cniVersionString == "4")
        #expect(IPFamily.v6.cniVersionString == "6")
        #expect(try #require(IPAddress("10.0.0.1")).bitWidth == 32)
        #expect(try #require(IPAddress("::1")).bitWidth == 128)
    }

    @Test(arguments: [
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::ffff:10.244.0.1", "10.244.0.1"),
        ("::FFFF:0a00:0001", "10.0.0.1"),
        ("0:0:0:0:0:ffff:c0a8:1", "192.168.0.1"),
    ])
    func mappedIPv4BecomesIPv4(text: String, expected: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address == .v4(try #require(IPv4Address(expected))))
        #expect(address.family == .v4)
        #expect(address.description == expected)
    }

    @Test func compatibleAndTranslatedStayIPv6() throws {
        // Only ::ffff:0:0/96 is IPv4-mapped; the deprecated "compatible" form and NAT64 stay IPv6.
        #expect(try #require(IPAddress("::1.2.3.4")).family == .v6)
        #expect(try #require(IPAddress("64:ff9b::1.2.3.4")).family == .v6)
        #expect(try #require(IPAddress("::fffe:1.2.3.4")).family == .v6)
        #expect(try #require(IPAddress("1::ffff:1.2.3.4")).family == .v6)
    }

    @Test func ordering() throws {
        let a = try #require(IPAddress("10.0.0.1"))
        let b = try #require(IPAddress("10.0.0.2"))
        let c = try #require(IPAddress("::1"))
        let d = try #require(IPAddress("fd00::1"))
        #expect(a < b)
        #expect(!(b < a))
        #expect(b < c, "IPv4 sorts before IPv6")
        #expect(c < d)
        #expect([d, c, b, a].sorted() == [a, b, c, d])
        let high = try #require(IPAddress("8000::"))
        let lowHalf = try #require(IPAddress("::ffff:ffff:ffff:ffff"))
        #expect(lowHalf < high, "the high half decides first")
    }

    @Test func hashableAndEquatable() throws {
        let set: Set<IPAddress> = [try #require(IPAddress("fd00::1")), try #require(IPAddress("FD00:0:0::1")),
                                   try #require(IPAddress("10.0.0.1")), try #require(IPAddress("::ffff:10.0.0.1"))]
        #expect(set.count == 2)
    }
}

// MARK: - RFC 5952 formatting

@Suite("RFC 5952 formatting")
struct RFC5952Tests {
    @Test(arguments: [
        ("0:0:0:0:0:0:0:0", "::"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("1:0:0:0:0:0:0:0", "1::"),
        ("2001:0DB8:0000:0000:0000:0000:0002:0001", "2001:db8::2:1"),
        // A single zero group is never compressed (RFC 5952 §4.2.2).
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"),
        ("0:1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7"),
        // The longest run wins (§4.2.3) ...
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("0:0:1:0:0:0:0:2", "0:0:1::2"),
        // ... and the first of equally long runs.
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("1:0:0:2:3:0:0:4", "1::2:3:0:0:4"),
        // Lowercase, leading zeros dropped (§4.1, §4.3).
        ("ABCD:EF01:0023:4567:89AB:CDEF:0001:0000", "abcd:ef01:23:4567:89ab:cdef:1:0"),
        ("fd00:0010:0244:0000:0000:0000:0000:0000", "fd00:10:244::"),
        ("fe80::0:0:1", "fe80::1"),
        ("0:0:0:1::", "0:0:0:1::"),
        ("::1.2.3.4", "::102:304"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ])
    func canonicalText(input: String, expected: String) throws {
        let address = try #require(IPv6Address(input))
        #expect(address.description == expected)
        #expect(IPAddress.v6(address).description == expected)
        // The canonical text parses back to the same address.
        #expect(IPv6Address(expected) == address)
    }
}

// MARK: - Bytes

@Suite("Byte round trips")
struct ByteRoundTripTests {
    @Test func ipv4Bytes() throws {
        let address = try #require(IPv4Address("10.244.1.2"))
        #expect(address.bytes == [10, 244, 1, 2])
        #expect(IPv4Address(bytes: [10, 244, 1, 2]) == address)
        #expect(IPv4Address(bytes: [255, 255, 255, 255]).value == UInt32.max)
        #expect(IPv4Address(bytes: [0, 0, 0, 0]).value == 0)
        #expect(IPAddress.v4(address).bytes == [10, 244, 1, 2])
    }

    @Test func ipv6Bytes() throws {
        let address = try #require(IPv6Address("2001:db8:1:2:3:4:5:6"))
        let expected: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6]
        #expect(address.bytes == expected)
        #expect(IPv6Address(bytes: expected) == address)
        #expect(IPv6Address(bytes: expected[...]) == address, "any collection of 16 bytes")
        #expect(IPAddress.v6(address).bytes == expected)
        #expect(try #require(IPv6Address("::1")).bytes == Array(repeating: 0, count: 15) + [1])
    }

    @Test(arguments: 0..<64)
    func pseudoRandomRoundTrips(seed: Int) {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
        func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
        let v4 = IPv4Address(UInt32(truncatingIfNeeded: next()))
        #expect(IPv4Address(bytes: v4.bytes) == v4)
        #expect(IPv4Address(v4.description) == v4)

        // Sprinkle zero groups so compression gets exercised.
        var high = next(), low = next()
        let zeroMask = next()
        for group in 0..<4 where zeroMask >> UInt64(group) & 1 == 1 { high &= ~(UInt64(0xffff) << UInt64(16 * group)) }
        for group in 0..<4 where zeroMask >> UInt64(group + 4) & 1 == 1 { low &= ~(UInt64(0xffff) << UInt64(16 * group)) }
        let v6 = IPv6Address(high: high, low: low)
        #expect(IPv6Address(bytes: v6.bytes) == v6)
        #expect(IPv6Address(v6.description) == v6, "\(v6) must parse back")
        #expect(v6.description == v6.description.lowercased())
        #expect(!v6.description.contains(":::"))
    }
}

// MARK: - Arithmetic

@Suite("Address arithmetic")
struct ArithmeticTests {
    func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    @Test func ipv4NextAndPrevious() {
        #expect(ip("10.0.0.1").next == ip("10.0.0.2"))
        #expect(ip("10.0.0.255").next == ip("10.0.1.0"))
        #expect(ip("10.0.1.0").previous == ip("10.0.0.255"))
        #expect(ip("255.255.255.254").next == ip("255.255.255.255"))
        #expect(ip("255.255.255.255").next == nil)
        #expect(ip("0.0.0.1").previous == ip("0.0.0.0"))
        #expect(ip("0.0.0.0").previous == nil)
    }

    @Test func ipv4Advanced() {
        #expect(ip("10.0.0.0").advanced(by: 0) == ip("10.0.0.0"))
        #expect(ip("10.0.0.0").advanced(by: 256) == ip("10.0.1.0"))
        #expect(ip("0.0.0.0").advanced(by: UInt64(UInt32.max)) == ip("255.255.255.255"))
        #expect(ip("0.0.0.1").advanced(by: UInt64(UInt32.max)) == nil)
        #expect(ip("0.0.0.0").advanced(by: UInt64(UInt32.max) + 1) == nil)
        #expect(ip("0.0.0.0").advanced(by: UInt64.max) == nil)
        #expect(ip("10.0.0.0").advanced(by: 1 << 32) == nil, "a count above 32 bits must not wrap")
    }

    @Test func ipv6NextAndPrevious() {
        #expect(ip("fd00::1").next == ip("fd00::2"))
        #expect(ip("fd00::ffff").next == ip("fd00::1:0"))
        // Carry from the low into the high half, and borrow back.
        #expect(ip("::ffff:ffff:ffff:ffff").next == ip("0:0:0:1::"))
        #expect(ip("0:0:0:1::").previous == ip("::ffff:ffff:ffff:ffff"))
        #expect(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe").next == ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        #expect(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").next == nil)
        #expect(ip("::1").previous == ip("::"))
        #expect(ip("::").previous == nil)
    }

    @Test func ipv6Advanced() {
        #expect(ip("::").advanced(by: UInt64.max) == ip("::ffff:ffff:ffff:ffff"))
        #expect(ip("::1").advanced(by: UInt64.max) == ip("0:0:0:1::"))
        #expect(ip("fd00::").advanced(by: 0x1_0000) == ip("fd00::1:0"))
        #expect(ip("ffff:ffff:ffff:ffff::").advanced(by: UInt64.max) == ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        #expect(ip("ffff:ffff:ffff:ffff::1").advanced(by: UInt64.max) == nil)
    }

    @Test func mappedAddressesStepAsIPv4() {
        // "::ffff:255.255.255.255" is IPv4, so it has no successor rather than moving into IPv6 space.
        #expect(ip("::ffff:255.255.255.255").next == nil)
    }
}
