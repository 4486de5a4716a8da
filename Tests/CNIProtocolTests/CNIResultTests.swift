import Testing
import NetAddress
@testable import CNIProtocol

private func ip(_ text: String) -> IPAddress { IPAddress(text)! }
private func net(_ text: String) -> IPNetwork { IPNetwork(text)! }
private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A ptp-style dual-stack result using every 1.1.0 field, with a second IPv4 address
/// so down-conversion has something to drop.
private func sampleResult() -> CNIResult {
    var container = CNIInterface(name: "eth0", mac: "aa:bb:cc:dd:ee:02", mtu: 1450, sandbox: "/run/netns/pod1")
    container.socketPath = "/run/vhost/sock"
    container.pciID = "0000:00:1f.6"
    var defaultRoute = CNIRoute(dst: net("0.0.0.0/0"), gw: ip("10.244.1.1"))
    defaultRoute.mtu = 1400
    defaultRoute.advmss = 1360
    defaultRoute.priority = 100
    defaultRoute.table = 254
    defaultRoute.scope = 0
    return CNIResult(
        interfaces: [CNIInterface(name: "veth1a2b3c4d", mac: "aa:bb:cc:dd:ee:01", mtu: 1450), container],
        ips: [
            CNIIPConfig(address: net("10.244.1.5/24"), gateway: ip("10.244.1.1"), interface: 1),
            CNIIPConfig(address: net("fd00:10:244:1::5/64"), gateway: ip("fd00:10:244:1::1"), interface: 1),
            CNIIPConfig(address: net("10.244.1.6/24"), gateway: nil, interface: 1),
        ],
        routes: [defaultRoute, CNIRoute(dst: net("::/0"), gw: ip("fd00:10:244:1::1")), CNIRoute(dst: net("10.96.0.0/12"))],
        dns: CNIDNS(nameservers: ["10.96.0.10"], search: ["svc.cluster.local"]))
}

private let dnsJSON = #""dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}"#

private let golden110 = #"{"cniVersion":"1.1.0","# + dnsJSON
    + #","interfaces":[{"mac":"aa:bb:cc:dd:ee:01","mtu":1450,"name":"veth1a2b3c4d"},"#
    + #"{"mac":"aa:bb:cc:dd:ee:02","mtu":1450,"name":"eth0","pciID":"0000:00:1f.6","sandbox":"/run/netns/pod1","socketPath":"/run/vhost/sock"}],"#
    + #""ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":1},"#
    + #"{"address":"fd00:10:244:1::5/64","gateway":"fd00:10:244:1::1","interface":1},"#
    + #"{"address":"10.244.1.6/24","interface":1}],"#
    + #""routes":[{"advmss":1360,"dst":"0.0.0.0/0","gw":"10.244.1.1","mtu":1400,"priority":100,"scope":0,"table":254},"#
    + #"{"dst":"::/0","gw":"fd00:10:244:1::1"},{"dst":"10.96.0.0/12"}]}"#

private let golden100 = #"{"cniVersion":"1.0.0","# + dnsJSON
    + #","interfaces":[{"mac":"aa:bb:cc:dd:ee:01","name":"veth1a2b3c4d"},"#
    + #"{"mac":"aa:bb:cc:dd:ee:02","name":"eth0","sandbox":"/run/netns/pod1"}],"#
    + #""ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":1},"#
    + #"{"address":"fd00:10:244:1::5/64","gateway":"fd00:10:244:1::1","interface":1},"#
    + #"{"address":"10.244.1.6/24","interface":1}],"#
    + #""routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"},{"dst":"::/0","gw":"fd00:10:244:1::1"},{"dst":"10.96.0.0/12"}]}"#

private func golden04x(_ version: String) -> String {
    #"{"cniVersion":""# + version + #"","# + dnsJSON
        + #","interfaces":[{"mac":"aa:bb:cc:dd:ee:01","name":"veth1a2b3c4d"},"#
        + #"{"mac":"aa:bb:cc:dd:ee:02","name":"eth0","sandbox":"/run/netns/pod1"}],"#
        + #""ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":1,"version":"4"},"#
        + #"{"address":"fd00:10:244:1::5/64","gateway":"fd00:10:244:1::1","interface":1,"version":"6"},"#
        + #"{"address":"10.244.1.6/24","interface":1,"version":"4"}],"#
        + #""routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"},{"dst":"::/0","gw":"fd00:10:244:1::1"},{"dst":"10.96.0.0/12"}]}"#
}

private func goldenLegacy(_ version: String) -> String {
    #"{"cniVersion":""# + version + #"","# + dnsJSON
        + #","ip4":{"gateway":"10.244.1.1","ip":"10.244.1.5/24","routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1"},{"dst":"10.96.0.0/12"}]},"#
        + #""ip6":{"gateway":"fd00:10:244:1::1","ip":"fd00:10:244:1::5/64","routes":[{"dst":"::/0","gw":"fd00:10:244:1::1"}]}}"#
}

/// host-local's own output when asked for 0.2.0.
private let hostLocal020 = #"{"cniVersion":"0.2.0","ip4":{"ip":"10.9.0.2/30","gateway":"10.9.0.1","routes":[{"dst":"0.0.0.0/0"}]},"ip6":{"ip":"fd00:9::2/64","gateway":"fd00:9::1"},"dns":{}}"#

private func decodeError(_ text: String, defaultVersion: CNIVersion = .v1_1_0) -> CNIError? {
    do {
        _ = try CNIResult.decode(bytes(text), defaultVersion: defaultVersion)
        return nil
    } catch {
        return error
    }
}

@Suite("CNIResult encoding")
struct CNIResultEncodingTests {
    @Test func version110KeepsEverything() throws {
        #expect(text(try sampleResult().encoded(as: .v1_1_0)) == golden110)
    }

    @Test func version100DropsNewFields() throws {
        #expect(text(try sampleResult().encoded(as: .v1_0_0)) == golden100)
    }

    @Test(arguments: ["0.3.0", "0.3.1", "0.4.0"])
    func versions03xAnd040AddIPVersion(version: String) throws {
        #expect(text(try sampleResult().encoded(as: CNIVersion(version)!)) == golden04x(version))
    }

    @Test(arguments: ["0.1.0", "0.2.0"])
    func legacyVersionsKeepFirstAddressPerFamily(version: String) throws {
        #expect(text(try sampleResult().encoded(as: CNIVersion(version)!)) == goldenLegacy(version))
    }

    @Test func legacyWithOneFamily() throws {
        let result = CNIResult(
            ips: [CNIIPConfig(address: net("fd00::5/64"), gateway: nil)],
            routes: [CNIRoute(dst: net("0.0.0.0/0"), gw: ip("10.0.0.1")), CNIRoute(dst: net("fd01::/64"))])
        #expect(text(try result.encoded(as: .v0_2_0))
                == #"{"cniVersion":"0.2.0","ip6":{"ip":"fd00::5/64","routes":[{"dst":"fd01::/64"}]}}"#)
        let v4Only = CNIResult(ips: [CNIIPConfig(address: net("10.0.0.5/8"), gateway: nil)])
        #expect(text(try v4Only.encoded(as: .v0_1_0)) == #"{"cniVersion":"0.1.0","ip4":{"ip":"10.0.0.5/8"}}"#)
    }

    @Test(arguments: ["0.1.0", "0.2.0"])
    func legacyWithoutAddressesFails(version: String) throws {
        let noIPs = CNIResult(interfaces: [CNIInterface(name: "eth0")], routes: [CNIRoute(dst: net("0.0.0.0/0"))])
        let error = try #require(throws: CNIError.self) { try noIPs.encoded(as: CNIVersion(version)!) }
        #expect(error.code == .incompatibleVersion)
        #expect(error.code.rawValue == 1)
        #expect(throws: CNIError.self) { try CNIResult().encoded(as: CNIVersion(version)!) }
    }

    @Test func emptyResultInModernVersions() throws {
        #expect(text(try CNIResult().encoded(as: .v1_1_0)) == #"{"cniVersion":"1.1.0"}"#)
        #expect(text(try CNIResult().encoded(as: .v0_3_0)) == #"{"cniVersion":"0.3.0"}"#)
    }

    @Test func unsetDNSIsOmitted() throws {
        let result = CNIResult(ips: [CNIIPConfig(address: net("10.0.0.2/24"), gateway: nil)], dns: CNIDNS())
        #expect(text(try result.encoded(as: .v1_0_0)) == #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}"#)
        #expect(text(try result.encoded(as: .v0_2_0)) == #"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}"#)
        var emptyList = result
        emptyList.dns = CNIDNS(nameservers: [])
        #expect(text(try emptyList.encoded(as: .v1_0_0)) == #"{"cniVersion":"1.0.0","dns":{"nameservers":[]},"ips":[{"address":"10.0.0.2/24"}]}"#)
    }
}

@Suite("CNIResult decoding")
struct CNIResultDecodingTests {
    @Test func roundTrip110IsExact() throws {
        let decoded = try CNIResult.decode(bytes(golden110), defaultVersion: .v0_1_0)
        #expect(decoded == sampleResult())
    }

    @Test(arguments: ["0.3.0", "0.3.1", "0.4.0", "1.0.0"])
    func roundTripModern(version: String) throws {
        let encoded = try sampleResult().encoded(as: CNIVersion(version)!)
        let decoded = try CNIResult.decode(encoded, defaultVersion: .v1_1_0)
        var expected = sampleResult()
        expected.interfaces = expected.interfaces.map { CNIInterface(name: $0.name, mac: $0.mac, sandbox: $0.sandbox) }
        expected.routes = expected.routes.map { CNIRoute(dst: $0.dst, gw: $0.gw) }
        #expect(decoded == expected)
        // And it encodes back to the same document.
        #expect(try decoded.encoded(as: CNIVersion(version)!) == encoded)
    }

    @Test(arguments: ["0.1.0", "0.2.0"])
    func roundTripLegacy(version: String) throws {
        let encoded = try sampleResult().encoded(as: CNIVersion(version)!)
        let decoded = try CNIResult.decode(encoded, defaultVersion: .v1_1_0)
        #expect(decoded.interfaces.isEmpty)
        #expect(decoded.ips == [
            CNIIPConfig(address: net("10.244.1.5/24"), gateway: ip("10.244.1.1")),
            CNIIPConfig(address: net("fd00:10:244:1::5/64"), gateway: ip("fd00:10:244:1::1")),
        ])
        #expect(decoded.routes == [
            CNIRoute(dst: net("0.0.0.0/0"), gw: ip("10.244.1.1")), CNIRoute(dst: net("10.96.0.0/12")),
            CNIRoute(dst: net("::/0"), gw: ip("fd00:10:244:1::1")),
        ])
        #expect(decoded.dns == sampleResult().dns)
        #expect(try decoded.encoded(as: CNIVersion(version)!) == encoded)
    }

    @Test func hostLocalLegacyOutput() throws {
        let decoded = try CNIResult.decode(bytes(hostLocal020), defaultVersion: .v1_0_0)
        #expect(decoded.interfaces.isEmpty)
        #expect(decoded.ips == [
            CNIIPConfig(address: net("10.9.0.2/30"), gateway: ip("10.9.0.1")),
            CNIIPConfig(address: net("fd00:9::2/64"), gateway: ip("fd00:9::1")),
        ])
        #expect(decoded.routes == [CNIRoute(dst: net("0.0.0.0/0"))])
        #expect(decoded.dns == CNIDNS())
        #expect(text(try decoded.encoded(as: .v1_0_0))
                == #"{"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2/30","gateway":"10.9.0.1"},{"address":"fd00:9::2/64","gateway":"fd00:9::1"}],"routes":[{"dst":"0.0.0.0/0"}]}"#)
        #expect(text(try decoded.encoded(as: .v0_2_0))
                == #"{"cniVersion":"0.2.0","ip4":{"gateway":"10.9.0.1","ip":"10.9.0.2/30","routes":[{"dst":"0.0.0.0/0"}]},"ip6":{"gateway":"fd00:9::1","ip":"fd00:9::2/64"}}"#)
    }

    @Test func abbreviatedIPAMResult() throws {
        // What a delegated IPAM plugin prints: no interfaces, no interface index.
        let output = #"{"cniVersion":"1.0.0","ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#
        let decoded = try CNIResult.decode(bytes(output), defaultVersion: .v1_0_0)
        #expect(decoded.interfaces.isEmpty)
        #expect(decoded.ips == [CNIIPConfig(address: net("10.244.1.5/24"), gateway: ip("10.244.1.1"))])
        #expect(decoded.routes == [CNIRoute(dst: net("0.0.0.0/0"))])
    }

    @Test func version040WithVersionFields() throws {
        let document = #"{"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"version":"4","address":"10.1.1.2/24","gateway":"10.1.1.1","interface":0},{"version":"6","address":"fd00::2/64","interface":0}]}"#
        let decoded = try CNIResult.decode(bytes(document), defaultVersion: .v1_1_0)
        #expect(decoded.interfaces == [CNIInterface(name: "eth0", sandbox: "/run/netns/x")])
        #expect(decoded.ips == [
            CNIIPConfig(address: net("10.1.1.2/24"), gateway: ip("10.1.1.1"), interface: 0),
            CNIIPConfig(address: net("fd00::2/64"), gateway: nil, interface: 0),
        ])
    }

    @Test func missingVersionUsesDefault() throws {
        let modern = #"{"ips":[{"address":"10.0.0.2/24"}]}"#
        #expect(try CNIResult.decode(bytes(modern), defaultVersion: .v1_0_0).ips.count == 1)
        let legacy = #"{"ip4":{"ip":"10.0.0.2/24"}}"#
        #expect(try CNIResult.decode(bytes(legacy), defaultVersion: .v0_2_0).ips.count == 1)
        // Read at the other version's shape, the same document carries no address.
        #expect(try CNIResult.decode(bytes(legacy), defaultVersion: .v1_0_0).ips.isEmpty)
    }

    @Test func decodesFromJSONValue() throws {
        let value = try CNIJSON.decode(JSONValue.self, from: bytes(golden110), what: "test")
        #expect(try CNIResult.decode(value, defaultVersion: .v1_1_0) == sampleResult())
    }

    @Test func ignoresUnknownKeys() throws {
        let document = #"{"cniVersion":"1.1.0","future":{"x":[1]},"ips":[{"address":"10.0.0.2/24","extra":true}],"interfaces":[{"name":"eth0","later":"y"}]}"#
        let decoded = try CNIResult.decode(bytes(document), defaultVersion: .v1_1_0)
        #expect(decoded.ips.count == 1)
        #expect(decoded.interfaces == [CNIInterface(name: "eth0")])
    }

    @Test(arguments: ["9.9.9", "1.2.0", "0.5.0", "1.0", "01.0.0", ""])
    func unsupportedVersion(version: String) throws {
        let error = try #require(decodeError(#"{"cniVersion":""# + version + #"","ips":[]}"#))
        #expect(error.code == .incompatibleVersion)
    }

    @Test(arguments: [
        // Addresses that are not addresses, in every place one can appear.
        #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2"}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/33"}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":"fd00::2/129"}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":""}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.256"}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":"10.0.0.1/24"}]}"#,
        #"{"cniVersion":"1.0.0","routes":[{"dst":"0.0.0.0"}]}"#,
        #"{"cniVersion":"1.0.0","routes":[{"dst":"garbage"}]}"#,
        #"{"cniVersion":"1.0.0","routes":[{"dst":"0.0.0.0/0","gw":"nope"}]}"#,
        #"{"cniVersion":"1.1.0","ips":[{"address":":1:2/64"}]}"#,
        #"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"1.2.3.04/24"}]}"#,
        #"{"cniVersion":"0.2.0","ip4":{"ip":"10.9.0.2"}}"#,
        #"{"cniVersion":"0.2.0","ip4":{"ip":"10.9.0.2/30","gateway":"x"}}"#,
        #"{"cniVersion":"0.2.0","ip6":{"ip":"fd00:9::2/64","routes":[{"dst":"::/200"}]}}"#,
        #"{"cniVersion":"0.1.0","ip4":{"ip":"10.9.0.2/30","routes":[{"dst":"0.0.0.0/0","gw":"1"}]}}"#,
    ])
    func invalidAddresses(document: String) throws {
        let error = try #require(decodeError(document))
        #expect(error.code == .invalidNetworkConfig)
        #expect(!error.message.isEmpty)
    }

    @Test(arguments: [
        "", "null", "[]", "\"1.0.0\"", "{", "not json",
        #"{"cniVersion":1}"#,
        #"{"cniVersion":"1.0.0","ips":{}}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":5}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","interface":"0"}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","interface":1.5}]}"#,
        #"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":[]}]}"#,
        #"{"cniVersion":"1.0.0","routes":[{}]}"#,
        #"{"cniVersion":"1.1.0","routes":[{"dst":"0.0.0.0/0","mtu":"1500"}]}"#,
        #"{"cniVersion":"1.1.0","routes":[{"dst":"0.0.0.0/0","table":1e30}]}"#,
        #"{"cniVersion":"1.1.0","interfaces":[{"mac":"x"}]}"#,
        #"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mtu":"big"}]}"#,
        #"{"cniVersion":"1.1.0","dns":[]}"#,
        #"{"cniVersion":"0.2.0","ip4":[]}"#,
        #"{"cniVersion":"0.2.0","ip4":{}}"#,
    ])
    func malformedDocuments(document: String) throws {
        let error = try #require(decodeError(document))
        #expect(error.code == .decodingFailure)
    }
}
