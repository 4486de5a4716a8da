import CNIProtocol
import Foundation
import NetAddress
@testable import PodIPAM
import Synchronization
import Testing

/// A directory under /tmp removed when the test is done with it.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "podipam-test-XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let created else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: created)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// One test network: its JSON config (shared with host-local) and the store directory it uses.
struct TestNetwork {
    var name = "testnet"
    var dataDir: String
    /// JSON text of `ipam.ranges`.
    var ranges = #"[[{"subnet": "10.244.1.0/24"}]]"#
    var cniVersion = "1.0.0"
    var extraIPAM = ""

    init(dataDir: String, ranges: String? = nil) {
        self.dataDir = dataDir
        if let ranges { self.ranges = ranges }
    }

    var storePath: String { "\(dataDir)/\(name)" }

    func json(ipamType: String = "podwire-ipam") -> String {
        """
        {"cniVersion": "\(cniVersion)", "name": "\(name)", "type": "bridge",
         "ipam": {"type": "\(ipamType)", "dataDir": "\(dataDir)", "ranges": \(ranges)\(extraIPAM)}}
        """
    }

    func config(command: CNICommand = .add, args: [(key: String, value: String)] = []) throws -> IPAMConfig {
        let network = try NetworkConfig.parse(Array(json().utf8))
        return try IPAMConfig.parse(network, environment: CNIEnvironment(command: command, args: args))
    }

    func ipam(command: CNICommand = .add, args: [(key: String, value: String)] = []) throws -> PodIPAM {
        PodIPAM(config: try config(command: command, args: args), network: name)
    }

    // MARK: Looking at the store

    func file(_ name: String) -> String { "\(storePath)/\(name)" }

    func contents(_ name: String) -> String? {
        FileManager.default.contents(atPath: file(name)).map { String(decoding: $0, as: UTF8.self) }
    }

    func write(_ name: String, _ text: String) {
        _ = FileManager.default.createFile(atPath: file(name), contents: Data(text.utf8))
    }

    func remove(_ name: String) throws {
        try FileManager.default.removeItem(atPath: file(name))
    }

    /// The address files, sorted by address.
    func addressFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: storePath)
            .filter { IPAddress($0) != nil }
            .sorted { IPAddress($0)! < IPAddress($1)! }
    }

    func mode(_ name: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: file(name))
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }
}

extension CNIResult {
    /// "10.244.1.2", … without prefixes.
    var addresses: [String] { ips.map { $0.address.address.description } }
}

/// The CNIError `body` throws, or nil (recorded as an issue) when it succeeds or throws something else.
func cniError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> CNIError? {
    do {
        try body()
        Issue.record("expected a CNIError, but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as CNIError {
        return error
    } catch {
        Issue.record("expected a CNIError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

func ip(_ text: String) -> IPAddress { IPAddress(text)! }

func net(_ text: String) -> IPNetwork { IPNetwork(text)! }

/// An AddressBook in memory, for the allocator's rules without a file system.
struct MemoryBook: AddressBook {
    var records: [IPAddress: RecordOwner] = [:]
    var last: [Int: IPAddress] = [:]
    /// Every address `reserve` was asked for, in order.
    var attempts: [IPAddress] = []

    mutating func addresses(of attachment: PodAttachment) -> [IPAddress] {
        records.filter { $0.value.belongs(to: attachment) }.map(\.key).sorted()
    }

    mutating func reserve(_ address: IPAddress, for attachment: PodAttachment) -> Bool {
        attempts.append(address)
        guard records[address] == nil else { return false }
        records[address] = .attachment(attachment)
        return true
    }

    mutating func release(_ address: IPAddress) { records[address] = nil }

    mutating func lastReserved(rangeSet: Int) -> IPAddress? { last[rangeSet] }

    mutating func setLastReserved(_ address: IPAddress, rangeSet: Int) { last[rangeSet] = address }

    mutating func owner(of address: IPAddress) -> RecordOwner { records[address] ?? .unknown }
}

func attachment(_ id: String, _ ifname: String = "eth0") -> PodAttachment {
    PodAttachment(unchecked: id, ifname: ifname)
}

/// What a program run to completion printed, and how it ended.
struct ToolOutcome {
    var status: Int32
    var stdout: String
    var stderr: String
    var succeeded: Bool { status == 0 }
}

struct ToolError: Error, CustomStringConvertible {
    var description: String
}

/// Runs `path` to completion with posix_spawn and files for the three streams (Foundation's Process
/// crashed inside run() when tests ran in parallel). Throws when it cannot be started, waited for
/// or its output read: a tool that did not run must not look like one that printed nothing.
func runTool(_ path: String, _ arguments: [String] = [], environment: [String: String] = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"],
             stdin: Data = Data()) throws -> ToolOutcome {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("podipam-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let inPath = scratch.appendingPathComponent("stdin").path
    let outPath = scratch.appendingPathComponent("stdout").path
    let errPath = scratch.appendingPathComponent("stderr").path
    try stdin.write(to: URL(fileURLWithPath: inPath))
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard rc == 0 else { throw ToolError(description: "cannot start \(path): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw ToolError(description: "waitpid(\(path)): \(String(cString: strerror(errno)))") }
    }
    let out = try Data(contentsOf: URL(fileURLWithPath: outPath))
    let err = try Data(contentsOf: URL(fileURLWithPath: errPath))
    let exitStatus: Int32 = (status & 0x7f) != 0 ? 128 + (status & 0x7f) : (status >> 8) & 0xff
    return ToolOutcome(status: exitStatus, stdout: String(decoding: out, as: UTF8.self),
                       stderr: String(decoding: err, as: UTF8.self))
}

/// `chattr FLAG PATH`, which must succeed: a flag that was not set would make the test prove nothing.
func chattr(_ flag: String, _ path: String) throws {
    let outcome = try runTool("/usr/bin/chattr", [flag, path])
    guard outcome.succeeded else {
        throw ToolError(description: "chattr \(flag) \(path) exited \(outcome.status): \(outcome.stderr) (apt-get install e2fsprogs)")
    }
}

/// Debian's reference plugin, run exactly as a runtime would run an IPAM plugin.
enum HostLocal {
    static let path = "/usr/lib/cni/host-local"

    typealias Outcome = ToolOutcome

    /// Why host-local cannot be used here, or nil: it must answer VERSION, asked once.
    static let problem: String? = {
        do {
            let answer = try runTool(path, environment: ["CNI_COMMAND": "VERSION"], stdin: Data(#"{"cniVersion":"0.1.0"}"#.utf8))
            if answer.succeeded && answer.stdout.contains("supportedVersions") { return nil }
            return "\(path) VERSION exited \(answer.status): \(answer.stdout) \(answer.stderr)"
        } catch {
            return "\(error)"
        }
    }()

    static func run(_ command: String, _ network: TestNetwork, containerID: String, ifname: String = "eth0",
                    args: String? = nil) throws -> Outcome {
        if let problem { throw ToolError(description: "these tests need Debian's host-local: \(problem) (apt-get install containernetworking-plugins)") }
        var environment = [
            "CNI_COMMAND": command, "CNI_CONTAINERID": containerID, "CNI_NETNS": "/var/run/netns/podipam-test",
            "CNI_IFNAME": ifname, "CNI_PATH": "/usr/lib/cni", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        ]
        if let args { environment["CNI_ARGS"] = args }
        return try runTool(path, environment: environment, stdin: Data(network.json(ipamType: "host-local").utf8))
    }
}

extension ToolOutcome {
    /// The addresses of an ADD result, without prefixes.
    var addresses: [String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any],
              let ips = object["ips"] as? [[String: Any]] else { return [] }
        return ips.compactMap { ($0["address"] as? String)?.split(separator: "/").first.map(String.init) }
    }
}

/// Runs `body` on `count` threads released together; what each produced, in thread order.
func together<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) -> [Result<T, any Error>] {
    let results = Mutex<[Int: Result<T, any Error>]>([:])
    let start = DispatchSemaphore(value: 0)
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        Thread {
            start.wait()
            let result = Result { try body(index) }
            results.withLock { $0[index] = result }
            group.leave()
        }.start()
    }
    for _ in 0..<count { start.signal() }
    group.wait()
    return results.withLock { dictionary in (0..<count).map { dictionary[$0]! } }
}
