/// A CNI error code. The spec reserves 0-99; 100 and above are podwire's own. A delegated
/// plugin may answer with any number (Go plugins use 999), which is passed on unchanged.
public struct CNIErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let incompatibleVersion = CNIErrorCode(rawValue: 1)
    public static let unsupportedField = CNIErrorCode(rawValue: 2)
    public static let unknownContainer = CNIErrorCode(rawValue: 3)
    public static let invalidEnvironment = CNIErrorCode(rawValue: 4)
    public static let ioFailure = CNIErrorCode(rawValue: 5)
    public static let decodingFailure = CNIErrorCode(rawValue: 6)
    public static let invalidNetworkConfig = CNIErrorCode(rawValue: 7)
    public static let tryAgainLater = CNIErrorCode(rawValue: 11)
    public static let notAvailable = CNIErrorCode(rawValue: 50)
    public static let limitedConnectivity = CNIErrorCode(rawValue: 51)
    /// The kernel refused a network change (a netlink request or a sysctl write failed).
    public static let kernelRefused = CNIErrorCode(rawValue: 100)
    /// A delegated plugin (IPAM exec'd from CNI_PATH) failed without a CNI error of its own.
    public static let delegateFailed = CNIErrorCode(rawValue: 101)
    /// No free address is left in a range set.
    public static let rangeExhausted = CNIErrorCode(rawValue: 102)
    /// A requested address is taken, reserved (gateway, network, broadcast) or outside every range.
    public static let addressUnavailable = CNIErrorCode(rawValue: 103)
    /// CHECK found the attachment's live state differs from its result.
    public static let checkFailed = CNIErrorCode(rawValue: 104)
    /// A hostPort asked for is held by another live attachment (the first keeps it).
    public static let hostPortTaken = CNIErrorCode(rawValue: 105)

    public var description: String { String(rawValue) }
}

/// The error document a plugin prints on stdout: `{cniVersion, code, msg, details}`.
public struct CNIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: CNIErrorCode
    /// What went wrong, for a person: names what failed and, where it helps, what to do.
    public var message: String
    /// Lower-level detail: the failing call, errno text, the offending value.
    public var details: String?

    public init(_ code: CNIErrorCode, _ message: String, details: String? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String {
        details.map { "\(message): \($0)" } ?? message
    }
}
