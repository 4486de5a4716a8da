/// A route as `ip route` names it, without its device: what the wiring plan asks for and what
/// the kernel's routes are compared with.
public struct IPRoute: Sendable, Equatable, CustomStringConvertible {
    /// The kernel's route scopes (`rtm_scope`) as `ip route` names them.
    public enum Scope: UInt8, Sendable {
        case universe = 0
        case link = 253
        case host = 254
    }

    public var destination: IPNetwork
    public var gateway: IPAddress?
    public var source: IPAddress?
    public var scope: Scope
    /// The metric; nil leaves the kernel's default (0 for IPv4, 1024 for IPv6).
    public var priority: UInt32?
    /// nil for the main table.
    public var table: UInt32?

    public init(destination: IPNetwork, gateway: IPAddress? = nil, source: IPAddress? = nil, scope: Scope = .universe,
                priority: UInt32? = nil, table: UInt32? = nil) {
        self.destination = destination
        self.gateway = gateway
        self.source = source
        self.scope = scope
        self.priority = priority
        self.table = table
    }

    /// As `ip route` prints it, with `device` (a name or an index) where it prints the device.
    public func text(device: String?) -> String {
        var text = destination.prefixLength == 0 ? "default"
            : destination.prefixLength == destination.address.bitWidth ? destination.address.description : destination.description
        if let gateway { text += " via \(gateway)" }
        if let device { text += " dev \(device)" }
        if scope == .link { text += " scope link" } else if scope == .host { text += " scope host" }
        if let source { text += " src \(source)" }
        if let priority { text += " metric \(priority)" }
        if let table { text += " table \(table)" }
        return text
    }

    public var description: String { text(device: nil) }
}
