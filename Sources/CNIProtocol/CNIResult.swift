#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NetAddress

/// An interface in a result; `sandbox` is the netns path for container interfaces, nil on the host.
public struct CNIInterface: Codable, Hashable, Sendable {
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

public struct CNIDNS: Codable, Hashable, Sendable {
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

// MARK: - Field coding shared by every version

extension CNIRoute: Codable {
    enum CodingKeys: String, CodingKey { case dst, gw, mtu, advmss, priority, table, scope }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let dstText = try container.decode(String.self, forKey: .dst)
        guard let dst = IPNetwork(dstText) else {
            throw CNIError(.invalidNetworkConfig, "invalid route destination \"\(dstText)\"", details: "expected CIDR text such as 0.0.0.0/0")
        }
        self.dst = dst
        gw = try decodeAddress(container, .gw, what: "route gateway")
        mtu = try container.decodeIfPresent(Int.self, forKey: .mtu)
        advmss = try container.decodeIfPresent(Int.self, forKey: .advmss)
        priority = try container.decodeIfPresent(Int.self, forKey: .priority)
        table = try container.decodeIfPresent(Int.self, forKey: .table)
        scope = try container.decodeIfPresent(Int.self, forKey: .scope)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(dst.description, forKey: .dst)
        try container.encodeIfPresent(gw?.description, forKey: .gw)
        try container.encodeIfPresent(mtu, forKey: .mtu)
        try container.encodeIfPresent(advmss, forKey: .advmss)
        try container.encodeIfPresent(priority, forKey: .priority)
        try container.encodeIfPresent(table, forKey: .table)
        try container.encodeIfPresent(scope, forKey: .scope)
    }

    /// Only `dst` and `gw` exist before 1.1.0.
    var withoutV1_1Fields: CNIRoute { CNIRoute(dst: dst, gw: gw) }
}

func decodeAddress<K: CodingKey>(_ container: KeyedDecodingContainer<K>, _ key: K, what: String) throws -> IPAddress? {
    guard let text = try container.decodeIfPresent(String.self, forKey: key), !text.isEmpty else { return nil }
    guard let address = IPAddress(text) else {
        throw CNIError(.invalidNetworkConfig, "invalid \(what) \"\(text)\"", details: "expected an IPv4 or IPv6 address")
    }
    return address
}

func decodeNetwork<K: CodingKey>(_ container: KeyedDecodingContainer<K>, _ key: K, what: String) throws -> IPNetwork {
    let text = try container.decode(String.self, forKey: key)
    guard let network = IPNetwork(text) else {
        throw CNIError(.invalidNetworkConfig, "invalid \(what) \"\(text)\"", details: "expected CIDR text such as 10.244.1.2/24")
    }
    return network
}

// MARK: - Versioned wire forms

/// 0.3.0 through 1.1.0: `interfaces`, `ips`, `routes`, `dns`; 0.3.x and 0.4.0 add `version` per IP.
struct ModernResultDocument: Codable {
    /// Optional when reading: a result without one is read at the caller's default version.
    var cniVersion: String?
    var interfaces: [CNIInterface]?
    var ips: [IPEntry]?
    var routes: [CNIRoute]?
    var dns: CNIDNS?

    struct IPEntry: Codable {
        var version: String?
        var address: IPNetwork
        var gateway: IPAddress?
        var interface: Int?

        enum CodingKeys: String, CodingKey { case version, address, gateway, interface }

        init(version: String?, address: IPNetwork, gateway: IPAddress?, interface: Int?) {
            self.version = version
            self.address = address
            self.gateway = gateway
            self.interface = interface
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            version = try container.decodeIfPresent(String.self, forKey: .version)
            address = try decodeNetwork(container, .address, what: "result address")
            gateway = try decodeAddress(container, .gateway, what: "result gateway")
            interface = try container.decodeIfPresent(Int.self, forKey: .interface)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(version, forKey: .version)
            try container.encode(address.description, forKey: .address)
            try container.encodeIfPresent(gateway?.description, forKey: .gateway)
            try container.encodeIfPresent(interface, forKey: .interface)
        }
    }
}

/// 0.1.0 and 0.2.0: one address per family under `ip4` / `ip6`, routes filed by family.
struct LegacyResultDocument: Codable {
    /// Optional when reading: a result without one is read at the caller's default version.
    var cniVersion: String?
    var ip4: Family?
    var ip6: Family?
    var dns: CNIDNS?

    struct Family: Codable {
        var ip: IPNetwork
        var gateway: IPAddress?
        var routes: [CNIRoute]?

        enum CodingKeys: String, CodingKey { case ip, gateway, routes }

        init(ip: IPNetwork, gateway: IPAddress?, routes: [CNIRoute]?) {
            self.ip = ip
            self.gateway = gateway
            self.routes = routes
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            ip = try decodeNetwork(container, .ip, what: "result address")
            gateway = try decodeAddress(container, .gateway, what: "result gateway")
            routes = try container.decodeIfPresent([CNIRoute].self, forKey: .routes)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(ip.description, forKey: .ip)
            try container.encodeIfPresent(gateway?.description, forKey: .gateway)
            try container.encodeIfPresent(routes, forKey: .routes)
        }
    }
}

extension CNIResult {
    /// The result as the document for `version`: what a runtime that asked for that version reads.
    ///
    /// Converting down to 0.1.0/0.2.0 keeps the first address of each family, as libcni does, and
    /// fails when there is no address at all, since that form cannot express a result without one.
    public func encoded(as version: CNIVersion) throws(CNIError) -> [UInt8] {
        if version >= .v0_3_0 {
            let current = version >= .v1_1_0
            let document = ModernResultDocument(
                cniVersion: version.description,
                interfaces: interfaces.isEmpty ? nil : interfaces.map { current ? $0 : CNIInterface(name: $0.name, mac: $0.mac, sandbox: $0.sandbox) },
                ips: ips.isEmpty ? nil : ips.map {
                    .init(version: version < .v1_0_0 ? $0.address.family.cniVersionString : nil,
                          address: $0.address, gateway: $0.gateway, interface: $0.interface)
                },
                routes: routes.isEmpty ? nil : routes.map { current ? $0 : $0.withoutV1_1Fields },
                dns: dns.flatMap { $0.isSet ? $0 : nil })
            return CNIJSON.encode(document)
        }
        let v4 = ips.first { $0.address.family == .v4 }
        let v6 = ips.first { $0.address.family == .v6 }
        guard v4 != nil || v6 != nil else {
            throw CNIError(.incompatibleVersion, "cannot convert the result to CNI \(version): it has no IP address",
                           details: "0.1.0 and 0.2.0 results carry one address per family")
        }
        func family(_ ip: CNIIPConfig?, _ family: IPFamily) -> LegacyResultDocument.Family? {
            guard let ip else { return nil }
            let familyRoutes = routes.filter { $0.dst.family == family }.map(\.withoutV1_1Fields)
            return .init(ip: ip.address, gateway: ip.gateway, routes: familyRoutes.isEmpty ? nil : familyRoutes)
        }
        let document = LegacyResultDocument(cniVersion: version.description, ip4: family(v4, .v4), ip6: family(v6, .v6),
                                            dns: dns.flatMap { $0.isSet ? $0 : nil })
        return CNIJSON.encode(document)
    }

    /// Reads a result of any supported version: a prevResult or a delegated IPAM plugin's output.
    /// The document's own `cniVersion` wins; `defaultVersion` applies when it has none.
    public static func decode(_ bytes: [UInt8], defaultVersion: CNIVersion) throws(CNIError) -> CNIResult {
        struct VersionProbe: Decodable { var cniVersion: String? }
        let probe = try CNIJSON.decode(VersionProbe.self, from: bytes, what: "result")
        let version: CNIVersion
        if let text = probe.cniVersion {
            guard let parsed = CNIVersion(text), parsed.isSupported else {
                throw CNIError(.incompatibleVersion, "unsupported result version \"\(text)\"",
                               details: "podwire reads results of versions \(CNIVersion.supported.map(\.description).joined(separator: ", "))")
            }
            version = parsed
        } else {
            version = defaultVersion
        }
        if version >= .v0_3_0 {
            let document = try CNIJSON.decode(ModernResultDocument.self, from: bytes, what: "result")
            return CNIResult(
                interfaces: document.interfaces ?? [],
                ips: (document.ips ?? []).map { CNIIPConfig(address: $0.address, gateway: $0.gateway, interface: $0.interface) },
                routes: document.routes ?? [],
                dns: document.dns)
        }
        let document = try CNIJSON.decode(LegacyResultDocument.self, from: bytes, what: "result")
        var result = CNIResult(dns: document.dns)
        for family in [document.ip4, document.ip6].compactMap({ $0 }) {
            result.ips.append(CNIIPConfig(address: family.ip, gateway: family.gateway))
            result.routes += family.routes ?? []
        }
        return result
    }

    public static func decode(_ value: JSONValue, defaultVersion: CNIVersion) throws(CNIError) -> CNIResult {
        try decode(CNIJSON.encode(value), defaultVersion: defaultVersion)
    }
}
