import CNIProtocol
import NetAddress

/// One range of a range set: the addresses `rangeStart...rangeEnd` of `subnet`, host-local's
/// `{subnet, rangeStart, rangeEnd, gateway}` with its defaults filled in and checked.
public struct IPRange: Sendable, Hashable, CustomStringConvertible {
    public var subnet: IPNetwork
    public var rangeStart: IPAddress
    public var rangeEnd: IPAddress
    public var gateway: IPAddress

    /// Fills in host-local's defaults (gateway and rangeStart = network+1; rangeEnd = broadcast-1
    /// for IPv4, the last address for IPv6) and rejects what cannot be allocated from, as code 7.
    /// Messages name the offending value so the config can be fixed from the error alone.
    public init(subnet: IPNetwork, rangeStart: IPAddress? = nil, rangeEnd: IPAddress? = nil,
                gateway: IPAddress? = nil) throws(CNIError) {
        if subnet.hasHostBits {
            throw CNIError(.invalidNetworkConfig, "subnet \(subnet) has host bits set; did you mean \(subnet.masked)?")
        }
        if subnet.hostBits < 2 {
            throw CNIError(.invalidNetworkConfig, "subnet \(subnet) is too small to allocate from",
                           details: "a subnet needs at least 2 host bits (/\(subnet.address.bitWidth - 2) or larger)")
        }
        // hostBits >= 2 guarantees network+1 and (for IPv4) broadcast-1 exist.
        let network = subnet.networkAddress
        let defaultFirst = network.next!
        let defaultLast = subnet.family == .v4 ? subnet.lastAddress.previous! : subnet.lastAddress

        func inSubnet(_ address: IPAddress?, _ what: String) throws(CNIError) -> IPAddress? {
            guard let address else { return nil }
            guard address.family == subnet.family else {
                throw CNIError(.invalidNetworkConfig,
                               "\(what) \(address) is not the same address family as subnet \(subnet)")
            }
            guard subnet.contains(address) else {
                throw CNIError(.invalidNetworkConfig, "\(what) \(address) is outside subnet \(subnet)")
            }
            return address
        }
        self.subnet = subnet
        self.gateway = try inSubnet(gateway, "gateway") ?? defaultFirst
        self.rangeStart = try inSubnet(rangeStart, "rangeStart") ?? defaultFirst
        self.rangeEnd = try inSubnet(rangeEnd, "rangeEnd") ?? defaultLast
        if self.rangeStart > self.rangeEnd {
            throw CNIError(.invalidNetworkConfig,
                           "rangeStart \(self.rangeStart) is after rangeEnd \(self.rangeEnd) in subnet \(subnet)")
        }
        if firstIssuable == nil {
            throw CNIError(.invalidNetworkConfig,
                           "range \(self.rangeStart)-\(self.rangeEnd) of subnet \(subnet) has no address to hand out",
                           details: "the gateway \(self.gateway), the network address and the IPv4 broadcast address are never allocated")
        }
    }

    public var family: IPFamily { subnet.family }

    /// Whether `address` lies in `rangeStart...rangeEnd`: host-local's test for "in this range",
    /// used for requested addresses, re-ADD and round-robin positions alike.
    public func contains(_ address: IPAddress) -> Bool {
        address.family == family && rangeStart <= address && address <= rangeEnd
    }

    /// The network address, the IPv4 broadcast address and the gateway are never handed out,
    /// even when rangeStart/rangeEnd were configured to include them.
    public func isReserved(_ address: IPAddress) -> Bool {
        address == gateway || address == subnet.networkAddress
            || (family == .v4 && address == subnet.lastAddress)
    }

    /// What a reserved address is, for messages: "the gateway", "the network address", ...
    func role(of address: IPAddress) -> String {
        address == gateway ? "the gateway" : address == subnet.networkAddress ? "the network address" : "the broadcast address"
    }

    /// The first address of the range that may be handed out.
    public var firstIssuable: IPAddress? {
        var address = rangeStart
        // At most three reserved addresses can sit at an end of the range, so this loop is short.
        while isReserved(address) {
            guard address < rangeEnd, let next = address.next else { return nil }
            address = next
        }
        return address
    }

    /// The last address of the range that may be handed out.
    public var lastIssuable: IPAddress? {
        var address = rangeEnd
        while isReserved(address) {
            guard address > rangeStart, let previous = address.previous else { return nil }
            address = previous
        }
        return address
    }

    /// How many addresses the range can hand out, saturating at `UInt64.max` for huge IPv6 ranges.
    public var capacity: UInt64 {
        let span = Self.distance(from: rangeStart, to: rangeEnd)
        guard span < UInt64.max else { return .max }
        let reserved = Set([gateway, subnet.networkAddress] + (family == .v4 ? [subnet.lastAddress] : []))
            .filter(contains).count
        return span + 1 - UInt64(reserved)
    }

    /// "10.244.1.2-10.244.1.254": the addresses a person can expect from this range.
    public var description: String {
        "\(firstIssuable ?? rangeStart)-\(lastIssuable ?? rangeEnd)"
    }

    /// `to - from` for same-family addresses with `from <= to`, saturating at `UInt64.max`.
    static func distance(from: IPAddress, to: IPAddress) -> UInt64 {
        switch (from, to) {
        case let (.v4(a), .v4(b)):
            return UInt64(b.value - a.value)
        case let (.v6(a), .v6(b)):
            let (low, borrow) = b.low.subtractingReportingOverflow(a.low)
            let high = b.high - a.high - (borrow ? 1 : 0)
            return high == 0 ? low : .max
        default:
            return 0
        }
    }
}

extension Array where Element == IPRange {
    /// The range of this set holding `address`, if any.
    func range(containing address: IPAddress) -> IPRange? {
        first { $0.contains(address) }
    }

    /// "10.244.1.2-10.244.1.254,10.244.2.2-10.244.2.254", as host-local prints a range set.
    var rangeSetDescription: String {
        map(\.description).joined(separator: ",")
    }
}
