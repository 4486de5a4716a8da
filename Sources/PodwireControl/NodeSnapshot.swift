import CNIProtocol
import NetAddress
import Netfilter
import Netlink
import PodIPAM
import PodWiring
import PodwirePlugin

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Everything podwire keeps about one network on this node, read at one moment: the IPAM store
/// (address files and index) and the kernel (links, host routes, the nftables elements). Plain
/// data: `Doctor` and `Listing` work on it without touching anything.
public struct NodeSnapshot: Sendable {
    public var network: String
    /// The subnets of the network's IPAM ranges: a host route into one of them is a pod route.
    public var subnets: [IPNetwork]
    public var ranges: [IPRange]
    public var storePath: String
    public var allocations: [LockedIPAMStore.Allocation]
    public var indexDisagreements: [LockedIPAMStore.IndexDisagreement]
    public var links: [LinkInfo]
    /// Main-table routes to a single address (/32, /128) inside `subnets`, on a device.
    public var podRoutes: [RouteSpec]
    /// nil: the network has no masquerade sets.
    public var masquerade: [MasqueradeTable.Member]?
    public var forwards: [HostPortTable.Held]
    public var snatPairs: [SNATElement]
    /// Seconds since the epoch, when the snapshot was taken.
    public var time: Int64

    public struct SNATElement: Sendable, Equatable {
        public var pair: SNATPair
        public var owner: String?
    }

    /// An attachment the store knows: its addresses, and its host veth as the kernel has it.
    public struct Attachment: Sendable, Equatable {
        public var containerID: String
        public var ifname: String
        public var addresses: [IPAddress]
        /// The oldest of its address files.
        public var since: Int64
        public var hostVethName: String
        /// The link by that name, when it is this attachment's (its alias, or podwire's signature
        /// on a link an ADD has not labelled yet).
        public var hostVeth: LinkInfo?

        public var owner: String { VethPair.owner(containerID: containerID, ifname: ifname) }
    }

    /// The attachments of the store's records that name one (legacy and unreadable records have
    /// no interface, so no veth to look for).
    public var attachments: [Attachment] {
        var result: [Attachment] = []
        var positions: [String: Int] = [:]
        let linksByName = Dictionary(links.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for allocation in allocations {
            guard let containerID = allocation.containerID, let ifname = allocation.ifname else { continue }
            let owner = VethPair.owner(containerID: containerID, ifname: ifname)
            if let position = positions[owner] {
                result[position].addresses.append(allocation.address)
                result[position].since = min(result[position].since, allocation.modified)
                continue
            }
            let name = HostVeth(containerID: containerID, ifname: ifname).name
            let alias = HostVeth.alias(network: network, containerID: containerID, ifname: ifname)
            let link = linksByName[name].flatMap { $0.owner(network: network)?.belongs(to: alias) == true ? $0 : nil }
            positions[owner] = result.count
            result.append(Attachment(containerID: containerID, ifname: ifname, addresses: [allocation.address],
                                     since: allocation.modified, hostVethName: name, hostVeth: link))
        }
        return result.sorted { ($0.addresses.first ?? .v4(IPv4Address(0))) < ($1.addresses.first ?? .v4(IPv4Address(0))) }
    }

    /// Host veths labelled as this network's whose alias no allocation's attachment has.
    public var unallocatedVeths: [LinkInfo] { unallocatedVeths(besides: attachments) }

    /// The same, given the attachments already worked out.
    public func unallocatedVeths(besides attachments: [Attachment]) -> [LinkInfo] {
        let aliases = Set(attachments.map { HostVeth.alias(network: network, containerID: $0.containerID, ifname: $0.ifname) })
        return links.filter { link in
            guard case .attachment(let alias)? = link.owner(network: network) else { return false }
            return !aliases.contains(alias)
        }
    }

    public func allocation(of address: IPAddress) -> LockedIPAMStore.Allocation? {
        allocations.first { $0.address == address }
    }

}

extension NodeSnapshot {
    /// Reads the store (under its lock, which `store` holds) and the kernel.
    public static func read(network list: NetworkList, store: LockedIPAMStore, routeSocket: RouteSocket) throws(ControlError) -> NodeSnapshot {
        let config = try list.podwireConfig()
        let ipam = try list.ipamConfig()
        let ranges = ipam.rangeSets.flatMap { $0 }
        var subnets: [IPNetwork] = []
        for range in ranges where !subnets.contains(range.subnet) { subnets.append(range.subnet) }
        let allocations: [LockedIPAMStore.Allocation]
        let disagreements: [LockedIPAMStore.IndexDisagreement]
        do {
            allocations = try store.allocations()
            disagreements = try store.indexDisagreements()
        } catch {
            throw ControlError(access: error)
        }
        let doing = "read network \(config.name)'s state from the kernel"
        do throws(NetlinkError) {
            let links = try routeSocket.links()
            var routes: [RouteSpec] = []
            for family in [IPFamily.v4, .v6] {
                for route in try routeSocket.routes(family: family)
                where route.table == mainTable && route.linkIndex != 0
                    && route.destination.prefixLength == route.destination.networkAddress.bitWidth
                    && subnets.contains(where: { $0.contains(route.destination.networkAddress) }) {
                    routes.append(route)
                }
            }
            let masquerade = MasqueradeTable(network: config.name)
            let hostPorts = HostPortTable(network: config.name, sharingSocketWith: masquerade)
            return NodeSnapshot(network: config.name, subnets: subnets, ranges: ranges, storePath: store.path,
                                allocations: allocations, indexDisagreements: disagreements, links: links, podRoutes: routes,
                                masquerade: try masquerade.members(), forwards: try hostPorts.allForwards(),
                                snatPairs: try hostPorts.allSNATPairs().map { SNATElement(pair: $0.pair, owner: $0.owner) },
                                time: Int64(Glibc.time(nil)))
        } catch {
            throw ControlError(.access, "cannot \(doing): \(error)")
        }
    }

    static let mainTable = UInt32(254)
}
