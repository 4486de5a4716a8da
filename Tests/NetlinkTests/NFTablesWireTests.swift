import Testing
@testable import Netlink
@testable import Netfilter
import NetAddress

// podwire's nf_tables requests, byte for byte against what nft sends for the same commands.
//
// The captures below are what nft (nftables 1.0.6, libnftnl 1.2.4, Debian 12) sent, recorded with
//
//     unshare -Urn sh -c 'strace -f -e trace=sendmsg,sendto -e write=all -xx -s 65536 nft -f <file>'
//
// (a private user and network namespace: no ruleset but the namespace's own was touched), the
// files run one after the other in one namespace, each file's batch as one sendmsg. The hex is
// strace's dump of that sendmsg, one netlink message a line (a long one continues indented).
// The table is MasqueradeTable(network: "test")'s, `inet podwire-test`.
//
// What podwire legitimately sends differently is applied to nft's messages in `asPodwireSends`,
// each difference with the reason it does not matter to the kernel; everything else must be the
// same bytes. Set IDs need no exception: nft numbers the sets of a batch 1, 2, 3, 4 in the order
// it adds them, as MasqueradeTable does.

@Suite struct NFTablesWireTests {
    static var table: MasqueradeTable { MasqueradeTable(network: "test") }
    static let owner = "0123456789abcdef/eth0"
    static let exempt = [IPNetwork("10.244.0.0/16")!, IPNetwork("10.96.0.0/12")!, IPNetwork("fd00:10:244::/56")!]
    static let pod4 = IPAddress("10.244.0.5")!
    static let pod6 = IPAddress("fd00:10:244::5")!

    // MARK: What nft sent

    /// `nft -f` of (the order of MasqueradeTable.install's first transaction, without elements;
    /// in one file with the elements nft would fold them into the sets' creation):
    ///
    ///     add table inet podwire-test
    ///     add set inet podwire-test masq4 { type ipv4_addr; }
    ///     add set inet podwire-test masq6 { type ipv6_addr; }
    ///     add set inet podwire-test exempt4 { type ipv4_addr; flags interval; }
    ///     add set inet podwire-test exempt6 { type ipv6_addr; flags interval; }
    ///     add chain inet podwire-test postrouting { type nat hook postrouting priority srcnat; }
    ///     flush chain inet podwire-test postrouting
    ///     add rule inet podwire-test postrouting ip saddr @masq4 ip daddr != @exempt4 ip daddr != 224.0.0.0/4 masquerade
    ///     add rule inet podwire-test postrouting ip6 saddr @masq6 ip6 daddr != @exempt6 ip6 daddr != ff00::/8 masquerade
    static let nftStructure = hexBytes("""
        140000001000010000000000000000000000000a
        30000000000a010001000000000000000100000011000100706f64776972652d74657374000000000800020000000000
        60000000090a010402000000000000000100000011000100706f64776972652d74657374000000000a0002006d617371
            3400000008000300000000000800040000000007080005000000000408000a00000000010a000d000004020000000000
        60000000090a010403000000000000000100000011000100706f64776972652d74657374000000000a0002006d617371
            3600000008000300000000000800040000000008080005000000001008000a00000000020a000d000004020000000000
        60000000090a010404000000000000000100000011000100706f64776972652d74657374000000000c0002006578656d
            7074340008000300000000040800040000000007080005000000000408000a00000000030a000d000004020000000000
        60000000090a010405000000000000000100000011000100706f64776972652d74657374000000000c0002006578656d
            7074360008000300000000040800040000000008080005000000001008000a00000000040a000d000004020000000000
        54000000030a010406000000000000000100000011000100706f64776972652d746573740000000010000300706f7374
            726f7574696e6700080007006e6174001400048008000100000000040800020000000064
        38000000080a010007000000000000000100000011000100706f64776972652d746573740000000010000200706f7374
            726f7574696e6700
        14020000060a010c08000000000000000100000011000100706f64776972652d746573740000000010000200706f7374
            726f7574696e6700dc01048024000180090001006d6574610000000014000280080002000000000f0800010000000001
            2c00018008000100636d700020000280080001000000000108000200000000000c000380050001000200000034000180
            0c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004
            300001800b0001006c6f6f6b757000002000028008000200000000010a0001006d617371340000000800040000000001
            340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000001008000400
            00000004380001800b0001006c6f6f6b757000002800028008000200000000010c0001006578656d7074340008000400
            000000030800050000000001340001800c0001007061796c6f6164002400028008000100000000010800020000000001
            08000300000000100800040000000004440001800c000100626974776973650034000280080001000000000108000200
            0000000108000300000000040c00048008000100f00000000c00058008000100000000002c00018008000100636d7000
            20000280080001000000000108000200000000010c00038008000100e000000014000180090001006d61737100000000
            04000280
        d0010000060a010c09000000000000000100000011000100706f64776972652d746573740000000010000200706f7374
            726f7574696e67009801048024000180090001006d6574610000000014000280080002000000000f0800010000000001
            2c00018008000100636d700020000280080001000000000108000200000000000c000380050001000a00000034000180
            0c0001007061796c6f616400240002800800010000000001080002000000000108000300000000080800040000000010
            300001800b0001006c6f6f6b757000002000028008000200000000010a0001006d617371360000000800040000000002
            340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000001808000400
            00000010380001800b0001006c6f6f6b757000002800028008000200000000010c0001006578656d7074360008000400
            000000040800050000000001340001800c0001007061796c6f6164002400028008000100000000010800020000000001
            080003000000001808000400000000012c00018008000100636d70002000028008000100000000010800020000000001
            0c00038005000100ff00000014000180090001006d6173710000000004000280
        14000000110001000a000000000000000000000a
        """)

    /// Then `nft -f` of:
    ///
    ///     flush set inet podwire-test exempt4
    ///     add element inet podwire-test exempt4 { 10.244.0.0/16, 10.96.0.0/12 }
    ///     flush set inet podwire-test exempt6
    ///     add element inet podwire-test exempt6 { fd00:10:244::/56 }
    static let nftExempt = hexBytes("""
        140000001000010000000000000000000000000a
        340000000e0a01000100000000000000010000000c0002006578656d7074340011000100706f64776972652d74657374
            00000000
        a80000000c0a010402000000000000000100000011000100706f64776972652d74657374000000000c0002006578656d
            7074340008000400000000036c0003801800018008000300000000010c0001800800010000000000100002800c000180
            080001000a6000001800038008000300000000010c000180080001000a700000100004800c000180080001000af40000
            1800058008000300000000010c000180080001000af50000
        340000000e0a01000300000000000000010000000c0002006578656d7074360011000100706f64776972652d74657374
            00000000
        a40000000c0a010404000000000000000100000011000100706f64776972652d74657374000000000c0002006578656d
            707436000800040000000004680003802400018008000300000000011800018014000100000000000000000000000000
            000000001c0002801800018014000100fd00001002440000000000000000000024000380080003000000000118000180
            14000100fd000010024401000000000000000000
        140000001100010005000000000000000000000a
        """)

    /// Then `nft -f` of:
    ///
    ///     add element inet podwire-test masq4 { 10.244.0.5 comment "0123456789abcdef/eth0" }
    ///     add element inet podwire-test masq6 { fd00:10:244::5 comment "0123456789abcdef/eth0" }
    static let nftMembers = hexBytes("""
        140000001000010000000000000000000000000a
        6c0000000c0a010401000000000000000100000011000100706f64776972652d74657374000000000a0002006d617371
            340000000800040000000001300003802c0001800c000180080001000af400051c000600001630313233343536373839
            6162636465662f6574683000
        780000000c0a010402000000000000000100000011000100706f64776972652d74657374000000000a0002006d617371
            3600000008000400000000023c000380380001801800018014000100fd0000100244000000000000000000051c000600
            0016303132333435363738396162636465662f6574683000
        140000001100010003000000000000000000000a
        """)

    /// Then `nft -f` of:
    ///
    ///     add element inet podwire-test masq4 { 10.244.0.5 }
    ///     delete element inet podwire-test masq4 { 10.244.0.5 }
    static let nftRemoval = hexBytes("""
        140000001000010000000000000000000000000a
        500000000c0a010401000000000000000100000011000100706f64776972652d74657374000000000a0002006d617371
            34000000080004000000000114000380100001800c000180080001000af40005
        480000000e0a010002000000000000000100000011000100706f64776972652d74657374000000000a0002006d617371
            3400000014000380100001800c000180080001000af40005
        140000001100010003000000000000000000000a
        """)

    /// Then, after `nft add element inet podwire-test masq4 { 10.244.0.7 }`, `nft -f` of:
    ///
    ///     delete element inet podwire-test masq4 { 10.244.0.7 }
    ///     add element inet podwire-test masq4 { 10.244.0.7 comment "0123456789abcdef/eth0" }
    static let nftRestamp = hexBytes("""
        140000001000010000000000000000000000000a
        480000000e0a010001000000000000000100000011000100706f64776972652d74657374000000000a0002006d617371
            3400000014000380100001800c000180080001000af40007
        6c0000000c0a010402000000000000000100000011000100706f64776972652d74657374000000000a0002006d617371
            340000000800040000000001300003802c0001800c000180080001000af400071c000600001630313233343536373839
            6162636465662f6574683000
        140000001100010003000000000000000000000a
        """)

    /// Then `nft -f` of:
    ///
    ///     flush set inet podwire-test masq4
    static let nftFlushSet = hexBytes("""
        140000001000010000000000000000000000000a
        340000000e0a01000100000000000000010000000a0002006d6173713400000011000100706f64776972652d74657374
            00000000
        140000001100010002000000000000000000000a
        """)

    /// `nft get element inet podwire-test masq6 { fd00:10:244::5 }`: its GETSETELEM (a sendto;
    /// the GETGEN and cache dumps it sends first are left out).
    static let nftGetElement = hexBytes("""
        540000000d0a05000100000000000000010000000a0002006d6173713600000011000100706f64776972652d74657374
            00000000200003801c0001801800018014000100fd000010024400000000000000000005
        """)

    /// `nft list set inet podwire-test masq6`: its GETSETELEM dump.
    static let nftDumpElements = hexBytes("""
        340000000d0a01030000000000000000010000000a0002006d6173713600000011000100706f64776972652d74657374
            00657374
        """)

    /// `nft list chain inet podwire-test postrouting`: its GETRULE dump.
    static let nftDumpRules = hexBytes("""
        38000000070a010300000000000000000100000011000100706f64776972652d746573740000000010000200706f7374
            726f7574696e6700
        """)

    // MARK: What podwire sends

    /// The transaction MasqueradeTable.install commits on a node without the table (its reads
    /// found no rules and no elements): its creation, then the exempt sets and the pod's element
    /// in install's order (install itself needs a kernel to read from).
    static func firstInstall() -> [NFTRequest] {
        let name = table.name
        var requests = MasqueradeTable.creation(name)
        for family in MasqueradeTable.families {
            let set = MasqueradeTable.exemptSet(family)
            requests.append(NFT.flushSet(name, set))
            let elements = MasqueradeTable.intervalElements(exempt.filter { $0.family == family }, family: family)
            requests.append(NFT.addElements(name, set, elements, what: "nft add element inet \(name) \(set)"))
        }
        for address in [pod4, pod6] {
            let set = MasqueradeTable.masqSet(address.family)
            requests.append(NFT.addElements(name, set, [NFT.Element(key: address.bytes, comment: owner)], what: "nft add element"))
        }
        return requests
    }

    static func podwireBatch(_ requests: some Collection<NFTRequest>) -> [WireMessage] {
        WireMessage.decodeAll(NFTSocket.encodeBatch(Array(requests), firstSequence: 1), layout: .nfnetlink)
    }

    static func podwireQuery(_ request: NFTRequest) -> [WireMessage] {
        WireMessage.decodeAll(NFTSocket.encodeQuery(request, sequence: 1), layout: .nfnetlink)
    }

    static func nft(_ capture: [UInt8]) -> [WireMessage] { WireMessage.decodeAll(capture, layout: .nfnetlink) }

    // MARK: The comparisons

    @Test func capturesAndPodwireDecodeLosslessly() {
        // nft's dump request carries 3 stale bytes ("est", from the buffer's earlier use) as the
        // padding after NFTA_SET_ELEM_LIST_TABLE's 13 bytes. Padding only aligns the next
        // attribute, nobody reads it; decoding (and so the comparison) takes it as zeros.
        var dumpElements = Self.nftDumpElements
        #expect(dumpElements[49..<52] == Array("est".utf8)[...])
        dumpElements.replaceSubrange(49..<52, with: [0, 0, 0])
        let captures = [Self.nftStructure, Self.nftExempt, Self.nftMembers, Self.nftRemoval, Self.nftRestamp, Self.nftFlushSet,
                        Self.nftGetElement, dumpElements, Self.nftDumpRules]
        for (index, capture) in captures.enumerated() { expectRoundTrip(capture, layout: .nfnetlink, "capture \(index)") }
        expectRoundTrip(NFTSocket.encodeBatch(Self.firstInstall(), firstSequence: 1), layout: .nfnetlink, "podwire's first ADD")
    }

    @Test func tableSetsChainAndRules() {
        let requests = Self.firstInstall()
        expectSameWire(Self.podwireBatch(requests[0..<9]), asPodwireSends(Self.nft(Self.nftStructure), batch: true),
                       "table, sets, chain, flush chain and rules")
    }

    @Test func exemptSetsReplaced() {
        let requests = Self.firstInstall()
        expectSameWire(Self.podwireBatch(requests[9..<13]), asPodwireSends(Self.nft(Self.nftExempt), batch: true),
                       "exempt sets flushed and filled")
    }

    @Test func podAddressesWithComment() {
        let requests = Self.firstInstall()
        expectSameWire(Self.podwireBatch(requests[13...]), asPodwireSends(Self.nft(Self.nftMembers), batch: true),
                       "pod addresses added with their owner as comment")
    }

    /// The three batches above are the first ADD's one transaction, in that order.
    @Test func firstADDIsOneTransaction() {
        let structure = Self.nft(Self.nftStructure), exempt = Self.nft(Self.nftExempt), members = Self.nft(Self.nftMembers)
        let nft = structure.dropLast() + exempt.dropFirst().dropLast() + members.dropFirst().dropLast() + structure.suffix(1)
        expectSameWire(Self.podwireBatch(Self.firstInstall()), asPodwireSends(Array(nft), batch: true), "first ADD")
    }

    /// DEL, GC's updates: add-then-delete, so an element not in the set is no error.
    @Test func removal() {
        expectSameWire(Self.podwireBatch(Self.table.removal([Self.pod4], family: .v4)),
                       asPodwireSends(Self.nft(Self.nftRemoval), batch: true), "removal of a pod address")
    }

    /// ADD finding a pod address still in the set under another owner's comment.
    @Test func restampedElement() {
        let address = IPAddress("10.244.0.7")!
        let name = Self.table.name
        let requests = [NFT.deleteElements(name, "masq4", [NFT.Element(key: address.bytes)], what: "nft delete element"),
                        NFT.addElements(name, "masq4", [NFT.Element(key: address.bytes, comment: Self.owner)], what: "nft add element")]
        expectSameWire(Self.podwireBatch(requests), asPodwireSends(Self.nft(Self.nftRestamp), batch: true), "element re-commented")
    }

    @Test func flushSet() {
        expectSameWire(Self.podwireBatch([NFT.flushSet(Self.table.name, "masq4")]),
                       asPodwireSends(Self.nft(Self.nftFlushSet), batch: true), "flush set")
    }

    @Test func getElement() {
        let request = NFT.getElement(Self.table.name, "masq6", key: Self.pod6.bytes, what: "nft get element")
        expectSameWire(Self.podwireQuery(request), asPodwireSends(Self.nft(Self.nftGetElement), batch: false), "get element")
    }

    @Test func dumpElements() {
        expectSameWire(Self.podwireQuery(NFT.dumpElements(Self.table.name, "masq6")),
                       asPodwireSends(Self.nft(Self.nftDumpElements), batch: false), "list set")
    }

    @Test func dumpRules() {
        expectSameWire(Self.podwireQuery(NFT.dumpRules(Self.table.name, MasqueradeTable.chain)),
                       asPodwireSends(Self.nft(Self.nftDumpRules), batch: false), "list chain")
    }

    // MARK: The differences

    /// nft's messages as podwire sends the same requests. Each difference is harmless:
    func asPodwireSends(_ nft: [WireMessage], batch: Bool) -> [WireMessage] {
        nft.map { original in
            var message = original
            guard message.type >> 8 == NFNL.subsysNFTables else { return message } // BATCH_BEGIN, BATCH_END: identical
            let command = message.type & 0xff

            // podwire asks for an ack of every message in a batch (NLM_F_ACK), nft for none: commit
            // reads one answer per request, so a request the kernel skipped is an error, and a
            // refusal names its request. The kernel applies the batch the same way either way.
            if batch { message.flags |= NLM.ack }

            // NLM_F_CREATE on NEWTABLE (nft sets it on sets, chains, rules and elements, not tables):
            // nf_tables_newtable looks only at NLM_F_EXCL and NLM_F_REPLACE; a missing table is
            // created either way.
            if command == NFT_MSG.newTable { message.flags |= NLM.create }

            if [NFT_MSG.newSetElem, NFT_MSG.delSetElem, NFT_MSG.getSetElem].contains(command) {
                // nft names the set by an ID as well as by name (NFTA_SET_ELEM_LIST_SET_ID, and
                // NFTA_LOOKUP_SET_ID below): the ID it gave the set when adding it in this batch
                // (or in its cache, for a set already there). The kernel finds a set by name first,
                // among the sets added in the transaction too (nft_set_lookup_global), and tries
                // the ID only when no set has that name: needed for anonymous sets and for a set
                // deleted and re-added under its name in one batch, neither of which podwire sends.
                message.remove(NFTA.setElemListSetID)
                // libnftnl types the n-th element of the list n; podwire types each
                // NFTA_LIST_ELEM (1), as libnftnl does a rule's expressions. The kernel walks the
                // list with nla_for_each_nested, which does not look at the type.
                message.edit([NFTA.setElemListElements]) { elements in
                    for index in elements.indices { elements[index].rawType = NLA.nested | NFTA.listElem }
                }
                // DIFFERENCE IN ORDER: nft puts the set's name before the table's in a flush, a get
                // and a dump (podwire: table, set, as in the adds and deletes). The kernel parses
                // the attributes into a table by type (nfnetlink's nla_parse), so order is moot.
                message.reorder([NFTA.setElemListTable, NFTA.setElemListSet, NFTA.setElemListElements])
            }

            if command == NFT_MSG.newRule {
                message.editExpressions(named: "lookup") { $0.removeAll { $0.type == NFTA.lookupSetID } } // see above
                message.editExpressions(named: "dynset") { $0.removeAll { $0.type == NFTA.dynsetSetID } } // the same for a dynset
                // DIFFERENCE IN ORDER: nft's meta expression is key, then register; podwire's is
                // register, then key. nft_meta_get_init reads both from the parsed table.
                message.editExpressions(named: "meta") { $0.reorder([NFTA.metaDreg, NFTA.metaKey]) }
            }
            return message
        }
    }
}

// MARK: nf_tables constants (linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h)

enum NLM {
    static let ack: UInt16 = 0x4
    static let create: UInt16 = 0x400
}

enum NLA {
    static let nested: UInt16 = 0x8000
}

enum NFNL {
    static let subsysNFTables: UInt16 = 10
}

enum NFT_MSG {
    static let newTable: UInt16 = 0, newRule: UInt16 = 6, newSetElem: UInt16 = 12, getSetElem: UInt16 = 13, delSetElem: UInt16 = 14
}

enum NFTA {
    static let listElem: UInt16 = 1
    static let setElemListTable: UInt16 = 1, setElemListSet: UInt16 = 2, setElemListElements: UInt16 = 3, setElemListSetID: UInt16 = 4
    static let ruleExpressions: UInt16 = 4
    static let exprName: UInt16 = 1, exprData: UInt16 = 2
    static let metaDreg: UInt16 = 1, metaKey: UInt16 = 2
    static let lookupSetID: UInt16 = 4
    static let dynsetSetID: UInt16 = 2 // NFTA_DYNSET_SET_ID
}

extension WireMessage.Layout {
    /// nfgenmsg (4 bytes); every nest flagged NLA_F_NESTED, by libnftnl and podwire alike.
    static let nfnetlink = WireMessage.Layout(familyHeaderSize: { _ in 4 },
                                              nestedHeaderSize: { _, _, rawType in rawType & NLA.nested != 0 ? 0 : nil })
}

extension WireMessage {
    /// Applies `body` to the NFTA_EXPR_DATA attributes of each of the rule's expressions named `name`.
    mutating func editExpressions(named name: String, _ body: (inout [WireAttribute]) -> Void) {
        edit([NFTA.ruleExpressions]) { expressions in
            for index in expressions.indices {
                guard case .nested(let header, var fields) = expressions[index].value,
                      fields.first(where: { $0.type == NFTA.exprName })?.payload == Array(name.utf8) + [0] else { continue }
                WireAttribute.edit(&fields, [NFTA.exprData], body)
                expressions[index].value = .nested(header: header, fields)
            }
        }
    }
}
