internal import CNFTables
import NetAddress

// Connection tracking entries as values: what a ctnetlink dump says about one entry, what selects
// entries, and what a delete needs. No netlink here: ConntrackMessages.swift frames them and
// ConntrackSocket.swift talks to the kernel.

/// One direction of a tracked connection, as the kernel keys it (`struct nf_conntrack_tuple`).
///
/// For ICMP and ICMPv6, which have no ports, the kernel's tuple keeps the echo identifier where a
/// source port goes and the type and code where a destination port goes; so does this value:
/// `sourcePort` is the ICMP id and `destinationPort` is `type << 8 | code`.
package struct ConntrackTuple: Equatable, Sendable {
    package var source: IPAddress
    package var destination: IPAddress
    /// The IP protocol number (IPPROTO_UDP, IPPROTO_TCP, ...).
    package var proto: UInt8
    package var sourcePort: UInt16
    package var destinationPort: UInt16

    package init(source: IPAddress, destination: IPAddress, proto: UInt8, sourcePort: UInt16, destinationPort: UInt16) {
        self.source = source
        self.destination = destination
        self.proto = proto
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    var isICMP: Bool { proto == UInt8(IPPROTO_ICMP) || proto == UInt8(IPPROTO_ICMPV6) }
}

/// One conntrack entry from a dump.
package struct ConntrackEntry: Equatable, Sendable {
    /// The tuple of the first packet: who started the connection, to what it was sent.
    package var original: ConntrackTuple
    /// The tuple replies are expected with: after DNAT its source is the translated destination
    /// (the pod of a hostPort), after SNAT its destination is the translated source.
    package var reply: ConntrackTuple
    /// `enum ip_conntrack_status` bits (linux/netfilter/nf_conntrack_common.h).
    package var status: UInt32
    /// The conntrack zone (CTA_ZONE); 0, the default zone, when the kernel sent none.
    package var zone: UInt16

    package init(original: ConntrackTuple, reply: ConntrackTuple, status: UInt32, zone: UInt16 = 0) {
        self.original = original
        self.reply = reply
        self.status = status
        self.zone = zone
    }

    /// The connection's destination was translated (IPS_DST_NAT): a hostPort's DNAT, a Service's.
    package var isDestinationNATed: Bool { status & UInt32(IPS_DST_NAT.rawValue) != 0 }
}

/// Which entries a listing returns: every condition that is set must hold (an empty filter
/// matches every entry of the family).
package struct ConntrackFilter: Sendable {
    /// The IP protocol number of the entry (`conntrack -p`).
    package var proto: UInt8?
    /// The destination port of the original direction (`conntrack --orig-port-dst`).
    package var originalDestinationPort: UInt16?
    /// The source address of the reply direction (`conntrack --reply-src`): the pod, for a
    /// connection DNATed to it.
    package var replySource: IPAddress?
    /// What translation the entry has had (its IPS_SRC_NAT and IPS_DST_NAT bits).
    package var translation: Translation?

    /// An entry's NAT, as its status bits say. A null binding (local delivery, or a packet no NAT
    /// rule changed) sets only the *_DONE bits, so it counts as untranslated.
    package enum Translation: Sendable {
        /// Neither address changed (`conntrack --status` without SRC_NAT or DST_NAT).
        case none
        /// The destination was translated (`conntrack --status DST_NAT`): a hostPort's DNAT.
        case destination

        /// The status bits that decide, and the value they must have under that mask.
        var statusMask: UInt32 {
            switch self {
            case .none: UInt32(IPS_SRC_NAT.rawValue | IPS_DST_NAT.rawValue)
            case .destination: UInt32(IPS_DST_NAT.rawValue)
            }
        }
        var statusValue: UInt32 {
            switch self {
            case .none: 0
            case .destination: UInt32(IPS_DST_NAT.rawValue)
            }
        }
    }

    package init(proto: UInt8? = nil, originalDestinationPort: UInt16? = nil, replySource: IPAddress? = nil,
                 translation: Translation? = nil) {
        self.proto = proto
        self.originalDestinationPort = originalDestinationPort
        self.replySource = replySource
        self.translation = translation
    }

    package func matches(_ entry: ConntrackEntry) -> Bool {
        if let proto, entry.original.proto != proto { return false }
        // An ICMP tuple's "destination port" is its type and code: no port to match.
        if let originalDestinationPort,
           entry.original.isICMP || entry.original.destinationPort != originalDestinationPort { return false }
        if let replySource, entry.reply.source != replySource { return false }
        if let translation, entry.status & translation.statusMask != translation.statusValue { return false }
        return true
    }
}
