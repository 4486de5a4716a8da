internal import CNFTables
import NetAddress
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// ctnetlink (NFNL_SUBSYS_CTNETLINK) messages: the filtered dump request, the delete by tuple, and
// the reading of a dumped entry. Laid out as linux/netfilter/nfnetlink_conntrack.h and
// net/netfilter/nf_conntrack_netlink.c define them: every address, port, status and zone is in
// network byte order; only CTA_FILTER's two flag words are host-endian u32 (nla_get_u32).
// Byte-for-byte checks against Debian's `conntrack` are in Tests/NetlinkTests/ConntrackWireTests.swift.

enum ConntrackMessage {
    typealias Attribute = NetlinkAttribute

    static func attr<T: RawRepresentable>(_ value: T) -> UInt16 where T.RawValue == UInt32 { UInt16(value.rawValue) }

    static func messageType(_ message: cntl_msg_types) -> UInt16 {
        UInt16(NFNL_SUBSYS_CTNETLINK) << 8 | UInt16(message.rawValue)
    }

    /// nfgenmsg's family byte.
    static func familyByte(_ family: IPFamily) -> UInt8 { UInt8(family == .v4 ? AF_INET : AF_INET6) }

    // MARK: Tuples

    /// CTA_TUPLE_IP and CTA_TUPLE_PROTO of `tuple`: both addresses, the protocol, and its ports
    /// (ICMP: code, type, id; the order `conntrack` sends them in). Used for deletes, where the
    /// kernel wants every field (ctnetlink_parse_tuple with CTA_FILTER_F_ALL).
    static func tupleAttributes(_ tuple: ConntrackTuple) -> [Attribute] {
        let ip: Attribute = switch tuple.source {
        case .v4: .nest(attr(CTA_TUPLE_IP), [.bytes(attr(CTA_IP_V4_SRC), tuple.source.bytes),
                                             .bytes(attr(CTA_IP_V4_DST), tuple.destination.bytes)])
        case .v6: .nest(attr(CTA_TUPLE_IP), [.bytes(attr(CTA_IP_V6_SRC), tuple.source.bytes),
                                             .bytes(attr(CTA_IP_V6_DST), tuple.destination.bytes)])
        }
        var proto: [Attribute] = [.bytes(attr(CTA_PROTO_NUM), [tuple.proto])]
        let type = UInt8(truncatingIfNeeded: tuple.destinationPort >> 8), code = UInt8(truncatingIfNeeded: tuple.destinationPort)
        switch tuple.proto {
        case UInt8(IPPROTO_ICMP):
            proto += [.bytes(attr(CTA_PROTO_ICMP_CODE), [code]), .bytes(attr(CTA_PROTO_ICMP_TYPE), [type]),
                      .bytes(attr(CTA_PROTO_ICMP_ID), be16(tuple.sourcePort))]
        case UInt8(IPPROTO_ICMPV6):
            proto += [.bytes(attr(CTA_PROTO_ICMPV6_CODE), [code]), .bytes(attr(CTA_PROTO_ICMPV6_TYPE), [type]),
                      .bytes(attr(CTA_PROTO_ICMPV6_ID), be16(tuple.sourcePort))]
        default:
            // TCP, UDP, UDP-Lite, SCTP, DCCP, GRE (its keys): ports. A protocol conntrack tracks
            // generically has none; the kernel ignores them there (no nlattr_to_tuple).
            proto += [.bytes(attr(CTA_PROTO_SRC_PORT), be16(tuple.sourcePort)),
                      .bytes(attr(CTA_PROTO_DST_PORT), be16(tuple.destinationPort))]
        }
        return [ip, .nest(attr(CTA_TUPLE_PROTO), proto)]
    }

    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)] }

    // MARK: Delete

    /// One IPCTNL_MSG_CT_DELETE of the entry whose original tuple is `original` (in `zone`),
    /// appended to `buffer`, with NLM_F_ACK.
    ///
    /// SAFETY: an IPCTNL_MSG_CT_DELETE without CTA_TUPLE_ORIG (and without CTA_TUPLE_REPLY), or
    /// with CTA_FILTER, is not a delete but a FLUSH of the whole conntrack table (of every family,
    /// unless nfgenmsg's version is set; ctnetlink_del_conntrack -> ctnetlink_flush_conntrack).
    /// That is impossible by construction here: this is the only encoder of a delete, it takes a
    /// complete tuple (both addresses, protocol, ports: no field is optional), always writes
    /// CTA_TUPLE_ORIG with all of it, and never writes CTA_FILTER. Both addresses must be of one
    /// family, nfgenmsg's (the kernel's lenient parsing would read 4 bytes of an IPv6 address as
    /// an IPv4 one): a parsed tuple always is, and ConntrackSocket.delete refuses one that is not
    /// before anything is sent.
    static func appendDelete(to buffer: inout [UInt8], original: ConntrackTuple, zone: UInt16, sequence: UInt32) {
        var attributes: [Attribute] = [.nest(attr(CTA_TUPLE_ORIG), tupleAttributes(original))]
        // The default zone (0) is what the kernel assumes without CTA_ZONE (ctnetlink_parse_zone).
        if zone != 0 { attributes.append(.bytes(attr(CTA_ZONE), be16(zone))) }
        NetlinkMessage.append(to: &buffer, type: messageType(IPCTNL_MSG_CT_DELETE), flags: UInt16(NLM_F_REQUEST | NLM_F_ACK),
                              sequence: sequence, familyHeader: nfgenmsg(original.source.family), attributes: attributes)
    }

    static func nfgenmsg(_ family: IPFamily) -> [UInt8] {
        [familyByte(family), UInt8(NFNETLINK_V0), 0, 0]
    }

    // MARK: Dump

    // The CTA_FILTER flag bits are not UAPI: they are CTA_FILTER_F_* in net/netfilter/nf_internals.h
    // (kernel 5.8 and later, unchanged since).
    /// CTA_FILTER_F_CTA_IP_SRC (nf_internals.h).
    static let filterIPSource: UInt32 = 1 << 0
    /// CTA_FILTER_F_CTA_PROTO_NUM (nf_internals.h).
    static let filterProtoNumber: UInt32 = 1 << 3
    /// CTA_FILTER_F_CTA_PROTO_DST_PORT (nf_internals.h).
    static let filterProtoDestinationPort: UInt32 = 1 << 5

    /// What of `filter` the kernel is asked to apply to a dump of `family` (CTA_TUPLE_ORIG or
    /// CTA_TUPLE_REPLY with the values, and CTA_FILTER with the flags that say which of them count);
    /// empty for an unfiltered dump. Every entry is checked again with `filter.matches`, so this
    /// only has to never leave out an entry that matches; which is why it asks for less than the
    /// filter says where kernels get it wrong:
    ///
    /// - One direction at a time. Kernels 5.8 to 5.15.4 (before ad81d4daf6a3, "ctnetlink: fix
    ///   filtering with CTA_TUPLE_REPLY"; 5.10.y before 5.10.83) matched the reply tuple with the
    ///   ORIGINAL direction's flags: with both directions set they return nothing; with only reply
    ///   flags they return everything (harmless here). The reply source, the more selective
    ///   condition, goes when there is one (with the protocol, which both directions share);
    ///   otherwise the protocol and original destination port.
    /// - No IPv6 address. ctnetlink_filter_match_tuple compares IPv6 addresses with
    ///   `!ipv6_addr_cmp(...)`, which is inverted: it keeps exactly the entries whose address is
    ///   NOT the one asked for (seen on 6.18). IPv4 addresses are compared correctly.
    /// - A port only with its protocol: the kernel refuses port flags without CTA_PROTO_NUM
    ///   (EINVAL), and compares ports only for TCP and UDP (other protocols pass unfiltered).
    static func filterAttributes(_ filter: ConntrackFilter, family: IPFamily) -> [Attribute] {
        var original: [Attribute] = [], reply: [Attribute] = []
        var originalFlags: UInt32 = 0, replyFlags: UInt32 = 0
        if family == .v4, let source = filter.replySource, source.family == .v4 {
            reply.append(.nest(attr(CTA_TUPLE_IP), [.bytes(attr(CTA_IP_V4_SRC), source.bytes)]))
            replyFlags |= filterIPSource
            if let proto = filter.proto {
                reply.append(.nest(attr(CTA_TUPLE_PROTO), [.bytes(attr(CTA_PROTO_NUM), [proto])]))
                replyFlags |= filterProtoNumber
            }
        } else if let proto = filter.proto {
            var fields: [Attribute] = [.bytes(attr(CTA_PROTO_NUM), [proto])]
            originalFlags |= filterProtoNumber
            if let port = filter.originalDestinationPort {
                fields.append(.bytes(attr(CTA_PROTO_DST_PORT), be16(port)))
                originalFlags |= filterProtoDestinationPort
            }
            original.append(.nest(attr(CTA_TUPLE_PROTO), fields))
        }
        guard originalFlags != 0 || replyFlags != 0 else { return [] }
        var attributes: [Attribute] = []
        if !original.isEmpty { attributes.append(.nest(attr(CTA_TUPLE_ORIG), original)) }
        if !reply.isEmpty { attributes.append(.nest(attr(CTA_TUPLE_REPLY), reply)) }
        // Host byte order (nla_get_u32), unlike every other value here: not NetlinkAttribute.u32.
        attributes.append(.nest(attr(CTA_FILTER), [.bytes(attr(CTA_FILTER_ORIG_FLAGS), hostBytes(originalFlags)),
                                                   .bytes(attr(CTA_FILTER_REPLY_FLAGS), hostBytes(replyFlags))]))
        return attributes
    }

    /// IPCTNL_MSG_CT_GET with NLM_F_DUMP for `family`, with `attributes` (from `filterAttributes`;
    /// none for the whole family, which is exactly what `conntrack -L -f ipv4` sends).
    static func dumpRequest(family: IPFamily, attributes: [Attribute], sequence: UInt32) -> [UInt8] {
        var buffer: [UInt8] = []
        NetlinkMessage.append(to: &buffer, type: messageType(IPCTNL_MSG_CT_GET), flags: UInt16(NLM_F_REQUEST | NLM_F_DUMP),
                              sequence: sequence, familyHeader: nfgenmsg(family), attributes: attributes)
        return buffer
    }

    // MARK: Filtered flush

    /// One IPCTNL_MSG_CT_DELETE that has the kernel delete every entry of `family` matching
    /// `filter` itself, in one walk of its table (a filtered flush, kernel 6.12 and later), with
    /// NLM_F_ACK; nil when the kernel could not apply every condition of `filter` exactly (see
    /// `filterAttributes` on IPv6 addresses), or `filter` names no protocol.
    ///
    /// SAFETY: a delete the kernel does not read as a filtered flush must never become a flush of
    /// the whole table (what a delete without a tuple is). So every request carries
    /// CTA_TUPLE_ORIG, and no tuple it carries is complete: none has a source port (nor, in the
    /// original direction, a source address). A kernel before 6.12 takes a CTA_TUPLE_ORIG as the
    /// one entry to delete, whatever CTA_FILTER says, and refuses an incomplete one (EINVAL:
    /// ctnetlink_parse_tuple wants both addresses and both ports); so does every kernel before
    /// CTA_FILTER existed (5.8). From 6.12 on (with CTA_FILTER, ctnetlink_del_conntrack reads the
    /// tuples as filter values only, ctnetlink_flush_conntrack applies them, the status and the
    /// family), exactly the matching entries go.
    static func flushRequest(family: IPFamily, filter: ConntrackFilter, sequence: UInt32) -> [UInt8]? {
        guard let proto = filter.proto else { return nil }
        if let source = filter.replySource, source.family == .v6 || source.family != family { return nil }
        var originalFields: [Attribute] = [.bytes(attr(CTA_PROTO_NUM), [proto])]
        var originalFlags = filterProtoNumber, replyFlags: UInt32 = 0
        if let port = filter.originalDestinationPort {
            // The kernel compares ports for TCP and UDP only; another protocol's entries would all go.
            guard proto == UInt8(IPPROTO_TCP) || proto == UInt8(IPPROTO_UDP) else { return nil }
            originalFields.append(.bytes(attr(CTA_PROTO_DST_PORT), be16(port)))
            originalFlags |= filterProtoDestinationPort
        }
        var attributes: [Attribute] = [.nest(attr(CTA_TUPLE_ORIG), [.nest(attr(CTA_TUPLE_PROTO), originalFields)])]
        if let source = filter.replySource {
            attributes.append(.nest(attr(CTA_TUPLE_REPLY), [.nest(attr(CTA_TUPLE_IP), [.bytes(attr(CTA_IP_V4_SRC), source.bytes)])]))
            replyFlags |= filterIPSource
        }
        attributes.append(.nest(attr(CTA_FILTER), [.bytes(attr(CTA_FILTER_ORIG_FLAGS), hostBytes(originalFlags)),
                                                   .bytes(attr(CTA_FILTER_REPLY_FLAGS), hostBytes(replyFlags))]))
        if let translation = filter.translation {
            attributes.append(.u32(attr(CTA_STATUS), translation.statusValue))
            attributes.append(.u32(attr(CTA_STATUS_MASK), translation.statusMask))
        }
        var buffer: [UInt8] = []
        // nfgenmsg version 1: the family counts (a 6.12 kernel uses it with CTA_FILTER either way).
        NetlinkMessage.append(to: &buffer, type: messageType(IPCTNL_MSG_CT_DELETE), flags: UInt16(NLM_F_REQUEST | NLM_F_ACK),
                              sequence: sequence, familyHeader: [familyByte(family), 1, 0, 0], attributes: attributes)
        return buffer
    }

    // MARK: Reading

    /// The entry an IPCTNL_MSG_CT_NEW message of a dump describes (`payload` is what follows the
    /// nlmsghdr), or nil for a message that is not one of `family` or lacks either tuple.
    static func entry(_ payload: UnsafeRawBufferPointer, family: IPFamily) -> ConntrackEntry? {
        guard payload.count >= 4, payload[0] == familyByte(family) else { return nil }
        var original: ConntrackTuple?, reply: ConntrackTuple?
        var status: UInt32 = 0, zone: UInt16 = 0
        for attribute in NetlinkMessage.Attributes(UnsafeRawBufferPointer(rebasing: payload[4...])) {
            switch attribute.type {
            case attr(CTA_TUPLE_ORIG): original = tuple(attribute.payload)
            case attr(CTA_TUPLE_REPLY): reply = tuple(attribute.payload)
            case attr(CTA_STATUS): status = bigEndian(attribute.payload, as: UInt32.self) ?? 0
            case attr(CTA_ZONE): zone = bigEndian(attribute.payload, as: UInt16.self) ?? 0
            default: break
            }
        }
        guard let original, let reply else { return nil }
        return ConntrackEntry(original: original, reply: reply, status: status, zone: zone)
    }

    /// The entries of a dump's messages in `bytes` (as recv returned them), in order.
    static func entries(_ bytes: UnsafeRawBufferPointer, family: IPFamily) -> [ConntrackEntry] {
        var result: [ConntrackEntry] = []
        for message in NetlinkMessage.Messages(bytes) where message.type == messageType(IPCTNL_MSG_CT_NEW) {
            if let entry = entry(message.payload, family: family) { result.append(entry) }
        }
        return result
    }

    /// A CTA_TUPLE_ORIG / CTA_TUPLE_REPLY nest; nil without both addresses of one family and a protocol.
    static func tuple(_ bytes: UnsafeRawBufferPointer) -> ConntrackTuple? {
        var source: IPAddress?, destination: IPAddress?, proto: UInt8?
        var sourcePort: UInt16 = 0, destinationPort: UInt16 = 0
        var icmpType: UInt8 = 0, icmpCode: UInt8 = 0
        for part in NetlinkMessage.Attributes(bytes) {
            switch part.type {
            case attr(CTA_TUPLE_IP):
                for field in NetlinkMessage.Attributes(part.payload) {
                    switch field.type {
                    case attr(CTA_IP_V4_SRC) where field.payload.count == 4: source = .v4(IPv4Address(bytes: field.payload))
                    case attr(CTA_IP_V4_DST) where field.payload.count == 4: destination = .v4(IPv4Address(bytes: field.payload))
                    case attr(CTA_IP_V6_SRC) where field.payload.count == 16: source = .v6(IPv6Address(bytes: field.payload))
                    case attr(CTA_IP_V6_DST) where field.payload.count == 16: destination = .v6(IPv6Address(bytes: field.payload))
                    default: break
                    }
                }
            case attr(CTA_TUPLE_PROTO):
                for field in NetlinkMessage.Attributes(part.payload) {
                    switch field.type {
                    case attr(CTA_PROTO_NUM) where field.payload.count >= 1: proto = field.payload[0]
                    case attr(CTA_PROTO_SRC_PORT), attr(CTA_PROTO_ICMP_ID), attr(CTA_PROTO_ICMPV6_ID):
                        sourcePort = bigEndian(field.payload, as: UInt16.self) ?? 0
                    case attr(CTA_PROTO_DST_PORT): destinationPort = bigEndian(field.payload, as: UInt16.self) ?? 0
                    case attr(CTA_PROTO_ICMP_TYPE), attr(CTA_PROTO_ICMPV6_TYPE): icmpType = field.payload.first ?? 0
                    case attr(CTA_PROTO_ICMP_CODE), attr(CTA_PROTO_ICMPV6_CODE): icmpCode = field.payload.first ?? 0
                    default: break
                    }
                }
            default: break
            }
        }
        guard let source, let destination, let proto, source.family == destination.family else { return nil }
        if proto == UInt8(IPPROTO_ICMP) || proto == UInt8(IPPROTO_ICMPV6) {
            destinationPort = UInt16(icmpType) << 8 | UInt16(icmpCode)
        }
        return ConntrackTuple(source: source, destination: destination, proto: proto,
                              sourcePort: sourcePort, destinationPort: destinationPort)
    }

    static func bigEndian<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, as type: T.Type) -> T? {
        guard bytes.count == MemoryLayout<T>.size else { return nil }
        return T(bigEndian: bytes.loadUnaligned(as: T.self))
    }

    // MARK: The commands they equal

    static func protocolName(_ proto: UInt8) -> String {
        switch proto {
        case UInt8(IPPROTO_TCP): "tcp"
        case UInt8(IPPROTO_UDP): "udp"
        case UInt8(IPPROTO_SCTP): "sctp"
        case UInt8(IPPROTO_UDPLITE): "udplite"
        case UInt8(IPPROTO_DCCP): "dccp"
        case UInt8(IPPROTO_GRE): "gre"
        case UInt8(IPPROTO_ICMP): "icmp"
        case UInt8(IPPROTO_ICMPV6): "icmpv6"
        default: String(proto)
        }
    }

    static func familyName(_ family: IPFamily) -> String { family == .v4 ? "ipv4" : "ipv6" }

    /// `conntrack -L` with the options `filter` stands for.
    static func listCommand(family: IPFamily, filter: ConntrackFilter) -> String {
        var text = "conntrack -L -f \(familyName(family))"
        if let proto = filter.proto { text += " -p \(protocolName(proto))" }
        if let port = filter.originalDestinationPort { text += " --orig-port-dst \(port)" }
        if let source = filter.replySource { text += " --reply-src \(source)" }
        switch filter.translation {
        case .none?: text += " (not NATed)"
        case .destination?: text += " --status DST_NAT"
        case nil: break
        }
        return text
    }

    /// `conntrack -D` with the options `filter` stands for.
    static func flushCommand(family: IPFamily, filter: ConntrackFilter) -> String {
        "conntrack -D" + listCommand(family: family, filter: filter).dropFirst("conntrack -L".count)
    }

    /// `conntrack -D` of exactly the entry with `tuple` as its original tuple.
    static func deleteCommand(_ tuple: ConntrackTuple, zone: UInt16) -> String {
        var text = "conntrack -D -f \(familyName(tuple.source.family)) -p \(protocolName(tuple.proto))"
            + " -s \(tuple.source) -d \(tuple.destination)"
        switch tuple.proto {
        case UInt8(IPPROTO_ICMP), UInt8(IPPROTO_ICMPV6):
            let option = tuple.proto == UInt8(IPPROTO_ICMP) ? "icmp" : "icmpv6"
            text += " --\(option)-type \(tuple.destinationPort >> 8) --\(option)-code \(tuple.destinationPort & 0xff)"
                + " --\(option)-id \(tuple.sourcePort)"
        default:
            text += " --sport \(tuple.sourcePort) --dport \(tuple.destinationPort)"
        }
        if zone != 0 { text += " --zone \(zone)" }
        return text
    }
}
