import NetAddress
import Netfilter
import Netlink
import PodIPAM
import PodWiring

/// One inconsistency between the store and the kernel, with the repair `doctor --fix` makes.
public struct Finding: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// An allocation whose host veth is gone: an address no DEL will ever release.
        case leakedAddress = "leaked-address"
        /// An address file that names no attachment: nobody's DEL releases it.
        case unattributedAddress = "unattributed-address"
        /// A podwire host veth of this network with no allocation: its address can be handed out again.
        case unallocatedVeth = "unallocated-veth"
        /// A host route to a pod address on a device that is not its attachment's veth, or to an
        /// address nobody holds.
        case strayRoute = "stray-route"
        /// A live attachment's veth without the host route to its address.
        case missingRoute = "missing-route"
        /// A masquerade element for an address not allocated.
        case strayMasquerade = "stray-masquerade"
        /// A hostPort forward or SNAT pair for an address not allocated.
        case strayHostPort = "stray-hostport"
        /// One node port forwarded to two pods (an any-address forward and an address's).
        case hostPortHeldTwice = "hostport-held-twice"
        /// The store's index says other than its address files.
        case indexDisagreement = "index-disagreement"
    }

    public var kind: Kind
    /// The pod address concerned, when there is one.
    public var address: IPAddress?
    /// The object found wrong, named as `ip`, `nft` or the store name it.
    public var object: String
    public var problem: String
    public var repair: Repair

    /// The line `doctor` prints: what, where, why, and what `--fix` does.
    public var line: String {
        "\(kind.rawValue)\(address.map { " \($0)" } ?? ""): \(object): \(problem); --fix \(repair.description)"
    }

    /// The line `doctor --fix` prints once the repair is made.
    public var fixedLine: String {
        "fixed \(kind.rawValue)\(address.map { " \($0)" } ?? ""): \(object): \(repair.description)"
    }
}

/// What `doctor --fix` does about a finding.
public enum Repair: Sendable, Equatable, CustomStringConvertible {
    /// Release every address the attachment holds, with its masquerade and hostPort elements.
    case releaseAttachment(containerID: String, ifname: String, addresses: [IPAddress])
    case releaseUnattributed(IPAddress)
    /// Record the addresses for the attachment whose veth routes them.
    case recordAddresses([IPAddress], containerID: String, ifname: String)
    case deleteLink(String)
    case deleteRoute(RouteSpec, device: String)
    case addHostRoute(IPAddress, linkIndex: Int32, device: String)
    case removeMasquerade(IPAddress)
    case removeForward(HostPortForward)
    case removeSNATPair(SNATPair)
    case rebuildIndex

    public var description: String {
        switch self {
        case .releaseAttachment(_, _, let addresses):
            "releases \(addresses.map(\.description).joined(separator: ", ")) with its masquerade and hostPort elements"
        case .releaseUnattributed(let address): "removes the address file of \(address)"
        case .recordAddresses(let addresses, let id, let ifname):
            "records \(addresses.map(\.description).joined(separator: ", ")) for \(id)/\(ifname) in the store"
        case .deleteLink(let name): "deletes \(name) (and the pod end with it)"
        case .deleteRoute(let route, let device): "deletes the route (ip route del \(route.destination) dev \(device))"
        case .addHostRoute(let address, _, let device): "adds the host route (ip route replace \(IPNetwork.host(address)) dev \(device) scope host)"
        case .removeMasquerade(let address): "removes the masquerade element \(address)"
        case .removeForward(let forward): "removes the forward \(forward)"
        case .removeSNATPair(let pair): "removes the SNAT pair \(pair.source) . \(pair.destination)"
        case .rebuildIndex: "rebuilds the index from the address files"
        }
    }

    /// Repairs run in this order: the index first (releases read it), what is removed before
    /// what is added (a stray route gives way to the right one).
    var order: Int {
        switch self {
        case .rebuildIndex: 0
        case .deleteLink: 1
        case .deleteRoute: 2
        case .removeMasquerade, .removeForward, .removeSNATPair: 3
        case .releaseAttachment, .releaseUnattributed: 4
        case .recordAddresses: 5
        case .addHostRoute: 6
        }
    }
}

/// A host route to one pod address, by the link it goes out of.
struct RouteKey: Hashable {
    var address: IPAddress
    var linkIndex: Int32
}

/// What is wrong with a network on this node: pure, from a snapshot.
public enum Doctor {
    public static func findings(_ node: NodeSnapshot) -> [Finding] {
        var found: [Finding] = []
        // Each looked up by key: a node holds hundreds of pods.
        let attachments = node.attachments
        let allocated = Set(node.allocations.map(\.address))
        var owners: [IPAddress: NodeSnapshot.Attachment] = [:]
        for attachment in attachments {
            for address in attachment.addresses { owners[address] = attachment }
        }
        let routed = Set(node.podRoutes.map { RouteKey(address: $0.destination.networkAddress, linkIndex: $0.linkIndex) })
        let routesByLink = Dictionary(grouping: node.podRoutes.map { RouteKey(address: $0.destination.networkAddress, linkIndex: $0.linkIndex) },
                                      by: \.linkIndex)
        let linkNames = Dictionary(node.links.map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first })
        // A veth the store lost whose addresses it learns again: those addresses count as held,
        // so their routes and elements are not stray.
        let lost = node.unallocatedVeths(besides: attachments)
        let unallocated = lost.map { unallocatedVeth($0, routing: (routesByLink[$0.index] ?? []).map(\.address), node: node, allocated: allocated) }
        var held = allocated
        var adoptedRoutes: Set<RouteKey> = []
        for (finding, veth) in zip(unallocated, lost) {
            guard case .recordAddresses(let addresses, _, _) = finding.repair else { continue }
            held.formUnion(addresses)
            adoptedRoutes.formUnion(addresses.map { RouteKey(address: $0, linkIndex: veth.index) })
        }

        for attachment in attachments {
            guard let veth = attachment.hostVeth else {
                let list = attachment.addresses.map(\.description).joined(separator: ", ")
                found.append(Finding(kind: .leakedAddress, address: attachment.addresses.first, object: "allocation \(attachment.owner)",
                                     problem: "\(list) held in \(node.storePath), but its host veth \(attachment.hostVethName) is gone",
                                     repair: .releaseAttachment(containerID: attachment.containerID, ifname: attachment.ifname,
                                                                addresses: attachment.addresses)))
                continue
            }
            for address in attachment.addresses where !routed.contains(RouteKey(address: address, linkIndex: veth.index)) {
                found.append(Finding(kind: .missingRoute, address: address, object: "host veth \(veth.name) of \(attachment.owner)",
                                     problem: "no host route to \(address) on it: the pod cannot be reached",
                                     repair: .addHostRoute(address, linkIndex: veth.index, device: veth.name)))
            }
        }

        for allocation in node.allocations where allocation.owner == nil {
            found.append(Finding(kind: .unattributedAddress, address: allocation.address, object: "address file \(allocation.path)",
                                 problem: "it names no container and interface, so no DEL will release it",
                                 repair: .releaseUnattributed(allocation.address)))
        }

        found += unallocated

        for route in node.podRoutes {
            let address = route.destination.networkAddress
            let device = linkNames[route.linkIndex] ?? "index \(route.linkIndex)"
            if let owner = owners[address] {
                guard let veth = owner.hostVeth, veth.index != route.linkIndex else { continue }
                // With the owner's veth gone the leak's release takes the route too... unless it is
                // on some other device, which is this case.
                found.append(Finding(kind: .strayRoute, address: address, object: "route \(route.destination) dev \(device)",
                                     problem: "\(address) is \(owner.owner)'s, whose host veth is \(owner.hostVethName)",
                                     repair: .deleteRoute(route, device: device)))
            } else if !held.contains(address) || (!allocated.contains(address)
                                                  && !adoptedRoutes.contains(RouteKey(address: address, linkIndex: route.linkIndex))) {
                found.append(Finding(kind: .strayRoute, address: address, object: "route \(route.destination) dev \(device)",
                                     problem: "\(address) is not allocated in \(node.storePath)",
                                     repair: .deleteRoute(route, device: device)))
            }
        }

        if let members = node.masquerade {
            for member in members where !held.contains(member.address) {
                let set = member.address.family == .v4 ? "masq4" : "masq6"
                found.append(Finding(kind: .strayMasquerade, address: member.address,
                                     object: "element \(member.address) of set \(set) (table inet podwire-\(node.network))",
                                     problem: "\(member.address) is not allocated, so whoever gets it next is masqueraded",
                                     repair: .removeMasquerade(member.address)))
            }
        }
        for forward in node.forwards.map(\.forward) where !held.contains(forward.pod) {
            found.append(Finding(kind: .strayHostPort, address: forward.pod, object: "forward \(forward)",
                                 problem: "\(forward.pod) is not allocated, so its next holder would get this port's traffic",
                                 repair: .removeForward(forward)))
        }
        for element in node.snatPairs where !held.contains(element.pair.destination) {
            found.append(Finding(kind: .strayHostPort, address: element.pair.destination,
                                 object: "SNAT pair \(element.pair.source) . \(element.pair.destination)",
                                 problem: "\(element.pair.destination) is not allocated",
                                 repair: .removeSNATPair(element.pair)))
        }
        found += heldTwice(node, allocated: held)

        var seenIndexEntry: Set<String> = []
        for disagreement in node.indexDisagreements where seenIndexEntry.insert(disagreement.entry).inserted {
            found.append(Finding(kind: .indexDisagreement, address: disagreement.address, object: "index entry .podwire/\(disagreement.entry)",
                                 problem: disagreement.description, repair: .rebuildIndex))
        }
        return found
    }

    /// A veth labelled for an attachment the store has nothing of. If the addresses it routes
    /// are free and in the network's ranges, the store learns them (the pod keeps working, and
    /// the addresses can no longer be handed to a second pod); otherwise the veth goes.
    static func unallocatedVeth(_ veth: LinkInfo, routing routed: [IPAddress], node: NodeSnapshot, allocated: Set<IPAddress>) -> Finding {
        let attachment = aliasAttachment(veth.alias, network: node.network)
        let object = "host veth \(veth.name) (alias \"\(veth.alias)\")"
        if let attachment, !routed.isEmpty,
           routed.allSatisfy({ address in !allocated.contains(address)
               && node.ranges.contains { $0.contains(address) && !$0.isReserved(address) } }) {
            return Finding(kind: .unallocatedVeth, address: routed[0], object: object,
                           problem: "it routes \(routed.map(\.description).joined(separator: ", ")), which the store does not hold",
                           repair: .recordAddresses(routed, containerID: attachment.containerID, ifname: attachment.ifname))
        }
        let why = routed.isEmpty ? "it routes no pod address" : "the store holds none of its addresses for it"
        return Finding(kind: .unallocatedVeth, address: routed.first, object: object, problem: why, repair: .deleteLink(veth.name))
    }

    /// The attachment an alias names ("podwire <network> <containerID> <ifname>"); nil for one
    /// cut short (a very long container ID), which cannot be read back.
    static func aliasAttachment(_ alias: String, network: String) -> (containerID: String, ifname: String)? {
        let prefix = HostVeth.aliasPrefix(network: network)
        guard alias.hasPrefix(prefix) else { return nil }
        let parts = alias.dropFirst(prefix.count).split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
              HostVeth.alias(network: network, containerID: String(parts[0]), ifname: String(parts[1])) == alias else { return nil }
        return (String(parts[0]), String(parts[1]))
    }

    /// An any-address forward and an address's forward of the same family, protocol and port,
    /// to different pods: both pods think they hold the port. The older holder (by its address
    /// file) keeps it.
    static func heldTwice(_ node: NodeSnapshot, allocated: Set<IPAddress>) -> [Finding] {
        var found: [Finding] = []
        let live = node.forwards.filter { allocated.contains($0.forward.pod) }
        for wide in live where wide.forward.hostAddress == nil {
            for narrow in live where narrow.forward.hostAddress != nil
                && narrow.forward.family == wide.forward.family && narrow.forward.proto == wide.forward.proto
                && narrow.forward.hostPort == wide.forward.hostPort && narrow.forward.pod != wide.forward.pod {
                let wideSince = node.allocation(of: wide.forward.pod)?.modified ?? 0
                let narrowSince = node.allocation(of: narrow.forward.pod)?.modified ?? 0
                let (keep, drop) = narrowSince < wideSince ? (narrow, wide) : (wide, narrow)
                found.append(Finding(kind: .hostPortHeldTwice, address: drop.forward.pod, object: "forward \(drop.forward)",
                                     problem: "\(keep.forward.hostPortText) is also forwarded to \(keep.forward.pod) (\(keep.owner ?? "no owner")), which held it first",
                                     repair: .removeForward(drop.forward)))
            }
        }
        return found
    }
}
