import Testing
@testable import CNIProtocol

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// The error `NetworkConfig.parse` throws for `text`, or nil when it parses.
private func parseError(_ text: String) -> CNIError? {
    do {
        _ = try NetworkConfig.parse(bytes(text))
        return nil
    } catch {
        return error
    }
}

/// A minimal valid config with `extra` JSON members spliced in.
private func config(_ extra: String = "", version: String? = "1.1.0", name: String = "\"podnet\"") -> String {
    var members = ["\"name\":\(name)", "\"type\":\"podwire\""]
    if let version { members.append("\"cniVersion\":\"\(version)\"") }
    if !extra.isEmpty { members.append(extra) }
    return "{" + members.joined(separator: ",") + "}"
}

@Suite("NetworkConfig")
struct NetworkConfigTests {
    @Test func fullConfig() throws {
        let text = """
        {
          "cniVersion": "1.0.0",
          "name": "podnet",
          "type": "podwire",
          "mtu": 1450,
          "ipMasq": true,
          "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local", "search": ["default.svc.cluster.local"], "options": ["ndots:5"]},
          "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]], "dataDir": "/run/cni/ipam"},
          "runtimeConfig": {"portMappings": []},
          "someOtherPluginKey": {"kept": [1, 2.5, null, false]}
        }
        """
        let parsed = try NetworkConfig.parse(bytes(text))
        #expect(parsed.cniVersion == .v1_0_0)
        #expect(parsed.name == "podnet")
        #expect(parsed.type == "podwire")
        #expect(parsed.mtu == 1450)
        #expect(parsed.ipMasq)
        #expect(parsed.dns == CNIDNS(nameservers: ["10.96.0.10"], domain: "cluster.local",
                                     search: ["default.svc.cluster.local"], options: ["ndots:5"]))
        #expect(parsed.ipamType == "host-local")
        #expect(parsed.prevResult == nil)
        #expect(parsed.raw == bytes(text), "the exact stdin bytes are kept for delegation")
        #expect(parsed.json["ipam"]?["dataDir"] == .string("/run/cni/ipam"))
        #expect(parsed.json["someOtherPluginKey"]?["kept"] == .array([.number(1), .number(2.5), .null, .bool(false)]))
        #expect(parsed.json["runtimeConfig"]?.objectValue != nil)
    }

    @Test func minimalConfigDefaults() throws {
        let parsed = try NetworkConfig.parse(bytes(config()))
        #expect(parsed.cniVersion == .v1_1_0)
        #expect(parsed.mtu == nil)
        #expect(!parsed.ipMasq)
        #expect(parsed.dns == nil)
        #expect(parsed.ipamType == nil)
        #expect(parsed.prevResult == nil)
    }

    @Test(arguments: ["", " ", "not json", "{", "{\"name\":", "{'name':'x'}", "{\"name\" \"x\"}", "{\"a\":1}}", "\u{0}", "nul"])
    func notJSON(text: String) throws {
        let error = try #require(parseError(text))
        #expect(error.code == .decodingFailure)
        #expect(error.code.rawValue == 6)
    }

    @Test(arguments: ["[]", "[{\"name\":\"x\"}]", "\"podnet\"", "42", "true", "null"])
    func notAnObject(text: String) throws {
        let error = try #require(parseError(text))
        #expect(error.code.rawValue == 6)
    }

    @Test func missingName() throws {
        let error = try #require(parseError("{\"cniVersion\":\"1.0.0\",\"type\":\"podwire\"}"))
        #expect(error.code == .invalidNetworkConfig)
        #expect(error.code.rawValue == 7)
        #expect(error.message.contains("name"))
        #expect(parseError(config(name: "null"))?.code.rawValue == 7)
    }

    @Test(arguments: [
        "\"\"", "5", "true", "[\"podnet\"]", "{}",
        "\"a/b\"", "\"/podnet\"", "\"..\"", "\"../etc\"", "\".\"", "\".hidden\"", "\"pod net\"", "\"pod:net\"",
        "\"-podnet\"", "\"pod\\u0000net\"", "\"pöd\"",
    ])
    func invalidName(name: String) throws {
        let error = try #require(parseError(config(name: name)), "name \(name)")
        #expect(error.code.rawValue == 7)
        #expect(error.message.contains("name"))
    }

    @Test(arguments: ["podnet", "a", "k8s-pod-network", "net_1.v2", "a..b"])
    func validName(name: String) throws {
        #expect(try NetworkConfig.parse(bytes(config(name: "\"\(name)\""))).name == name)
        #expect(NetworkConfig.networkNameProblem(name) == nil)
    }

    @Test func missingOrInvalidType() throws {
        #expect(parseError("{\"cniVersion\":\"1.0.0\",\"name\":\"podnet\"}")?.code.rawValue == 7)
        #expect(parseError("{\"cniVersion\":\"1.0.0\",\"name\":\"podnet\",\"type\":\"\"}")?.code.rawValue == 7)
        #expect(parseError("{\"cniVersion\":\"1.0.0\",\"name\":\"podnet\",\"type\":3}")?.code.rawValue == 7)
    }

    @Test func missingVersionIsImplied() throws {
        let parsed = try NetworkConfig.parse(bytes(config(version: nil)))
        #expect(parsed.cniVersion == .v0_1_0)
        #expect(try NetworkConfig.parse(bytes(config("\"cniVersion\":null", version: nil))).cniVersion == .v0_1_0)
    }

    @Test(arguments: CNIVersion.supported)
    func everySupportedVersion(version: CNIVersion) throws {
        #expect(try NetworkConfig.parse(bytes(config(version: version.description))).cniVersion == version)
    }

    @Test(arguments: ["9.9.9", "1.2.0", "0.5.0", "2.0.0", "1.0", "1", "", "latest", "01.0.0", "1.0.0 "])
    func unsupportedVersion(text: String) throws {
        let error = try #require(parseError(config(version: text)))
        #expect(error.code == .incompatibleVersion)
        #expect(error.code.rawValue == 1)
        #expect(error.message == "incompatible CNI versions")
        #expect(error.details == "config is \"\(text)\", plugin supports [0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0]")
    }

    @Test(arguments: ["1", "1.0", "true", "[\"1.0.0\"]"])
    func versionOfWrongType(value: String) throws {
        let error = try #require(parseError(config("\"cniVersion\":\(value)", version: nil)))
        #expect(error.code.rawValue == 7)
    }

    @Test(arguments: [
        ("68", 68), ("1500", 1500), ("9000", 9000), ("65535", 65535), ("1450.0", 1450),
    ])
    func validMTU(json: String, expected: Int) throws {
        #expect(try NetworkConfig.parse(bytes(config("\"mtu\":\(json)"))).mtu == expected)
    }

    @Test(arguments: ["0", "null"])
    func automaticMTU(json: String) throws {
        #expect(try NetworkConfig.parse(bytes(config("\"mtu\":\(json)"))).mtu == nil)
    }

    @Test(arguments: [
        "67", "-1", "65536", "1000000", "1e12", "1e300", "-1e300", "1500.5",
        "\"1500\"", "true", "[1500]", "{}",
    ])
    func invalidMTU(json: String) throws {
        let error = try #require(parseError(config("\"mtu\":\(json)")), "mtu \(json)")
        #expect(error.code.rawValue == 7)
        #expect(error.message.contains("mtu"))
    }

    @Test(arguments: [
        ("true", true), ("false", false), ("\"true\"", true), ("\"false\"", false), ("null", false),
    ])
    func ipMasq(json: String, expected: Bool) throws {
        #expect(try NetworkConfig.parse(bytes(config("\"ipMasq\":\(json)"))).ipMasq == expected)
    }

    @Test(arguments: ["1", "0", "\"yes\"", "\"True\"", "\"\"", "[]", "{}"])
    func invalidIPMasq(json: String) throws {
        let error = try #require(parseError(config("\"ipMasq\":\(json)")))
        #expect(error.code.rawValue == 7)
        #expect(error.message.contains("ipMasq"))
    }

    @Test func dnsSection() throws {
        let empty = try NetworkConfig.parse(bytes(config("\"dns\":{}")))
        #expect(empty.dns == CNIDNS())
        #expect(empty.dns?.isSet == false)
        let emptyList = try NetworkConfig.parse(bytes(config("\"dns\":{\"nameservers\":[]}")))
        #expect(emptyList.dns?.isSet == true, "an empty list still counts as set")
        let unknownKeys = try NetworkConfig.parse(bytes(config("\"dns\":{\"domain\":\"x\",\"other\":1}")))
        #expect(unknownKeys.dns == CNIDNS(domain: "x"))
        #expect(try NetworkConfig.parse(bytes(config("\"dns\":null"))).dns == nil)
    }

    @Test(arguments: ["5", "\"x\"", "[]", "{\"nameservers\":\"10.0.0.1\"}", "{\"domain\":[]}", "{\"search\":[1]}"])
    func invalidDNS(json: String) throws {
        let error = try #require(parseError(config("\"dns\":\(json)")))
        #expect(error.code.rawValue == 7)
    }

    @Test func ipamSection() throws {
        #expect(try NetworkConfig.parse(bytes(config("\"ipam\":{\"type\":\"podwire-ipam\"}"))).ipamType == "podwire-ipam")
        #expect(try NetworkConfig.parse(bytes(config("\"ipam\":null"))).ipamType == nil)
        for bad in ["{}", "{\"subnet\":\"10.0.0.0/24\"}", "{\"type\":\"\"}", "{\"type\":1}", "\"host-local\"", "[]", "5"] {
            let error = try #require(parseError(config("\"ipam\":\(bad)")), "ipam \(bad)")
            #expect(error.code.rawValue == 7)
        }
        let missingType = try #require(parseError(config("\"ipam\":{}")))
        #expect(missingType.message.contains("ipam.type"))
    }

    @Test func prevResult() throws {
        let text = config("\"prevResult\":{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.244.1.2/24\"}]}")
        let parsed = try NetworkConfig.parse(bytes(text))
        let previous = try #require(parsed.prevResult)
        let result = try CNIResult.decode(previous, defaultVersion: parsed.cniVersion)
        #expect(result.ips.map(\.address.description) == ["10.244.1.2/24"])
        #expect(try NetworkConfig.parse(bytes(config("\"prevResult\":null"))).prevResult == .null)
        #expect(parseError(config("\"prevResult\":[]"))?.code.rawValue == 7)
        #expect(parseError(config("\"prevResult\":\"x\""))?.code.rawValue == 7)
    }
}

@Suite("JSONValue")
struct JSONValueTests {
    @Test func keepsTypesApart() throws {
        let value = try CNIJSON.decode(JSONValue.self, from: bytes("[1, true, 0, false, 1.5, \"1\", null, {}, []]"), what: "test")
        #expect(value == .array([.number(1), .bool(true), .number(0), .bool(false), .number(1.5), .string("1"), .null, .object([:]), .array([])]))
    }

    @Test func encodesWholeNumbersAsIntegers() throws {
        let value = JSONValue.object(["mtu": .number(1500), "ratio": .number(0.5), "path": .string("/run/netns/x"), "flag": .bool(true), "none": .null])
        #expect(String(decoding: CNIJSON.encode(value), as: UTF8.self)
                == #"{"flag":true,"mtu":1500,"none":null,"path":"/run/netns/x","ratio":0.5}"#)
        // Too large for an exact integer: still encodes, never traps.
        #expect(!CNIJSON.encode(JSONValue.number(1e300)).isEmpty)
        #expect(!CNIJSON.encode(JSONValue.number(-1e300)).isEmpty)
    }

    @Test func accessors() {
        let value = JSONValue.object(["a": .string("x")])
        #expect(value["a"]?.stringValue == "x")
        #expect(value["b"] == nil)
        #expect(JSONValue.string("x")["a"] == nil)
        #expect(JSONValue.number(1).objectValue == nil)
        #expect(JSONValue.number(1).stringValue == nil)
    }
}
