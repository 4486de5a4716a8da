import Netlink
import PodWiring

// The plan's index-free values in the terms of the Netlink module's verbs.

extension RouteSocket.RouteAddMode {
    init(_ mode: PlannedRoute.Mode) {
        switch mode {
        case .exclusive: self = .exclusive
        case .create: self = .create
        case .replace: self = .replace
        }
    }
}

extension LinkInfo {
    /// Whose this link is, by the one rule ADD, DEL and GC share (`HostVethOwner`).
    public func owner(network: String) -> HostVethOwner? {
        HostVethOwner.of(kind: kind, name: name, mac: mac, alias: alias, network: network)
    }
}
