import CNIProtocol
import LinuxSystem
import PodIPAM

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A network as a runtime reads it from its config directory: a `.conflist` (a list of plugins
/// run in order) or a single plugin's `.conf`/`.json`, which libcni treats as a list of one.
public struct NetworkList: Sendable {
    /// The file it was read from.
    public var path: String
    public var name: String
    public var cniVersion: String
    /// Each plugin's object as the file has it (without the `name` and `cniVersion` a runtime
    /// adds when it runs it).
    public var plugins: [[String: JSONValue]]
    /// The file as read: a runtime's cache entry keeps it (base64), as libcni's does.
    public var bytes: [UInt8] = []
    /// libcni's `disableCheck` and `disableGC` (booleans, or the strings "true"/"false").
    public var disableCheck = false
    public var disableGC = false

    /// Where runtimes look (libcni's default, and cnitool's `NETCONFPATH`).
    public static let defaultDirectory = "/etc/cni/net.d"

    /// The directory podwirectl looks in: `NETCONFPATH` when set, as cnitool reads it.
    public static var directory: String {
        if let path = getenv("NETCONFPATH").map({ String(cString: $0) }), !path.isEmpty { return path }
        return defaultDirectory
    }

    /// Reads one config file.
    public static func load(path: String) throws(ControlError) -> NetworkList {
        let bytes: [UInt8]
        do {
            let fd = try valueOrErrno("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
            defer { close(fd) }
            bytes = try FileDescriptorIO.readAll(fd, limit: 4 << 20, operation: "read \(path)")
        } catch {
            throw ControlError(.access, "cannot read \(path): \(error.reason)")
        }
        return try parse(bytes, path: path)
    }

    /// A config file's bytes (`path` names it in messages).
    public static func parse(_ bytes: [UInt8], path: String) throws(ControlError) -> NetworkList {
        let value: JSONValue
        do {
            value = try CNIJSON.parse(bytes, what: path)
        } catch {
            throw ControlError(.usage, "\(path) is not a CNI config: \(error.message)")
        }
        guard case .object(let document) = value else {
            throw ControlError(.usage, "\(path) is not a CNI config: not a JSON object")
        }
        guard let name = document["name"]?.stringValue, !name.isEmpty else {
            throw ControlError(.usage, "\(path) is not a CNI config: it has no \"name\"")
        }
        let version = document["cniVersion"]?.stringValue ?? "0.1.0"
        if let plugins = document["plugins"] {
            guard let list = plugins.arrayValue, !list.isEmpty else {
                throw ControlError(.usage, "\(path): \"plugins\" must be a non-empty list")
            }
            var objects: [[String: JSONValue]] = []
            for (index, plugin) in list.enumerated() {
                guard let object = plugin.objectValue, object["type"]?.stringValue != nil else {
                    throw ControlError(.usage, "\(path): plugins[\(index)] is not an object with a \"type\"")
                }
                objects.append(object)
            }
            return NetworkList(path: path, name: name, cniVersion: version, plugins: objects, bytes: bytes,
                               disableCheck: flag(document["disableCheck"]), disableGC: flag(document["disableGC"]))
        }
        guard document["type"]?.stringValue != nil else {
            throw ControlError(.usage, "\(path) is not a CNI config: it has neither \"plugins\" nor \"type\"")
        }
        var single = document
        single["name"] = nil
        single["cniVersion"] = nil
        return NetworkList(path: path, name: name, cniVersion: version, plugins: [single], bytes: bytes)
    }

    /// libcni reads these flags as booleans, and also as the strings "true"/"false".
    static func flag(_ value: JSONValue?) -> Bool {
        switch value {
        case .bool(let flag)?: flag
        case .string(let text)?: text.lowercased() == "true"
        default: false
        }
    }

    /// The first network in `directory` that runs podwire, in the order runtimes read the
    /// directory (by file name: `.conf`, `.conflist` and `.json` files).
    public static func firstPodwireNetwork(in directory: String = NetworkList.directory) throws(ControlError) -> NetworkList {
        guard let stream = opendir(directory) else {
            throw ControlError(.access, "cannot read \(directory): \(String(cString: strerror(errno))); name the network with --conflist FILE")
        }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if !name.hasPrefix("."), name.hasSuffix(".conf") || name.hasSuffix(".conflist") || name.hasSuffix(".json") {
                names.append(name)
            }
        }
        closedir(stream)
        for name in names.sorted() {
            guard let list = try? load(path: directory.hasSuffix("/") ? directory + name : directory + "/" + name) else { continue }
            if list.podwireIndex != nil { return list }
        }
        throw ControlError(.access, "no podwire network in \(directory); name one with --conflist FILE")
    }

    /// The index of the first plugin of type podwire.
    public var podwireIndex: Int? {
        plugins.firstIndex { $0["type"]?.stringValue == "podwire" }
    }

    /// Plugin `index`'s config as a runtime sends it on stdin: its own keys plus the list's
    /// `name` and `cniVersion`, `runtimeConfig` with the capability arguments it declares, and
    /// `prevResult` when given (libcni's rules).
    public func pluginConfig(at index: Int, capabilityArguments: [String: JSONValue] = [:], prevResult: JSONValue? = nil,
                             cniVersion overriding: String? = nil) -> [String: JSONValue] {
        var config = plugins[index]
        config["name"] = .string(name)
        config["cniVersion"] = .string(overriding ?? cniVersion)
        if let prevResult { config["prevResult"] = prevResult }
        if case .object(let capabilities)? = config["capabilities"] {
            var runtimeConfig: [String: JSONValue] = [:]
            for (key, declared) in capabilities where declared == .bool(true) {
                if let value = capabilityArguments[key] { runtimeConfig[key] = value }
            }
            if !runtimeConfig.isEmpty { config["runtimeConfig"] = .object(runtimeConfig) }
        }
        return config
    }

    /// podwire's entry, parsed as podwire parses its stdin.
    public func podwireConfig() throws(ControlError) -> NetworkConfig {
        guard let index = podwireIndex else {
            throw ControlError(.usage, "\(path): network \(name) has no plugin of type podwire")
        }
        do {
            return try NetworkConfig.parse(CNIJSON.encode(JSONValue.object(pluginConfig(at: index))))
        } catch {
            throw ControlError(.usage, "\(path): podwire's entry: \(error.message)")
        }
    }

    /// The IPAM store podwire's entry uses (podwire-ipam's, or host-local's: one layout).
    public func ipamConfig() throws(ControlError) -> IPAMConfig {
        let config = try podwireConfig()
        do {
            return try IPAMConfig.parse(config, environment: CNIEnvironment(command: .del))
        } catch {
            throw ControlError(.usage, "\(path): podwire's ipam section: \(error.message)")
        }
    }
}
