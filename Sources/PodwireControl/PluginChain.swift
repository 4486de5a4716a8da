import CNIProtocol

/// One plugin call as a runtime makes it: the command, which plugin, its stdin config, and for
/// ADD, CHECK and DEL the attachment.
public struct PluginCall: Sendable, Equatable {
    public var command: CNICommand
    public var type: String
    /// The plugin's index in the list.
    public var index: Int
    /// The stdin document.
    public var config: [String: JSONValue]
    /// nil for VERSION, STATUS and GC, which concern no attachment.
    public var attachment: AttachmentParameters?

    public init(command: CNICommand, type: String, index: Int, config: [String: JSONValue], attachment: AttachmentParameters? = nil) {
        self.command = command
        self.type = type
        self.index = index
        self.config = config
        self.attachment = attachment
    }

    public var stdin: [UInt8] { CNIJSON.encode(JSONValue.object(config)) }

    /// The `CNI_*` variables of the call (libcni's set; CNI_ARGS only when arguments were given).
    public func protocolVariables(searchPath: String) -> [String] {
        var variables = ["CNI_COMMAND=\(command.rawValue)"]
        if let attachment {
            variables.append("CNI_CONTAINERID=\(attachment.containerID)")
            variables.append("CNI_NETNS=\(attachment.netns)")
            variables.append("CNI_IFNAME=\(attachment.ifname)")
            if let arguments = attachment.arguments, !arguments.isEmpty {
                variables.append("CNI_ARGS=\(CNIArgument.text(arguments))")
            }
        }
        variables.append("CNI_PATH=\(searchPath)")
        return variables
    }
}

/// A plugin call that failed: the plugin's own CNI error, or how its process ended.
public struct PluginFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var type: String
    public var command: CNICommand
    /// The plugin's CNI error, when it printed one.
    public var error: CNIError?
    /// What went wrong: "CNI error <code>: <msg> (<details>)" or how the process ended.
    public var reason: String

    public init(_ call: PluginCall, error: CNIError) {
        self.type = call.type
        self.command = call.command
        self.error = error
        self.reason = "CNI error \(error.code.rawValue): \(error.message)" + (error.details.map { " (\($0))" } ?? "")
    }

    public init(_ call: PluginCall, reason: String) {
        self.type = call.type
        self.command = call.command
        self.error = nil
        self.reason = reason
    }

    /// The stderr line: `<type> <COMMAND> failed: <reason>`.
    public var description: String { "\(type) \(command.rawValue) failed: \(reason)" }
}

/// What runs one plugin call and returns its stdout (exit 0), or fails.
public protocol PluginInvoker {
    func invoke(_ call: PluginCall) throws(PluginFailure) -> [UInt8]
}

/// A network list run as libcni runs it: ADD in order, each plugin given the previous one's
/// result; DEL in reverse; CHECK in order with the cached result; STATUS and GC (CNI 1.1.0) for
/// each plugin that speaks 1.1.0.
public struct PluginChain {
    public var list: NetworkList
    public var invoker: any PluginInvoker

    public init(list: NetworkList, invoker: any PluginInvoker) {
        self.list = list
        self.invoker = invoker
    }

    /// STATUS and GC exist from this version on; plugins that support it get it as their config's
    /// `cniVersion` for those two commands, whatever the list says.
    public static let statusAndGCVersion = "1.1.0"

    /// The order libcni runs the list's plugins in for `command`: DEL in reverse, the rest in order.
    public static func order(_ command: CNICommand, count: Int) -> [Int] {
        command == .del ? Array((0..<count).reversed()) : Array(0..<count)
    }

    private func type(at index: Int) -> String { list.plugins[index]["type"]?.stringValue ?? "" }

    private var listVersion: CNIVersion? { CNIVersion(list.cniVersion) }

    /// libcni passes the cached result to DEL from 0.4.0 on only.
    public var delTakesPrevResult: Bool { listVersion.map { $0 >= .v0_4_0 } ?? false }

    // MARK: ADD

    /// How an ADD of the list ended when a plugin failed: that plugin's failure, and the DEL of
    /// the plugins already added (in reverse), which podwirectl runs so that a failed ADD leaves
    /// nothing behind (libcni leaves that to the runtime).
    public struct AddFailure: Error, Sendable, Equatable {
        public var failure: PluginFailure
        /// Types of the plugins whose ADD had succeeded and that were then DELeted, in DEL order.
        public var undone: [String]
        /// DELs of that undo that failed too.
        public var undoFailures: [PluginFailure]
    }

    /// ADD: each plugin in order, each given the previous one's result as `prevResult`; returns
    /// the last plugin's stdout (the list's result) and its document.
    public func add(_ attachment: AttachmentParameters, capabilityArguments: [String: JSONValue] = [:])
        throws(AddFailure) -> (output: [UInt8], result: JSONValue) {
        var prevResult: JSONValue?
        var output: [UInt8] = []
        var added: [Int] = []
        for index in Self.order(.add, count: list.plugins.count) {
            let call = PluginCall(command: .add, type: type(at: index), index: index,
                                  config: list.pluginConfig(at: index, capabilityArguments: capabilityArguments, prevResult: prevResult),
                                  attachment: attachment)
            do {
                output = try invoker.invoke(call)
            } catch {
                throw undo(added, after: error, attachment: attachment, capabilityArguments: capabilityArguments, prevResult: prevResult)
            }
            added.append(index)
            guard let document = try? CNIJSON.parse(output, what: "result"), case .object = document else {
                let printed = PluginFailure.excerpt(output).map { "printed \($0)" } ?? "printed nothing"
                let failure = PluginFailure(call, reason: "exited 0 but \(printed) instead of a result")
                throw undo(added, after: failure, attachment: attachment, capabilityArguments: capabilityArguments, prevResult: prevResult)
            }
            prevResult = document
        }
        guard let prevResult else {
            // A list has at least one plugin (NetworkList refuses an empty one).
            preconditionFailure("ADD of an empty plugin list")
        }
        return (output, prevResult)
    }

    private func undo(_ added: [Int], after failure: PluginFailure, attachment: AttachmentParameters,
                      capabilityArguments: [String: JSONValue], prevResult: JSONValue?) -> AddFailure {
        var undone: [String] = []
        var failures: [PluginFailure] = []
        for index in added.reversed() {
            undone.append(type(at: index))
            let call = PluginCall(command: .del, type: type(at: index), index: index,
                                  config: list.pluginConfig(at: index, capabilityArguments: capabilityArguments,
                                                            prevResult: delTakesPrevResult ? prevResult : nil),
                                  attachment: attachment)
            do {
                _ = try invoker.invoke(call)
            } catch {
                failures.append(error)
            }
        }
        return AddFailure(failure: failure, undone: undone, undoFailures: failures)
    }

    // MARK: CHECK and DEL

    /// CHECK: every plugin in order with the cached result as `prevResult`. Every plugin is asked
    /// (CHECK changes nothing), so all that is wrong is reported at once; empty when all passed.
    public func check(_ attachment: AttachmentParameters, capabilityArguments: [String: JSONValue] = [:],
                      prevResult: JSONValue?) -> [PluginFailure] {
        run(.check, attachment: attachment, capabilityArguments: capabilityArguments, prevResult: prevResult)
    }

    /// DEL: every plugin in reverse order, with the cached result as `prevResult` (from 0.4.0 on).
    /// A failing plugin does not stop the others (DEL is idempotent, and the rest of the attachment
    /// should still go); empty when all succeeded.
    public func del(_ attachment: AttachmentParameters, capabilityArguments: [String: JSONValue] = [:],
                    prevResult: JSONValue?) -> [PluginFailure] {
        run(.del, attachment: attachment, capabilityArguments: capabilityArguments,
            prevResult: delTakesPrevResult ? prevResult : nil)
    }

    private func run(_ command: CNICommand, attachment: AttachmentParameters, capabilityArguments: [String: JSONValue],
                     prevResult: JSONValue?) -> [PluginFailure] {
        var failures: [PluginFailure] = []
        for index in Self.order(command, count: list.plugins.count) {
            let call = PluginCall(command: command, type: type(at: index), index: index,
                                  config: list.pluginConfig(at: index, capabilityArguments: capabilityArguments, prevResult: prevResult),
                                  attachment: attachment)
            do {
                _ = try invoker.invoke(call)
            } catch {
                failures.append(error)
            }
        }
        return failures
    }

    // MARK: VERSION, STATUS, GC

    /// What one plugin answered to a network-wide command.
    public struct PluginReport: Sendable, Equatable {
        public enum Outcome: Sendable, Equatable {
            case ok
            case failed(PluginFailure)
            /// Not asked: why (it does not speak the version the command needs).
            case skipped(String)
        }

        public var index: Int
        public var type: String
        public var outcome: Outcome
    }

    /// The versions the plugin lists in its VERSION answer.
    public func supportedVersions(at index: Int) throws(PluginFailure) -> [String] {
        let call = PluginCall(command: .version, type: type(at: index), index: index,
                              config: ["cniVersion": .string(Self.statusAndGCVersion)])
        let output = try invoker.invoke(call)
        guard let document = try? CNIJSON.parse(output, what: "VERSION answer"),
              let versions = document["supportedVersions"]?.arrayValue?.compactMap(\.stringValue)
        else {
            let printed = PluginFailure.excerpt(output).map { "printed \($0)" } ?? "printed nothing"
            throw PluginFailure(call, reason: "\(printed) instead of {\"supportedVersions\": [...]}")
        }
        return versions
    }

    /// STATUS: VERSION first, then STATUS with `cniVersion` 1.1.0 for the plugins that support it.
    public func status() -> [PluginReport] {
        networkCommand(.status) { _ in [:] }
    }

    /// GC with `cni.dev/valid-attachments` for the plugins that support 1.1.0.
    public func gc(keeping valid: [NetworkConfig.Attachment]) -> [PluginReport] {
        let attachments = JSONValue.array(valid.map { .object(["containerID": .string($0.containerID), "ifname": .string($0.ifname)]) })
        return networkCommand(.gc) { _ in ["cni.dev/valid-attachments": attachments] }
    }

    private func networkCommand(_ command: CNICommand, extra: (Int) -> [String: JSONValue]) -> [PluginReport] {
        var reports: [PluginReport] = []
        for index in Self.order(command, count: list.plugins.count) {
            let versions: [String]
            do {
                versions = try supportedVersions(at: index)
            } catch {
                reports.append(PluginReport(index: index, type: type(at: index), outcome: .failed(error)))
                continue
            }
            guard versions.contains(Self.statusAndGCVersion) else {
                let newest = versions.compactMap(CNIVersion.init).max().map { "CNI up to \($0)" } ?? "no CNI version podwirectl knows"
                reports.append(PluginReport(index: index, type: type(at: index),
                                            outcome: .skipped("supports \(newest); \(command.rawValue) needs \(Self.statusAndGCVersion)")))
                continue
            }
            var config = list.pluginConfig(at: index, cniVersion: Self.statusAndGCVersion)
            config.merge(extra(index)) { _, new in new }
            let call = PluginCall(command: command, type: type(at: index), index: index, config: config)
            do {
                _ = try invoker.invoke(call)
                reports.append(PluginReport(index: index, type: type(at: index), outcome: .ok))
            } catch {
                reports.append(PluginReport(index: index, type: type(at: index), outcome: .failed(error)))
            }
        }
        return reports
    }
}

/// `--cap-args`: a JSON object of capability arguments, keyed by capability.
public enum CapabilityArguments {
    public static func parse(_ text: String?) throws(ControlError) -> [String: JSONValue] {
        guard let text else { return [:] }
        let value: JSONValue
        do {
            value = try CNIJSON.parse(Array(text.utf8), what: "--cap-args")
        } catch {
            throw ControlError(.usage, "--cap-args is not JSON: \(error.details ?? error.message); give an object such as '{\"portMappings\":[{\"hostPort\":8080,\"containerPort\":80}]}'")
        }
        guard case .object(let object) = value else {
            throw ControlError(.usage, "--cap-args must be a JSON object keyed by capability, such as '{\"portMappings\":[...]}'")
        }
        return object
    }
}
