import Foundation
import Testing

/// Networks written as JSON text, so that a table row shows exactly what a runtime would send
/// (including what JSONSerialization would refuse to produce: broken JSON, a NUL in a name).
enum InputNetwork {
    /// Everything podwire-ipam stores lives under this root; a network name that escapes dataDir
    /// would land beside `networks`, still inside the root, and show up in `NodeLeftovers`.
    static let storeRoot = "/run/cni-ipam"
    static let dataDir = "\(storeRoot)/networks"
    /// The store directory of the default network.
    static let store = "\(dataDir)/kindnet"
    /// Where the store tests point their symlinks; it holds `precious`, which must never change.
    static let outside = "/run/outside"

    static let v4Range = #"[{"subnet":"10.244.1.0/24"}]"#
    static let v6Range = #"[{"subnet":"fd00:10:244:1::/64"}]"#

    /// The Kindnet network for `podwire` + `podwire-ipam`; `ipam` members replace the defaults
    /// (ranges, routes, dataDir) key by key, `extra` is spliced into the top level.
    static func kindnet(name: String = "kindnet", ranges: String = "[\(v4Range)]",
                        routes: String = #"[{"dst":"0.0.0.0/0"}]"#, dataDir: String = dataDir,
                        extra: String = "") -> String {
        #"{"cniVersion":"1.0.0","name":"\#(name)","type":"podwire","mtu":1500,"#
            + #""ipam":{"type":"podwire-ipam","dataDir":"\#(dataDir)","ranges":\#(ranges),"routes":\#(routes)}"#
            + extra + "}"
    }

    /// One IPv4 set (10.244.1.0/24) and one IPv6 set (fd00:10:244:1::/64), default routes for both.
    static func dualStack(extra: String = "") -> String {
        kindnet(ranges: "[\(v4Range),\(v6Range)]", routes: #"[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]"#, extra: extra)
    }

    static let podwire = PluginUnderTest.podwire
}

/// Everything on a node that a failed ADD could leave behind: links, addresses and routes of the
/// node and of each pod (both families), every file under the IPAM store root except podwire's
/// and host-local's bookkeeping, the top of /run, and the symlink targets' directory.
struct NodeLeftovers: Equatable, CustomStringConvertible {
    var nodeLinks: [String]
    var nodeAddresses: [String]
    var nodeRoutes: [String]
    var pods: [String: [String]]
    var storeFiles: [String]
    var run: [String]
    var outside: [String]

    var description: String {
        """
        node links: \(nodeLinks)
        node addresses: \(nodeAddresses)
        node routes: \(nodeRoutes)
        pods: \(pods)
        store files: \(storeFiles)
        /run: \(run)
        \(InputNetwork.outside): \(outside)
        """
    }

    /// What differs between two snapshots, one line per field, for failure messages.
    func difference(to other: NodeLeftovers) -> String {
        let mirror = Mirror(reflecting: self), otherMirror = Mirror(reflecting: other)
        return zip(mirror.children, otherMirror.children).compactMap { mine, theirs in
            let a = String(describing: mine.value), b = String(describing: theirs.value)
            return a == b ? nil : "\(mine.label ?? "?"):\n  before: \(a)\n  after:  \(b)"
        }.joined(separator: "\n")
    }
}

extension TestNode {
    /// Runs a shell script in the node (as root of its user namespace); throws when it fails.
    @discardableResult
    func shell(_ script: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try check(["sh", "-euc", script])
    }

    /// Lines of `ip <args>` with runs of blanks squeezed, node or pod.
    func ipLines(_ args: [String], inPod pod: String? = nil) throws -> [String] {
        try check(["ip"] + args, inPod: pod)
            .split(separator: "\n")
            .map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
            .filter { !$0.isEmpty }
    }

    /// Files (not directories) below `root`, relative to it, with their type; nothing when `root`
    /// does not exist. Any other failure to look throws.
    func filesBelow(_ root: String) throws -> [String] {
        guard try fileExists(root) else { return [] }
        return try check(["find", root, "-mindepth", "1", "!", "-type", "d", "-printf", "%P (%y)\\n"])
            .split(separator: "\n").map(String.init).sorted()
    }

    /// One script, one process in the node: a snapshot is taken twice per table row, and spawning
    /// an `ip` per field would make the suites several times slower.
    func leftovers(pods: [String]) throws -> NodeLeftovers {
        // Link-local IPv6 addresses and their local-table routes appear as DAD ends: time, not change.
        func netState(_ ip: String) -> String {
            """
            echo @links; \(ip) -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
            echo @addresses; \(ip) -o address show | awk '{print $2 " " $4}' | sed '/ fe80:/d' | sort
            echo @routes; { \(ip) -4 route show table all; \(ip) -6 route show table all; } | sed '/fe80:/d; s/  */ /g; s/ *$//'
            """
        }
        // lock, the index stamp and the round-robin cursors are bookkeeping: an ADD refused after
        // opening the store may create the first two, and host-local advances the cursor too.
        // bash with -euo pipefail: a probe that fails fails the snapshot; only a directory that
        // does not exist (ENOENT, said by stat) reads as empty.
        let script = """
            set -euo pipefail
            \(Self.existsFunction)
            echo @node; \(netState("ip"))
            \(pods.map { "echo '@pod \($0)'; \(netState("ip -n \($0)"))" }.joined(separator: "\n"))
            echo @store
            if exists \(InputNetwork.storeRoot); then
                find \(InputNetwork.storeRoot) -mindepth 1 ! -type d -printf '%P (%y)\\n' \\
                    | sed '/\\/lock (/d; /\\.podwire\\/stamp (/d; /last_reserved_ip\\.[0-9]* (/d' | sort
            fi
            echo @run; ls -1A /run | sort
            echo @outside
            if exists \(InputNetwork.outside); then
                find \(InputNetwork.outside) -mindepth 1 ! -type d -printf '%P (%y)\\n' | sort
            fi
            """
        var sections: [String: [String]] = [:]
        var current = ""
        for line in try check(["bash", "-c", script]).split(separator: "\n").map(String.init) {
            if line.hasPrefix("@") && ["@node", "@pod ", "@store", "@run", "@outside"].contains(where: line.hasPrefix) {
                current = String(line.dropFirst())
                continue
            }
            if ["@links", "@addresses", "@routes"].contains(line) {
                let owner = current.split(separator: "/").first.map(String.init) ?? current
                current = owner + "/" + line.dropFirst()
                continue
            }
            sections[current, default: []].append(line)
        }
        var podState: [String: [String]] = [:]
        for pod in pods {
            podState[pod] = ["links", "addresses", "routes"].flatMap { sections["pod \(pod)/\($0)"] ?? [] }
        }
        return NodeLeftovers(
            nodeLinks: sections["node/links"] ?? [],
            nodeAddresses: sections["node/addresses"] ?? [],
            nodeRoutes: sections["node/routes"] ?? [],
            pods: podState,
            storeFiles: sections["store"] ?? [],
            run: sections["run"] ?? [],
            outside: sections["outside"] ?? [])
    }

    /// A bash function `exists PATH`: true when it exists, false when stat says ENOENT, and the
    /// script fails (naming the path) for anything else.
    static let existsFunction = #"""
        exists() {
            local out
            if out=$(LC_ALL=C stat -L -c %F -- "$1" 2>&1); then return 0; fi
            case $out in
            *": No such file or directory") return 1 ;;
            *) echo "cannot tell whether $1 exists: $out" >&2; exit 1 ;;
            esac
        }
        """#

    /// IPv6 routes of a pod's or the node's main table as (dst, gateway, dev), link-local ones left out.
    func ipv6Routes(inPod pod: String? = nil) throws -> [RouteInfo] {
        try ipJSON([RouteInfo].self, ["-6", "route", "show"], inPod: pod).filter { !$0.dst.hasPrefix("fe80:") }
    }

    /// The raw `addr_info` objects of one interface (every family), flags such as "tentative" included.
    func addressInfo(of ifname: String, inPod pod: String? = nil) throws -> [[String: Any]] {
        try ipObjects(["address", "show", "dev", ifname], inPod: pod).flatMap { $0["addr_info"] as? [[String: Any]] ?? [] }
    }
}

/// One invocation of the real binary with full control of the environment: a key mapped to nil is
/// left out, so a missing CNI_COMMAND can be sent too.
struct RawInvocation {
    var environment: [String: String]
    var stdin: Data

    /// ADD of pod-a's eth0, as a runtime sends it, with `config` on stdin.
    static func add(pod: String = "pod-a", containerID: String? = nil, args: String? = nil, config: String,
                    plugin: PluginUnderTest = InputNetwork.podwire) -> RawInvocation {
        var environment = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": containerID ?? pod,
                           "CNI_NETNS": "/run/netns/\(pod)", "CNI_IFNAME": "eth0", "CNI_PATH": plugin.cniPath]
        environment["CNI_ARGS"] = args
        return RawInvocation(environment: environment, stdin: Data(config.utf8))
    }

    func with(_ changes: [String: String?]) -> RawInvocation {
        var copy = self
        for (key, value) in changes { copy.environment[key] = value }
        return copy
    }

    func run(on node: TestNode, plugin: PluginUnderTest = InputNetwork.podwire,
             sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        let binary = try plugin.requireBinary(sourceLocation: sourceLocation)
        let result = try node.run([binary], environment: environment, stdin: stdin)
        if result.timedOut { Issue.record("plugin timed out: \(result)", sourceLocation: sourceLocation) }
        if environment["CNI_COMMAND"] == "ADD" && result.succeeded { try node.settleLinks() }
        return CNIResponse(command: environment["CNI_COMMAND"] ?? "(none)", result: result)
    }
}

/// The contract for every refused input: exit status 1 (not a crash, not 0), exactly one error
/// object on stdout with `cniVersion`, the expected code and a message naming what is wrong, and
/// the node exactly as it was before.
func expectRefused(_ response: CNIResponse, code: Int, mentions: [String], node: TestNode,
                   before: NodeLeftovers, pods: [String],
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    let cni = CNIRunner(node: node, plugin: InputNetwork.podwire)
    let error = try cni.expectFailure(response, sourceLocation: sourceLocation)
    #expect(response.status == 1, "exit status \(response.status): \(response)", sourceLocation: sourceLocation)
    #expect(error.code == code, "code \(error.code), expected \(code): \(response)", sourceLocation: sourceLocation)
    #expect(error.cniVersion?.isEmpty == false, "error without cniVersion: \(response)", sourceLocation: sourceLocation)
    let text = error.msg + " " + (error.details ?? "")
    for fragment in mentions {
        #expect(text.contains(fragment), "message should mention \"\(fragment)\": \(response)", sourceLocation: sourceLocation)
    }
    let after = try node.leftovers(pods: pods)
    #expect(after == before, "the refused ADD left something behind:\n\(before.difference(to: after))",
            sourceLocation: sourceLocation)
}
