import NetAddress
import Testing
@testable import CNIProtocol

/// Keys only some verbs read are parsed with the rest of the config, but a bad one is refused
/// only by the verb that reads it: a DEL is never refused over a key only ADD or GC uses.
@Suite("Keys read by one verb")
struct VerbKeysTests {
    static func parse(_ extra: String) throws -> NetworkConfig {
        try NetworkConfig.parse(Array(#"{"cniVersion":"1.1.0","name":"podnet","type":"podwire"\#(extra)}"#.utf8))
    }

    @Test("noMasqueradeCIDRs: parsed once, checked CIDRs, a bad one refused by its verb with code 7")
    func noMasqueradeCIDRs() throws {
        let good = try Self.parse(#","noMasqueradeCIDRs":["10.244.0.0/16","fd00:10:244::/48"]"#)
        #expect(try good.requireNoMasqueradeCIDRs() == [IPNetwork("10.244.0.0/16")!, IPNetwork("fd00:10:244::/48")!])

        let bad = try Self.parse(#","noMasqueradeCIDRs":["10.244.0.1/16"]"#)
        let error = #expect(throws: CNIError.self) { try bad.requireNoMasqueradeCIDRs() }
        #expect(error?.code == .invalidNetworkConfig)
        #expect(error?.message == #""noMasqueradeCIDRs" entry 10.244.0.1/16 has host bits set; did you mean 10.244.0.0/16?"#)
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
