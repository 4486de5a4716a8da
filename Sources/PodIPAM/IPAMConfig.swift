import CNIProtocol
import LinuxSystem
import NetAddress

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The `ipam` section of a podwire-ipam network, read with host-local's keys and defaults.
public struct IPAMConfig: Sendable {
    /// Each range set yields one address per ADD; ranges within a set are tried in order.
    public var rangeSets: [[IPRange]]
    public var routes: [CNIRoute]
    public var dataDir: String
    public var dns: CNIDNS?
    /// Addresses asked for through `IP=` in CNI_ARGS, `args.cni.ips` and `runtimeConfig.ips`.
    public var requested: [IPAddress]

    public static let defaultDataDir = "/var/lib/cni/networks"

    public init(rangeSets: [[IPRange]], routes: [CNIRoute] = [], dataDir: String = IPAMConfig.defaultDataDir,
                dns: CNIDNS? = nil, requested: [IPAddress] = []) {
        self.rangeSets = rangeSets
        self.routes = routes
        self.dataDir = dataDir
        self.dns = dns
        self.requested = requested
    }

    /// Reads the config as host-local does: `runtimeConfig.ipRanges`, then the legacy top-level
    /// `ipam.subnet` range, then `ipam.ranges`. Every problem is code 7 with a message naming the
    /// offending key, except a malformed `IP=` or an unknown key in CNI_ARGS, which are the
    /// runtime's fault (code 4).
    ///
    /// Requested addresses and `resolvConf` matter only to ADD, so they are read only for ADD:
    /// a DEL must not fail because a resolv.conf went missing since the pod started.
    public static func parse(_ network: NetworkConfig, environment: CNIEnvironment) throws(CNIError) -> IPAMConfig {
        guard let ipamValue = network.json["ipam"], ipamValue != .null else {
            throw CNIError(.invalidNetworkConfig, "missing \"ipam\" section in network \(network.name)")
        }
        guard case .object(let ipam) = ipamValue else {
            throw CNIError(.invalidNetworkConfig, "invalid \"ipam\" section: expected an object")
        }
        let runtimeConfig = network.json["runtimeConfig"]?.objectValue ?? [:]

        // Two parallel lists rather than one of (label, value) tuples: a tuple array is one more
        // generic type for the runtime to build on every ADD.
        var setLabels: [String] = []
        var setValues: [JSONValue] = []
        if let runtimeRanges = runtimeConfig["ipRanges"], runtimeRanges != .null {
            for (index, set) in try list(runtimeRanges, "runtimeConfig.ipRanges").enumerated() {
                setLabels.append("runtimeConfig.ipRanges[\(index)]")
                setValues.append(set)
            }
        }
        if let subnet = ipam["subnet"], subnet != .null, subnet != .string("") {
            var legacy: [String: JSONValue] = [:]
            for key in ["subnet", "rangeStart", "rangeEnd", "gateway"] { legacy[key] = ipam[key] }
            setLabels.append("ipam.subnet")
            setValues.append(.array([.object(legacy)]))
        }
        if let ranges = ipam["ranges"], ranges != .null {
            for (index, set) in try list(ranges, "ipam.ranges").enumerated() {
                setLabels.append("ipam.ranges[\(index)]")
                setValues.append(set)
            }
        }
        if setValues.isEmpty {
            throw CNIError(.invalidNetworkConfig, "no IP ranges in the ipam section of network \(network.name)",
                           details: "set ipam.ranges, e.g. \"ranges\": [[{\"subnet\": \"10.244.1.0/24\"}]]")
        }

        var rangeSets: [[IPRange]] = []
        for setIndex in setValues.indices {
            rangeSets.append(try parseRangeSet(setValues[setIndex], index: setIndex, label: setLabels[setIndex]))
        }
        try checkOverlaps(rangeSets, labels: setLabels)
        if network.cniVersion < .v0_3_0 {
            for family in [IPFamily.v4, .v6] where rangeSets.filter({ $0[0].family == family }).count > 1 {
                throw CNIError(.invalidNetworkConfig,
                               "CNI version \(network.cniVersion) does not support more than one address per family",
                               details: "use cniVersion 0.3.0 or later, or one range set per family")
            }
        }

        var config = IPAMConfig(rangeSets: rangeSets)
        if let routes = ipam["routes"], routes != .null {
            do {
                config.routes = try [CNIRoute](json: routes)
            } catch {
                throw CNIError(.invalidNetworkConfig, "invalid ipam.routes: \(error.message)",
                               details: error.details ?? "expected a list of {\"dst\": CIDR, \"gw\": address}")
            }
        }
        if let dataDir = ipam["dataDir"], dataDir != .null {
            guard case .string(let path) = dataDir else {
                throw CNIError(.invalidNetworkConfig, "invalid ipam.dataDir: expected a string")
            }
            if !path.isEmpty { config.dataDir = path }
        }

        guard environment.command == .add else { return config }
        config.requested = try requestedAddresses(network, environment: environment)
        if let resolvConf = ipam["resolvConf"], resolvConf != .null {
            guard case .string(let path) = resolvConf else {
                throw CNIError(.invalidNetworkConfig, "invalid ipam.resolvConf: expected a file path")
            }
            if !path.isEmpty { config.dns = try readResolvConf(path) }
        }
        return config
    }

    // MARK: - Ranges

    static func list(_ value: JSONValue, _ label: String) throws(CNIError) -> [JSONValue] {
        guard case .array(let items) = value else {
            throw CNIError(.invalidNetworkConfig, "invalid \(label): expected a list of range sets",
                           details: "each range set is a list of {\"subnet\", \"rangeStart\", \"rangeEnd\", \"gateway\"} objects")
        }
        return items
    }

    static func parseRangeSet(_ value: JSONValue, index: Int, label: String) throws(CNIError) -> [IPRange] {
        let context = "range set \(index) (\(label))"
        guard case .array(let items) = value else {
            throw CNIError(.invalidNetworkConfig, "invalid \(context): expected a list of ranges",
                           details: "a range set is a list such as [{\"subnet\": \"10.244.1.0/24\"}]")
        }
        if items.isEmpty {
            throw CNIError(.invalidNetworkConfig, "invalid \(context): it has no ranges")
        }
        var ranges: [IPRange] = []
        for item in items {
            guard case .object(let object) = item else {
                throw CNIError(.invalidNetworkConfig, "invalid \(context): a range must be an object with a \"subnet\"")
            }
            do {
                ranges.append(try parseRange(object))
            } catch {
                throw CNIError(.invalidNetworkConfig, "invalid \(context): \(error.message)", details: error.details)
            }
        }
        for (offset, range) in ranges.enumerated().dropFirst() where range.family != ranges[0].family {
            throw CNIError(.invalidNetworkConfig,
                           "invalid \(context): it mixes IPv4 and IPv6 (\(ranges[0].subnet) and \(ranges[offset].subnet))",
                           details: "put each address family in its own range set")
        }
        for i in ranges.indices {
            for j in ranges.indices where j > i && overlap(ranges[i], ranges[j]) {
                throw CNIError(.invalidNetworkConfig,
                               "invalid \(context): ranges \(ranges[i]) and \(ranges[j]) overlap")
            }
        }
        return ranges
    }

    static func parseRange(_ object: [String: JSONValue]) throws(CNIError) -> IPRange {
        guard let subnetValue = object["subnet"], subnetValue != .null else {
            throw CNIError(.invalidNetworkConfig, "missing \"subnet\"",
                           details: "every range needs a subnet in CIDR form, e.g. \"subnet\": \"10.244.1.0/24\"")
        }
        guard case .string(let subnetText) = subnetValue, let subnet = IPNetwork(subnetText) else {
            throw CNIError(.invalidNetworkConfig, "invalid subnet \(subnetValue.textForMessage)",
                           details: "expected CIDR text such as 10.244.1.0/24 or fd00:10:244:1::/64")
        }
        func address(_ key: String) throws(CNIError) -> IPAddress? {
            guard let value = object[key], value != .null, value != .string("") else { return nil }
            guard case .string(let text) = value, let address = IPAddress(text) else {
                throw CNIError(.invalidNetworkConfig, "invalid \(key) \(value.textForMessage)",
                               details: "expected an IPv4 or IPv6 address")
            }
            return address
        }
        return try IPRange(subnet: subnet, rangeStart: address("rangeStart"), rangeEnd: address("rangeEnd"),
                           gateway: address("gateway"))
    }

    static func overlap(_ a: IPRange, _ b: IPRange) -> Bool {
        a.family == b.family && a.rangeStart <= b.rangeEnd && b.rangeStart <= a.rangeEnd
    }

    static func checkOverlaps(_ sets: [[IPRange]], labels: [String]) throws(CNIError) {
        for i in sets.indices {
            for j in sets.indices where j > i {
                for a in sets[i] {
                    for b in sets[j] where overlap(a, b) {
                        throw CNIError(.invalidNetworkConfig,
                                       "range set \(i) (\(labels[i])) overlaps range set \(j) (\(labels[j])): \(a) and \(b)",
                                       details: "an address may belong to only one range set")
                    }
                }
            }
        }
    }

    // MARK: - Requested addresses

    /// host-local's order: CNI_ARGS `IP`, then `args.cni.ips`, then `runtimeConfig.ips`; repeats dropped.
    static func requestedAddresses(_ network: NetworkConfig, environment: CNIEnvironment) throws(CNIError) -> [IPAddress] {
        try checkArgKeys(environment)
        var addresses: [IPAddress] = []
        if let value = environment.arg("IP"), !value.isEmpty {
            for item in value.split(separator: ",") {
                guard let address = parseRequested(item) else {
                    throw CNIError(.invalidEnvironment, "invalid IP \"\(item)\" in CNI_ARGS",
                                   details: "IP= takes addresses, optionally with a prefix, separated by commas: IP=10.244.1.9,fd00::9")
                }
                addresses.append(address)
            }
        }
        func appendList(_ label: String, _ value: JSONValue?) throws(CNIError) {
            guard let value, value != .null else { return }
            guard case .array(let items) = value else {
                throw CNIError(.invalidNetworkConfig, "invalid \(label): expected a list of addresses")
            }
            for item in items {
                guard case .string(let text) = item, let address = parseRequested(text) else {
                    throw CNIError(.invalidNetworkConfig, "invalid address \(item.textForMessage) in \(label)",
                                   details: "expected an address such as 10.244.1.9 or 10.244.1.9/24")
                }
                addresses.append(address)
            }
        }
        try appendList("args.cni.ips", network.json["args"]?["cni"]?["ips"])
        try appendList("runtimeConfig.ips", network.json["runtimeConfig"]?["ips"])
        var seen = Set<IPAddress>()
        return addresses.filter { seen.insert($0).inserted }
    }

    /// The CNI_ARGS keys this IPAM reads; with host-local's same two, a config works with either.
    static let knownArgKeys: Set<String> = ["IgnoreUnknown", "IP"]

    /// host-local's rule for CNI_ARGS: a key it does not know fails the ADD unless `IgnoreUnknown`
    /// is true, so a misspelt `ip=10.244.1.9` is an error instead of a pod silently given another
    /// address. Runtimes that add keys for other plugins (K8S_POD_NAME, ...) send IgnoreUnknown=1.
    static func checkArgKeys(_ environment: CNIEnvironment) throws(CNIError) {
        if let value = environment.arg("IgnoreUnknown") {
            // Go's UnmarshallableBool, which host-local uses for it.
            switch value.lowercased() {
            case "1", "true": return
            case "0", "false": break
            default:
                throw CNIError(.invalidEnvironment, "invalid IgnoreUnknown \"\(value)\" in CNI_ARGS",
                               details: "IgnoreUnknown takes 1, true, 0 or false")
            }
        }
        var unknown: [String] = []
        for (key, _) in environment.args where !knownArgKeys.contains(key) && !unknown.contains(key) {
            unknown.append(key)
        }
        guard !unknown.isEmpty else { return }
        throw CNIError(.invalidEnvironment,
                       "unknown CNI_ARGS \(unknown.count == 1 ? "key" : "keys") \(unknown.joined(separator: ", ")): podwire-ipam reads only IP (and IgnoreUnknown)",
                       details: "keys are case-sensitive; to pass keys meant for other plugins, add IgnoreUnknown=1 as runtimes do (IgnoreUnknown=1;K8S_POD_NAME=web-0)")
    }

    /// "10.244.1.9" or "10.244.1.9/24": the prefix is the subnet's business, only the address counts.
    static func parseRequested(_ text: some StringProtocol) -> IPAddress? {
        let trimmed = text.trimmingASCIIWhitespace
        if trimmed.contains("/") { return IPNetwork(trimmed)?.address }
        return IPAddress(trimmed)
    }

    // MARK: - resolv.conf

    /// Reads a resolv.conf as host-local does; an unreadable file is a config error naming the path.
    static func readResolvConf(_ path: String) throws(CNIError) -> CNIDNS {
        let bytes: [UInt8]
        do {
            // A file the administrator names, outside the store: a symlink is followed, as any
            // program reading resolv.conf would.
            let fd = try valueOrErrno("open") { open(path, O_RDONLY | O_CLOEXEC) }
            defer { close(fd) }
            bytes = try FileDescriptorIO.readAll(fd, limit: 1 << 20, operation: "read")
        } catch {
            throw CNIError(.invalidNetworkConfig, "cannot read ipam.resolvConf \(path): \(error.reason)",
                           details: "\(error.operation) failed with errno \(error.code)")
        }
        return parseResolvConf(String(decoding: bytes, as: UTF8.self))
    }

    /// `nameserver`, `domain`, `search` and `options` lines; comments (# or ;) and other keys are skipped.
    public static func parseResolvConf(_ text: String) -> CNIDNS {
        var dns = CNIDNS()
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.trimmingASCIIWhitespace
            guard let first = line.first, first != "#", first != ";" else { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count >= 2 else { continue }
            switch fields[0] {
            case "nameserver": dns.nameservers = (dns.nameservers ?? []) + [fields[1]]
            case "domain": dns.domain = fields[1]
            case "search": dns.search = (dns.search ?? []) + fields.dropFirst()
            case "options": dns.options = (dns.options ?? []) + fields.dropFirst()
            default: continue
            }
        }
        return dns
    }
}

extension JSONValue {
    /// A config value quoted for an error message.
    var textForMessage: String {
        switch self {
        case .string(let text): "\"\(text)\""
        case .number(let number): number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        case .bool(let flag): String(flag)
        case .null: "null"
        case .array: "(a list)"
        case .object: "(an object)"
        }
    }
}

extension StringProtocol {
    /// Trimmed of ASCII whitespace at both ends, as Go's strings.TrimSpace does for the store's files.
    var trimmingASCIIWhitespace: String {
        let bytes = Array(utf8)
        func isSpace(_ byte: UInt8) -> Bool { byte == 32 || (byte >= 9 && byte <= 13) }
        guard let start = bytes.firstIndex(where: { !isSpace($0) }),
              let end = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: bytes[start...end], as: UTF8.self)
    }
}
