import ArgumentParser
import CNIProtocol
import PodwireControl

// status, gc --keep ID/IFNAME...: the CNI 1.1.0 verbs, for every plugin of the list that speaks 1.1.0.

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Ask the network's plugins whether an ADD could succeed (CNI STATUS).",
        discussion: """
            STATUS exists from CNI 1.1.0: each plugin is asked VERSION first; those that support 1.1.0 \
            get STATUS with cniVersion 1.1.0 (even when the list's own cniVersion is older, which is \
            noted), the others are skipped with a note. Exit status 1 when a plugin answered with an error.

            Example:
              podwirectl status --conflist /etc/cni/net.d/10-podwire.conflist
            """)

    @OptionGroup var network: NetworkOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let list = try network.network()
        let invoker = ExecPluginInvoker()
        try invoker.requirePlugins(of: list)
        let reports = PluginChain(list: list, invoker: invoker).status()
        let note = versionNote(list, command: .status)
        if output.json {
            var document: [String: JSONValue] = ["network": .string(list.name), "cniVersion": .string(list.cniVersion),
                                                 "plugins": .array(reports.map(\.json)),
                                                 "ready": .bool(!reports.contains { $0.failure != nil })]
            if let note { document["note"] = .string(note) }
            writePluginDocument(CNIJSON.encode(JSONValue.object(document)))
        } else {
            if let note { print("note: \(note)") }
            for report in reports { print(report.text) }
        }
        try finish(reports)
    }
}

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Remove every attachment but those listed (CNI GC).",
        discussion: """
            As libcni does, first DELs every attachment of the network found in the cache that is not \
            kept (and removes its cache entry), then sends GC with cni.dev/valid-attachments listing the \
            kept ones to each plugin that supports CNI 1.1.0 (with cniVersion 1.1.0). Without --keep it \
            refuses: cnitool's gc without a list removes every attachment of the network; pass \
            --keep-nothing when that is what you want.

            Example:
              podwirectl gc --keep pod-a/eth0 --keep pod-b/eth0
            """)

    @Option(name: .long, parsing: .upToNextOption,
            help: ArgumentHelp("An attachment to keep, as CONTAINER-ID/IFNAME (repeatable).", valueName: "id/ifname"))
    var keep: [String] = []

    @Flag(name: .customLong("keep-nothing"), help: "Remove every attachment of the network (GC with an empty list).")
    var keepNothing = false

    @OptionGroup var network: NetworkOptions
    @OptionGroup var cacheOptions: ResultCacheOptions

    func run() throws {
        let kept = try KeptAttachment.parseList(keep)
        if keepNothing && !kept.isEmpty {
            throw ControlError(.usage, "--keep-nothing and --keep contradict each other; give one of them")
        }
        let list = try network.network()
        if kept.isEmpty && !keepNothing {
            throw ControlError(.usage, "gc without --keep would remove every attachment of network \(list.name); name the attachments to keep with --keep ID/IFNAME, or pass --keep-nothing")
        }
        if list.disableGC {
            print("network \(list.name) disables GC (\"disableGC\": true): nothing done")
            return
        }
        let invoker = ExecPluginInvoker()
        try invoker.requirePlugins(of: list)
        let cache = cacheOptions.cache
        let chain = PluginChain(list: list, invoker: invoker)

        // libcni's GC: a DEL for each cached attachment that is not kept, then GC.
        var failed = false
        for entry in try cache.entries(network: list.name) {
            let label = "\(entry.containerID)/\(entry.ifname)"
            if kept.contains(NetworkConfig.Attachment(containerID: entry.containerID, ifname: entry.ifname)) { continue }
            let attachment = AttachmentParameters(containerID: entry.containerID, netns: entry.netns ?? "", ifname: entry.ifname,
                                                  arguments: entry.cniArguments.isEmpty ? nil : entry.cniArguments)
            let prevResult = try? entry.prevResult(as: list.cniVersion)
            let failures = chain.del(attachment, capabilityArguments: entry.capabilityArguments, prevResult: prevResult)
            for failure in failures { writeError("podwirectl: \(failure) (cached attachment \(label))") }
            if failures.isEmpty {
                try cache.remove(network: list.name, containerID: entry.containerID, ifname: entry.ifname)
                print("DEL \(label): not kept (from the cache)")
            } else {
                failed = true
            }
        }

        let reports = chain.gc(keeping: kept)
        if let note = versionNote(list, command: .gc) { print("note: \(note)") }
        for report in reports { print(report.text) }
        try finish(reports, failedBefore: failed)
    }
}

/// The note when the list's own version predates STATUS and GC, which are sent as 1.1.0 anyway.
private func versionNote(_ list: NetworkList, command: CNICommand) -> String? {
    guard let version = CNIVersion(list.cniVersion), version >= CNIVersion.v1_1_0 else {
        return "network \(list.name) says cniVersion \(list.cniVersion); \(command.rawValue) exists from 1.1.0 and is sent with cniVersion 1.1.0"
    }
    return nil
}

/// Each failure as its stderr line; exit 1 when there was one.
private func finish(_ reports: [PluginChain.PluginReport], failedBefore: Bool = false) throws {
    let failures = reports.compactMap(\.failure)
    for failure in failures { writeError("podwirectl: \(failure)") }
    if failedBefore || !failures.isEmpty { throw ExitCode(1) }
}

extension PluginChain.PluginReport {
    var failure: PluginFailure? {
        if case .failed(let failure) = outcome { return failure }
        return nil
    }

    var text: String {
        switch outcome {
        case .ok: "\(type): ok"
        case .failed(let failure): "\(type): failed (\(failure.command.rawValue)): \(failure.reason)"
        case .skipped(let why): "\(type): skipped: \(why)"
        }
    }

    var json: JSONValue {
        var object: [String: JSONValue] = ["type": .string(type)]
        switch outcome {
        case .ok:
            object["status"] = .string("ok")
        case .failed(let failure):
            object["status"] = .string("failed")
            object["command"] = .string(failure.command.rawValue)
            if let error = failure.error {
                var document: [String: JSONValue] = ["code": .number(Double(error.code.rawValue)), "msg": .string(error.message)]
                if let details = error.details { document["details"] = .string(details) }
                object["error"] = .object(document)
            } else {
                object["reason"] = .string(failure.reason)
            }
        case .skipped(let why):
            object["status"] = .string("skipped")
            object["reason"] = .string(why)
        }
        return .object(object)
    }
}
