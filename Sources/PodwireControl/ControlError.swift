import CNIProtocol

/// Why podwirectl stops, and with which exit code: 1 when it found problems (or a plugin it ran
/// failed), 2 when it could not do what was asked (bad usage, a file or the kernel out of reach).
public struct ControlError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Exit 1: the node (or the plugin run) has problems; the message says which.
        case problems
        /// Exit 2: the command line asks for something that cannot be done as asked.
        case usage
        /// Exit 2: something podwirectl must read or change is out of reach.
        case access
    }

    public var kind: Kind
    /// One line a person can act on.
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// A CNI error met while reading the node (the store, a config): out of reach, exit 2.
    public init(access error: CNIError) {
        self.init(.access, error.details.map { "\(error.message) (\($0))" } ?? error.message)
    }

    public var exitCode: Int32 {
        switch kind {
        case .problems: 1
        case .usage, .access: 2
        }
    }

    public var description: String { message }
}
