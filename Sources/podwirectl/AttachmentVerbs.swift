import ArgumentParser
import CNIProtocol
import PodwireControl

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// add | check | del NETNS: what cnitool does, with libcni's result cache, and an ADD that a later
// plugin's failure undoes.

/// Which attachment a verb works on, and what the runtime would pass along with it.
struct AttachmentOptions: ParsableArguments {
    @Argument(help: ArgumentHelp("The pod's network namespace: a path, or a name meaning /run/netns/NAME.", valueName: "netns"))
    var netns: String

    @Option(name: .long, help: ArgumentHelp("The container ID (CNI_CONTAINERID).",
                                            discussion: "Default: podwirectl- and 16 hex digits derived from the namespace's path, the same on every call.",
                                            valueName: "id"))
    var id: String?

    @Option(name: .long, help: ArgumentHelp("The interface in the pod (CNI_IFNAME).", valueName: "name"))
    var ifname: String = AttachmentParameters.defaultInterfaceName

    @Option(name: .customLong("cap-args"),
            help: ArgumentHelp("Capability arguments as a JSON object, e.g. '{\"portMappings\":[{\"hostPort\":8080,\"containerPort\":80}]}'.",
                               discussion: "Passed as runtimeConfig to the plugins that declare the capability. check and del default to the ADD's, from the cache.",
                               valueName: "json"))
    var capArgs: String?

    @Option(name: .customLong("args"),
            help: ArgumentHelp("CNI_ARGS, KEY=VALUE pairs separated by ';' (e.g. 'IgnoreUnknown=1;IP=10.244.1.9').",
                               discussion: "Default: $CNI_ARGS when set. check and del default to the ADD's, from the cache.",
                               valueName: "pairs"))
    var args: String?

    /// The attachment; `arguments` nil when neither --args nor $CNI_ARGS gave any.
    func attachment() throws -> AttachmentParameters {
        let environment = getenv("CNI_ARGS").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        return try AttachmentParameters.resolve(netns: netns, containerID: id, ifname: ifname, arguments: args ?? environment)
    }

    func capabilityArguments() throws -> [String: JSONValue]? {
        guard let capArgs else { return nil }
        return try CapabilityArguments.parse(capArgs)
    }
}

/// `--cache-dir`: libcni's cache directory.
struct ResultCacheOptions: ParsableArguments {
    @Option(name: .customLong("cache-dir"),
            help: ArgumentHelp("libcni's cache directory; results are kept in DIR/results.", valueName: "dir"))
    var cacheDir: String = CNICache.defaultDirectory

    var cache: CNICache { CNICache(directory: cacheDir) }
}

struct AddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "ADD a network namespace to the network, as a runtime would.",
        discussion: """
            Runs the network's plugins in order (found by type on CNI_PATH, default \(PluginSearchPath.defaultValue)), \
            each given the previous one's result, prints the final result, and caches it as libcni does \
            (DIR/results/NETWORK-ID-IFNAME) for check and del. When a plugin fails, the plugins already \
            added are deleted again (in reverse), so a failed add leaves nothing behind.

            Example:
              podwirectl add /run/netns/pod-a --id pod-a \\
                  --cap-args '{"portMappings":[{"hostPort":8080,"containerPort":80}]}'
            """)

    @OptionGroup var attachment: AttachmentOptions
    @OptionGroup var network: NetworkOptions
    @OptionGroup var cacheOptions: ResultCacheOptions

    func run() throws {
        let list = try network.network()
        let parameters = try attachment.attachment()
        let capabilities = try attachment.capabilityArguments() ?? [:]
        let invoker = ExecPluginInvoker()
        try invoker.requirePlugins(of: list)
        try requireNamespaceExists(parameters.netns)
        let cache = cacheOptions.cache
        try cache.prepare()
        if cache.exists(network: list.name, containerID: parameters.containerID, ifname: parameters.ifname) {
            throw ControlError(.usage, "\(parameters.label) is already added to network \(list.name) (\(cache.path(network: list.name, containerID: parameters.containerID, ifname: parameters.ifname))); del it first, or give another --id or --ifname")
        }

        let chain = PluginChain(list: list, invoker: invoker)
        let added: (output: [UInt8], result: JSONValue)
        do {
            added = try chain.add(parameters, capabilityArguments: capabilities)
        } catch {
            writeError("podwirectl: \(error.failure)")
            if !error.undone.isEmpty {
                writeError("podwirectl: undid the ADD of \(error.undone.joined(separator: ", ")) (DEL, in reverse order)")
            }
            for failure in error.undoFailures { writeError("podwirectl: \(failure) (while undoing the ADD)") }
            throw ExitCode(1)
        }
        writePluginDocument(added.output)
        let entry = CNICacheEntry(containerID: parameters.containerID, ifname: parameters.ifname, networkName: list.name,
                                  netns: parameters.netns, config: list.bytes, cniArguments: parameters.arguments ?? [],
                                  capabilityArguments: capabilities, result: added.result)
        do {
            try cache.write(entry)
        } catch {
            throw ControlError(error.kind, "\(parameters.label) is added, but check and del will have no prevResult: \(error.message)")
        }
    }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "CHECK an attachment, as a runtime would.",
        discussion: """
            Runs the network's plugins in order with the result cached by add (or by a libcni runtime \
            whose --cache-dir is given) as prevResult. Needs cniVersion 0.4.0 or later. Every plugin is \
            asked; each failure is one line on stderr, and the exit status is 1.

            Example:
              podwirectl check /run/netns/pod-a --id pod-a
            """)

    @OptionGroup var attachment: AttachmentOptions
    @OptionGroup var network: NetworkOptions
    @OptionGroup var cacheOptions: ResultCacheOptions

    func run() throws {
        let list = try network.network()
        guard let version = CNIVersion(list.cniVersion), version.allowsCheck else {
            throw ControlError(.usage, "CHECK needs cniVersion 0.4.0 or later, and network \(list.name) (\(list.path)) says \(list.cniVersion); raise its cniVersion to check its attachments")
        }
        var parameters = try attachment.attachment()
        let explicitCapabilities = try attachment.capabilityArguments()
        if list.disableCheck {
            print("network \(list.name) disables CHECK (\"disableCheck\": true): nothing checked")
            return
        }
        let invoker = ExecPluginInvoker()
        try invoker.requirePlugins(of: list)
        try requireNamespaceExists(parameters.netns)
        let cache = cacheOptions.cache
        let missing = ControlError(.usage, "no cached result for \(parameters.label) of network \(list.name) in \(cache.resultsDirectory); CHECK needs the result of its ADD: add it with podwirectl add (same --id and --ifname), or pass --cache-dir where the runtime keeps its cache")
        guard let entry = try cache.read(network: list.name, containerID: parameters.containerID, ifname: parameters.ifname) else {
            throw missing
        }
        let prevResult: JSONValue
        do {
            guard let converted = try entry.prevResult(as: list.cniVersion) else { throw missing }
            prevResult = converted
        } catch let error as CNIError {
            throw ControlError(.access, "cannot use the cached result of \(parameters.label): \(error.description)")
        }
        if parameters.arguments == nil, !entry.cniArguments.isEmpty { parameters.arguments = entry.cniArguments }

        let failures = PluginChain(list: list, invoker: invoker)
            .check(parameters, capabilityArguments: explicitCapabilities ?? entry.capabilityArguments, prevResult: prevResult)
        for failure in failures { writeError("podwirectl: \(failure)") }
        if !failures.isEmpty { throw ExitCode(1) }
        print("CHECK passed: \(parameters.label) on network \(list.name)")
    }
}

struct DelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del", abstract: "DEL an attachment, as a runtime would.",
        discussion: """
            Runs the network's plugins in reverse order with the cached result as prevResult (none \
            when there is no cache entry: DEL still runs, as it must be idempotent), then removes the \
            cache entry. A failing plugin does not stop the others; the cache entry is then kept, so \
            that running del again has the result.

            Example:
              podwirectl del /run/netns/pod-a --id pod-a
            """)

    @OptionGroup var attachment: AttachmentOptions
    @OptionGroup var network: NetworkOptions
    @OptionGroup var cacheOptions: ResultCacheOptions

    func run() throws {
        let list = try network.network()
        var parameters = try attachment.attachment()
        let explicitCapabilities = try attachment.capabilityArguments()
        let invoker = ExecPluginInvoker()
        try invoker.requirePlugins(of: list)
        let cache = cacheOptions.cache

        var entry: CNICacheEntry?
        do {
            entry = try cache.read(network: list.name, containerID: parameters.containerID, ifname: parameters.ifname)
        } catch {
            writeError("podwirectl: warning: \(error.message); running DEL without prevResult")
        }
        var prevResult: JSONValue?
        if let entry {
            do {
                prevResult = try entry.prevResult(as: list.cniVersion)
            } catch {
                writeError("podwirectl: warning: the cached result of \(parameters.label) cannot be used (\(error.description)); running DEL without prevResult")
            }
            if parameters.arguments == nil, !entry.cniArguments.isEmpty { parameters.arguments = entry.cniArguments }
        }

        let failures = PluginChain(list: list, invoker: invoker)
            .del(parameters, capabilityArguments: explicitCapabilities ?? entry?.capabilityArguments ?? [:], prevResult: prevResult)
        for failure in failures { writeError("podwirectl: \(failure)") }
        if !failures.isEmpty {
            writeError("podwirectl: the cached result of \(parameters.label) is kept; run del again once the failure is fixed")
            throw ExitCode(1)
        }
        try cache.remove(network: list.name, containerID: parameters.containerID, ifname: parameters.ifname)
        print("DEL done: \(parameters.label) on network \(list.name)")
    }
}

/// ADD and CHECK need the namespace to exist; a plugin would say so less plainly.
func requireNamespaceExists(_ path: String) throws {
    var info = stat()
    if stat(path, &info) == 0 { return }
    let code = errno
    if code == ENOENT {
        throw ControlError(.usage, "network namespace \(path) does not exist; create it (ip netns add NAME) or give the path of an existing one")
    }
    throw ControlError(.access, "cannot reach network namespace \(path): \(String(cString: strerror(code)))")
}

/// A plugin's document on stdout, ending in one newline.
func writePluginDocument(_ bytes: [UInt8]) {
    var text = bytes
    while let last = text.last, last == 10 || last == 13 || last == 32 || last == 9 { text.removeLast() }
    text.append(10)
    var offset = 0
    while offset < text.count {
        let count = text.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
        if count < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += count
    }
}
