/// One plugin's configuration as a runtime sends it on stdin.
///
/// Known keys are read with their types checked; everything is also kept as `json` so IPAM
/// decoding and delegation see exactly what the runtime sent.
public struct NetworkConfig: Sendable {
    public var cniVersion: CNIVersion
    public var name: String
    public var type: String
    public var mtu: Int?
    public var ipMasq: Bool
    public var dns: CNIDNS?
    /// `ipam.type`, when there is an `ipam` section.
    public var ipamType: String?
    public var prevResult: JSONValue?
    /// The whole document as decoded.
    public var json: [String: JSONValue]
    /// The bytes read from stdin, handed unchanged to a delegated plugin.
    public var raw: [UInt8]

    /// Reads the config. Not JSON at all is code 6; a JSON document with a wrong or missing field is 7;
    /// a version podwire does not speak is 1.
    public static func parse(_ bytes: [UInt8]) throws(CNIError) -> NetworkConfig {
        let value = try CNIJSON.parse(bytes, what: "the network configuration on stdin")
        guard case .object(let json) = value else {
            throw CNIError(.decodingFailure, "the network configuration on stdin is not a JSON object")
        }
        let version = try parseVersion(json["cniVersion"])
        let name = try requiredString(json, "name")
        if let problem = networkNameProblem(name) {
            throw CNIError(.invalidNetworkConfig, "invalid network name \"\(name)\": \(problem)",
                           details: "a network name matches ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ and is used as a directory name")
        }
        var config = NetworkConfig(cniVersion: version, name: name, type: try requiredString(json, "type"),
                                   mtu: nil, ipMasq: false, dns: nil, ipamType: nil, prevResult: json["prevResult"],
                                   json: json, raw: bytes)
        if let mtu = try optionalInt(json, "mtu"), mtu != 0 {
            guard (68...65535).contains(mtu) else {
                throw CNIError(.invalidNetworkConfig, "invalid mtu \(mtu)", details: "mtu must be between 68 and 65535, or 0 for automatic")
            }
            config.mtu = mtu
        }
        config.ipMasq = try optionalBool(json, "ipMasq") ?? false
        if let dns = json["dns"], dns != .null {
            do {
                config.dns = try CNIDNS(json: dns)
            } catch {
                throw CNIError(.invalidNetworkConfig, "invalid dns section", details: error.details ?? error.message)
            }
        }
        if let ipam = json["ipam"], ipam != .null {
            guard case .object(let section) = ipam else {
                throw CNIError(.invalidNetworkConfig, "invalid ipam section: not an object")
            }
            config.ipamType = try requiredString(section, "type", where: "ipam")
        }
        if let prev = config.prevResult, prev != .null, prev.objectValue == nil {
            throw CNIError(.invalidNetworkConfig, "invalid prevResult: not an object")
        }
        return config
    }

    /// The config's version, or code 1 naming what podwire supports.
    static func parseVersion(_ value: JSONValue?) throws(CNIError) -> CNIVersion {
        guard let value, value != .null else { return .implied }
        guard case .string(let text) = value else {
            throw CNIError(.invalidNetworkConfig, "invalid cniVersion: not a string")
        }
        guard let version = CNIVersion(text), version.isSupported else {
            throw CNIError(.incompatibleVersion, "incompatible CNI versions",
                           details: "config is \"\(text)\", plugin supports [\(CNIVersion.supported.map(\.description).joined(separator: " "))]")
        }
        return version
    }

    /// Why `name` cannot be a network name, or nil. It becomes a directory under the IPAM dataDir,
    /// so anything that could climb out of it ("..", "/", NUL) is refused.
    public static func networkNameProblem(_ name: String) -> String? {
        CNIEnvironment.containerIDProblem(name)
    }

    static func requiredString(_ json: [String: JSONValue], _ key: String, where section: String? = nil) throws(CNIError) -> String {
        let label = section.map { "\($0).\(key)" } ?? key
        guard let value = json[key], value != .null else {
            throw CNIError(.invalidNetworkConfig, "missing \"\(label)\" in the network configuration")
        }
        guard case .string(let text) = value, !text.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "invalid \"\(label)\": expected a non-empty string")
        }
        return text
    }

    static func optionalInt(_ json: [String: JSONValue], _ key: String) throws(CNIError) -> Int? {
        guard let value = json[key], value != .null else { return nil }
        guard case .number(let number) = value, number.rounded() == number, abs(number) < 1e9 else {
            throw CNIError(.invalidNetworkConfig, "invalid \"\(key)\": expected an integer")
        }
        return Int(number)
    }

    /// A bool, or the strings "true"/"false" that conflists sometimes carry.
    static func optionalBool(_ json: [String: JSONValue], _ key: String) throws(CNIError) -> Bool? {
        switch json[key] {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        case .string("true")?: return true
        case .string("false")?: return false
        default: throw CNIError(.invalidNetworkConfig, "invalid \"\(key)\": expected true or false")
        }
    }
}

/// What VERSION prints.
public struct VersionReport: JSONRepresentable, Sendable {
    public var cniVersion: String
    public var supportedVersions: [String]

    /// The spec asks VERSION to answer in the version the request named; a request naming none or
    /// one podwire does not know gets the newest.
    public init(requested: [UInt8]) {
        let requestedVersion = (try? CNIJSON.parse(requested, what: "VERSION request"))?["cniVersion"]?.stringValue
            .flatMap(CNIVersion.init).flatMap { $0.isSupported ? $0 : nil }
        cniVersion = (requestedVersion ?? .current).description
        supportedVersions = CNIVersion.supported.map(\.description)
    }

    public var json: JSONValue {
        .object(["cniVersion": .string(cniVersion), "supportedVersions": .array(supportedVersions.map { .string($0) })])
    }
}

/// The error document printed on stdout.
public struct ErrorDocument: JSONRepresentable, Sendable {
    public var cniVersion: String
    public var code: Int
    public var msg: String
    public var details: String?

    public init(_ error: CNIError, version: CNIVersion) {
        cniVersion = version.description
        code = error.code.rawValue
        msg = error.message
        details = error.details
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["cniVersion": .string(cniVersion), "code": .number(Double(code)), "msg": .string(msg)]
        if let details { object["details"] = .string(details) }
        return .object(object)
    }
}
