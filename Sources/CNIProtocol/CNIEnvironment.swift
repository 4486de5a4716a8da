/// The operation a runtime asks for in `CNI_COMMAND`.
public enum CNICommand: String, Sendable, CaseIterable {
    case add = "ADD"
    case del = "DEL"
    case check = "CHECK"
    case version = "VERSION"
    case status = "STATUS"
    case gc = "GC"
}

extension CNICommand {
    /// The command spelled exactly `text`. A switch over the names, not `init(rawValue:)`, whose
    /// synthesized lookup builds an array of them at run time on every call.
    public static func named(_ text: String) -> CNICommand? {
        switch text {
        case "ADD": .add
        case "DEL": .del
        case "CHECK": .check
        case "VERSION": .version
        case "STATUS": .status
        case "GC": .gc
        default: nil
        }
    }
}

/// The `CNI_*` variables of one invocation, checked against the spec's conventions.
public struct CNIEnvironment: Sendable, Equatable {
    public var command: CNICommand
    /// Empty only for VERSION, STATUS and GC, which act on no attachment.
    public var containerID: String
    /// The pod's netns path; empty when the runtime sent none (allowed for DEL).
    public var netns: String
    public var ifname: String
    /// `CNI_ARGS` pairs in order ("IgnoreUnknown=1;IP=10.244.1.9").
    public var args: [(key: String, value: String)]
    /// `CNI_PATH` directories, searched in order for delegated plugins.
    public var path: [String] { pathVariable.split(separator: ":").map(String.init) }
    /// `CNI_PATH` as given; split only when a plugin delegates, which most invocations do not.
    public var pathVariable: String

    public init(command: CNICommand, containerID: String = "", netns: String = "", ifname: String = "",
                args: [(key: String, value: String)] = [], path: [String] = []) {
        self.command = command
        self.containerID = containerID
        self.netns = netns
        self.ifname = ifname
        self.args = args
        self.pathVariable = path.joined(separator: ":")
    }

    private init(command: CNICommand, containerID: String, netns: String, ifname: String, pathVariable: String) {
        self.command = command
        self.containerID = containerID
        self.netns = netns
        self.ifname = ifname
        self.args = []
        self.pathVariable = pathVariable
    }

    public static func == (lhs: CNIEnvironment, rhs: CNIEnvironment) -> Bool {
        lhs.command == rhs.command && lhs.containerID == rhs.containerID && lhs.netns == rhs.netns
            && lhs.ifname == rhs.ifname && lhs.path == rhs.path
            && lhs.args.map { "\($0.key)=\($0.value)" } == rhs.args.map { "\($0.key)=\($0.value)" }
    }

    /// Reads and checks the variables. Every problem is reported at once, as code 4, so a person
    /// fixing a runtime's invocation sees all that is wrong in one error.
    public static func parse(_ variables: [String: String]) throws(CNIError) -> CNIEnvironment {
        try parse { variables[$0] }
    }

    /// `parse` over a lookup of single variables (`getenv`): a plugin process reads the six it
    /// needs rather than building a dictionary of its whole environment on every start.
    public static func parse(_ variable: (String) -> String?) throws(CNIError) -> CNIEnvironment {
        guard let commandText = variable("CNI_COMMAND"), !commandText.isEmpty else {
            throw CNIError(.invalidEnvironment, "required env variables [CNI_COMMAND] missing",
                           details: "set CNI_COMMAND to one of \(CNICommand.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let command = CNICommand.named(commandText) else {
            throw CNIError(.invalidEnvironment, "unknown CNI_COMMAND: \(commandText)",
                           details: "expected one of \(CNICommand.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var environment = CNIEnvironment(command: command, containerID: variable("CNI_CONTAINERID") ?? "",
                                          netns: variable("CNI_NETNS") ?? "", ifname: variable("CNI_IFNAME") ?? "",
                                          pathVariable: variable("CNI_PATH") ?? "")

        // Checked one by one, without a list of the names: each distinct array type is one more
        // generic type the runtime builds on every start.
        let needsNetns = command == .add || command == .check
        let needsAttachment = needsNetns || command == .del
        if needsAttachment {
            var missing: [String] = []
            if environment.containerID.isEmpty { missing.append("CNI_CONTAINERID") }
            if needsNetns && environment.netns.isEmpty { missing.append("CNI_NETNS") }
            if environment.ifname.isEmpty { missing.append("CNI_IFNAME") }
            if !missing.isEmpty {
                throw CNIError(.invalidEnvironment, "required env variables [\(missing.joined(separator: ","))] missing",
                               details: "\(command.rawValue) needs "
                                   + (needsNetns ? "CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME" : "CNI_CONTAINERID, CNI_IFNAME"))
            }
            if let problem = containerIDProblem(environment.containerID) {
                throw CNIError(.invalidEnvironment, "invalid CNI_CONTAINERID \"\(environment.containerID)\": \(problem)",
                               details: "a container ID matches ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
            }
            if let problem = interfaceNameProblem(environment.ifname) {
                throw CNIError(.invalidEnvironment, "invalid CNI_IFNAME \"\(environment.ifname)\": \(problem)",
                               details: "an interface name has 1 to 15 characters, is not \".\" or \"..\" and has no \"/\", \":\" or whitespace")
            }
            if !environment.netns.isEmpty && !environment.netns.hasPrefix("/") {
                throw CNIError(.invalidEnvironment, "invalid CNI_NETNS \"\(environment.netns)\": not an absolute path",
                               details: "CNI_NETNS names a network namespace file such as /run/netns/<name>")
            }
        }
        environment.args = try parseArgs(variable("CNI_ARGS") ?? "")
        return environment
    }

    /// Why `id` is not a valid container ID, or nil when it is (the spec's `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`).
    public static func containerIDProblem(_ id: String) -> String? {
        guard let first = id.utf8.first else { return "empty" }
        func alphanumeric(_ byte: UInt8) -> Bool {
            (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
        }
        guard alphanumeric(first) else { return "must start with a letter or digit" }
        guard id.utf8.allSatisfy({ alphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }) else {
            return "invalid characters (allowed: letters, digits, _ . -)"
        }
        return nil
    }

    /// Why `name` is not a valid Linux interface name, or nil when it is.
    public static func interfaceNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "empty" }
        if name.utf8.count > 15 { return "longer than 15 bytes" }
        if name == "." || name == ".." { return "reserved name" }
        if name.utf8.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 32 || $0 == 127 }) {
            return "contains \"/\", \":\" or whitespace"
        }
        return nil
    }

    /// Splits on the ";" and "=" bytes, not on Characters: Swift's Character comparison treats
    /// U+037E (Greek question mark) as ";", and CNI_ARGS must split exactly where Go splits it.
    static func parseArgs(_ text: String) throws(CNIError) -> [(key: String, value: String)] {
        var pairs: [(key: String, value: String)] = []
        for item in text.utf8.split(separator: UInt8(ascii: ";")) where !item.isEmpty {
            guard let equals = item.firstIndex(of: UInt8(ascii: "=")), equals != item.startIndex else {
                throw CNIError(.invalidEnvironment, "invalid CNI_ARGS pair \"\(String(decoding: item, as: UTF8.self))\"",
                               details: "CNI_ARGS is KEY=VALUE pairs separated by \";\"")
            }
            pairs.append((String(decoding: item[..<equals], as: UTF8.self),
                          String(decoding: item[item.index(after: equals)...], as: UTF8.self)))
        }
        return pairs
    }

    /// The value of `key` in CNI_ARGS, if present.
    public func arg(_ key: String) -> String? {
        // Byte comparison: "K" and the Kelvin sign are equal as Strings, not as keys.
        args.last { $0.key.utf8.elementsEqual(key.utf8) }?.value
    }
}
