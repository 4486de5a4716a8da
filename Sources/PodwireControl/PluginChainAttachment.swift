import CNIProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One `KEY=VALUE` pair of `CNI_ARGS` (libcni keeps them as `[][2]string`, and so does its cache).
public struct CNIArgument: Hashable, Sendable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }

    /// Splits `CNI_ARGS` text ("IgnoreUnknown=1;IP=10.244.1.9") where libcni's plugins split it:
    /// on ";" between pairs and on the first "=" of each.
    public static func parseList(_ text: String) throws(ControlError) -> [CNIArgument] {
        var pairs: [CNIArgument] = []
        for item in text.split(separator: ";", omittingEmptySubsequences: true) {
            guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
                throw ControlError(.usage, "invalid CNI_ARGS pair \"\(item)\": CNI_ARGS is KEY=VALUE pairs separated by \";\"")
            }
            pairs.append(CNIArgument(key: String(item[..<equals]), value: String(item[item.index(after: equals)...])))
        }
        return pairs
    }

    /// The pairs as `CNI_ARGS` text.
    public static func text(_ arguments: [CNIArgument]) -> String {
        arguments.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
    }
}

/// What a runtime hands a plugin about one attachment: `CNI_CONTAINERID`, `CNI_NETNS`,
/// `CNI_IFNAME`, `CNI_ARGS` (nil: not set at all).
public struct AttachmentParameters: Hashable, Sendable {
    public var containerID: String
    public var netns: String
    public var ifname: String
    public var arguments: [CNIArgument]?

    public init(containerID: String, netns: String, ifname: String, arguments: [CNIArgument]? = nil) {
        self.containerID = containerID
        self.netns = netns
        self.ifname = ifname
        self.arguments = arguments
    }

    /// `ID/IFNAME`, as `--keep` takes it and as messages name an attachment.
    public var label: String { "\(containerID)/\(ifname)" }

    /// Where runtimes and `ip netns add` put named namespaces.
    public static let namedNamespaceDirectory = "/run/netns"

    /// The default interface name, as cnitool's.
    public static let defaultInterfaceName = "eth0"

    /// podwirectl's command line made into parameters: NETNS is a path (it has a "/") or a bare
    /// name meaning /run/netns/NAME; the container ID defaults to one derived from the namespace's
    /// path, so add, check and del of one namespace meet without naming an ID.
    public static func resolve(netns argument: String, containerID: String?, ifname: String?,
                               arguments: String?) throws(ControlError) -> AttachmentParameters {
        let netns = try namespacePath(argument)
        let id = containerID ?? defaultContainerID(netns: netns)
        if let problem = CNIEnvironment.containerIDProblem(id) {
            throw ControlError(.usage, "invalid --id \"\(id)\": \(problem); a container ID matches ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
        }
        let name = ifname ?? defaultInterfaceName
        if let problem = CNIEnvironment.interfaceNameProblem(name) {
            throw ControlError(.usage, "invalid --ifname \"\(name)\": \(problem)")
        }
        let pairs = try arguments.map { (text) throws(ControlError) in try CNIArgument.parseList(text) }
        return AttachmentParameters(containerID: id, netns: netns, ifname: name, arguments: pairs)
    }

    /// NETNS as a path: absolute as given, relative to the working directory when it has a "/",
    /// /run/netns/NAME when it is a bare name.
    public static func namespacePath(_ argument: String, workingDirectory: String? = nil) throws(ControlError) -> String {
        guard !argument.isEmpty else {
            throw ControlError(.usage, "NETNS is empty; name a namespace (pod-a, meaning /run/netns/pod-a) or give its path")
        }
        if argument.hasPrefix("/") { return argument }
        if argument.contains("/") {
            guard let directory = workingDirectory ?? currentDirectory() else {
                throw ControlError(.access, "cannot resolve \(argument): the working directory is unreadable; give NETNS as an absolute path")
            }
            let relative = argument.hasPrefix("./") ? String(argument.dropFirst(2)) : argument
            return directory == "/" ? "/" + relative : directory + "/" + relative
        }
        guard argument != ".", argument != ".." else {
            throw ControlError(.usage, "NETNS \"\(argument)\" is not a namespace name; give the namespace's path")
        }
        return namedNamespaceDirectory + "/" + argument
    }

    /// "podwirectl-" and 16 hex digits of the FNV-1a (64-bit) hash of the namespace's path: the
    /// same namespace gets the same ID on every call.
    public static func defaultContainerID(netns: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in netns.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "podwirectl-" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    private static func currentDirectory() -> String? {
        guard let path = getcwd(nil, 0) else { return nil }
        defer { free(path) }
        return String(cString: path)
    }
}

/// `--keep ID/IFNAME`: an attachment GC must leave alone.
public enum KeptAttachment {
    public static func parse(_ text: String) throws(ControlError) -> NetworkConfig.Attachment {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ControlError(.usage, "invalid --keep \"\(text)\": expected CONTAINER-ID/IFNAME, e.g. --keep pod-a/eth0")
        }
        let id = String(parts[0]), ifname = String(parts[1])
        if let problem = CNIEnvironment.containerIDProblem(id) {
            throw ControlError(.usage, "invalid --keep \"\(text)\": container ID \(problem)")
        }
        if let problem = CNIEnvironment.interfaceNameProblem(ifname) {
            throw ControlError(.usage, "invalid --keep \"\(text)\": interface name \(problem)")
        }
        return NetworkConfig.Attachment(containerID: id, ifname: ifname)
    }

    /// Every `--keep`, in order, duplicates dropped.
    public static func parseList(_ texts: [String]) throws(ControlError) -> [NetworkConfig.Attachment] {
        var kept: [NetworkConfig.Attachment] = []
        for text in texts {
            let attachment = try parse(text)
            if !kept.contains(attachment) { kept.append(attachment) }
        }
        return kept
    }
}

/// Where plugin binaries are looked for: `CNI_PATH` when set, else libcni's usual directories.
public enum PluginSearchPath {
    /// /opt/cni/bin (upstream's install directory), then /usr/lib/cni (Debian's).
    public static let defaultValue = "/opt/cni/bin:/usr/lib/cni"

    /// `CNI_PATH` as podwirectl passes it to every plugin.
    public static var fromEnvironment: String {
        if let value = getenv("CNI_PATH").map({ String(cString: $0) }), !value.isEmpty { return value }
        return defaultValue
    }

    public static func directories(_ value: String) -> [String] {
        value.split(separator: ":").map(String.init)
    }
}
