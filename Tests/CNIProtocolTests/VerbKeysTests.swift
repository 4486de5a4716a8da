import NetAddress
import Testing
@testable import CNIProtocol

/// Keys only some verbs read are parsed with the rest of the config, but a bad one is refused
/// only by the verb that reads it: a DEL is never refused over a key only ADD or GC uses.
@Suite("Keys read by one verb, and ip-masq-agent's keys")
struct VerbKeysTests {
    static func parse(_ extra: String) throws -> NetworkConfig {
        try NetworkConfig.parse(Array(#"{"cniVersion":"1.1.0","name":"podnet","type":"podwire"\#(extra)}"#.utf8))
    }

    @Test("nonMasqueradeCIDRs: parsed once, checked CIDRs, a bad one refused by its verb with code 7")
    func nonMasqueradeCIDRs() throws {
        let good = try Self.parse(#","nonMasqueradeCIDRs":["10.244.0.0/16","fd00:10:244::/48"]"#)
        #expect(try good.requireNonMasqueradeCIDRs() == [IPNetwork("10.244.0.0/16")!, IPNetwork("fd00:10:244::/48")!])
        #expect(good.warnings.isEmpty)

        let bad = try Self.parse(#","nonMasqueradeCIDRs":["10.244.0.1/16"]"#)
        let error = #expect(throws: CNIError.self) { try bad.requireNonMasqueradeCIDRs() }
        #expect(error?.code == .invalidNetworkConfig)
        #expect(error?.message == #""nonMasqueradeCIDRs" entry 10.244.0.1/16 has host bits set; did you mean 10.244.0.0/16?"#)
    }

    @Test("noMasqueradeCIDRs still works for one more release, with a warning for stderr; both keys at once is refused")
    func deprecatedAlias() throws {
        let legacy = try Self.parse(#","noMasqueradeCIDRs":["10.244.0.0/16"]"#)
        #expect(try legacy.requireNonMasqueradeCIDRs() == [IPNetwork("10.244.0.0/16")!])
        #expect(legacy.warnings == [#"podwire: "noMasqueradeCIDRs" is deprecated and will be removed; name it "nonMasqueradeCIDRs", as ip-masq-agent does"#])

        let badLegacy = try Self.parse(#","noMasqueradeCIDRs":["banana"]"#)
        let named = #expect(throws: CNIError.self) { try badLegacy.requireNonMasqueradeCIDRs() }
        #expect(named?.message == #"invalid "noMasqueradeCIDRs" entry "banana": not a CIDR"#)

        let both = try Self.parse(#","noMasqueradeCIDRs":[],"nonMasqueradeCIDRs":[]"#)
        let error = #expect(throws: CNIError.self) { try both.requireNonMasqueradeCIDRs() }
        #expect(error?.code == .invalidNetworkConfig)
        #expect(error?.message == #"both "nonMasqueradeCIDRs" and its deprecated alias "noMasqueradeCIDRs" are set"#)
    }

    @Test("masqLinkLocal and masqLinkLocalIPv6: false unless set, booleans only")
    func masqLinkLocal() throws {
        let unset = try Self.parse("")
        #expect(!unset.masqLinkLocal && !unset.masqLinkLocalIPv6)
        let set = try Self.parse(#","masqLinkLocal":true,"masqLinkLocalIPv6":"true""#)
        #expect(set.masqLinkLocal && set.masqLinkLocalIPv6)
        let error = #expect(throws: CNIError.self) { try Self.parse(#","masqLinkLocal":1"#) }
        #expect(error?.message == #"invalid "masqLinkLocal": expected true or false"#)
    }

    @Test("GC's attachment list: absent, empty, listed, or malformed")
    func validAttachments() throws {
        let missing = try Self.parse("")
        #expect(missing.validAttachments == nil)
        #expect(throws: CNIError.self) { try missing.requireValidAttachments() }

        let empty = try Self.parse(#","cni.dev/valid-attachments":[]"#)
        #expect(try empty.requireValidAttachments().isEmpty)

        let listed = try Self.parse(#","cni.dev/attachments":[{"containerID":"a","ifname":"eth0"}]"#)
        #expect(try listed.requireValidAttachments() == [.init(containerID: "a", ifname: "eth0")])

        let malformed = try Self.parse(#","cni.dev/valid-attachments":[{"containerID":"a"}]"#)
        let error = #expect(throws: CNIError.self) { try malformed.requireValidAttachments() }
        #expect(error?.message == #"every valid attachment needs "containerID" and "ifname" strings"#)
    }
}
