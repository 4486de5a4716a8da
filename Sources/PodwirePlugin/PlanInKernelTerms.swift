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
