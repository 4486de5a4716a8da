import CNIProtocol
import Netlink

/// DEL: best effort and idempotent. The host veth is found by its derived name, so the pod's
/// namespace is not needed (runtimes send an empty or stale CNI_NETNS); deleting it removes the
/// pod end, the gateway address and the host route with it. The address is released only after
/// the interface is gone, so it cannot be handed to a new pod while still wired to the old one.
struct DelCommand {
    let environment: CNIEnvironment
    let config: NetworkConfig

    func run() throws(CNIError) {
        let ipam = try IPAMBackend(config: config, environment: environment)
        let hostName = HostVeth(containerID: environment.containerID, ifname: environment.ifname).name
        let alias = HostVeth.alias(network: config.name, containerID: environment.containerID, ifname: environment.ifname)
        let hostSocket = try kernel("open a netlink socket") { () throws(KernelError) in try RouteSocket() }

        let existing = try kernel("look up \(hostName)") { () throws(KernelError) in try hostSocket.link(named: hostName) }
        if let existing, existing.kind == "veth",
           existing.alias == alias || (existing.alias.isEmpty && HostVeth.isSigned(name: existing.name, mac: existing.mac)) {
            // A signed veth without alias is an ADD killed between creating the pair and labelling it.
            try kernel("delete \(hostName)") { () throws(KernelError) in _ = try hostSocket.deleteLink(named: hostName) }
        } else if !environment.netns.isEmpty {
            try deletePodEnd()
        }
        try ipam.del(containerID: environment.containerID, ifname: environment.ifname)
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
        let podSocket = try kernel("open a netlink socket in \(environment.netns)") { () throws(KernelError) in
            try RouteSocket(in: namespace)
        }
        guard let link = try kernel("look up \(ifname) in \(environment.netns)", { () throws(KernelError) in try podSocket.link(named: ifname) }),
              link.kind == "veth"
        else { return }
        try kernel("delete \(ifname) in \(environment.netns)") { () throws(KernelError) in _ = try podSocket.deleteLink(named: ifname) }
    }
}
