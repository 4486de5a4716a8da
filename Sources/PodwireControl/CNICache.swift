import CNIProtocol
import LinuxSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One attachment's entry in libcni's result cache (`<cacheDir>/results/<network>-<id>-<ifname>`):
/// what ADD returned and how it was called, so CHECK and DEL can hand the result on as
/// `prevResult`. The document is libcni's `cachedInfo`, so a runtime's cache (containerd, CRI-O,
/// podman through libcni) reads the same:
/// `{"kind":"cniCacheV1","containerId","config":<base64 of the list's bytes>,"ifName","networkName",
/// "netns","cniArgs":[[k,v]...],"capabilityArgs":{...},"result":{...}}`.
public struct CNICacheEntry: Equatable, Sendable {
    public static let kind = "cniCacheV1"

    public var containerID: String
    public var ifname: String
    public var networkName: String
    /// The namespace the ADD was given (newer libcni writes it; older entries have none).
    public var netns: String?
    /// The network's config file as ADD read it.
    public var config: [UInt8]
    public var cniArguments: [CNIArgument]
    public var capabilityArguments: [String: JSONValue]
    /// The list's final result; nil in an entry without one.
    public var result: JSONValue?

    public init(containerID: String, ifname: String, networkName: String, netns: String? = nil, config: [UInt8] = [],
                cniArguments: [CNIArgument] = [], capabilityArguments: [String: JSONValue] = [:], result: JSONValue?) {
        self.containerID = containerID
        self.ifname = ifname
        self.networkName = networkName
        self.netns = netns
        self.config = config
        self.cniArguments = cniArguments
        self.capabilityArguments = capabilityArguments
        self.result = result
    }

    /// The file name libcni gives the entry: `<network>-<containerID>-<ifname>`.
    public static func fileName(network: String, containerID: String, ifname: String) -> String {
        "\(network)-\(containerID)-\(ifname)"
    }

    public var fileName: String { Self.fileName(network: networkName, containerID: containerID, ifname: ifname) }

    /// The document as libcni writes it; empty `cniArgs`, `capabilityArgs` and `netns` are left
    /// out as Go's `omitempty` leaves them out.
    public var json: JSONValue {
        var object: [String: JSONValue] = [:]
        object["kind"] = .string(Self.kind)
        object["containerId"] = .string(containerID)
        object["config"] = .string(CNICacheBase64.encode(config))
        object["ifName"] = .string(ifname)
        object["networkName"] = .string(networkName)
        if let netns, !netns.isEmpty { object["netns"] = .string(netns) }
        if !cniArguments.isEmpty {
            object["cniArgs"] = .array(cniArguments.map { .array([.string($0.key), .string($0.value)]) })
        }
        if !capabilityArguments.isEmpty { object["capabilityArgs"] = .object(capabilityArguments) }
        if let result { object["result"] = result }
        return .object(object)
    }

    /// Reads an entry. A `cniCacheV1` document is read field by field; a document without `kind`
    /// that has a `cniVersion` is what libcni before 0.8 cached (the bare result), read for the
    /// attachment `legacy` names. Anything else is an error naming what is wrong.
    public init(json: JSONValue, legacy: (network: String, containerID: String, ifname: String)? = nil) throws(CNIError) {
        guard case .object(let object) = json else {
            throw CNIError(.decodingFailure, "not a CNI cache entry", details: "expected a JSON object")
        }
        guard let kind = object["kind"] else {
            guard let legacy, object["cniVersion"]?.stringValue != nil else {
                throw CNIError(.decodingFailure, "not a CNI cache entry", details: "it has no \"kind\"")
            }
            self.init(containerID: legacy.containerID, ifname: legacy.ifname, networkName: legacy.network, result: json)
            return
        }
        guard kind == .string(Self.kind) else {
            throw CNIError(.decodingFailure, "unknown CNI cache entry kind \(kind.stringValue.map { "\"\($0)\"" } ?? "")",
                           details: "podwirectl reads \"\(Self.kind)\" entries")
        }
        func string(_ key: String) throws(CNIError) -> String {
            guard let value = object[key]?.stringValue, !value.isEmpty else {
                throw CNIError(.decodingFailure, "the CNI cache entry has no \"\(key)\"")
            }
            return value
        }
        let containerID = try string("containerId")
        let ifname = try string("ifName")
        let network = try string("networkName")
        var config: [UInt8] = []
        if let text = object["config"]?.stringValue {
            guard let bytes = CNICacheBase64.decode(text) else {
                throw CNIError(.decodingFailure, "the CNI cache entry's \"config\" is not base64")
            }
            config = bytes
        }
        var arguments: [CNIArgument] = []
        if let pairs = object["cniArgs"], pairs != .null {
            guard let list = pairs.arrayValue else {
                throw CNIError(.decodingFailure, "the CNI cache entry's \"cniArgs\" is not a list of [key, value] pairs")
            }
            for pair in list {
                guard let items = pair.arrayValue, items.count == 2, let key = items[0].stringValue, let value = items[1].stringValue else {
                    throw CNIError(.decodingFailure, "the CNI cache entry's \"cniArgs\" is not a list of [key, value] pairs")
                }
                arguments.append(CNIArgument(key: key, value: value))
            }
        }
        var capabilities: [String: JSONValue] = [:]
        if let value = object["capabilityArgs"], value != .null {
            guard let dictionary = value.objectValue else {
                throw CNIError(.decodingFailure, "the CNI cache entry's \"capabilityArgs\" is not an object")
            }
            capabilities = dictionary
        }
        let result = object["result"].flatMap { $0 == .null ? nil : $0 }
        self.init(containerID: containerID, ifname: ifname, networkName: network, netns: object["netns"]?.stringValue,
                  config: config, cniArguments: arguments, capabilityArguments: capabilities, result: result)
    }

    /// The cached result as the `prevResult` a plugin of `version` expects: as cached when it is
    /// already of that version, else converted as libcni converts it (`GetAsVersion`). Nil when
    /// there is no result.
    public func prevResult(as version: String) throws(CNIError) -> JSONValue? {
        guard let result else { return nil }
        guard case .object(let document) = result else {
            throw CNIError(.decodingFailure, "the cached result is not a JSON object")
        }
        if document["cniVersion"]?.stringValue == version { return result }
        guard let target = CNIVersion(version), target.isSupported else {
            throw CNIError(.incompatibleVersion, "cannot convert the cached result to CNI \(version)")
        }
        let cachedVersion = document["cniVersion"]?.stringValue.flatMap(CNIVersion.init) ?? .implied
        let decoded = try CNIResult.decode(result, defaultVersion: cachedVersion)
        return try CNIJSON.parse(try decoded.encoded(as: target), what: "the converted cached result")
    }
}

/// libcni's cache directory: results of ADDs, one file per attachment under `results/`.
public struct CNICache: Sendable {
    /// libcni's default (`CacheDir` when a runtime sets none).
    public static let defaultDirectory = "/var/lib/cni"

    public var directory: String

    public init(directory: String = CNICache.defaultDirectory) {
        self.directory = directory
    }

    public var resultsDirectory: String { join(directory, "results") }

    public func path(network: String, containerID: String, ifname: String) -> String {
        join(resultsDirectory, CNICacheEntry.fileName(network: network, containerID: containerID, ifname: ifname))
    }

    /// The attachment's entry; nil when there is none. An entry that cannot be read or decoded
    /// is an error naming the file.
    public func read(network: String, containerID: String, ifname: String) throws(ControlError) -> CNICacheEntry? {
        let file = path(network: network, containerID: containerID, ifname: ifname)
        guard let bytes = try readFile(file) else { return nil }
        do {
            let json = try CNIJSON.parse(bytes, what: file)
            return try CNICacheEntry(json: json, legacy: (network, containerID, ifname))
        } catch {
            throw ControlError(.access, "cannot use the cached result \(file): \(error.message)\(error.details.map { " (\($0))" } ?? ""); remove it if it is damaged")
        }
    }

    /// Whether the attachment has an entry (readable or not).
    public func exists(network: String, containerID: String, ifname: String) -> Bool {
        var info = stat()
        return lstat(path(network: network, containerID: containerID, ifname: ifname), &info) == 0
    }

    /// Every `cniCacheV1` entry of `network`, by file name. Files that are not such entries (a
    /// runtime's other files, legacy entries that do not name their network) are left out.
    public func entries(network: String) throws(ControlError) -> [CNICacheEntry] {
        guard let stream = opendir(resultsDirectory) else {
            let code = errno
            if code == ENOENT { return [] }
            throw ControlError(.access, "cannot read \(resultsDirectory): \(String(cString: strerror(code)))")
        }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name.hasPrefix(network + "-") { names.append(name) }
        }
        closedir(stream)
        var found: [CNICacheEntry] = []
        for name in names.sorted() {
            guard let bytes = try? readFile(join(resultsDirectory, name)),
                  let json = try? CNIJSON.parse(bytes, what: name),
                  let entry = try? CNICacheEntry(json: json),
                  entry.networkName == network, entry.fileName == name
            else { continue }
            found.append(entry)
        }
        return found
    }

    /// Makes `results/` (mode 0700, as libcni) so that a later write cannot fail for want of it;
    /// an error says the cache directory is out of reach.
    public func prepare() throws(ControlError) {
        // mkdir -p, as libcni's MkdirAll: every missing directory on the way.
        var paths: [String] = []
        var prefix = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            prefix += "/" + component
            paths.append(prefix)
        }
        paths.append(resultsDirectory)
        for path in paths {
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw ControlError(.access, "cannot create the CNI cache directory \(path): \(String(cString: strerror(errno))); pass --cache-dir DIR")
            }
        }
        guard access(resultsDirectory, W_OK) == 0 else {
            throw ControlError(.access, "cannot write the CNI cache directory \(resultsDirectory): \(String(cString: strerror(errno))); pass --cache-dir DIR")
        }
    }

    /// Writes the entry (mode 0600): a temporary file renamed over the old one, so a reader
    /// never sees half of it.
    public func write(_ entry: CNICacheEntry) throws(ControlError) {
        try prepare()
        let file = join(resultsDirectory, entry.fileName)
        let temporary = join(resultsDirectory, ".\(entry.fileName).\(getpid()).tmp")
        do throws(SystemError) {
            let fd = try valueOrErrno("open \(temporary)") { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
            do {
                try FileDescriptorIO.writeAll(fd, CNIJSON.encode(entry.json), operation: "write \(temporary)")
                try valueOrErrno("fsync \(temporary)") { fsync(fd) }
            } catch {
                close(fd)
                unlink(temporary)
                throw error
            }
            close(fd)
            do {
                try valueOrErrno("rename \(temporary) to \(file)") { rename(temporary, file) }
            } catch {
                unlink(temporary)
                throw error
            }
        } catch {
            throw ControlError(.access, "cannot write the cached result \(file): \(error.description)")
        }
    }

    /// Removes the attachment's entry; true when there was one.
    @discardableResult
    public func remove(network: String, containerID: String, ifname: String) throws(ControlError) -> Bool {
        let file = path(network: network, containerID: containerID, ifname: ifname)
        if unlink(file) == 0 { return true }
        let code = errno
        if code == ENOENT { return false }
        throw ControlError(.access, "cannot remove the cached result \(file): \(String(cString: strerror(code)))")
    }

    private func readFile(_ file: String) throws(ControlError) -> [UInt8]? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { return nil }
            throw ControlError(.access, "cannot read the cached result \(file): \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        do {
            return try FileDescriptorIO.readAll(fd, limit: 16 << 20, operation: "read \(file)")
        } catch {
            throw ControlError(.access, "cannot read the cached result \(file): \(error.reason)")
        }
    }

    private func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}

/// Standard base64 with padding: how Go's encoding/json writes a `[]byte`.
public enum CNICacheBase64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let first = bytes[index]
            let second = index + 1 < bytes.count ? bytes[index + 1] : 0
            let third = index + 2 < bytes.count ? bytes[index + 2] : 0
            output.append(alphabet[Int(first >> 2)])
            output.append(alphabet[Int((first & 0x03) << 4 | second >> 4)])
            output.append(index + 1 < bytes.count ? alphabet[Int((second & 0x0f) << 2 | third >> 6)] : UInt8(ascii: "="))
            output.append(index + 2 < bytes.count ? alphabet[Int(third & 0x3f)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The bytes, or nil when `text` is not padded standard base64.
    public static func decode(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        guard characters.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(characters.count / 4 * 3)
        func value(_ character: UInt8) -> UInt8? {
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): character - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): character - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): 62
            case UInt8(ascii: "/"): 63
            default: nil
            }
        }
        var index = 0
        while index < characters.count {
            let last = index + 4 == characters.count
            let padding = last ? characters[index...].reversed().prefix { $0 == UInt8(ascii: "=") }.count : 0
            guard padding <= 2 else { return nil }
            var group: UInt32 = 0
            for offset in 0..<4 {
                let character = characters[index + offset]
                if offset >= 4 - padding {
                    group <<= 6
                    continue
                }
                guard let bits = value(character) else { return nil }
                group = group << 6 | UInt32(bits)
            }
            output.append(UInt8(truncatingIfNeeded: group >> 16))
            if padding < 2 { output.append(UInt8(truncatingIfNeeded: group >> 8)) }
            if padding < 1 { output.append(UInt8(truncatingIfNeeded: group)) }
            index += 4
        }
        return output
    }
}
