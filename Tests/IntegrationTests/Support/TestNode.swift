import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a command run inside a node printed, and how it ended.
struct CommandResult: Sendable, CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    /// Set when the harness killed the command because it outlived its timeout.
    var timedOut = false

    var succeeded: Bool { status == 0 && !timedOut }

    var description: String {
        "exit \(status)\(timedOut ? " (killed after timeout)" : "")\nstdout: \(stdout)\nstderr: \(stderr)"
    }
}

enum TestNodeError: Error, CustomStringConvertible {
    case toolMissing(String)
    case holderFailed(String)
    case commandFailed(argv: [String], result: CommandResult)
    case unexpectedOutput(argv: [String], output: String, reason: String)
    /// A probe could not tell whether something exists: it failed for another reason than ENOENT.
    case probeFailed(path: String, result: CommandResult)
    case systemCall(String, errno: Int32)

    var description: String {
        switch self {
        case .toolMissing(let tool): "required tool \(tool) not found"
        case .holderFailed(let why): "could not start the node's namespace holder: \(why)"
        case .commandFailed(let argv, let result): "`\(argv.joined(separator: " "))` failed: \(result)"
        case .unexpectedOutput(let argv, let output, let reason):
            "`\(argv.joined(separator: " "))`: \(reason)\noutput: \(output)"
        case .probeFailed(let path, let result): "cannot tell whether \(path) exists: \(result)"
        case .systemCall(let call, let code): "\(call) failed: \(String(cString: strerror(code))) (errno \(code))"
        }
    }
}

// MARK: - `ip -j` output

/// One entry of `ip -j link show`.
struct LinkInfo: Decodable, Sendable {
    var ifindex: Int
    var ifname: String
    var flags: [String]
    var mtu: Int
    var operstate: String?
    var address: String?
    var linkType: String?

    /// Administratively up and with carrier. `operstate` is not used because the kernel updates it
    /// asynchronously (linkwatch), so it can still say DOWN right after a plugin returns.
    var isUp: Bool { flags.contains("UP") && flags.contains("LOWER_UP") }
}

/// One `addr_info` element of `ip -j address show`.
struct AddressInfo: Decodable, Sendable, Hashable {
    var family: String
    var local: String
    var prefixlen: Int
    var scope: String?

    var cidr: String { "\(local)/\(prefixlen)" }
}

private struct LinkAddresses: Decodable {
    var ifname: String
    var addrInfo: [AddressInfo]
}

/// One entry of `ip -j route show` / `ip -j route get`. `scope` and `protocol` are absent when
/// they have their default values (universe; boot), as in ip(8)'s text output.
struct RouteInfo: Decodable, Sendable, Hashable {
    var dst: String
    var gateway: String?
    var dev: String?
    var scope: String?
    var prefsrc: String?
    var `protocol`: String?
    var metric: Int?
}

/// One entry of `ip -j neigh show`. Entries still resolving have no `lladdr`.
struct NeighbourInfo: Decodable, Sendable, Hashable {
    var dst: String
    var dev: String?
    var lladdr: String?
    var state: [String]?
}

/// A private "Kubernetes node": a user, network and mount namespace owned by a holder process, with
/// a tmpfs on /run so `ip netns add` and IPAM state live and die with it.
///
/// Nothing run through a node can touch this machine's own network: every command enters the node's
/// namespaces first, and pods are network namespaces created inside the node.
final class TestNode {
    /// The holder's PID: the process whose namespaces `nsenter -t` joins.
    let pid: Int32
    /// Kept to ask whether the holder still runs before signalling its PID.
    private let holder: ChildProcess
    /// The holder reads its stdin and exits on EOF, so the node also dies if the test process
    /// crashes before `close()` runs.
    private var closed = false

    static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// Whether the node is a user namespace of its own (the default) or, for real runtimes that
    /// need real root (containerd, podman), only a network + mount namespace of this root's.
    let realRoot: Bool

    /// A node whose namespaces are private; `realRoot` keeps the machine's user namespace, for
    /// runtimes that refuse to run in another, and also puts an empty tmpfs on /var/lib, with one
    /// of its own on /var/lib/cni, where runtimes keep CNI results and IPAM state by default:
    /// nothing a runtime writes there by default reaches the machine's disk.
    init(realRoot: Bool = false) throws {
        self.realRoot = realRoot
        // Fails naming the cause when this machine cannot make the namespaces at all.
        try (realRoot ? Requirement.realRoot : Requirement.namespaces).require()
        // set -e: a node without /run or a working lo would make later failures misleading.
        var setup = [
            "set -e",
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            "mkdir -p /run/netns",
        ]
        if realRoot {
            // /var/lib/cni may not exist on this machine: a tmpfs on /var/lib first, so the mount
            // point is made in the node, not on the machine's disk; /var/lib/cni is a tmpfs of its
            // own, so a kit may make the rest of /var/lib read-only without touching it.
            setup += ["mount -t tmpfs -o mode=0755 tmpfs /var/lib", "mkdir /var/lib/cni",
                      "mount -t tmpfs -o mode=0755 tmpfs /var/lib/cni"]
        }
        setup += [
            "ip link set lo up",
            "echo ready",
            "exec cat >/dev/null",
        ]
        let process = try ChildProcess(executable: try Self.tool("unshare"),
                                       arguments: [realRoot ? "-nm" : "-Urnm", "--propagation", "private", "sh", "-c",
                                                   setup.joined(separator: "; ")],
                                       environment: ["PATH": Self.defaultPath, "LC_ALL": "C"])

        // Read only up to "ready": the holder keeps stdout open for its whole life.
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("ready\n") {
            let chunk = try Self.readSome(process.stdoutFD)
            if chunk.isEmpty {
                Foundation.close(process.stdinFD)
                let status = (try? process.waitForExit()).map(String.init) ?? "unknown (waitpid failed)"
                let why = String(decoding: (try? Self.readToEnd(process.stderrFD)) ?? Data("(stderr unreadable)".utf8), as: UTF8.self)
                Foundation.close(process.stdoutFD)
                Foundation.close(process.stderrFD)
                throw TestNodeError.holderFailed("exit \(status): \(why)")
            }
            seen.append(chunk)
        }
        self.holder = process
        self.pid = process.pid
    }

    deinit { close() }

    /// Kills whatever the node started that still runs, then the holder; the kernel then frees the
    /// namespaces, the pods' netns bind mounts (they live in the node's mount namespace), every
    /// veth and the /run tmpfs.
    func close() {
        guard !closed else { return }
        closed = true
        killEverythingInside()
        // Kill before closing the lifeline: once the holder exits on EOF and is reaped, its PID
        // could belong to another process by the time kill() runs.
        if holder.isRunning { kill(pid, SIGKILL) }
        // Nothing to report to from close(); the holder was SIGKILLed either way.
        _ = try? holder.waitForExit()
        Foundation.close(holder.stdinFD)
        Foundation.close(holder.stdoutFD)
        Foundation.close(holder.stderrFD)
    }

    /// SIGKILLs every process started in the node that outlived its command (a runtime's daemon
    /// and shims, a listener in the background) and everything those started, even in namespaces
    /// of their own (a pod's pause): any of them would keep the node's namespaces alive after
    /// the holder is gone. The holder itself is left to `close`.
    private func killEverythingInside() {
        for _ in 0..<100 {
            let doomed = processesInside()
            if doomed.isEmpty { return }
            for process in doomed { kill(process, SIGKILL) }
            usleep(20_000)
        }
    }

    /// Processes started in the node that still run, and everything they started (a container's
    /// processes have mount and network namespaces of their own), the holder and zombies (gone in
    /// all but name, their parent has yet to reap them) left out.
    func processesInside() -> [Int32] {
        let files = FileManager.default
        guard let nodeMounts = try? files.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt"),
              let ownMounts = try? files.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt"),
              nodeMounts != ownMounts
        else { return [] }
        var parent: [Int32: Int32] = [:]
        var inside = Set<Int32>()
        for entry in (try? files.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let process = Int32(entry), process != pid, process != getpid(),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let afterName = stat.lastIndex(of: ")")
            else { continue }
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let fields = stat[stat.index(after: afterName)...].split(separator: " ")
            if fields.first == "Z" { continue }
            if fields.count > 1, let ppid = Int32(fields[1]) { parent[process] = ppid }
            if (try? files.destinationOfSymbolicLink(atPath: "/proc/\(entry)/ns/mnt")) == nodeMounts { inside.insert(process) }
        }
        var grew = true
        while grew {
            grew = false
            for (process, ppid) in parent where !inside.contains(process) && inside.contains(ppid) {
                inside.insert(process)
                grew = true
            }
        }
        return inside.sorted()
    }

    /// "pid comm: command line", for messages about a process.
    static func describeProcess(_ process: Int32) -> String {
        let comm = (try? String(contentsOfFile: "/proc/\(process)/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
        let command = ((try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(process)/cmdline"))) ?? Data())
            .split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
        return "\(process) \(comm): \(command.prefix(200))"
    }

    // MARK: Running commands

    /// Runs `argv` inside the node's user, network and mount namespaces.
    ///
    /// The environment is exactly PATH, LC_ALL=C and `environment`: nothing of the test process
    /// (CNI_* variables in particular) leaks into what a plugin sees.
    func run(_ argv: [String], environment: [String: String] = [:], stdin: Data? = nil,
             timeout: TimeInterval = 30) throws -> CommandResult {
        precondition(!closed, "node already closed")
        // --preserve-credentials: without it nsenter calls setgroups(), which an unprivileged user
        // namespace forbids (setgroups is "deny" there).
        let nsenterArgs = (realRoot ? ["-t", String(pid), "-n", "-m", "--"]
                                    : ["--preserve-credentials", "-t", String(pid), "-U", "-n", "-m", "--"]) + argv
        var env = ["PATH": Self.defaultPath, "LC_ALL": "C"]
        env.merge(environment) { _, new in new }
        return try Self.execute(try Self.tool("nsenter"), nsenterArgs, environment: env, stdin: stdin,
                                timeout: timeout)
    }

    /// Runs `argv` inside a pod's network namespace (still in the node's user and mount namespaces).
    func podRun(_ pod: String, _ argv: [String], environment: [String: String] = [:], stdin: Data? = nil,
                timeout: TimeInterval = 30) throws -> CommandResult {
        try run(["nsenter", "--net=\(netnsPath(pod))", "--"] + argv, environment: environment, stdin: stdin,
                timeout: timeout)
    }

    /// Like `run`, but throws unless the command exits 0; returns its stdout.
    @discardableResult
    func check(_ argv: [String], inPod pod: String? = nil) throws -> String {
        let result = try pod.map { try podRun($0, argv) } ?? run(argv)
        guard result.succeeded else { throw TestNodeError.commandFailed(argv: argv, result: result) }
        return result.stdout
    }

    // MARK: Pods

    func netnsPath(_ pod: String) -> String { "/run/netns/\(pod)" }

    /// Creates a pod network namespace inside the node and returns its path (what a runtime passes
    /// as CNI_NETNS). Its `lo` stays down, as a runtime leaves it before CNI runs.
    @discardableResult
    func addPod(_ name: String) throws -> String {
        try check(["ip", "netns", "add", name])
        return netnsPath(name)
    }

    /// Deletes a pod namespace as a runtime does when the sandbox goes away.
    func removePod(_ name: String) throws {
        try check(["ip", "netns", "delete", name])
    }

    // MARK: ip(8)

    /// `ip <args>` in the node; returns stdout, throws on failure.
    @discardableResult
    func ip(_ args: String...) throws -> String { try check(["ip"] + args) }

    /// `ip <args>` in a pod; returns stdout, throws on failure.
    @discardableResult
    func podIP(_ pod: String, _ args: String...) throws -> String { try check(["ip"] + args, inPod: pod) }

    /// Runs `ip -j <args>` (node, or pod when given) and decodes its JSON.
    func ipJSON<T: Decodable>(_ type: T.Type, _ args: [String], inPod pod: String? = nil) throws -> T {
        let argv = ["ip", "-j"] + args
        let text = try check(argv, inPod: pod)
        // ip prints nothing at all (not "[]") for some empty dumps.
        let data = Data((text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? "[]" : text).utf8)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode(T.self, from: data)
        } catch {
            throw TestNodeError.unexpectedOutput(argv: argv, output: text, reason: "cannot decode: \(error)")
        }
    }

    /// Raw `ip -j` output as JSON objects, for fields the typed helpers do not carry.
    func ipObjects(_ args: [String], inPod pod: String? = nil) throws -> [[String: Any]] {
        let argv = ["ip", "-j"] + args
        let text = try check(argv, inPod: pod)
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return [] }
        guard let objects = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else {
            throw TestNodeError.unexpectedOutput(argv: argv, output: text, reason: "not an array of objects")
        }
        return objects
    }

    func links(inPod pod: String? = nil) throws -> [LinkInfo] {
        try ipJSON([LinkInfo].self, ["link", "show"], inPod: pod)
    }

    /// The named link, or nil when it does not exist.
    func link(_ name: String, inPod pod: String? = nil) throws -> LinkInfo? {
        try links(inPod: pod).first { $0.ifname == name }
    }

    /// Addresses on an interface; IPv4 only unless `family` says otherwise ("inet6", or nil for all).
    func addresses(of ifname: String, inPod pod: String? = nil, family: String? = "inet") throws -> [AddressInfo] {
        let all = try ipJSON([LinkAddresses].self, ["address", "show"], inPod: pod)
        return all.filter { $0.ifname == ifname }.flatMap(\.addrInfo).filter { family == nil || $0.family == family }
    }

    /// IPv4 routes of the main table.
    func routes(inPod pod: String? = nil) throws -> [RouteInfo] {
        try ipJSON([RouteInfo].self, ["-4", "route", "show"], inPod: pod)
    }

    /// `ip -4 route show` as trimmed lines with single spaces, comparable to what the article prints.
    func routeLines(inPod pod: String? = nil) throws -> [String] {
        try check(["ip", "-4", "route", "show"], inPod: pod)
            .split(separator: "\n")
            .map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
            .filter { !$0.isEmpty }
    }

    /// The kernel's routing decision for `address` (`ip route get`).
    func routeGet(_ address: String, inPod pod: String? = nil) throws -> RouteInfo {
        let routes = try ipJSON([RouteInfo].self, ["route", "get", address], inPod: pod)
        guard let route = routes.first else {
            throw TestNodeError.unexpectedOutput(argv: ["ip", "route", "get", address], output: "[]",
                                                 reason: "no route returned")
        }
        return route
    }

    /// IPv4 neighbour (ARP) entries.
    func neighbours(inPod pod: String? = nil) throws -> [NeighbourInfo] {
        try ipJSON([NeighbourInfo].self, ["-4", "neigh", "show"], inPod: pod)
    }

    // MARK: Files and probes

    /// A file's contents as the node (or a pod) sees them, or nil if it does not exist (ENOENT);
    /// any other failure to read it throws, so "absent" always means absent.
    func readFile(_ path: String, inPod pod: String? = nil) throws -> String? {
        let result = try pod.map { try podRun($0, ["cat", "--", path]) } ?? run(["cat", "--", path])
        if result.succeeded { return result.stdout }
        if Self.saysNoSuchFile(result, tool: "cat", path: path) { return nil }
        throw TestNodeError.probeFailed(path: path, result: result)
    }

    /// Whether `path` exists in the node (following symlinks, as test -e does); throws when it
    /// cannot be told (anything but ENOENT).
    func fileExists(_ path: String) throws -> Bool {
        let result = try run(["stat", "-L", "-c", "%F", "--", path])
        if result.succeeded { return true }
        if Self.saysNoSuchFile(result, tool: "stat", path: path) { return false }
        throw TestNodeError.probeFailed(path: path, result: result)
    }

    /// Names in a directory of the node, sorted; empty if the directory does not exist (ENOENT).
    func listDirectory(_ path: String) throws -> [String] {
        guard try fileExists(path) else { return [] }
        let result = try run(["ls", "-1A", "--", path])
        guard result.succeeded else { throw TestNodeError.probeFailed(path: path, result: result) }
        return result.stdout.split(separator: "\n").map(String.init).sorted()
    }

    /// Whether `tool` failed only because `path` does not exist: one line on stderr from the tool
    /// itself (not from nsenter, whose pod namespace might be the thing missing) naming the path and
    /// ending in strerror(ENOENT) (the node runs with LC_ALL=C).
    static func saysNoSuchFile(_ result: CommandResult, tool: String, path: String) -> Bool {
        let message = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        return !result.timedOut && result.status == 1 && !message.contains("\n")
            && message.hasPrefix("\(tool): ") && message.contains(path)
            && message.hasSuffix(": No such file or directory")
    }

    /// A per-netns sysctl read through /proc/sys (which shows the reader's network namespace).
    func sysctl(_ key: String, inPod pod: String? = nil) throws -> String? {
        try readFile("/proc/sys/" + key.replacingOccurrences(of: ".", with: "/"), inPod: pod)?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits until the kernel has done the work it defers after an ADD, in the node and every pod:
    ///
    /// - its linkwatch worker, after a link gains carrier: until then routes added while the link
    ///   had none say `linkdown`, and the first veth end brought up (the pod's, whose routes are
    ///   added before the host end comes up) drops every packet it sends, its queue not yet
    ///   activated; the same run of the worker does both;
    /// - IPv6 address configuration, which for an address added without DAD still runs from a
    ///   work item: until then the address is `tentative` and has no local route.
    ///
    /// Both workers take the global rtnl lock, so on a node busy with other namespaces' veths (the
    /// suites run in parallel) they can lag by hundreds of milliseconds. Not a timed check: it
    /// waits for that work to be done, for at most `timeout` seconds, and throws only if it never
    /// is. What the kernel does not owe (a link down or without carrier, DAD that is really
    /// probing) is left as it is for the test to judge, and so is operstate, which linkwatch may
    /// update up to a second later by design (a veth whose peer has the same ifindex in its own
    /// namespace is not an urgent event) and which no packet depends on.
    func settleLinks(timeout: TimeInterval = 10) throws {
        let script = #"""
            set -euo pipefail
            for ns in "" $(ls /run/netns); do
                ipn=(ip)
                if [ -n "$ns" ]; then ipn=(ip -n "$ns"); fi
                echo "@ns $ns"
                printf 'link show\naddress show\nroute show table all\n' | "${ipn[@]}" -o -batch -
            done
            """#
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let pending = Self.deferredWorkPending(try check(["bash", "-c", script]))
            if pending.isEmpty { return }
            guard Date() < deadline else {
                throw TestNodeError.unexpectedOutput(argv: ["settleLinks"], output: pending.joined(separator: "\n"),
                                                     reason: "the kernel's deferred link work was still not done after \(timeout) s")
            }
            usleep(10_000)
        }
    }

    /// What the kernel's deferred work still owes in `ip -o -batch` output (links, addresses,
    /// routes) grouped under "@ns" lines: `linkdown` routes on links with carrier, and IPv6
    /// addresses added without DAD still tentative.
    static func deferredWorkPending(_ output: String) -> [String] {
        var pending: [String] = []
        var namespace = "", withCarrier = Set<Substring>()
        for line in output.split(separator: "\n") {
            if line.hasPrefix("@ns") {
                namespace = String(line.dropFirst(3)).trimmingCharacters(in: .whitespaces)
                withCarrier = []
            } else if let match = line.firstMatch(of: /^\d+: ([^:@ ]+)[^:]*: <([^>]*)>/) {
                let flags = match.2.split(separator: ",")
                if flags.contains("UP") && flags.contains("LOWER_UP") { withCarrier.insert(match.1) }
            } else if line.contains(" inet6 ") && line.contains(" tentative") && line.contains(" nodad") {
                pending.append("\(namespace): \(line)")
            } else if line.contains(" linkdown"), let device = line.firstMatch(of: /\sdev (\S+)/)?.1, withCarrier.contains(device) {
                pending.append("\(namespace): \(line)")
            }
        }
        return pending
    }

    /// One ICMP echo from a pod, waiting at most `wait` seconds for the reply.
    func ping(from pod: String, to address: String, wait: Int = 2) throws -> CommandResult {
        try podRun(pod, ["ping", "-n", "-c1", "-W\(wait)", address], timeout: TimeInterval(wait + 10))
    }

    // MARK: Process plumbing

    /// One read(2), retrying EINTR; empty at end of file. Any other error throws: a pipe that
    /// cannot be read must not look like a command that printed nothing.
    static func readSome(_ fd: Int32) throws -> Data {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count >= 0 { return Data(buffer[0..<count]) }
            if errno != EINTR { throw TestNodeError.systemCall("read", errno: errno) }
        }
    }

    /// read(2) until end of file, retrying EINTR (FileHandle.readDataToEndOfFile traps on an
    /// interrupted read, and a child's SIGCHLD can arrive at any moment here); throws on any other error.
    static func readToEnd(_ fd: Int32) throws -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                data.append(contentsOf: buffer[0..<count])
            } else if count == 0 {
                return data
            } else if errno != EINTR {
                throw TestNodeError.systemCall("read", errno: errno)
            }
        }
    }

    /// Without this, writing the config to a plugin that already exited would kill the test process.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    static func tool(_ name: String) throws -> String {
        for dir in defaultPath.split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw TestNodeError.toolMissing(name)
    }

    /// Runs an executable to completion, collecting stdout and stderr concurrently so neither pipe
    /// can fill up and stall the child.
    static func execute(_ executable: String, _ arguments: [String], environment: [String: String],
                        stdin: Data? = nil, timeout: TimeInterval) throws -> CommandResult {
        let process = try ChildProcess(executable: executable, arguments: arguments, environment: environment)

        // Blocking reads get their own threads: on GCD's global queues (one thread per core here) they
        // would queue behind each other and the pool only grows after a delay of seconds.
        let collected = OutputCollector()
        let readers = DispatchGroup()
        for (fd, store) in [(process.stdoutFD, collected.setStdout), (process.stderrFD, collected.setStderr)] {
            readers.enter()
            Thread.detachNewThread {
                do {
                    store(try readToEnd(fd))
                } catch {
                    collected.markFailed(error)
                }
                Foundation.close(fd)
                readers.leave()
            }
        }

        // Small payloads fit in the pipe buffer, so this does not wait for the child to read. A child
        // that exits without reading makes the write fail with EPIPE (SIGPIPE is ignored), not hang.
        _ = Self.ignoreSIGPIPE
        if let stdin, !stdin.isEmpty {
            stdin.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let count = write(process.stdinFD, buffer.baseAddress! + offset, buffer.count - offset)
                    if count > 0 {
                        offset += count
                    } else if count < 0 && errno == EINTR {
                        continue
                    } else {
                        // EPIPE: the child exited or closed stdin without reading all of it, which
                        // its exit status and output show. Anything else is the harness failing.
                        if count < 0 && errno != EPIPE { collected.markFailed(TestNodeError.systemCall("write to stdin", errno: errno)) }
                        break
                    }
                }
            }
        }
        Foundation.close(process.stdinFD)

        let pid = process.pid
        let watchdog = DispatchWorkItem {
            collected.markTimedOut()
            kill(pid, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        let status = try process.waitForExit()
        watchdog.cancel()
        // A grandchild left running with our pipes open (a daemonizing plugin, say) must not hang the suite.
        if readers.wait(timeout: .now() + 5) == .timedOut { collected.markTimedOut() }

        return try collected.result(status: status)
    }
}

/// Output gathered by reader threads; the lock makes handing it back to the waiting thread safe.
private final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var stdout = Data()
    private var stderr = Data()
    private var timedOut = false

    @Sendable func setStdout(_ data: Data) { lock.withLock { stdout = data } }
    @Sendable func setStderr(_ data: Data) { lock.withLock { stderr = data } }
    private var failure: (any Error)?
    func markTimedOut() { lock.withLock { timedOut = true } }
    @Sendable func markFailed(_ error: any Error) { lock.withLock { failure = failure ?? error } }

    func result(status: Int32) throws -> CommandResult {
        try lock.withLock {
            if let failure { throw failure }
            return CommandResult(status: status, stdout: String(decoding: stdout, as: UTF8.self),
                                 stderr: String(decoding: stderr, as: UTF8.self), timedOut: timedOut)
        }
    }
}
