import NetAddress
import Netfilter
import PodWiring

/// `podwirectl ls`: one row per attachment the store knows, joined with what the kernel has.
public struct AttachmentRow: Sendable, Equatable {
    public var addresses: [IPAddress]
    public var containerID: String
    public var ifname: String
    public var hostVeth: String
    public var hostVethPresent: Bool
    /// The pod's end, seen from the host end: its index and the namespace id the node gives the
    /// pod's namespace (a veth's two ends exist together). nil when the host end is gone.
    public var podEnd: (index: Int32, netnsID: Int32?)?
    /// The node ports forwarded to its addresses ("tcp/8080 -> 80").
    public var hostPorts: [String]
    /// Whether its addresses are in the masquerade sets.
    public var masqueraded: Bool
    /// Seconds since its oldest address file was written.
    public var age: Int64

    public static func == (lhs: AttachmentRow, rhs: AttachmentRow) -> Bool {
        lhs.addresses == rhs.addresses && lhs.containerID == rhs.containerID && lhs.ifname == rhs.ifname
            && lhs.hostVeth == rhs.hostVeth && lhs.hostVethPresent == rhs.hostVethPresent
            && lhs.podEnd?.index == rhs.podEnd?.index && lhs.podEnd?.netnsID == rhs.podEnd?.netnsID
            && lhs.hostPorts == rhs.hostPorts && lhs.masqueraded == rhs.masqueraded && lhs.age == rhs.age
    }
}

public enum Listing {
    public static func rows(_ node: NodeSnapshot) -> [AttachmentRow] {
        node.attachments.map { attachment in
            let forwards = node.forwards.map(\.forward).filter { attachment.addresses.contains($0.pod) }
            return AttachmentRow(
                addresses: attachment.addresses, containerID: attachment.containerID, ifname: attachment.ifname,
                hostVeth: attachment.hostVethName, hostVethPresent: attachment.hostVeth != nil,
                podEnd: attachment.hostVeth.map { ($0.peerIndex, $0.peerNetnsID) },
                hostPorts: forwards.map { "\($0.hostPortText) -> \($0.podPort)" },
                masqueraded: node.masquerade?.contains { attachment.addresses.contains($0.address) } ?? false,
                age: max(0, node.time - attachment.since))
        }
    }

    /// "45s", "12m", "3h", "2d": as kubectl prints ages.
    public static func ageText(_ seconds: Int64) -> String {
        switch seconds {
        case ..<120: "\(seconds)s"
        case ..<7200: "\(seconds / 60)m"
        case ..<172_800: "\(seconds / 3600)h"
        default: "\(seconds / 86400)d"
        }
    }
}
