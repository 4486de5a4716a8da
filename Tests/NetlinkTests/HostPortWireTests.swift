import Testing
@testable import Netlink
import NetAddress

// The verbs for built-in hostPorts (NFTMaps.swift), byte for byte against what nft sends for the
// same commands. Captured as NFTablesWireTests' captures are (nftables 1.0.6, libnftnl 1.2.4,
// Debian 12, each `nft -f` file's batch one sendmsg, recorded with strace inside `unshare -Urn`;
// the files run one after the other in one namespace):
//
//     unshare -Urn sh -c 'strace -f -e trace=sendmsg,sendto -e write=all -xx -s 65536 nft -f <file>'
//
// The differences podwire's requests have from nft's in general (NLM_F_ACK in batches,
// NLM_F_CREATE on NEWTABLE, no set IDs next to set names, NFTA_LIST_ELEM element types, the
// order of meta's attributes and of a dump's table and set) are NFTablesWireTests'
// `asPodwireSends`, applied here unchanged; nothing else is masked but the sequence numbers and
// port, which expectSameWire zeroes. Set IDs in NEWSET need no exception: nft numbers the sets of a
// batch 1, 2, 3... in the order it adds them, and the requests below pass the same numbers.
//
// Checked by hand once (a throwaway test, not kept: it needs a kernel): structure() and
// elements() committed by NFTSocket in `unshare -Urn`, then hp4's element deleted, and
// `nft list table inet podwire-test` printed exactly what it prints after nft's own three
// batches (the map elements print their comment before the `:`, which is also where nft 1.0.6
// parses it in `add element`):
//
//     table inet podwire-test {
//         map hp4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//         map hp4any { ...; elements = { udp . 5353 comment "pod-a/eth0" : 10.244.1.2 . 53 } }
//         ...
//         chain hostports { dnat ip to ip daddr . meta l4proto . th dport map @hp4 ... }
//         chain hpprerouting { type nat hook prerouting priority dstnat; policy accept;
//                              fib daddr type local jump hostports }
//         ...
//     }

@Suite struct HostPortWireTests {
    static let table = "podwire-test"
    static let comment = "pod-a/eth0"
    static let pod4 = IPAddress("10.244.1.2")!
    static let pod6 = IPAddress("fd00:10:244:1::2")!
    static let tcp: UInt8 = 6, udp: UInt8 = 17

    // MARK: What nft sent

    /// `nft -f` of:
    ///
    ///     add table inet podwire-test
    ///     add map inet podwire-test hp4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
    ///     add map inet podwire-test hp4any { type inet_proto . inet_service : ipv4_addr . inet_service; }
    ///     add map inet podwire-test hp6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
    ///     add map inet podwire-test hp6any { type inet_proto . inet_service : ipv6_addr . inet_service; }
    ///     add set inet podwire-test hpsnat4 { type ipv4_addr . ipv4_addr; }
    ///     add set inet podwire-test hpsnat6 { type ipv6_addr . ipv6_addr; }
    ///     add chain inet podwire-test hostports
    ///     add chain inet podwire-test hpprerouting { type nat hook prerouting priority dstnat; }
    ///     add chain inet podwire-test hpoutput { type nat hook output priority -100; }
    ///     add chain inet podwire-test hppostrouting { type nat hook postrouting priority srcnat; }
    ///     add rule inet podwire-test hostports dnat ip to ip daddr . meta l4proto . th dport map @hp4
    ///     add rule inet podwire-test hostports dnat ip to meta l4proto . th dport map @hp4any
    ///     add rule inet podwire-test hostports dnat ip6 to ip6 daddr . meta l4proto . th dport map @hp6
    ///     add rule inet podwire-test hostports dnat ip6 to meta l4proto . th dport map @hp6any
    ///     add rule inet podwire-test hpprerouting fib daddr type local jump hostports
    ///     add rule inet podwire-test hpoutput fib daddr type local jump hostports
    ///     add rule inet podwire-test hppostrouting ip saddr . ip daddr @hpsnat4 masquerade
    ///     add rule inet podwire-test hppostrouting ip6 saddr . ip6 daddr @hpsnat6 masquerade
    static let nftStructure = hexBytes("""
        140000001000010000000000000000000000000a
        30000000000a010001000000000000000100000011000100706f64776972652d74657374000000000800020000000000
        8c000000090a010402000000000000000100000011000100706f64776972652d74657374000000000800020068703400
            0800030000000008080004000000730d080005000000000c08000600000001cd080007000000000808000a0000000001
            2a000d00000400000000010400000000030800040d0000000100040800040d00000001000604000000000000
        90000000090a010403000000000000000100000011000100706f64776972652d74657374000000000b00020068703461
            6e7900000800030000000008080004000000030d080005000000000808000600000001cd080007000000000808000a00
            000000022a000d00000400000000010400000000030800040d0000000100040800040d00000001000604000000000000
        8c000000090a010404000000000000000100000011000100706f64776972652d74657374000000000800020068703600
            0800030000000008080004000000830d0800050000000018080006000000020d080007000000001408000a0000000003
            2a000d00000400000000010400000000030800040d0000000100040800040d00000001000604000000000000
        90000000090a010405000000000000000100000011000100706f64776972652d74657374000000000b00020068703661
            6e7900000800030000000008080004000000030d0800050000000008080006000000020d080007000000001408000a00
            000000042a000d00000400000000010400000000030800040d0000000100040800040d00000001000604000000000000
        68000000090a010406000000000000000100000011000100706f64776972652d74657374000000000c0002006870736e
            61743400080003000000000008000400000001c7080005000000000808000a000000000514000d000004000000000308
            00040d0000000100
        68000000090a010407000000000000000100000011000100706f64776972652d74657374000000000c0002006870736e
            6174360008000300000000000800040000000208080005000000002008000a000000000614000d000004000000000308
            00040d0000000100
        38000000030a010408000000000000000100000011000100706f64776972652d74657374000000000e000300686f7374
            706f727473000000
        58000000030a010409000000000000000100000011000100706f64776972652d74657374000000001100030068707072
            65726f7574696e6700000000080007006e61740014000480080001000000000008000200ffffff9c
        54000000030a01040a000000000000000100000011000100706f64776972652d74657374000000000d00030068706f75
            7470757400000000080007006e61740014000480080001000000000308000200ffffff9c
        58000000030a01040b000000000000000100000011000100706f64776972652d7465737400000000120003006870706f
            7374726f7574696e67000000080007006e6174001400048008000100000000040800020000000064
        7c010000060a010c0c000000000000000100000011000100706f64776972652d74657374000000000e000200686f7374
            706f7274730000004401048024000180090001006d6574610000000014000280080002000000000f0800010000000001
            2c00018008000100636d700020000280080001000000000108000200000000000c000380050001000200000034000180
            0c0001007061796c6f616400240002800800010000000001080002000000000108000300000000100800040000000004
            24000180090001006d657461000000001400028008000200000000100800010000000009340001800c0001007061796c
            6f61640024000280080001000000000a080002000000000208000300000000020800040000000002340001800b000100
            6c6f6f6b7570000024000280080002000000000108000300000000010800010068703400080004000000000130000180
            080001006e617400240002800800010000000001080002000000000208000300000000010800050000000009
        fc000000060a010c0d000000000000000100000011000100706f64776972652d74657374000000000e000200686f7374
            706f727473000000c400048024000180090001006d657461000000001400028008000200000000100800010000000001
            340001800c0001007061796c6f6164002400028008000100000000090800020000000002080003000000000208000400
            00000002380001800b0001006c6f6f6b7570000028000280080002000000000108000300000000010b00010068703461
            6e790000080004000000000230000180080001006e617400240002800800010000000001080002000000000208000300
            000000010800050000000009
        7c010000060a010c0e000000000000000100000011000100706f64776972652d74657374000000000e000200686f7374
            706f7274730000004401048024000180090001006d6574610000000014000280080002000000000f0800010000000001
            2c00018008000100636d700020000280080001000000000108000200000000000c000380050001000a00000034000180
            0c0001007061796c6f616400240002800800010000000001080002000000000108000300000000180800040000000010
            24000180090001006d657461000000001400028008000200000000100800010000000002340001800c0001007061796c
            6f61640024000280080001000000000d080002000000000208000300000000020800040000000002340001800b000100
            6c6f6f6b7570000024000280080002000000000108000300000000010800010068703600080004000000000330000180
            080001006e617400240002800800010000000001080002000000000a08000300000000010800050000000002
        fc000000060a010c0f000000000000000100000011000100706f64776972652d74657374000000000e000200686f7374
            706f727473000000c400048024000180090001006d657461000000001400028008000200000000100800010000000001
            340001800c0001007061796c6f6164002400028008000100000000090800020000000002080003000000000208000400
            00000002380001800b0001006c6f6f6b7570000028000280080002000000000108000300000000010b00010068703661
            6e790000080004000000000430000180080001006e617400240002800800010000000001080002000000000a08000300
            000000010800050000000002
        d4000000060a010c10000000000000000100000011000100706f64776972652d74657374000000001100020068707072
            65726f7574696e6700000000980004802800018008000100666962001c00028008000300000000020800020000000003
            08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c00038008000100
            02000000400001800e000100696d6d6564696174650000002c0002800800010000000000200002801c00028008000100
            fffffffd0e000200686f7374706f727473000000
        d0000000060a010c11000000000000000100000011000100706f64776972652d74657374000000000d00020068706f75
            7470757400000000980004802800018008000100666962001c0002800800030000000002080002000000000308000100
            000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800800010002000000
            400001800e000100696d6d6564696174650000002c0002800800010000000000200002801c00028008000100fffffffd
            0e000200686f7374706f727473000000
        3c010000060a010c12000000000000000100000011000100706f64776972652d7465737400000000120002006870706f
            7374726f7574696e670000000001048024000180090001006d6574610000000014000280080002000000000f08000100
            000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010002000000
            340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c08000400
            00000004340001800c0001007061796c6f61640024000280080001000000000908000200000000010800030000000010
            0800040000000004300001800b0001006c6f6f6b757000002000028008000200000000010c0001006870736e61743400
            080004000000000514000180090001006d6173710000000004000280
        3c010000060a010c13000000000000000100000011000100706f64776972652d7465737400000000120002006870706f
            7374726f7574696e670000000001048024000180090001006d6574610000000014000280080002000000000f08000100
            000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001000a000000
            340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000808000400
            00000010340001800c0001007061796c6f61640024000280080001000000000208000200000000010800030000000018
            0800040000000010300001800b0001006c6f6f6b757000002000028008000200000000010c0001006870736e61743600
            080004000000000614000180090001006d6173710000000004000280
        140000001100010014000000000000000000000a
        """)

    /// Then `nft -f` of:
    ///
    ///     add element inet podwire-test hp4 { 198.51.100.2 . tcp . 8080 comment "pod-a/eth0" : 10.244.1.2 . 80 }
    ///     add element inet podwire-test hp4any { udp . 5353 comment "pod-a/eth0" : 10.244.1.2 . 53 }
    ///     add element inet podwire-test hp6 { 2001:db8::2 . tcp . 8080 comment "pod-a/eth0" : fd00:10:244:1::2 . 80 }
    ///     add element inet podwire-test hp6any { tcp . 8443 comment "pod-a/eth0" : fd00:10:244:1::2 . 443 }
    ///     add element inet podwire-test hpsnat4 { 10.244.1.2 . 10.244.1.2, 127.0.0.1 . 10.244.1.2 }
    ///     add element inet podwire-test hpsnat6 { fd00:10:244:1::2 . fd00:10:244:1::2 }
    static let nftElements = hexBytes("""
        140000001000010000000000000000000000000a
        780000000c0a010401000000000000000100000011000100706f64776972652d74657374000000000800020068703400
            0800040000000001400003803c0001801400018010000100c6336402060000001f900000100002800c0001000af40102
            0050000011000600000b706f642d612f6574683000000000
        780000000c0a010402000000000000000100000011000100706f64776972652d74657374000000000b00020068703461
            6e79000008000400000000023c00038038000180100001800c0001001100000014e90000100002800c0001000af40102
            0035000011000600000b706f642d612f6574683000000000
        900000000c0a010403000000000000000100000011000100706f64776972652d74657374000000000800020068703600
            08000400000000035800038054000180200001801c00010020010db8000000000000000000000002060000001f900000
            1c00028018000100fd0000100244000100000000000000020050000011000600000b706f642d612f6574683000000000
        840000000c0a010404000000000000000100000011000100706f64776972652d74657374000000000b00020068703661
            6e79000008000400000000044800038044000180100001800c0001000600000020fb00001c00028018000100fd000010
            02440001000000000000000201bb000011000600000b706f642d612f6574683000000000
        680000000c0a010405000000000000000100000011000100706f64776972652d74657374000000000c0002006870736e
            6174340008000400000000052c00038014000180100001800c0001000af401020af4010214000280100001800c000100
            7f0000010af40102
        6c0000000c0a010406000000000000000100000011000100706f64776972652d74657374000000000c0002006870736e
            617436000800040000000006300003802c0001802800018024000100fd000010024400010000000000000002fd000010
            024400010000000000000002
        140000001100010007000000000000000000000a
        """)

    /// Then `nft -f` of:
    ///
    ///     delete element inet podwire-test hp4 { 198.51.100.2 . tcp . 8080 }
    static let nftDeleteElement = hexBytes("""
        140000001000010000000000000000000000000a
        4c0000000e0a010001000000000000000100000011000100706f64776972652d74657374000000000800020068703400
            1c000380180001801400018010000100c6336402060000001f900000
        140000001100010002000000000000000000000a
        """)

    /// `nft list map inet podwire-test hp4any`: its GETSETELEM dump.
    static let nftDumpMap = hexBytes("""
        340000000d0a01030000000000000000010000000b000200687034616e79000011000100706f64776972652d74657374
            00657374
        """)

    /// The kernel's answer to `nft list map inet podwire-test hp6` after the elements batch
    /// (recorded with `strace -e trace=recvmsg -e read=all`): the NEWSETELEM message of the dump
    /// (the dump's empty last part and NLMSG_DONE left out). The kernel does not flag its nests
    /// NLA_F_NESTED.
    static let kernelMapElements = hexBytes("""
        880000000c0a0200000000009a7900000100000311000100706f64776972652d74657374000000000800020068703600
            5800030054000100200001001c00010020010db8000000000000000000000002060000001f9000001c00020018000100
            fd0000100244000100000000000000020050000011000600000b706f642d612f6574683000000000
        """)

    /// The same for `nft list set inet podwire-test hpsnat4`.
    static let kernelSetElements = hexBytes("""
        600000000c0a0200000000009e7900000100000311000100706f64776972652d74657374000000000c0002006870736e
            617434002c00030014000100100001000c0001000af401020af4010214000100100001000c0001007f0000010af40102
        """)

    // MARK: What podwire sends

    static let hostIP4 = IPAddress("198.51.100.2")!
    static let hostIP6 = IPAddress("2001:db8::2")!

    /// The structure, in the order of the nft file above.
    static func structure() -> [NFTRequest] {
        [NFT.newTable(table),
         NFT.newMap(table, "hp4", key: [.ipv4Address, .inetProto, .inetService], data: [.ipv4Address, .inetService], id: 1),
         NFT.newMap(table, "hp4any", key: [.inetProto, .inetService], data: [.ipv4Address, .inetService], id: 2),
         NFT.newMap(table, "hp6", key: [.ipv6Address, .inetProto, .inetService], data: [.ipv6Address, .inetService], id: 3),
         NFT.newMap(table, "hp6any", key: [.inetProto, .inetService], data: [.ipv6Address, .inetService], id: 4),
         NFT.newSet(table, "hpsnat4", key: [.ipv4Address, .ipv4Address], id: 5),
         NFT.newSet(table, "hpsnat6", key: [.ipv6Address, .ipv6Address], id: 6),
         NFT.newChain(table, "hostports"),
         NFT.newChain(table, "hpprerouting", type: "nat", hook: .prerouting, priority: NFT.dstnatPriority,
                      description: "type nat hook prerouting priority dstnat"),
         NFT.newChain(table, "hpoutput", type: "nat", hook: .output, priority: -100, description: "type nat hook output priority -100"),
         NFT.newChain(table, "hppostrouting", type: "nat", hook: .postrouting, priority: NFT.srcnatPriority,
                      description: "type nat hook postrouting priority srcnat"),
         dnatRule(.v4, "hp4", matchingAddress: true),
         dnatRule(.v4, "hp4any", matchingAddress: false),
         dnatRule(.v6, "hp6", matchingAddress: true),
         dnatRule(.v6, "hp6any", matchingAddress: false),
         NFT.newRule(table, "hpprerouting", NFT.fibDestinationIsLocal() + [NFT.jump("hostports")],
                     text: "fib daddr type local jump hostports"),
         NFT.newRule(table, "hpoutput", NFT.fibDestinationIsLocal() + [NFT.jump("hostports")],
                     text: "fib daddr type local jump hostports"),
         snatRule(.v4, "hpsnat4"),
         snatRule(.v6, "hpsnat6")]
    }

    /// `dnat ip to ip daddr . meta l4proto . th dport map @hp4`, or without `ip daddr`: then nft
    /// adds no `meta nfproto` (the nat expression's family alone restricts it).
    static func dnatRule(_ family: IPFamily, _ map: String, matchingAddress: Bool) -> NFTRequest {
        var expressions = matchingAddress ? NFT.matchFamily(family) : []
        expressions += NFT.concatenation((matchingAddress ? [.destinationAddress(family)] : []) + [.l4proto, .destinationPort])
        expressions += [NFT.mapLookup(map), NFT.dnatFromMap(family)]
        let ip = family == .v4 ? "ip" : "ip6"
        return NFT.newRule(table, "hostports", expressions,
                           text: "dnat \(ip) to \(matchingAddress ? "\(ip) daddr . " : "")meta l4proto . th dport map @\(map)")
    }

    /// `ip saddr . ip daddr @hpsnat4 masquerade`.
    static func snatRule(_ family: IPFamily, _ set: String) -> NFTRequest {
        let ip = family == .v4 ? "ip" : "ip6"
        return NFT.newRule(table, "hppostrouting",
                           NFT.matchFamily(family) + NFT.concatenation([.sourceAddress(family), .destinationAddress(family)])
                               + [NFT.lookup(set, inverted: false), NFT.masquerade()],
                           text: "\(ip) saddr . \(ip) daddr @\(set) masquerade")
    }

    static func mapElement(host: IPAddress?, proto: UInt8, port: UInt16, pod: IPAddress, podPort: UInt16) -> NFT.Element {
        NFT.Element(key: NFT.concatenatedValue((host.map { [.address($0)] } ?? []) + [.proto(proto), .port(port)]),
                    data: NFT.concatenatedValue([.address(pod), .port(podPort)]), comment: comment)
    }

    static func pairElement(_ source: IPAddress, _ destination: IPAddress) -> NFT.Element {
        NFT.Element(key: NFT.concatenatedValue([.address(source), .address(destination)]))
    }

    /// The elements, in the order of the nft file above.
    static func elements() -> [NFTRequest] {
        [NFT.addElements(table, "hp4", [mapElement(host: hostIP4, proto: tcp, port: 8080, pod: pod4, podPort: 80)], what: "nft add element"),
         NFT.addElements(table, "hp4any", [mapElement(host: nil, proto: udp, port: 5353, pod: pod4, podPort: 53)], what: "nft add element"),
         NFT.addElements(table, "hp6", [mapElement(host: hostIP6, proto: tcp, port: 8080, pod: pod6, podPort: 80)], what: "nft add element"),
         NFT.addElements(table, "hp6any", [mapElement(host: nil, proto: tcp, port: 8443, pod: pod6, podPort: 443)], what: "nft add element"),
         NFT.addElements(table, "hpsnat4", [pairElement(pod4, pod4), pairElement(IPAddress("127.0.0.1")!, pod4)], what: "nft add element"),
         NFT.addElements(table, "hpsnat6", [pairElement(pod6, pod6)], what: "nft add element")]
    }

    static func podwireBatch(_ requests: some Collection<NFTRequest>) -> [WireMessage] { NFTablesWireTests.podwireBatch(requests) }

    /// nft's batch `capture` as podwire sends it, with only the messages at `range` (counted
    /// without BATCH_BEGIN) between BATCH_BEGIN and BATCH_END.
    static func nftBatch(_ capture: [UInt8], _ range: Range<Int>? = nil) -> [WireMessage] {
        let messages = NFTablesWireTests.nft(capture)
        let inner = Array(messages.dropFirst().dropLast())
        let selected = range.map { Array(inner[$0]) } ?? inner
        return NFTablesWireTests().asPodwireSends([messages[0]] + selected + [messages[messages.count - 1]], batch: true)
    }

    /// A kernel message's attributes, as NFTSocket.query hands them on (after nlmsghdr and nfgenmsg).
    static func kernelReply(_ bytes: [UInt8]) -> NFTReply {
        NFTReply(attributes: ReceivedAttribute.parse(bytes[20...]))
    }

    // MARK: The comparisons

    @Test func capturesAndPodwireDecodeLosslessly() {
        // The dump request's 3 bytes of padding after NFTA_SET_ELEM_LIST_TABLE are stale ("est"),
        // as in NFTablesWireTests: nobody reads padding; decoding takes it as zeros.
        var dumpMap = Self.nftDumpMap
        #expect(dumpMap[49..<52] == Array("est".utf8)[...])
        dumpMap.replaceSubrange(49..<52, with: [0, 0, 0])
        for (index, capture) in [Self.nftStructure, Self.nftElements, Self.nftDeleteElement, dumpMap].enumerated() {
            expectRoundTrip(capture, layout: .nfnetlink, "capture \(index)")
        }
        expectRoundTrip(NFTSocket.encodeBatch(Self.structure() + Self.elements(), firstSequence: 1), layout: .nfnetlink, "podwire's batches")
    }

    /// NEWSET with NFT_SET_MAP, concatenated key and data types and lengths, and nft's userdata.
    @Test func mapsAndConcatenatedSets() {
        expectSameWire(Self.podwireBatch(Self.structure()[0..<7]), Self.nftBatch(Self.nftStructure, 0..<7),
                       "table, four maps, two concatenated sets")
    }

    /// A regular chain and base chains at dstnat (prerouting), -100 (output) and srcnat.
    @Test func regularAndBaseChains() {
        expectSameWire(Self.podwireBatch(Self.structure()[7..<11]), Self.nftBatch(Self.nftStructure, 7..<11),
                       "regular chain, nat chains on prerouting, output and postrouting")
    }

    /// Concatenations in nft's registers (1, 9, 10 / 1, 2, 13 / 1, 9), lookup into dreg 1, and
    /// nat dnat with the address from reg 1 and the port from reg 9 (IPv4) or reg 2 (IPv6).
    @Test func dnatFromMaps() {
        expectSameWire(Self.podwireBatch(Self.structure()[11..<15]), Self.nftBatch(Self.nftStructure, 11..<15),
                       "the four dnat ... map rules")
    }

    /// fib daddr type (RTN_LOCAL host-endian) and an immediate jump.
    @Test func fibLocalJump() {
        expectSameWire(Self.podwireBatch(Self.structure()[15..<17]), Self.nftBatch(Self.nftStructure, 15..<17),
                       "fib daddr type local jump hostports")
    }

    /// A concatenated set lookup (reg 1, 9 / reg 1, 2), then masq.
    @Test func masqueradeAfterConcatenatedLookup() {
        expectSameWire(Self.podwireBatch(Self.structure()[17..<19]), Self.nftBatch(Self.nftStructure, 17..<19),
                       "saddr . daddr @set masquerade")
    }

    /// The whole structure as the one transaction nft sends.
    @Test func structureIsOneTransaction() {
        expectSameWire(Self.podwireBatch(Self.structure()), Self.nftBatch(Self.nftStructure), "hostPort structure")
    }

    /// Map elements with key, data and comment; set elements with concatenated keys.
    @Test func mapAndSetElements() {
        expectSameWire(Self.podwireBatch(Self.elements()), Self.nftBatch(Self.nftElements), "map and set elements")
    }

    /// A map element deleted by its key alone.
    @Test func deleteMapElement() {
        let key = NFT.concatenatedValue([.address(Self.hostIP4), .proto(Self.tcp), .port(8080)])
        expectSameWire(Self.podwireBatch([NFT.deleteElements(Self.table, "hp4", [NFT.Element(key: key)], what: "nft delete element")]),
                       Self.nftBatch(Self.nftDeleteElement), "delete map element")
    }

    @Test func dumpMap() {
        expectSameWire(NFTablesWireTests.podwireQuery(NFT.dumpMap(Self.table, "hp4any")),
                       NFTablesWireTests().asPodwireSends(NFTablesWireTests.nft(Self.nftDumpMap), batch: false), "list map")
    }

    /// The kernel's dump of a map read back: key, data and comment as they were added.
    @Test func mapElementsReadBack() {
        let elements = NFT.parseElements([Self.kernelReply(Self.kernelMapElements)])
        #expect(elements.count == 1)
        let element = elements.first
        #expect(element?.key == NFT.concatenatedValue([.address(Self.hostIP6), .proto(Self.tcp), .port(8080)]))
        #expect(element?.data == NFT.concatenatedValue([.address(Self.pod6), .port(80)]))
        #expect(element?.comment == Self.comment)
        #expect(element?.intervalEnd == false)
    }

    /// A set's elements read back: no data.
    @Test func setElementsReadBack() {
        let elements = NFT.parseElements([Self.kernelReply(Self.kernelSetElements)])
        #expect(elements.map(\.key) == [NFT.concatenatedValue([.address(Self.pod4), .address(Self.pod4)]),
                                        NFT.concatenatedValue([.address(IPAddress("127.0.0.1")!), .address(Self.pod4)])])
        #expect(elements.allSatisfy { $0.data == nil && $0.comment == nil && !$0.intervalEnd })
    }

    /// Values big-endian, each field padded to 4 bytes (the examples of the reference notes).
    @Test func concatenatedValues() {
        #expect(NFT.concatenatedValue([.address(IPAddress("10.0.0.5")!), .proto(6), .port(8080)])
                == hexBytes("0a000005 06000000 1f900000"))
        #expect(NFT.concatenatedValue([.address(IPAddress("10.244.1.7")!), .port(80)]) == hexBytes("0af40107 00500000"))
        #expect(NFT.concatenatedType([.ipv4Address, .inetProto, .inetService]) == 0x730d)
        #expect(NFT.concatenatedLength([.ipv6Address, .inetProto, .inetService]) == 24)
    }
}
