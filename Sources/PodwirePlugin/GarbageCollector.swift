import CNIProtocol
import NetAddress
import Netfilter
import Netlink
import PodWiring

/// GC: removes everything of this network whose attachment the runtime no longer lists: host
/// veths (and with them their pod ends and host routes), then IPAM reservations, then masquerade
/// set elements. It keeps going past individual failures and reports them all at the end.
struct GarbageCollector {
    let config: NetworkConfig
    let ipam: IPAMBackend

    func run() throws(CNIError) {
        let valid = try config.requireValidAttachments()
        var failures: [String] = []

        let socket = try kernel("open a netlink socket") { () throws(NetlinkError) in try RouteSocket() }
        let links = try kernel("list links") { () throws(NetlinkError) in try socket.links() }
        // Whole aliases are compared, as ADD wrote them: a very long container ID's is cut short.
        let validAliases = Set(valid.map { HostVeth.alias(network: config.name, containerID: $0.containerID, ifname: $0.ifname) })
        for link in links where link.owner(network: config.name)?.isStale(keeping: validAliases) == true {
            do {
                try socket.deleteLink(named: link.name)
            } catch {
                failures.append("delete \(link.name): \(error.reason)")
            }
        }

        var ipamFailure: CNIError?
        do {
            try ipam.gc(validAttachments: valid)
        } catch {
            ipamFailure = error
        }
        do {
            try collectMasquerade(valid: valid)
        } catch {
            failures.append("masquerade: \(error.description)")
        }
        do {
            try collectHostPorts(valid: valid)
        } catch {
            failures.append("hostPorts: \(error.description)")
        }
        if let ipamFailure {
            // Alone, the IPAM's error is the answer, code included (a delegate's own code passes
            // through); its details name the files it could not remove, so they must not be dropped.
            if failures.isEmpty { throw ipamFailure }
            failures.append("IPAM: \(ipamFailure.description)")
        }
        if !failures.isEmpty {
            throw CNIError(.ioFailure, "GC of network \(config.name) left \(failures.count) item(s) behind", details: failures.joined(separator: "; "))
        }
    }

    /// Makes the masq sets (when the network's table exists) hold exactly the addresses podwire-ipam
    /// still has allocated, or, with ipMasq off now, removes stale elements without adding any:
    /// pods ADDed while it was on keep their masquerade until their DEL. With a delegated IPAM
    /// there is no store to read, so the elements' comments decide: those naming an attachment
    /// not listed go. The spec runs GC with no ADD or DEL in flight.
    func collectMasquerade(valid: [NetworkConfig.Attachment]) throws(CNIError) {
        let table = MasqueradeTable(network: config.name)
        let doing = "collect the masquerade of network \(config.name) (nftables table inet \(table.name))"
        guard let members = try kernel(doing, { () throws(NetlinkError) in try table.members() }) else { return }
        let present = Set(members.map(\.address))
        var removing: [IPAddress] = []
        var adding: [MasqueradeTable.Member] = []
        switch ipam {
        case .builtIn(let own):
            let allocations = try own.allocations()
            let held = Set(allocations.map(\.address))
            removing = members.filter { !held.contains($0.address) }.map(\.address)
            if config.ipMasq {
                adding = allocations.filter { !present.contains($0.address) }.map { MasqueradeTable.Member(address: $0.address, owner: $0.owner) }
            }
        case .delegated:
            let stale = Self.staleOwner(keeping: valid)
            removing = members.filter { stale($0.owner) }.map(\.address)
        }
        guard !removing.isEmpty || !adding.isEmpty else { return }
        _ = try kernel(doing) { () throws(NetlinkError) in try table.update(removing: removing, adding: adding) }
    }

    /// Removes the hostPort forwards and SNAT pairs whose owner is not a listed attachment, and
    /// the conntrack entries DNATed to their pods. Elements without a podwire owner comment are
    /// not podwire's to judge and stay.
    func collectHostPorts(valid: [NetworkConfig.Attachment]) throws(CNIError) {
        let table = HostPortTable(network: config.name)
        let stale = Self.staleOwner(keeping: valid)
        let removed = try kernel("collect the hostPorts of network \(config.name) (nftables table inet \(table.name))") {
            () throws(NetlinkError) in
            try table.removeAll(where: stale)
        }
        HostPorts.forgetFlows(through: removed)
    }

    /// Whether an nftables element's owner comment names a podwire attachment ("<containerID>/
    /// <ifname>") not in `valid`. Elements without such a comment are not podwire's to judge.
    static func staleOwner(keeping valid: [NetworkConfig.Attachment]) -> (String?) -> Bool {
        let owners = Set(valid.map { VethPair.owner(containerID: $0.containerID, ifname: $0.ifname) })
        return { owner in owner.map { $0.contains("/") && !owners.contains($0) } ?? false }
    }
}
