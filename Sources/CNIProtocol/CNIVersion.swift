/// A CNI specification version ("0.3.1", "1.1.0").
public struct CNIVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses "X.Y.Z" only: the spec compares version strings exactly, so "1.0" is not "1.0.0"
    /// and "01.0.0" (leading zeros) is not "1.0.0" either.
    public init?(_ text: String) {
        // Read byte by byte: split() and Int(_:) cost generic set-up on every plugin start.
        var numbers = (0, 0, 0)
        var part = 0, digits = 0, value = 0, leadingZero = false
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, part < 2 else { return nil }
                if part == 0 { numbers.0 = value } else { numbers.1 = value }
                part += 1
                digits = 0
                value = 0
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 4 else { return nil }
            if digits == 0 { leadingZero = byte == UInt8(ascii: "0") } else if leadingZero { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
        }
        guard part == 2, digits > 0 else { return nil }
        numbers.2 = value
        self.init(numbers.0, numbers.1, numbers.2)
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    public static func < (lhs: CNIVersion, rhs: CNIVersion) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    public static let v0_1_0 = CNIVersion(0, 1, 0)
    public static let v0_2_0 = CNIVersion(0, 2, 0)
    public static let v0_3_0 = CNIVersion(0, 3, 0)
    public static let v0_3_1 = CNIVersion(0, 3, 1)
    public static let v0_4_0 = CNIVersion(0, 4, 0)
    public static let v1_0_0 = CNIVersion(1, 0, 0)
    public static let v1_1_0 = CNIVersion(1, 1, 0)

    /// Every version podwire reads configs in and writes results in, oldest first.
    public static let supported: [CNIVersion] = [v0_1_0, v0_2_0, v0_3_0, v0_3_1, v0_4_0, v1_0_0, v1_1_0]

    /// The newest version; what VERSION answers when the request names none it knows.
    public static let current = v1_1_0

    /// A config without "cniVersion" is read as 0.1.0, as the spec's first version had none.
    public static let implied = v0_1_0

    public var isSupported: Bool { Self.supported.contains(self) }

    /// CHECK exists from 0.4.0 on; STATUS and GC from 1.1.0 on.
    public var allowsCheck: Bool { self >= Self.v0_4_0 }
    public var allowsStatusAndGC: Bool { self >= Self.v1_1_0 }
}
