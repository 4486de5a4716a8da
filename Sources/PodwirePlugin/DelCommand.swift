import CallLog
import CNIProtocol
import LinuxSystem
import NetAddress
import Netfilter
import Netlink
import PodWiring

/// DEL: best effort and idempotent. The host veth is found by its derived name, so the pod's
/// namespace is not needed (runtimes send an empty or stale CNI_NETNS); deleting it removes the
/// pod end, the gateway address and the host route with it. The address is released only after
/// the interface is gone, so it cannot be handed to a new pod while still wired to the old one.
///
/// The kernel removes a veth at once but answers the request only after RCU grace periods (most
/// of DEL's time), so the bookkeeping runs in that wait: the deletion is sent from a thread of
/// its own (`LinkDeletion`), the addresses leave the network's masquerade sets meanwhile, and
/// IPAM releases them as soon as the kernel announces the veth gone.
///
/// The masquerade sets are cleaned whatever the config says now, and from the IPAM store, not
/// the (possibly gone) pod interface, so an empty CNI_NETNS leaks nothing (the reference's B6).
/// The kernel frees removed set elements after a grace period, which closing the nftables socket
/// waits for: the socket stays open until the veth's own wait is over, and then closes at once.
struct DelCommand {
    let environment: CNIEnvironment
    let config: NetworkConfig
    let timer: CallTimer

    func run() throws(CNIError) {
        let ipam = try IPAMBackend(config: config, environment: environment)
        let hostName = HostVeth(containerID: environment.containerID, ifname: environment.ifname).name
        let alias = HostVeth.alias(network: config.name, containerID: environment.containerID, ifname: environment.ifname)
        let hostSocket = try kernel("open a netlink socket") { () throws(NetlinkError) in try RouteSocket() }
        timer.lap(.config)
        let existing = try kernel("look up \(hostName)") { () throws(NetlinkError) in try hostSocket.link(named: hostName) }
        // A signed veth without alias is an ADD killed between creating the pair and labelling it.
        let ours = existing.flatMap { link in link.owner(network: config.name)?.belongs(to: alias) == true ? link : nil }
        let deletion = try ours.map { link throws(CNIError) in
            try kernel("delete \(hostName)") { () throws(NetlinkError) in try hostSocket.startDeletingLink(link) }
        }
        timer.lap(.veth)

        // A failure here must not keep the veth: it is reported after, before IPAM would release
        // addresses still in the masq sets (the runtime retries DEL).
        var masquerade: MasqueradeTable?
        var masqueradeFailure: CNIError?
        do {
            let (table, addresses) = try removeMasquerade(ipam)
            masquerade = table
            timer.lap(.masquerade)
            try HostPorts.remove(network: config.name, owner: VethPair.owner(containerID: environment.containerID, ifname: environment.ifname),
                                 addresses: addresses, mappings: config.portMappings, sharingSocketWith: table, timer: timer)
        } catch {
            masqueradeFailure = error
        }
        defer { withExtendedLifetime(masquerade) {} }

        var released = false
        if let deletion {
            let removed = masqueradeFailure == nil && deletion.waitUntilRemoved()
            timer.lap(.vethWait)
            if removed {
                try ipam.del(containerID: environment.containerID, ifname: environment.ifname)
                released = true
                timer.lap(.ipam)
            }
            try kernel("delete \(hostName)") { () throws(NetlinkError) in _ = try deletion.finish() }
            timer.lap(.vethWait)
        } else if !environment.netns.isEmpty {
            try deletePodEnd()
            timer.lap(.veth)
        }
        if let masqueradeFailure { throw masqueradeFailure }
        if !released {
            try ipam.del(containerID: environment.containerID, ifname: environment.ifname)
            timer.lap(.ipam)
        }
    }

    /// Takes the attachment's addresses out of the masq sets, whatever `ipMasq` says now: the
    /// config may have changed since ADD, and an element left behind would masquerade whoever
    /// gets the address next. Without a table (ipMasq never used) this costs one netlink request.
    ///
    /// podwire-ipam's store says which addresses the attachment holds, before they are released.
    /// A delegated IPAM has no store to ask: the elements themselves name their owner (and an
    /// uncommented element counts when prevResult lists its address).
    /// Returns the table, whose socket the caller keeps open until the veth is deleted, and the
    /// attachment's addresses as far as they are known (for its hostPorts).
    func removeMasquerade(_ ipam: IPAMBackend) throws(CNIError) -> (MasqueradeTable, [IPAddress]) {
        let table = MasqueradeTable(network: config.name)
        let doing = "stop masquerading \(environment.containerID)/\(environment.ifname) in nftables table inet \(table.name)"
        let addresses: [IPAddress]
        switch ipam {
        case .builtIn(let own):
            addresses = try own.addresses(containerID: environment.containerID, ifname: environment.ifname)
        case .delegated:
            let previous = previousAddresses()
            guard let members = try kernel(doing, { () throws(NetlinkError) in try table.members() }) else { return (table, previous) }
            let owner = VethPair.owner(containerID: environment.containerID, ifname: environment.ifname)
            let previousSet = Set(previous)
            let masqueraded = members.filter { $0.owner == owner || ($0.owner == nil && previousSet.contains($0.address)) }.map(\.address)
            guard !masqueraded.isEmpty else { return (table, previous) }
            _ = try kernel(doing) { () throws(NetlinkError) in try table.remove(masqueraded) }
            return (table, masqueraded + previous.filter { !masqueraded.contains($0) })
        }
        guard !addresses.isEmpty else { return (table, addresses) }
        _ = try kernel(doing) { () throws(NetlinkError) in try table.remove(addresses) }
        return (table, addresses)
    }

    /// The pod's addresses in prevResult, when the runtime sent one it could decode.
    func previousAddresses() -> [IPAddress] {
        guard let previous = config.prevResult, previous != .null,
              let result = try? CNIResult.decode(previous, defaultVersion: config.cniVersion) else { return [] }
        return result.ips.map(\.address.address)
    }

    /// Without a host end of ours, the pod end may still exist (a host veth renamed by hand):
    /// remove the pod's interface if its namespace is still there and it is a veth.
    func deletePodEnd() throws(CNIError) {
        let namespace: NetworkNamespace
        do {
            namespace = try NetworkNamespace(path: environment.netns)
        } catch {
            return // gone or not a namespace any more: nothing of the pod's is left to remove
        }
        let ifname = environment.ifname
        let podSocket = try kernel("open a netlink socket in \(environment.netns)") { () throws(NetlinkError) in
            try RouteSocket(in: namespace)
        }
        guard let link = try kernel("look up \(ifname) in \(environment.netns)", { () throws(NetlinkError) in try podSocket.link(named: ifname) }),
              link.kind == "veth"
        else { return }
        try kernel("delete \(ifname) in \(environment.netns)") { () throws(NetlinkError) in _ = try podSocket.deleteLink(named: ifname) }
    }
}
