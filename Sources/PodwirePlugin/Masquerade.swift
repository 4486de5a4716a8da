import CNIProtocol
import Netfilter
import NetAddress
import Netlink
import PodWiring

/// `ipMasq` over nftables: the network's table (`MasqueradeTable`) masquerades traffic from the
/// pods' addresses to anywhere but the plan's exempt destinations. One netlink transaction per
/// ADD or DEL, no exec.
enum Masquerade {
    /// `nonMasqueradeCIDRs` whether or not `ipMasq` is set, so a typo is reported before it
    /// matters, and the table's name (named after the network): checked before anything is
    /// made, so a network that cannot masquerade is refused with nothing to undo (code 7).
    /// hostPorts live in the same table, so they need the same name.
    static func requireUsableConfig(_ config: NetworkConfig, hostPorts: Bool) throws(CNIError) {
        _ = try config.requireNonMasqueradeCIDRs()
        let table = MasqueradeTable(network: config.name)
        if (config.ipMasq || hostPorts) && table.name.utf8.count > MasqueradeTable.maximumNameLength {
            throw CNIError(.invalidNetworkConfig, "network name \"\(config.name)\" is too long for \(config.ipMasq ? "ipMasq" : "hostPorts")",
                           details: "the nftables table \(table.name.prefix(40))... may have at most \(MasqueradeTable.maximumNameLength) bytes")
        }
    }

    /// Puts the plan's addresses in the network's masq sets and makes the exempt sets the plan's.
    static func install(_ plan: MasqueradePlan, network: String) throws(CNIError) -> MasqueradeTable {
        let table = MasqueradeTable(network: network)
        try kernel("masquerade \(plan.addresses.map(\.description).joined(separator: ", ")) with nftables table inet \(table.name)") {
            () throws(NetlinkError) in
            try table.install(exempt: plan.exempt, addresses: plan.addresses, owner: plan.owner)
        }
        return table
    }
}
