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
    /// are forgotten, so their next packet takes the new mapping: for the ports the table's seen
    /// sets name (a flow was delivered to the node on them), or for every UDP port when this ADD
    /// made the sets. A port nothing was sent to costs no walk of the conntrack table.
    static func install(_ plan: HostPortPlan, network: String,
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
        let udp = plan.forwards.filter { $0.proto == .udp }
        if !udp.isEmpty {
            // A port's flows are known only since the seen sets exist: all of them, when this ADD
            // made them. A set that cannot be read counts as having seen every port.
            let seen = table.madeStructure ? udp : ((try? table.seenPorts(udp)) ?? udp)
            forgetUDPFlows(to: seen)
        }
        timer.lap(.conntrack)
        return table
    }

    /// Deletes the conntrack entries of UDP flows to the forwarded ports that started before the
    /// mapping, so their next packet takes it: every entry of a UDP flow to one of the ports that
    /// no NAT has changed (a flow to a port nothing mapped yet is delivered to the node as it is).
    /// Flows DNATed already (to this pod, or to another holder of the port on another hostIP)
    /// and masqueraded flows through the node are kept. An untranslated flow through the node to
    /// another host's port of the same number goes too; its next packet makes the same entry again.
    /// Best effort: a failure is said on stderr, the pod is wired either way.
    ///
    /// The kernel deletes them itself (a filtered flush, one walk of its conntrack table that
    /// skips empty buckets), except on kernels before 6.12, where they are listed and deleted one
    /// by one (a dump locks all 262144 buckets here: ~9 ms). Neither walks when the node's
    /// namespace tracks no connection at all.
    static func forgetUDPFlows(to forwards: [HostPortForward]) {
        guard !forwards.isEmpty else { return }
        do throws(NetlinkError) {
            let conntrack = try ConntrackSocket()
            for family in [IPFamily.v4, .v6] {
                var ports: [UInt16] = []
                for forward in forwards where forward.family == family && !ports.contains(forward.hostPort) {
                    ports.append(forward.hostPort)
                }
                guard !ports.isEmpty else { continue }
                try conntrack.forget(family: family, matching: ports.map {
                    ConntrackFilter(proto: PortMapping.TransportProtocol.udp.number, originalDestinationPort: $0, translation: ConntrackFilter.Translation.none)
                })
            }
        } catch {
            PluginProcess.warn("podwire: could not clear stale UDP conntrack entries for new hostPorts: \(error)")
        }
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
    /// paying a walk of its conntrack table on every DEL. Best effort, as in `forgetUDPFlows`; the
    /// kernel deletes them itself as there, except for an IPv6 pod (the kernel's filter compares
    /// IPv6 addresses the wrong way round), whose are listed and deleted one by one.
    public static func forgetFlows(through removed: [HostPortForward]) {
        var pods: [IPAddress] = []
        for forward in removed where forward.proto == .udp && !pods.contains(forward.pod) { pods.append(forward.pod) }
        guard !pods.isEmpty else { return }
        do throws(NetlinkError) {
            let conntrack = try ConntrackSocket()
            for family in [IPFamily.v4, .v6] {
                let filters = pods.filter { $0.family == family }.map {
                    ConntrackFilter(proto: PortMapping.TransportProtocol.udp.number, replySource: $0, translation: .destination)
                }
                if !filters.isEmpty { try conntrack.forget(family: family, matching: filters) }
            }
        } catch {
            PluginProcess.warn("podwire: could not clear the conntrack entries of removed hostPorts: \(error)")
        }
    }
}
