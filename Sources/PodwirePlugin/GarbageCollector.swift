import CNIProtocol
import Netlink

/// GC: removes everything of this network whose attachment the runtime no longer lists: host
/// veths (and with them their pod ends and host routes), then IPAM reservations. It keeps going
/// past individual failures and reports them all at the end.
struct GarbageCollector {
    let config: NetworkConfig
    let ipam: IPAMBackend

    func run() throws(CNIError) {
        let valid = try Self.validAttachments(in: config)
        var failures: [String] = []

        let socket = try kernel("open a netlink socket") { () throws(KernelError) in try RouteSocket() }
        let links = try kernel("list links") { () throws(KernelError) in try socket.links() }
        let validKeys = Set(valid.map { "\($0.containerID)/\($0.ifname)" })
        for link in links where link.kind == "veth" {
            let owner = HostVeth.attachment(fromAlias: link.alias, network: config.name)
            let stale: Bool
            if let owner {
                stale = !validKeys.contains("\(owner.containerID)/\(owner.ifname)")
            } else {
                // Signed but unlabelled: an ADD that died before it finished, which no runtime lists.
                stale = link.alias.isEmpty && HostVeth.isSigned(name: link.name, mac: link.mac)
            }
            guard stale else { continue }
            do {
                try socket.deleteLink(named: link.name)
            } catch {
                failures.append("delete \(link.name): \(error.reason)")
            }
        }

        do {
            try ipam.gc(validAttachments: valid)
        } catch {
            // Alone, the IPAM's error is the answer, code included (a delegate's own code passes
            // through); its details name the files it could not remove, so they must not be dropped.
            if failures.isEmpty { throw error }
            failures.append("IPAM: \(error.description)")
        }
        if !failures.isEmpty {
            throw CNIError(.ioFailure, "GC of network \(config.name) left \(failures.count) item(s) behind", details: failures.joined(separator: "; "))
        }
    }

    /// `cni.dev/valid-attachments`, or the 1.1.0 tag's `cni.dev/attachments`. Without either, GC
    /// refuses to run: treating a missing list as empty would delete every pod's network.
    static func validAttachments(in config: NetworkConfig) throws(CNIError) -> [(containerID: String, ifname: String)] {
        guard let value = config.json["cni.dev/valid-attachments"] ?? config.json["cni.dev/attachments"] else {
            throw CNIError(.invalidNetworkConfig, "GC needs \"cni.dev/valid-attachments\" in the config",
                           details: "an empty list removes every attachment of the network; a missing one removes nothing")
        }
        guard case .array(let entries) = value else {
            throw CNIError(.invalidNetworkConfig, "\"cni.dev/valid-attachments\" must be a list of {containerID, ifname}")
        }
        var result: [(containerID: String, ifname: String)] = []
        for entry in entries {
            guard let containerID = entry["containerID"]?.stringValue, let ifname = entry["ifname"]?.stringValue else {
                throw CNIError(.invalidNetworkConfig, "every valid attachment needs \"containerID\" and \"ifname\" strings")
            }
            result.append((containerID, ifname))
        }
        return result
    }
}
