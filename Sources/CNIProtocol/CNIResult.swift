import NetAddress

/// An interface in a result; `sandbox` is the netns path for container interfaces, nil on the host.
public struct CNIInterface: Hashable, Sendable {
    public var name: String
    public var mac: String?
    public var mtu: Int?
    public var sandbox: String?
    public var socketPath: String?
    public var pciID: String?

    public init(name: String, mac: String? = nil, mtu: Int? = nil, sandbox: String? = nil) {
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.sandbox = sandbox
    }
}

/// An address in a result: "10.244.1.2/24" keeps its host bits; `interface` indexes `interfaces`.
public struct CNIIPConfig: Hashable, Sendable {
    public var address: IPNetwork
    public var gateway: IPAddress?
    public var interface: Int?

    public init(address: IPNetwork, gateway: IPAddress?, interface: Int? = nil) {
        self.address = address
        self.gateway = gateway
        self.interface = interface
    }
}

/// A route in a result or an IPAM config; fields after `gw` exist from 1.1.0 on.
public struct CNIRoute: Hashable, Sendable {
    public var dst: IPNetwork
    public var gw: IPAddress?
    public var mtu: Int?
    public var advmss: Int?
    public var priority: Int?
    public var table: Int?
    public var scope: Int?

    public init(dst: IPNetwork, gw: IPAddress? = nil) {
        self.dst = dst
        self.gw = gw
    }
}

public struct CNIDNS: Hashable, Sendable {
    public var nameservers: [String]?
    public var domain: String?
    public var search: [String]?
    public var options: [String]?

    public init(nameservers: [String]? = nil, domain: String? = nil, search: [String]? = nil, options: [String]? = nil) {
        self.nameservers = nameservers
        self.domain = domain
        self.search = search
        self.options = options
    }

    /// ptp's rule: DNS from the config wins when any field is present, even an empty list.
    public var isSet: Bool { nameservers != nil || domain != nil || search != nil || options != nil }
}

/// A result in podwire's working form (the 1.1.0 model); `encoded(as:)` writes any version.
public struct CNIResult: Hashable, Sendable {
    public var interfaces: [CNIInterface]
    public var ips: [CNIIPConfig]
    public var routes: [CNIRoute]
    public var dns: CNIDNS?

    public init(interfaces: [CNIInterface] = [], ips: [CNIIPConfig] = [], routes: [CNIRoute] = [], dns: CNIDNS? = nil) {
        self.interfaces = interfaces
        self.ips = ips
        self.routes = routes
        self.dns = dns
    }
}

// MARK: - JSON forms shared by every version

extension CNIInterface: JSONRepresentable, JSONDecodable {
    public init(json: JSONValue) throws(CNIError) {
        let object = try JSONField.object(json, what: "result interface")
        guard let name = try JSONField.string(object, "name", in: "interfaces[].") else {
            throw CNIError(.decodingFailure, "a result interface has no \"name\"")
        }
        self.init(name: name, mac: try JSONField.string(object, "mac", in: "interfaces[]."),
                  mtu: try JSONField.int(object, "mtu", in: "interfaces[]."),
                  sandbox: try JSONField.string(object, "sandbox", in: "interfaces[]."))
        socketPath = try JSONField.string(object, "socketPath", in: "interfaces[].")
        pciID = try JSONField.string(object, "pciID", in: "interfaces[].")
    }

    public var json: JSONValue {
        var object = JSONValue.newObject()
        object["name"] = .string(name)
        if let mac { object["mac"] = .string(mac) }
        if let mtu { object["mtu"] = .number(Double(mtu)) }
        if let sandbox { object["sandbox"] = .string(sandbox) }
        if let socketPath { object["socketPath"] = .string(socketPath) }
        if let pciID { object["pciID"] = .string(pciID) }
        return .object(object)
    }

    /// Only name, mac and sandbox exist before 1.1.0.
    var withoutV1_1Fields: CNIInterface { CNIInterface(name: name, mac: mac, sandbox: sandbox) }
}

extension CNIRoute: JSONRepresentable, JSONDecodable {
    public init(json: JSONValue) throws(CNIError) {
        let object = try JSONField.object(json, what: "route")
        guard let dstText = try JSONField.string(object, "dst", in: "routes[].") else {
            throw CNIError(.decodingFailure, "a route has no \"dst\"", details: "expected CIDR text such as 0.0.0.0/0")
        }
        guard let dst = IPNetwork(dstText) else {
            throw CNIError(.invalidNetworkConfig, "invalid route destination \"\(dstText)\"", details: "expected CIDR text such as 0.0.0.0/0")
        }
        self.init(dst: dst, gw: try readAddress(object, "gw", what: "route gateway"))
        mtu = try JSONField.int(object, "mtu", in: "routes[].")
        advmss = try JSONField.int(object, "advmss", in: "routes[].")
        priority = try JSONField.int(object, "priority", in: "routes[].")
        table = try JSONField.int(object, "table", in: "routes[].")
        scope = try JSONField.int(object, "scope", in: "routes[].")
    }

    public var json: JSONValue {
        var object = JSONValue.newObject()
        object["dst"] = .string(dst.description)
        if let gw { object["gw"] = .string(gw.description) }
        if let mtu { object["mtu"] = .number(Double(mtu)) }
        if let advmss { object["advmss"] = .number(Double(advmss)) }
        if let priority { object["priority"] = .number(Double(priority)) }
        if let table { object["table"] = .number(Double(table)) }
        if let scope { object["scope"] = .number(Double(scope)) }
        return .object(object)
    }

    /// Only `dst` and `gw` exist before 1.1.0.
    var withoutV1_1Fields: CNIRoute { CNIRoute(dst: dst, gw: gw) }
}

extension CNIDNS: JSONRepresentable, JSONDecodable {
    public init(json: JSONValue) throws(CNIError) {
        let object = try JSONField.object(json, what: "dns")
        self.init(nameservers: try JSONField.strings(object, "nameservers", in: "dns."),
                  domain: try JSONField.string(object, "domain", in: "dns."),
                  search: try JSONField.strings(object, "search", in: "dns."),
                  options: try JSONField.strings(object, "options", in: "dns."))
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [:]
        if let nameservers { object["nameservers"] = .array(nameservers.map { .string($0) }) }
        if let domain { object["domain"] = .string(domain) }
        if let search { object["search"] = .array(search.map { .string($0) }) }
        if let options { object["options"] = .array(options.map { .string($0) }) }
        return .object(object)
    }
}

func readAddress(_ object: [String: JSONValue], _ key: String, what: String) throws(CNIError) -> IPAddress? {
    guard let text = try JSONField.string(object, key, in: ""), !text.isEmpty else { return nil }
    guard let address = IPAddress(text) else {
        throw CNIError(.invalidNetworkConfig, "invalid \(what) \"\(text)\"", details: "expected an IPv4 or IPv6 address")
    }
    return address
}

func readNetwork(_ object: [String: JSONValue], _ key: String, what: String) throws(CNIError) -> IPNetwork {
    guard let text = try JSONField.string(object, key, in: "") else {
        throw CNIError(.decodingFailure, "\(what) is missing", details: "expected CIDR text such as 10.244.1.2/24")
    }
    guard let network = IPNetwork(text) else {
        throw CNIError(.invalidNetworkConfig, "invalid \(what) \"\(text)\"", details: "expected CIDR text such as 10.244.1.2/24")
    }
    return network
}

// MARK: - Versioned wire forms

extension CNIResult {
    /// The result as the document for `version`: what a runtime that asked for that version reads.
    /// 0.3.0 to 1.1.0 write `interfaces`, `ips`, `routes`, `dns` (0.3.x and 0.4.0 add `version`
    /// per IP; 1.1.0 adds interface `mtu` and route fields); 0.1.0/0.2.0 write one address per
    /// family under `ip4`/`ip6`.
    ///
    /// Converting down to 0.1.0/0.2.0 keeps the first address of each family, as libcni does, and
    /// fails when there is no address at all, since that form cannot express a result without one.
    public func encoded(as version: CNIVersion) throws(CNIError) -> [UInt8] {
        var document = JSONValue.newObject()
        document["cniVersion"] = .string(version.description)
        if let dns, dns.isSet { document["dns"] = dns.json }
        if version >= .v0_3_0 {
            let current = version >= .v1_1_0
            if !interfaces.isEmpty {
                document["interfaces"] = .array(interfaces.map { current ? $0.json : $0.withoutV1_1Fields.json })
            }
            if !ips.isEmpty {
                document["ips"] = .array(ips.map { ip in
                    var entry = JSONValue.newObject()
                    entry["address"] = .string(ip.address.description)
                    if version < .v1_0_0 { entry["version"] = .string(ip.address.family.cniVersionString) }
                    if let gateway = ip.gateway { entry["gateway"] = .string(gateway.description) }
                    if let interface = ip.interface { entry["interface"] = .number(Double(interface)) }
                    return .object(entry)
                })
            }
            if !routes.isEmpty {
                document["routes"] = .array(routes.map { current ? $0.json : $0.withoutV1_1Fields.json })
            }
            return JSONWriter.write(.object(document))
        }
        let v4 = ips.first { $0.address.family == .v4 }
        let v6 = ips.first { $0.address.family == .v6 }
        guard v4 != nil || v6 != nil else {
            throw CNIError(.incompatibleVersion, "cannot convert the result to CNI \(version): it has no IP address",
                           details: "0.1.0 and 0.2.0 results carry one address per family")
        }
        for (ip, family, key) in [(v4, IPFamily.v4, "ip4"), (v6, IPFamily.v6, "ip6")] {
            guard let ip else { continue }
            var entry = JSONValue.newObject()
            entry["ip"] = .string(ip.address.description)
            if let gateway = ip.gateway { entry["gateway"] = .string(gateway.description) }
            let familyRoutes = routes.filter { $0.dst.family == family }
            if !familyRoutes.isEmpty { entry["routes"] = .array(familyRoutes.map(\.withoutV1_1Fields.json)) }
            document[key] = .object(entry)
        }
        return JSONWriter.write(.object(document))
    }

    /// Reads a result of any supported version: a prevResult or a delegated IPAM plugin's output.
    /// The document's own `cniVersion` wins; `defaultVersion` applies when it has none.
    public static func decode(_ bytes: [UInt8], defaultVersion: CNIVersion) throws(CNIError) -> CNIResult {
        try decode(try CNIJSON.parse(bytes, what: "result"), defaultVersion: defaultVersion)
    }

    public static func decode(_ value: JSONValue, defaultVersion: CNIVersion) throws(CNIError) -> CNIResult {
        guard case .object(let document) = value else {
            throw CNIError(.decodingFailure, "cannot decode result", details: "a result is a JSON object")
        }
        let version: CNIVersion
        if let text = try JSONField.string(document, "cniVersion", in: "result.") {
            guard let parsed = CNIVersion(text), parsed.isSupported else {
                throw CNIError(.incompatibleVersion, "unsupported result version \"\(text)\"",
                               details: "podwire reads results of versions \(CNIVersion.supported.map(\.description).joined(separator: ", "))")
            }
            version = parsed
        } else {
            version = defaultVersion
        }
        var result = CNIResult()
        if let dns = document["dns"], dns != .null { result.dns = try CNIDNS(json: dns) }
        if version >= .v0_3_0 {
            if let interfaces = document["interfaces"], interfaces != .null {
                result.interfaces = try [CNIInterface](json: interfaces)
            }
            if let ips = document["ips"], ips != .null {
                guard case .array(let entries) = ips else { throw CNIError(.decodingFailure, "invalid result \"ips\": expected a list") }
                for entry in entries {
                    let object = try JSONField.object(entry, what: "result ip")
                    result.ips.append(CNIIPConfig(address: try readNetwork(object, "address", what: "result address"),
                                                  gateway: try readAddress(object, "gateway", what: "result gateway"),
                                                  interface: try JSONField.int(object, "interface", in: "ips[].")))
                }
            }
            if let routes = document["routes"], routes != .null { result.routes = try [CNIRoute](json: routes) }
            return result
        }
        for key in ["ip4", "ip6"] {
            guard let family = document[key], family != .null else { continue }
            let object = try JSONField.object(family, what: "result \(key)")
            result.ips.append(CNIIPConfig(address: try readNetwork(object, "ip", what: "result address"),
                                          gateway: try readAddress(object, "gateway", what: "result gateway")))
            if let routes = object["routes"], routes != .null { result.routes += try [CNIRoute](json: routes) }
        }
        return result
    }
}
