import Testing
@testable import Netlink
import NetAddress

// ctnetlink requests, byte for byte against what Debian 12's `conntrack` (conntrack-tools 1.4.7,
// libnetfilter_conntrack 1.0.9) sends for the same commands, and the reading of the kernel's
// (6.18) dump replies. Captured in a private user and network namespace, one shell:
//
//     unshare -Urn sh -c '
//         conntrack -I -p udp -s 10.0.0.1 -d 10.0.0.2 --sport 1000 --dport 8080 -t 100 --dst-nat 10.244.1.2:53
//         conntrack -I -p udp -s 10.0.0.1 -d 10.0.0.3 --sport 1000 --dport 8080 -t 100 --zone 7
//         conntrack -I -p udp -s fd00::1 -d fd00::2 --sport 1001 --dport 8080 -t 100 --dst-nat [fd00:10:244:1::2]:53
//         conntrack -I -p icmp -s 10.0.0.1 -d 10.0.0.9 --icmp-type 8 --icmp-code 0 --icmp-id 42 -t 100
//         conntrack -I -p icmpv6 -s fd00::1 -d fd00::9 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 43 -t 100
//         strace -e trace=sendto,recvmsg -e write=all -e read=all -xx conntrack -L -f ipv4
//         ... (each command named below, in the order below)'
//
// The hex is strace's dump of each sendto (what conntrack sent) or recvmsg (what the kernel
// answered), one netlink message a line (a long one continues indented).
//
// `conntrack -D` does not send a delete built from its options: it dumps the family, matches the
// entries in userspace, and for each match sends IPCTNL_MSG_CT_DELETE carrying the entry as it was
// dumped (libnetfilter_conntrack's nfct_nlmsg_build of the parsed entry). Of that, the kernel's
// ctnetlink_del_conntrack (net/netfilter/nf_conntrack_netlink.c) reads CTA_ZONE, CTA_TUPLE_ORIG
// (CTA_TUPLE_REPLY only when there is no CTA_TUPLE_ORIG), CTA_FILTER and CTA_ID, nothing else; so
// podwire's delete carries CTA_TUPLE_ORIG and, in a zone other than 0, CTA_ZONE, and
// `asPodwireSends` removes from conntrack's the attributes the kernel does not read: CTA_TUPLE_REPLY,
// CTA_STATUS, CTA_TIMEOUT, CTA_MARK, CTA_SYNPROXY. Nothing else is masked but the sequence numbers
// and port (expectSameWire zeroes them).
//
// `conntrack -L -p udp --orig-port-dst 8080` filters in userspace: conntrack 1.4.7 sends CTA_FILTER
// for none of its options (only CTA_MARK/CTA_MARK_MASK and CTA_STATUS/CTA_STATUS_MASK reach the
// kernel), so the filtered dump has no capture to match. It is conntrack's `-L -f <family>` request
// with the attributes the kernel's ctnetlink_alloc_filter / ctnetlink_parse_tuple_filter read added,
// written out here from the UAPI numbers and the kernel source (see `filteredDumps`), and checked
// against the kernel by ConntrackKernelTests.
@Suite struct ConntrackWireTests {
    static let udp: UInt8 = 17, tcp: UInt8 = 6

    // MARK: What conntrack sent, what the kernel answered

    /// `conntrack -L -f ipv4`: the dump request (one sendto).
    static let conntrackListIPv4 = hexBytes("""
        14000000010101036b64166b0000000002000000
        """)

    /// `conntrack -L -f ipv6`: the dump request.
    static let conntrackListIPv6 = hexBytes("""
        14000000010101036b64166b000000000a000000
        """)

    /// The kernel's answer to `conntrack -L -f ipv4` (two recvmsg: three entries, then NLMSG_DONE):
    /// the ICMP echo to 10.0.0.9, the DNATed UDP flow, the UDP flow in zone 7.
    static let kernelDumpIPv4 = hexBytes("""
        d0000000000122006b64166b1e480000020000003c00018014000180080001000a000001080002000a00000924000280
            050001000100000006000400002a0000050005000800000005000600000000003c00028014000180080001000a000009
            080002000a00000124000280050001000100000006000400002a00000500050000000000050006000000000008000300
            00000008080008000000000008000c0043fb445808000b000000000108000700000000631c0018800800010000000000
            08000200000000000800030000000000
        c0000000000122006b64166b1e480000020000003400018014000180080001000a000001080002000a0000021c000280
            05000100110000000600020003e80000060003001f9000003400028014000180080001000af40102080002000a000001
            1c000280050001001100000006000200003500000600030003e8000008000300000001a8080008000000000008000c00
            02d3c0c108000b000000000108000700000000631c001880080001000000000008000200000000000800030000000000
        c8000000000122006b64166b1e480000020000003400018014000180080001000a000001080002000a0000031c000280
            05000100110000000600020003e80000060003001f9000003400028014000180080001000a000003080002000a000001
            1c0002800500010011000000060002001f9000000600030003e800000600120000070000080003000000000808000800
            0000000008000c00a09e293a08000b000000000108000700000000631c00188008000100000000000800020000000000
            0800030000000000
        14000000030002006b64166b1e48000000000000
        """)

    /// The kernel's answer to `conntrack -L -f ipv6`: the DNATed UDP flow, the ICMPv6 echo, NLMSG_DONE.
    static let kernelDumpIPv6 = hexBytes("""
        f0000000000122006b64166b254800000a0000004c0001802c00018014000300fd000000000000000000000000000001
            14000400fd0000000000000000000000000000021c00028005000100110000000600020003e90000060003001f900000
            4c0002802c00018014000300fd00001002440001000000000000000214000400fd000000000000000000000000000001
            1c000280050001001100000006000200003500000600030003e9000008000300000001a8080008000000000008000c00
            ad55389008000b000000000108000700000000631c001880080001000000000008000200000000000800030000000000
        00010000000122006b64166b254800000a000000540001802c00018014000300fd000000000000000000000000000001
            14000400fd00000000000000000000000000000924000280050001003a00000006000700002b00000500080080000000
            0500090000000000540002802c00018014000300fd00000000000000000000000000000914000400fd00000000000000
            000000000000000124000280050001003a00000006000700002b00000500080081000000050009000000000008000300
            00000008080008000000000008000c00ecfb5be908000b000000000108000700000000631c0018800800010000000000
            08000200000000000800030000000000
        14000000030002006b64166b2548000000000000
        """)

    /// `conntrack -D -f ipv4 -p udp -s 10.0.0.1 -d 10.0.0.2 --sport 1000 --dport 8080`: the delete it sent
    /// for the (DNATed) entry its dump matched.
    static let conntrackDeleteIPv4 = hexBytes("""
        b0000000020105006b64166b00000000020000003400018014000180080001000a000001080002000a0000021c000280
            05000100110000000600020003e80000060003001f9000003400028014000180080001000af40102080002000a000001
            1c000280050001001100000006000200003500000600030003e8000008000300000001a8080007000000006308000800
            000000001c001880080001000000000008000200000000000800030000000000
        """)

    /// `conntrack -D -f ipv4 -p udp -s 10.0.0.1 -d 10.0.0.3 --sport 1000 --dport 8080 --zone 7`.
    static let conntrackDeleteIPv4Zone = hexBytes("""
        b8000000020105006b64166b00000000020000003400018014000180080001000a000001080002000a0000031c000280
            05000100110000000600020003e80000060003001f9000003400028014000180080001000a000003080002000a000001
            1c0002800500010011000000060002001f9000000600030003e800000800030000000008080007000000006308000800
            0000000006001200000700001c001880080001000000000008000200000000000800030000000000
        """)

    /// `conntrack -D -f ipv6 -p udp -s fd00::1 -d fd00::2 --sport 1001 --dport 8080`.
    static let conntrackDeleteIPv6 = hexBytes("""
        e0000000020105006b64166b000000000a0000004c0001802c00018014000300fd000000000000000000000000000001
            14000400fd0000000000000000000000000000021c00028005000100110000000600020003e90000060003001f900000
            4c0002802c00018014000300fd00001002440001000000000000000214000400fd000000000000000000000000000001
            1c000280050001001100000006000200003500000600030003e9000008000300000001a8080007000000006308000800
            000000001c001880080001000000000008000200000000000800030000000000
        """)

    /// `conntrack -D -f ipv4 -p icmp -s 10.0.0.1 -d 10.0.0.9 --icmp-type 8 --icmp-code 0 --icmp-id 42`.
    static let conntrackDeleteICMP = hexBytes("""
        c0000000020105006b64166b00000000020000003c00018014000180080001000a000001080002000a00000924000280
            05000100010000000500060000000000050005000800000006000400002a00003c00028014000180080001000a000009
            080002000a0000012400028005000100010000000500060000000000050005000000000006000400002a000008000300
            00000008080007000000006308000800000000001c001880080001000000000008000200000000000800030000000000
        """)

    /// `conntrack -D -f ipv6 -p icmpv6 -s fd00::1 -d fd00::9 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 43`.
    static let conntrackDeleteICMPv6 = hexBytes("""
        f0000000020105006b64166b000000000a000000540001802c00018014000300fd000000000000000000000000000001
            14000400fd00000000000000000000000000000924000280050001003a00000005000900000000000500080080000000
            06000700002b0000540002802c00018014000300fd00000000000000000000000000000914000400fd00000000000000
            000000000000000124000280050001003a0000000500090000000000050008008100000006000700002b000008000300
            00000008080007000000006308000800000000001c001880080001000000000008000200000000000800030000000000
        """)

    // MARK: The entries in those dumps

    static let zoned = ConntrackEntry(
        original: ConntrackTuple(source: IPAddress("10.0.0.1")!, destination: IPAddress("10.0.0.3")!, proto: udp,
                                 sourcePort: 1000, destinationPort: 8080),
        reply: ConntrackTuple(source: IPAddress("10.0.0.3")!, destination: IPAddress("10.0.0.1")!, proto: udp,
                              sourcePort: 8080, destinationPort: 1000),
        status: 0x8, zone: 7) // IPS_CONFIRMED
    static let dnat4 = ConntrackEntry(
        original: ConntrackTuple(source: IPAddress("10.0.0.1")!, destination: IPAddress("10.0.0.2")!, proto: udp,
                                 sourcePort: 1000, destinationPort: 8080),
        reply: ConntrackTuple(source: IPAddress("10.244.1.2")!, destination: IPAddress("10.0.0.1")!, proto: udp,
                              sourcePort: 53, destinationPort: 1000),
        status: 0x1a8) // IPS_DST_NAT | IPS_CONFIRMED | IPS_SRC_NAT_DONE | IPS_DST_NAT_DONE
    static let echo4 = ConntrackEntry(
        // ICMP: the id where the source port goes, type << 8 | code where the destination port goes.
        original: ConntrackTuple(source: IPAddress("10.0.0.1")!, destination: IPAddress("10.0.0.9")!, proto: 1,
                                 sourcePort: 42, destinationPort: 8 << 8),
        reply: ConntrackTuple(source: IPAddress("10.0.0.9")!, destination: IPAddress("10.0.0.1")!, proto: 1,
                              sourcePort: 42, destinationPort: 0),
        status: 0x8)
    static let dnat6 = ConntrackEntry(
        original: ConntrackTuple(source: IPAddress("fd00::1")!, destination: IPAddress("fd00::2")!, proto: udp,
                                 sourcePort: 1001, destinationPort: 8080),
        reply: ConntrackTuple(source: IPAddress("fd00:10:244:1::2")!, destination: IPAddress("fd00::1")!, proto: udp,
                              sourcePort: 53, destinationPort: 1001),
        status: 0x1a8)
    static let echo6 = ConntrackEntry(
        original: ConntrackTuple(source: IPAddress("fd00::1")!, destination: IPAddress("fd00::9")!, proto: 58,
                                 sourcePort: 43, destinationPort: 128 << 8),
        reply: ConntrackTuple(source: IPAddress("fd00::9")!, destination: IPAddress("fd00::1")!, proto: 58,
                              sourcePort: 43, destinationPort: 129 << 8),
        status: 0x8)

    static func parse(_ bytes: [UInt8], _ family: IPFamily) -> [ConntrackEntry] {
        bytes.withUnsafeBytes { ConntrackMessage.entries($0, family: family) }
    }

    // MARK: Reading

    @Test func readsTheKernelsDumps() {
        #expect(Self.parse(Self.kernelDumpIPv4, .v4) == [Self.echo4, Self.dnat4, Self.zoned])
        #expect(Self.parse(Self.kernelDumpIPv6, .v6) == [Self.dnat6, Self.echo6])
        // A message of the other family is not read as one of this family.
        #expect(Self.parse(Self.kernelDumpIPv4, .v6).isEmpty)
        #expect(Self.parse(Self.kernelDumpIPv6, .v4).isEmpty)
        expectRoundTrip(Self.kernelDumpIPv4, layout: .nfnetlink, "the kernel's IPv4 dump")
        expectRoundTrip(Self.kernelDumpIPv6, layout: .nfnetlink, "the kernel's IPv6 dump")
    }

    @Test func statusAndFilters() {
        #expect(Self.dnat4.isDestinationNATed && Self.dnat6.isDestinationNATed)
        #expect(!Self.zoned.isDestinationNATed && !Self.echo4.isDestinationNATed)
        let all4 = [Self.echo4, Self.dnat4, Self.zoned]
        #expect(all4.filter(ConntrackFilter().matches) == all4)
        #expect(all4.filter(ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080).matches) == [Self.dnat4, Self.zoned])
        #expect(all4.filter(ConntrackFilter(proto: Self.tcp, originalDestinationPort: 8080).matches).isEmpty)
        #expect(all4.filter(ConntrackFilter(replySource: IPAddress("10.244.1.2")!).matches) == [Self.dnat4])
        #expect(all4.filter(ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080,
                                            replySource: IPAddress("10.0.0.3")!).matches) == [Self.zoned])
        // An ICMP tuple has no port: type 0x1f, code 0x90 is not port 8080.
        var odd = Self.echo4
        odd.original.destinationPort = 8080
        #expect(!ConntrackFilter(originalDestinationPort: 8080).matches(odd))
        #expect([Self.dnat6, Self.echo6].filter(ConntrackFilter(replySource: IPAddress("fd00:10:244:1::2")!).matches) == [Self.dnat6])
    }

    // MARK: Deleting

    /// conntrack's delete as podwire sends it (see the file's header).
    static func asPodwireSends(_ capture: [UInt8]) -> [WireMessage] {
        WireMessage.decodeAll(capture, layout: .nfnetlink).map { message in
            var message = message
            for type in [CTA.tupleReply, CTA.status, CTA.timeout, CTA.mark, CTA.synproxy] { message.remove(type) }
            return message
        }
    }

    static func podwireDelete(_ entry: ConntrackEntry) -> [WireMessage] {
        var buffer: [UInt8] = []
        ConntrackMessage.appendDelete(to: &buffer, original: entry.original, zone: entry.zone, sequence: 1)
        return WireMessage.decodeAll(buffer, layout: .nfnetlink)
    }

    /// One capture of `conntrack -D` and the entry it deleted (a test argument named by its command).
    struct DeleteCase: Sendable, CustomTestStringConvertible {
        var entry: ConntrackEntry
        var capture: [UInt8]
        var command: String
        var testDescription: String { command }
    }

    static let deleteCases = [
        DeleteCase(entry: dnat4, capture: conntrackDeleteIPv4,
                   command: "conntrack -D -f ipv4 -p udp -s 10.0.0.1 -d 10.0.0.2 --sport 1000 --dport 8080"),
        DeleteCase(entry: zoned, capture: conntrackDeleteIPv4Zone,
                   command: "conntrack -D -f ipv4 -p udp -s 10.0.0.1 -d 10.0.0.3 --sport 1000 --dport 8080 --zone 7"),
        DeleteCase(entry: dnat6, capture: conntrackDeleteIPv6,
                   command: "conntrack -D -f ipv6 -p udp -s fd00::1 -d fd00::2 --sport 1001 --dport 8080"),
        DeleteCase(entry: echo4, capture: conntrackDeleteICMP,
                   command: "conntrack -D -f ipv4 -p icmp -s 10.0.0.1 -d 10.0.0.9 --icmp-type 8 --icmp-code 0 --icmp-id 42"),
        DeleteCase(entry: echo6, capture: conntrackDeleteICMPv6,
                   command: "conntrack -D -f ipv6 -p icmpv6 -s fd00::1 -d fd00::9 --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 43"),
    ]

    @Test(arguments: deleteCases)
    func deleteByOriginalTuple(_ test: DeleteCase) {
        expectRoundTrip(test.capture, layout: .nfnetlink, test.command)
        expectSameWire(Self.podwireDelete(test.entry), Self.asPodwireSends(test.capture), test.command)
        // The command podwire's errors name is the one the capture ran.
        #expect(ConntrackMessage.deleteCommand(test.entry.original, zone: test.entry.zone) == test.command)
    }

    /// A delete without CTA_TUPLE_ORIG, or with CTA_FILTER, flushes the table: every delete podwire
    /// can build carries the whole original tuple and nothing that widens it.
    @Test(arguments: deleteCases)
    func everyDeleteNamesOneEntry(_ test: DeleteCase) throws {
        let entry = test.entry
        let messages = Self.podwireDelete(entry)
        try #require(messages.count == 1)
        let message = messages[0]
        #expect(message.type == 0x0102) // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE
        #expect(message.flags == 0x0005) // NLM_F_REQUEST | NLM_F_ACK
        #expect(message.familyHeader == [entry.original.source.family == .v4 ? 2 : 10, 0, 0, 0])
        #expect(Set(message.attributes.map(\.type)).isSubset(of: [CTA.tupleOrig, CTA.zone]))
        let ip = try #require(message.attribute(CTA.tupleIP, at: [CTA.tupleOrig]))
        guard case .nested(_, let addresses) = ip.value else { Issue.record("CTA_TUPLE_IP is not a nest"); return }
        #expect(addresses.count == 2 && addresses.allSatisfy { $0.payload == entry.original.source.bytes
                                                                  || $0.payload == entry.original.destination.bytes })
        #expect(message.attribute(CTA.protoNum, at: [CTA.tupleOrig, CTA.tupleProto])?.payload == [entry.original.proto])
        #expect(message.attribute(CTA.filter) == nil)
    }

    // MARK: Dumping

    @Test func unfilteredDumpIsConntracksList() {
        expectSameWire(WireMessage.decodeAll(ConntrackMessage.dumpRequest(family: .v4, attributes: [], sequence: 1), layout: .nfnetlink),
                       WireMessage.decodeAll(Self.conntrackListIPv4, layout: .nfnetlink), "conntrack -L -f ipv4")
        expectSameWire(WireMessage.decodeAll(ConntrackMessage.dumpRequest(family: .v6, attributes: [], sequence: 1), layout: .nfnetlink),
                       WireMessage.decodeAll(Self.conntrackListIPv6, layout: .nfnetlink), "conntrack -L -f ipv6")
        // Nothing the kernel can filter on: the request is conntrack's, unchanged.
        #expect(ConntrackMessage.filterAttributes(ConntrackFilter(), family: .v4).isEmpty)
        #expect(ConntrackMessage.filterAttributes(ConntrackFilter(originalDestinationPort: 8080), family: .v4).isEmpty)
        #expect(ConntrackMessage.filterAttributes(ConntrackFilter(replySource: IPAddress("fd00::2")!), family: .v6).isEmpty)
    }

    /// The filtered dumps, written out from the kernel's side (net/netfilter/nf_conntrack_netlink.c,
    /// 6.18): ctnetlink_start -> ctnetlink_alloc_filter parses CTA_FILTER (nla_parse_nested: the
    /// nest must be flagged NLA_F_NESTED) into orig_flags / reply_flags with nla_get_u32, host byte
    /// order, and refuses bits outside CTA_FILTER_F_ALL with EOPNOTSUPP; for nonzero flags it
    /// requires CTA_TUPLE_ORIG / CTA_TUPLE_REPLY (EINVAL) and reads from it, through
    /// ctnetlink_parse_tuple_filter, only the fields the flags name: CTA_TUPLE_IP's source for
    /// CTA_FILTER_F_CTA_IP_SRC, CTA_TUPLE_PROTO's CTA_PROTO_NUM for CTA_FILTER_F_CTA_PROTO_NUM (port
    /// flags without it are EINVAL) and CTA_PROTO_DST_PORT for CTA_FILTER_F_CTA_PROTO_DST_PORT
    /// (nf_ct_port_nlattr_to_tuple), big-endian like every tuple value. The flag bits are
    /// net/netfilter/nf_internals.h's CTA_FILTER_F_* (not UAPI).
    @Test func filteredDumps() {
        func request(_ family: IPFamily, _ filter: ConntrackFilter) -> [WireMessage] {
            WireMessage.decodeAll(ConntrackMessage.dumpRequest(
                family: family, attributes: ConntrackMessage.filterAttributes(filter, family: family), sequence: 1), layout: .nfnetlink)
        }
        func conntracksList(_ family: IPFamily, adding attributes: [WireAttribute]) -> [WireMessage] {
            var messages = WireMessage.decodeAll(family == .v4 ? Self.conntrackListIPv4 : Self.conntrackListIPv6, layout: .nfnetlink)
            messages[0].attributes = attributes
            return messages
        }
        func nest(_ type: UInt16, _ children: [WireAttribute]) -> WireAttribute {
            WireAttribute(rawType: type | NLA.nested, value: .nested(header: [], children))
        }
        func filter(orig: UInt32, reply: UInt32) -> WireAttribute {
            nest(CTA.filter, [.hostU32(CTA.filterOrigFlags, orig), .hostU32(CTA.filterReplyFlags, reply)])
        }
        let port8080: [UInt8] = [0x1f, 0x90]

        // conntrack -L -f ipv4 -p udp --orig-port-dst 8080
        let byPort = [nest(CTA.tupleOrig, [nest(CTA.tupleProto, [.bytes(CTA.protoNum, [Self.udp]), .bytes(CTA.protoDstPort, port8080)])]),
                      filter(orig: CTAFilterFlag.protoNum | CTAFilterFlag.protoDstPort, reply: 0)]
        expectSameWire(request(.v4, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080)),
                       conntracksList(.v4, adding: byPort), "conntrack -L -f ipv4 -p udp --orig-port-dst 8080")
        #expect(ConntrackMessage.listCommand(family: .v4, filter: ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080))
                == "conntrack -L -f ipv4 -p udp --orig-port-dst 8080")

        // conntrack -L -f ipv4 -p udp --reply-src 10.244.1.2
        let byPod = [nest(CTA.tupleReply, [nest(CTA.tupleIP, [.bytes(CTA.ipV4Src, [10, 244, 1, 2])]),
                                           nest(CTA.tupleProto, [.bytes(CTA.protoNum, [Self.udp])])]),
                     filter(orig: 0, reply: CTAFilterFlag.ipSrc | CTAFilterFlag.protoNum)]
        expectSameWire(request(.v4, ConntrackFilter(proto: Self.udp, replySource: IPAddress("10.244.1.2")!)),
                       conntracksList(.v4, adding: byPod), "conntrack -L -f ipv4 -p udp --reply-src 10.244.1.2")
        // With both, one direction: kernels before ad81d4daf6a3 match the reply tuple with the
        // original direction's flags and would return nothing. The port is checked in userspace.
        expectSameWire(request(.v4, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080, replySource: IPAddress("10.244.1.2")!)),
                       conntracksList(.v4, adding: byPod), "conntrack -L -f ipv4 -p udp --orig-port-dst 8080 --reply-src 10.244.1.2")
        // --reply-src alone: the address, no protocol.
        expectSameWire(request(.v4, ConntrackFilter(replySource: IPAddress("10.244.1.2")!)),
                       conntracksList(.v4, adding: [nest(CTA.tupleReply, [nest(CTA.tupleIP, [.bytes(CTA.ipV4Src, [10, 244, 1, 2])])]),
                                                    filter(orig: 0, reply: CTAFilterFlag.ipSrc)]),
                       "conntrack -L -f ipv4 --reply-src 10.244.1.2")

        // IPv6: the kernel's IPv6 address match is inverted (ctnetlink_filter_match_tuple's
        // `!ipv6_addr_cmp`), so no address goes; the protocol and port do.
        expectSameWire(request(.v6, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080,
                                                    replySource: IPAddress("fd00:10:244:1::2")!)),
                       conntracksList(.v6, adding: byPort),
                       "conntrack -L -f ipv6 -p udp --orig-port-dst 8080 --reply-src fd00:10:244:1::2")
    }
}

extension ConntrackWireTests {
    // MARK: Filtered flushes

    static func flush(_ family: IPFamily, _ filter: ConntrackFilter) -> WireMessage? {
        ConntrackMessage.flushRequest(family: family, filter: filter, sequence: 1)
            .map { WireMessage.decodeAll($0, layout: .nfnetlink) }?.first
    }

    /// The filtered flushes, written out from the kernel's side (6.12 and later:
    /// ctnetlink_del_conntrack with CTA_FILTER -> ctnetlink_flush_conntrack ->
    /// ctnetlink_alloc_filter, which reads the tuples' fields as in `filteredDumps`, and CTA_STATUS
    /// under CTA_STATUS_MASK, both big-endian). conntrack 1.4.7 sends no such request (its -D dumps
    /// and deletes by tuple), so there is no capture; ConntrackKernelTests checks them on the kernel.
    @Test func filteredFlushes() throws {
        func nest(_ type: UInt16, _ children: [WireAttribute]) -> WireAttribute {
            WireAttribute(rawType: type | NLA.nested, value: .nested(header: [], children))
        }
        func filter(orig: UInt32, reply: UInt32) -> WireAttribute {
            nest(CTA.filter, [.hostU32(CTA.filterOrigFlags, orig), .hostU32(CTA.filterReplyFlags, reply)])
        }
        func be32(_ value: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) } }
        let natBits: UInt32 = 1 << 4 | 1 << 5 // IPS_SRC_NAT | IPS_DST_NAT

        // ADD of hostPort 5353/udp: conntrack -D -f ipv4 -p udp --orig-port-dst 5353, not NATed.
        let add = try #require(Self.flush(.v4, ConntrackFilter(proto: Self.udp, originalDestinationPort: 5353,
                                                               translation: ConntrackFilter.Translation.none)))
        #expect(add.type == 0x0102) // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE
        #expect(add.flags == 0x0005) // NLM_F_REQUEST | NLM_F_ACK
        #expect(add.familyHeader == [2, 1, 0, 0]) // AF_INET, version 1
        #expect(add.attributes == [
            nest(CTA.tupleOrig, [nest(CTA.tupleProto, [.bytes(CTA.protoNum, [Self.udp]), .bytes(CTA.protoDstPort, [0x14, 0xe9])])]),
            filter(orig: CTAFilterFlag.protoNum | CTAFilterFlag.protoDstPort, reply: 0),
            .bytes(CTA.status, be32(0)), .bytes(CTA.statusMask, be32(natBits)),
        ])
        // The same for IPv6: no address in it, so nothing the kernel compares wrongly.
        let add6 = try #require(Self.flush(.v6, ConntrackFilter(proto: Self.udp, originalDestinationPort: 5353,
                                                                translation: ConntrackFilter.Translation.none)))
        #expect(add6.familyHeader == [10, 1, 0, 0])
        #expect(add6.attributes == add.attributes)

        // DEL of pod 10.244.1.2: conntrack -D -f ipv4 -p udp --reply-src 10.244.1.2 --status DST_NAT.
        let del = try #require(Self.flush(.v4, ConntrackFilter(proto: Self.udp, replySource: IPAddress("10.244.1.2")!,
                                                               translation: .destination)))
        #expect(del.attributes == [
            nest(CTA.tupleOrig, [nest(CTA.tupleProto, [.bytes(CTA.protoNum, [Self.udp])])]),
            nest(CTA.tupleReply, [nest(CTA.tupleIP, [.bytes(CTA.ipV4Src, [10, 244, 1, 2])])]),
            filter(orig: CTAFilterFlag.protoNum, reply: CTAFilterFlag.ipSrc),
            .bytes(CTA.status, be32(1 << 5)), .bytes(CTA.statusMask, be32(1 << 5)),
        ])
        #expect(ConntrackMessage.flushCommand(family: .v4, filter: ConntrackFilter(proto: Self.udp, replySource: IPAddress("10.244.1.2")!,
                                                                                   translation: .destination))
                == "conntrack -D -f ipv4 -p udp --reply-src 10.244.1.2 --status DST_NAT")

        // What the kernel could not apply exactly is not asked of it: an IPv6 address (compared
        // the wrong way round), no protocol, a port of a protocol it compares no port of.
        #expect(Self.flush(.v6, ConntrackFilter(proto: Self.udp, replySource: IPAddress("fd00:10:244:1::2")!)) == nil)
        #expect(Self.flush(.v4, ConntrackFilter(originalDestinationPort: 5353)) == nil)
        #expect(Self.flush(.v4, ConntrackFilter(proto: 132, originalDestinationPort: 5353)) == nil)
        #expect(Self.flush(.v4, ConntrackFilter(proto: Self.udp, replySource: IPAddress("fd00::2")!)) == nil)
    }

    /// SAFETY: a kernel that does not read a delete as a filtered flush (before 6.12) takes its
    /// CTA_TUPLE_ORIG as the one entry to delete and refuses an incomplete tuple; without one it
    /// would flush the whole table. Every flush podwire can build carries CTA_TUPLE_ORIG, and no
    /// tuple in it has a source port.
    @Test(arguments: [
        ConntrackFilter(proto: 17), ConntrackFilter(proto: 6, originalDestinationPort: 80),
        ConntrackFilter(proto: 17, originalDestinationPort: 5353, translation: ConntrackFilter.Translation.none),
        ConntrackFilter(proto: 17, replySource: IPAddress("10.244.1.2")!, translation: .destination),
        ConntrackFilter(proto: 17, originalDestinationPort: 53, replySource: IPAddress("10.244.1.2")!),
    ])
    func everyFlushCarriesAnIncompleteTuple(_ filter: ConntrackFilter) throws {
        let message = try #require(Self.flush(.v4, filter))
        #expect(message.attribute(CTA.tupleOrig) != nil)
        for tuple in [CTA.tupleOrig, CTA.tupleReply] {
            #expect(message.attribute(CTA.protoSrcPort, at: [tuple, CTA.tupleProto]) == nil)
        }
        #expect(message.attribute(CTA.tupleIP, at: [CTA.tupleOrig]) == nil)
        #expect(message.attribute(CTA.filter) != nil)
    }

    @Test func translationAndWidestFilter() {
        let untranslated = ConntrackEntry(original: Self.dnat4.original, reply: Self.dnat4.reply, status: 0x188)
        #expect(ConntrackFilter(translation: ConntrackFilter.Translation.none).matches(untranslated))
        #expect(!ConntrackFilter(translation: .destination).matches(untranslated))
        #expect(ConntrackFilter(translation: .destination).matches(Self.dnat4))
        #expect(!ConntrackFilter(translation: ConntrackFilter.Translation.none).matches(Self.dnat4))
        let masqueraded = ConntrackEntry(original: Self.dnat4.original, reply: Self.dnat4.reply, status: 1 << 4)
        #expect(!ConntrackFilter(translation: ConntrackFilter.Translation.none).matches(masqueraded))

        let widest = ConntrackSocket.widest([ConntrackFilter(proto: 17, originalDestinationPort: 5353, translation: ConntrackFilter.Translation.none),
                                             ConntrackFilter(proto: 17, originalDestinationPort: 5354, translation: ConntrackFilter.Translation.none)])
        #expect(widest.proto == 17 && widest.originalDestinationPort == nil && widest.replySource == nil
                && widest.translation == ConntrackFilter.Translation.none)
    }
}

/// ctattr_* numbers (linux/netfilter/nfnetlink_conntrack.h), written out independently of the
/// Netlink module.
enum CTA {
    static let tupleOrig: UInt16 = 1 // CTA_TUPLE_ORIG
    static let tupleReply: UInt16 = 2 // CTA_TUPLE_REPLY
    static let status: UInt16 = 3 // CTA_STATUS
    static let timeout: UInt16 = 7 // CTA_TIMEOUT
    static let mark: UInt16 = 8 // CTA_MARK
    static let zone: UInt16 = 18 // CTA_ZONE
    static let synproxy: UInt16 = 24 // CTA_SYNPROXY
    static let filter: UInt16 = 25 // CTA_FILTER
    static let tupleIP: UInt16 = 1 // CTA_TUPLE_IP
    static let tupleProto: UInt16 = 2 // CTA_TUPLE_PROTO
    static let ipV4Src: UInt16 = 1 // CTA_IP_V4_SRC
    static let protoNum: UInt16 = 1 // CTA_PROTO_NUM
    static let protoDstPort: UInt16 = 3 // CTA_PROTO_DST_PORT
    static let filterOrigFlags: UInt16 = 1 // CTA_FILTER_ORIG_FLAGS
    static let filterReplyFlags: UInt16 = 2 // CTA_FILTER_REPLY_FLAGS
    static let statusMask: UInt16 = 26 // CTA_STATUS_MASK
    static let protoSrcPort: UInt16 = 2 // CTA_PROTO_SRC_PORT
}

/// CTA_FILTER_F_* (net/netfilter/nf_internals.h, kernel-internal).
enum CTAFilterFlag {
    static let ipSrc: UInt32 = 1 << 0 // CTA_FILTER_F_CTA_IP_SRC
    static let protoNum: UInt32 = 1 << 3 // CTA_FILTER_F_CTA_PROTO_NUM
    static let protoDstPort: UInt32 = 1 << 5 // CTA_FILTER_F_CTA_PROTO_DST_PORT
}
