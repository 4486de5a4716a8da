import CallLog
import CNIPlugin
import CNIProtocol
import LinuxSystem
import NetAddress
import Netfilter
import Netlink
import PodWiring

/// The `portMappings` capability built in: node ports DNATed to the pod through the network's
/// nftables maps (`HostPortTable`), conflicts refused, and the conntrack entries that would
/// keep a flow on the port's previous holder deleted. No exec, no iptables.
public enum HostPorts {
    /// nft keeps an element's comment, its owner, only up to this length; an uncommented element
    /// would name no holder, so hostPorts need an owner that fits.
    static let maximumOwnerLength = MasqueradeTable.maximumCommentLength

    /// The plan for the runtime's mappings and the pod's addresses; nil without mappings.
    static func plan(_ mappings: [PortMapping], addresses: [IPAddress], pair: VethPair) throws(CNIError) -> HostPortPlan? {
        guard !mappings.isEmpty else { return nil }
        guard pair.owner.utf8.count <= maximumOwnerLength else {
            throw CNIError(.invalidEnvironment, "CNI_CONTAINERID and CNI_IFNAME are too long for hostPorts",
                           details: "\"\(pair.owner)\" is \(pair.owner.utf8.count) bytes; nftables comments, which name each port's holder, hold \(maximumOwnerLength)")
        }
        return try HostPortPlan(mappings: mappings, podAddresses: addresses, owner: pair.owner)
    }

    /// Installs the plan; a port another attachment holds is refused (code 105) naming the
    /// holder, with nothing changed. Then UDP flows that reached the port before it was mapped
    /// are forgotten, so their next packet takes the new mapping.
    static func install(_ plan: HostPortPlan, network: String, hostSocket: RouteSocket,
                        sharingSocketWith masquerade: MasqueradeTable?, timer: CallTimer) throws(CNIError) -> HostPortTable {
        let table = HostPortTable(network: network, sharingSocketWith: masquerade)
        let conflict = try kernel("map hostPorts \(plan.forwards.map(\.description).joined(separator: ", ")) in nftables table inet \(table.name)") {
            () throws(NetlinkError) in try table.install(plan)
        }
        if let conflict {
            let holder = conflict.holder.owner.map { owner in
                let parts = owner.split(separator: "/", maxSplits: 1)
                return parts.count == 2 ? "container \(parts[0]) (interface \(parts[1]))" : "\"\(owner)\""
            } ?? "an uncommented element"
            throw CNIError(.hostPortTaken, "hostPort \(conflict.wanted.hostPortText) is already taken by \(holder)",
                           details: "held as \(conflict.holder.forward); DEL that pod, or choose another hostPort")
        }
        timer.lap(.hostPorts)
        forgetUDPFlows(to: plan.forwards.filter { $0.proto == .udp }, hostSocket: hostSocket)
        timer.lap(.conntrack)
        return table
    }

    /// Deletes the conntrack entries of UDP flows to the forwarded ports that started before the
    /// mapping: those to one of the node's own addresses (or the mapping's hostIP) that do not
    /// already go to the new pod. Flows through the node to some other host's port, and new
    /// flows already DNATed to this pod, are kept. Best effort: a failure is said on stderr,
    /// the pod is wired either way.
    ///
    /// A ctnetlink dump walks the kernel's whole conntrack hash table (every bucket of every
    /// namespace's, under its lock: 262144 buckets take ~9 ms here), so there is one dump per
    /// family, none when the node's namespace tracks no connection at all.
    static func forgetUDPFlows(to forwards: [HostPortForward], hostSocket: RouteSocket) {
        guard !forwards.isEmpty, tracksConnections() else { return }
        do throws(NetlinkError) {
            let conntrack = try ConntrackSocket()
            var localCache: [IPAddress: Bool] = [:]
            for family in [IPFamily.v4, .v6] {
                let ofFamily = forwards.filter { $0.family == family }
                guard let first = ofFamily.first else { continue }
                let onePort = ofFamily.allSatisfy { $0.hostPort == first.hostPort }
                let entries = try conntrack.entries(family: family, matching: ConntrackFilter(proto: first.proto.number,
                                                                                              originalDestinationPort: onePort ? first.hostPort : nil))
                var stale: [ConntrackEntry] = []
                for entry in entries {
                    guard let forward = ofFamily.first(where: { $0.hostPort == entry.original.destinationPort && $0.proto.number == entry.original.proto }),
                          !(entry.reply.source == forward.pod && entry.reply.sourcePort == forward.podPort) else { continue }
                    let destination = entry.original.destination
                    if let hostAddress = forward.hostAddress {
                        if destination != hostAddress { continue }
                    } else {
                        if localCache[destination] == nil { localCache[destination] = try hostSocket.isLocalAddress(destination) }
                        if localCache[destination] != true { continue }
                    }
                    stale.append(entry)
                }
                if !stale.isEmpty { _ = try conntrack.delete(stale) }
            }
        } catch {
            PluginProcess.warn("podwire: could not clear stale UDP conntrack entries for new hostPorts: \(error)")
        }
    }

    /// Whether the namespace tracks any connection (`net.netfilter.nf_conntrack_count`, which is
    /// per namespace): with none there is nothing to forget, and the kernel's own flush makes
    /// the same test before it walks the table.
    static func tracksConnections() -> Bool {
        guard let count = try? Sysctl.read("net/netfilter/nf_conntrack_count") else { return false }
        return count != "0"
    }

    /// DEL: the attachment's forwards and SNAT pairs out of the maps, then every conntrack
    /// entry DNATed to its addresses, so a client that keeps sending (UDP) reaches the port's
    /// next holder instead of the dead pod (the reference's plugins#1190).
    static func remove(network: String, owner: String, addresses: [IPAddress], mappings: [PortMapping],
                       sharingSocketWith masquerade: MasqueradeTable?, timer: CallTimer) throws(CNIError) {
        let table = HostPortTable(network: network, sharingSocketWith: masquerade)
        let removed = try kernel("remove the hostPorts of \(owner) from nftables table inet \(table.name)") { () throws(NetlinkError) in
            try table.remove(owner: owner, podAddresses: addresses, mappings: mappings)
        }
        timer.lap(.hostPorts)
        forgetFlows(through: removed)
        timer.lap(.conntrack)
    }

    /// Deletes the conntrack entries DNATed to the pods of removed UDP forwards. A UDP client
    /// that keeps sending keeps its entry alive forever; TCP and SCTP flows to a dead pod end,
    /// and their next connection is NATed afresh, so they are left to the kernel rather than
    /// paying a walk of its conntrack table on every DEL. Best effort, as in `forgetUDPFlows`.
    public static func forgetFlows(through removed: [HostPortForward]) {
        var pods: [IPAddress] = []
        for forward in removed where forward.proto == .udp && !pods.contains(forward.pod) { pods.append(forward.pod) }
        guard !pods.isEmpty, tracksConnections() else { return }
        do throws(NetlinkError) {
            let conntrack = try ConntrackSocket()
            for pod in pods {
                let entries = try conntrack.entries(family: pod.family, matching: ConntrackFilter(proto: PortMapping.TransportProtocol.udp.number, replySource: pod))
                let natted = entries.filter(\.isDestinationNATed)
                if !natted.isEmpty { _ = try conntrack.delete(natted) }
            }
        } catch {
            PluginProcess.warn("podwire: could not clear the conntrack entries of removed hostPorts: \(error)")
        }
    }
}
