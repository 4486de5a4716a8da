import Testing
@testable import Netfilter
@testable import Netlink

// HostPortTable's requests, byte for byte against nft: its structure is HostPortWireTests' nft
// file plus the loopback guard (captured the same way, nftables 1.0.6, `nft -f` inside
// `unshare -Urn` under strace) of:
//
//     add table inet podwire-test
//     add chain inet podwire-test hpinput { type filter hook input priority filter; }
//     add rule inet podwire-test hpinput iifname != "lo" ip daddr 127.0.0.0/8 ct state ! established,related drop
//
// and the flushes that make the first ADDs' racing creations leave each rule once.

@Suite struct HostPortTableWireTests {
    static let nftGuard = hexBytes("""
        140000001000010000000000000000000000000a30000000000a010001000000000000000100000011000100706f6477
        6972652d7465737400000000080002000000000054000000030a010402000000000000000100000011000100706f6477
        6972652d74657374000000000c0003006870696e707574000b00070066696c7465720000140004800800010000000001
        080002000000000004020000060a010c03000000000000000100000011000100706f64776972652d7465737400000000
        0c0002006870696e70757400d001048024000180090001006d6574610000000014000280080002000000000608000100
        000000013800018008000100636d70002c0002800800010000000001080002000000000118000380140001006c6f0000
        00000000000000000000000024000180090001006d6574610000000014000280080002000000000f0800010000000001
        2c00018008000100636d700020000280080001000000000108000200000000000c000380050001000200000034000180
        0c0001007061796c6f616400240002800800010000000001080002000000000108000300000000100800040000000001
        2c00018008000100636d700020000280080001000000000108000200000000000c000380050001007f00000020000180
        07000100637400001400028008000200000000000800010000000001440001800c000100626974776973650034000280
        0800010000000001080002000000000108000300000000040c00048008000100060000000c0005800800010000000000
        2c00018008000100636d700020000280080001000000000108000200000000000c000380080001000000000030000180
        0e000100696d6d6564696174650000001c0002800800010000000000100002800c000280080001000000000014000000
        1100010004000000000000000000000a
        """)

    @Test("the loopback guard chain and rule are nft's")
    func loopbackGuard() {
        let creation = HostPortTable.creation(HostPortWireTests.table)
        let guardRequests = creation.filter { $0.what.contains("hpinput") && !$0.what.contains("flush") }
        #expect(guardRequests.count == 2)
        expectSameWire(HostPortWireTests.podwireBatch([NFT.newTable(HostPortWireTests.table)] + guardRequests),
                       HostPortWireTests.nftBatch(Self.nftGuard), "hpinput chain and rule")
    }

    @Test("the structure HostPortTable creates is the nft file's, each chain flushed before its rules")
    func creationIsTheStructure() {
        let creation = HostPortTable.creation(HostPortWireTests.table)
        let structure = creation.filter { !$0.what.contains("hpinput") && !$0.what.hasPrefix("nft flush chain") }
        expectSameWire(HostPortWireTests.podwireBatch(structure), HostPortWireTests.nftBatch(HostPortWireTests.nftStructure),
                       "hostPort structure")
        // Every chain's flush comes right before its first rule.
        let order = creation.map(\.what)
        for chain in ["hostports", "hpprerouting", "hpoutput", "hppostrouting", "hpinput"] {
            let flush = try! #require(order.firstIndex(of: "nft flush chain inet podwire-test \(chain)"))
            #expect(order[flush + 1].hasPrefix("nft add rule inet podwire-test \(chain) "), "\(order)")
        }
    }
}
