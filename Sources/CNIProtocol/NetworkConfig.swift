import NetAddress

/// One plugin's configuration as a runtime sends it on stdin, parsed once.
///
/// Every key podwire itself reads is read here, with its type checked and its errors worded
/// here; the `ipam` section is the IPAM's own (PodIPAM's `IPAMConfig`). Everything is also kept
/// as `json` so IPAM decoding and delegation see exactly what the runtime sent.
public struct NetworkConfig: Sendable {
    public var cniVersion: CNIVersion
    public var name: String
    public var type: String
    public var mtu: Int?
    public var ipMasq: Bool
    /// `nonMasqueradeCIDRs` (ip-masq-agent's key; `noMasqueradeCIDRs` is its deprecated alias):
    /// destinations the masquerade never applies to (empty when unreadable: see
    /// `requireNonMasqueradeCIDRs`).
    public var nonMasqueradeCIDRs: [IPNetwork]
    /// ip-masq-agent's `masqLinkLocal` and `masqLinkLocalIPv6`: false (the default) keeps
    /// 169.254.0.0/16, respectively fe80::/10, from ever being masqueraded.
    public var masqLinkLocal: Bool
    public var masqLinkLocalIPv6: Bool
    /// What the config does that still works but should change (a deprecated key), one line
    /// each for stderr: stdout carries only the CNI document.
    public var warnings: [String]
    /// GC's `cni.dev/valid-attachments` (or the 1.1.0 tag's `cni.dev/attachments`); nil when the
    /// config has neither, which GC refuses rather than read as "keep nothing".
    public var validAttachments: [Attachment]?
    /// What was wrong with a key only some verbs use. The verb that uses it refuses the config
    /// with this error; the others go on without it, so a DEL is never refused over a key only
    /// ADD reads.
    var nonMasqueradeCIDRsProblem: CNIError?
    var validAttachmentsProblem: CNIError?
    /// `runtimeConfig.portMappings` (the `portMappings` capability); empty when the runtime sent
    /// none or when unreadable (see `requirePortMappings`).
    public var portMappings: [PortMapping]
    var portMappingsProblem: CNIError?
    public var dns: CNIDNS?
    /// `callLog`: the file each call appends one JSON line to; nil (the default) writes none.
    /// `callLogMaxBytes`: where it is rotated; nil for the default. A value that cannot be used
    /// is a warning, not an error: the log must never fail a call.
    public var callLog: String?
    public var callLogMaxBytes: Int?
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
                                   mtu: nil, ipMasq: false, nonMasqueradeCIDRs: [], masqLinkLocal: false,
                                   masqLinkLocalIPv6: false, warnings: [], validAttachments: nil,
                                   nonMasqueradeCIDRsProblem: nil, validAttachmentsProblem: nil,
                                   portMappings: [], portMappingsProblem: nil, dns: nil,
                                   callLog: nil, callLogMaxBytes: nil, ipamType: nil, prevResult: json["prevResult"],
                                   json: json, raw: bytes)
        if let mtu = try optionalInt(json, "mtu"), mtu != 0 {
            guard (68...65535).contains(mtu) else {
                throw CNIError(.invalidNetworkConfig, "invalid mtu \(mtu)", details: "mtu must be between 68 and 65535, or 0 for automatic")
            }
            config.mtu = mtu
        }
        config.ipMasq = try optionalBool(json, "ipMasq") ?? false
        config.masqLinkLocal = try optionalBool(json, "masqLinkLocal") ?? false
        config.masqLinkLocalIPv6 = try optionalBool(json, "masqLinkLocalIPv6") ?? false
        do {
            config.nonMasqueradeCIDRs = try parseNonMasqueradeCIDRs(json, warnings: &config.warnings)
        } catch {
            config.nonMasqueradeCIDRsProblem = error
        }
        do {
            config.validAttachments = try parseValidAttachments(json["cni.dev/valid-attachments"] ?? json["cni.dev/attachments"])
        } catch {
            config.validAttachmentsProblem = error
        }
        if case .object(let runtimeConfig)? = json["runtimeConfig"], let mappings = runtimeConfig["portMappings"], mappings != .null {
            do {
                config.portMappings = try PortMapping.parseList(mappings)
            } catch {
                config.portMappingsProblem = error
            }
        }
        parseCallLog(json, into: &config)
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

    /// A rotation below this would keep only a few lines.
    public static let callLogMinimumBytes = 4096

    static func parseCallLog(_ json: [String: JSONValue], into config: inout NetworkConfig) {
        switch json["callLog"] {
        case nil, .null?, .string("")?:
            break
        case .string(let path)? where path.hasPrefix("/"):
            config.callLog = path
        case .string(let path)?:
            config.warnings.append("podwire: callLog \"\(path)\" is not an absolute path: no call log is written")
        case .some:
            config.warnings.append("podwire: callLog is not a string: no call log is written")
        }
        switch json["callLogMaxBytes"] {
        case nil, .null?:
            break
        case let value? where (value.intValue ?? 0) >= callLogMinimumBytes:
            config.callLogMaxBytes = value.intValue
        case .some:
            config.warnings.append("podwire: callLogMaxBytes must be a whole number of bytes, at least \(callLogMinimumBytes): the default is used")
        }
    }

    /// One attachment of a network: a container's interface.
    public struct Attachment: Hashable, Sendable {
        public var containerID: String
        public var ifname: String

        public init(containerID: String, ifname: String) {
            self.containerID = containerID
            self.ifname = ifname
        }
    }

    /// Each entry a CIDR without host bits, so that what is exempt is exactly what was written.
    /// Errors name the key as the config wrote it.
    static func parseNonMasqueradeCIDRs(_ json: [String: JSONValue], warnings: inout [String]) throws(CNIError) -> [IPNetwork] {
        let current = json["nonMasqueradeCIDRs"].flatMap { $0 == .null ? nil : $0 }
        let legacy = json["noMasqueradeCIDRs"].flatMap { $0 == .null ? nil : $0 }
        if current != nil && legacy != nil {
            throw CNIError(.invalidNetworkConfig, "both \"nonMasqueradeCIDRs\" and its deprecated alias \"noMasqueradeCIDRs\" are set",
                           details: "keep \"nonMasqueradeCIDRs\" only")
        }
        if legacy != nil {
            warnings.append("podwire: \"noMasqueradeCIDRs\" is deprecated and will be removed; name it \"nonMasqueradeCIDRs\", as ip-masq-agent does")
        }
        guard let value = current ?? legacy else { return [] }
        let key = current != nil ? "nonMasqueradeCIDRs" : "noMasqueradeCIDRs"
        guard case .array(let entries) = value else {
            throw CNIError(.invalidNetworkConfig, "invalid \"\(key)\": expected a list of CIDR strings",
                           details: "e.g. \"\(key)\": [\"10.244.0.0/16\"]")
        }
        var networks: [IPNetwork] = []
        for (index, entry) in entries.enumerated() {
            guard case .string(let text) = entry else {
                throw CNIError(.invalidNetworkConfig, "invalid \"\(key)\" entry \(index): expected a CIDR string",
                               details: "e.g. \"\(key)\": [\"10.244.0.0/16\"]")
            }
            guard let network = IPNetwork(text) else {
                throw CNIError(.invalidNetworkConfig, "invalid \"\(key)\" entry \"\(text)\": not a CIDR",
                               details: "write an address and a prefix length, e.g. 10.244.0.0/16 or fd00:10:244::/48")
            }
            if network.hasHostBits {
                throw CNIError(.invalidNetworkConfig,
                               "\"\(key)\" entry \(network) has host bits set; did you mean \(network.masked)?")
            }
            networks.append(network)
        }
        return networks
    }

    static func parseValidAttachments(_ value: JSONValue?) throws(CNIError) -> [Attachment]? {
        guard let value else { return nil }
        guard case .array(let entries) = value else {
            throw CNIError(.invalidNetworkConfig, "\"cni.dev/valid-attachments\" must be a list of {containerID, ifname}")
        }
        var result: [Attachment] = []
        for entry in entries {
            guard let containerID = entry["containerID"]?.stringValue, let ifname = entry["ifname"]?.stringValue else {
                throw CNIError(.invalidNetworkConfig, "every valid attachment needs \"containerID\" and \"ifname\" strings")
            }
            result.append(Attachment(containerID: containerID, ifname: ifname))
        }
        return result
    }

    /// `nonMasqueradeCIDRs` for the verb that masquerades (ADD): a bad one is refused (code 7).
    public func requireNonMasqueradeCIDRs() throws(CNIError) -> [IPNetwork] {
        if let nonMasqueradeCIDRsProblem { throw nonMasqueradeCIDRsProblem }
        return nonMasqueradeCIDRs
    }

    /// The hostPorts for the verbs that map them (ADD, CHECK): a bad list is refused (code 7).
    /// DEL does not ask: it removes what the attachment holds whatever the list says.
    public func requirePortMappings() throws(CNIError) -> [PortMapping] {
        if let portMappingsProblem { throw portMappingsProblem }
        return portMappings
    }

    /// GC's list of attachments to keep; a config without one, or with a bad one, is refused (code 7).
    public func requireValidAttachments() throws(CNIError) -> [Attachment] {
        if let validAttachmentsProblem { throw validAttachmentsProblem }
        guard let validAttachments else {
            throw CNIError(.invalidNetworkConfig, "GC needs \"cni.dev/valid-attachments\" in the config",
                           details: "an empty list removes every attachment of the network; a missing one removes nothing")
        }
        return validAttachments
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
