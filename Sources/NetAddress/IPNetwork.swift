/// An address with a prefix length, as CIDR text writes it ("10.244.1.2/24").
///
/// The address keeps its host bits: CNI results carry "10.244.1.2/24", and configs are checked
/// for host bits explicitly (`hasHostBits`) so the error can say which subnet is wrong.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var prefixLength: Int

    public init?(address: IPAddress, prefixLength: Int) {
        guard prefixLength >= 0, prefixLength <= address.bitWidth else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses "address/prefix". A bare address is not a network.
    public init?(_ text: some StringProtocol) {
        guard let slash = text.firstIndex(of: "/") else { return nil }
        let prefixText = text[text.index(after: slash)...]
        guard let address = IPAddress(text[..<slash]),
              !prefixText.isEmpty, prefixText.utf8.count <= 3,
              prefixText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let prefix = Int(prefixText)
        else { return nil }
        // "::ffff:10.0.0.0/104" style mapped prefixes are not accepted: IPAddress maps the address to v4.
        self.init(address: address, prefixLength: prefix)
    }

    /// The single-address network of `address` (/32 or /128).
    public static func host(_ address: IPAddress) -> IPNetwork {
        IPNetwork(address: address, prefixLength: address.bitWidth)!
    }

    public var family: IPFamily { address.family }

    public var description: String { "\(address)/\(prefixLength)" }

    /// The network address: the address with its host bits cleared.
    public var networkAddress: IPAddress {
        switch address {
        case .v4(let a):
            return .v4(IPv4Address(a.value & Self.mask32(prefixLength)))
        case .v6(let a):
            let (highMask, lowMask) = Self.mask128(prefixLength)
            return .v6(IPv6Address(high: a.high & highMask, low: a.low & lowMask))
        }
    }

    /// The last address of the network (the IPv4 broadcast address).
    public var lastAddress: IPAddress {
        switch address {
        case .v4(let a):
            return .v4(IPv4Address(a.value | ~Self.mask32(prefixLength)))
        case .v6(let a):
            let (highMask, lowMask) = Self.mask128(prefixLength)
            return .v6(IPv6Address(high: a.high | ~highMask, low: a.low | ~lowMask))
        }
    }

    /// This network with its host bits cleared ("10.244.1.0/24").
    public var masked: IPNetwork { IPNetwork(address: networkAddress, prefixLength: prefixLength)! }

    public var hasHostBits: Bool { address != networkAddress }

    public var hostBits: Int { address.bitWidth - prefixLength }

    public func contains(_ other: IPAddress) -> Bool {
        guard other.family == family else { return false }
        return IPNetwork(address: other, prefixLength: prefixLength)!.networkAddress == networkAddress
    }

    /// Whether the two networks share at least one address.
    public func overlaps(_ other: IPNetwork) -> Bool {
        guard other.family == family else { return false }
        return contains(other.networkAddress) || other.contains(networkAddress)
    }

    static func mask32(_ prefix: Int) -> UInt32 {
        prefix == 0 ? 0 : UInt32.max << UInt32(32 - prefix)
    }

    static func mask128(_ prefix: Int) -> (UInt64, UInt64) {
        if prefix == 0 { return (0, 0) }
        if prefix <= 64 { return (UInt64.max << UInt64(64 - prefix), 0) }
        if prefix == 128 { return (UInt64.max, UInt64.max) }
        return (UInt64.max, UInt64.max << UInt64(128 - prefix))
    }
}
