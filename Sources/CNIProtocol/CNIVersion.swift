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
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 4 && $0.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }),
              parts.allSatisfy({ $0.utf8.count == 1 || $0.utf8.first != UInt8(ascii: "0") }),
              let major = Int(parts[0]), let minor = Int(parts[1]), let patch = Int(parts[2])
        else { return nil }
        self.init(major, minor, patch)
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
