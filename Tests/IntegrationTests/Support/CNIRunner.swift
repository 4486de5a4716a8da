import Foundation
import Testing

/// A CNI plugin binary and the configuration it is exercised with.
struct PluginUnderTest: Sendable, CustomTestStringConvertible, CustomStringConvertible {
    /// Test-report label.
    var label: String
    /// The plugin `type` in the network config (also the binary's file name).
    var type: String
    var ipamType: String
    /// Where the plugin binary lives; nil when it was not found (the reason is in `missingReason`).
    var binary: String?
    var missingReason: String?
    /// CNI_PATH handed to the plugin, for finding its IPAM delegate.
    var cniPath: String
    /// Debian's ptp + host-local: used to prove the harness, and allowed its known bugs.
    var isReference: Bool

    var description: String { label }
    var testDescription: String { label }

    /// Debian's `containernetworking-plugins` directory.
    static let referenceDirectory = "/usr/lib/cni"

    static let reference = PluginUnderTest(
        label: "reference ptp+host-local", type: "ptp", ipamType: "host-local",
        binary: "\(referenceDirectory)/ptp", missingReason: nil,
        cniPath: referenceDirectory, isReference: true)

    /// podwire with its built-in IPAM.
    static var podwire: PluginUnderTest { podwire(ipam: "podwire-ipam", label: "podwire+podwire-ipam") }

    /// podwire delegating IPAM to Debian's host-local found through CNI_PATH.
    static var podwireWithHostLocal: PluginUnderTest { podwire(ipam: "host-local", label: "podwire+host-local") }

    private static func podwire(ipam: String, label: String) -> PluginUnderTest {
        let located = PodwireBinary.locate()
        let directory = located.path.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
        return PluginUnderTest(
            label: label, type: "podwire", ipamType: ipam, binary: located.path, missingReason: located.reason,
            cniPath: [directory, referenceDirectory].compactMap { $0 }.joined(separator: ":"), isReference: false)
    }

    /// podwire with either IPAM: what the podwire-specific suites run.
    static var podwireVariants: [PluginUnderTest] { [podwire, podwireWithHostLocal] }

    /// The walkthrough's variants: both podwire variants and the reference ptp + host-local, which
    /// proves on every run that the harness measures what the seed article shows (the reference's
    /// own bugs are recorded as known issues there).
    static var walkthroughVariants: [PluginUnderTest] { podwireVariants + [reference] }

    /// The binary path, or a test failure explaining where it was looked for. Debian's plugins this
    /// variant runs (the main plugin, or host-local as its IPAM) must answer VERSION, or the test
    /// fails naming them.
    func requireBinary(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        for name in [type, ipamType] where Self.debianPlugins.contains(name) {
            try Requirement.referencePlugin(name).require()
        }
        return try #require(binary, "\(label): \(missingReason ?? "binary not found")", sourceLocation: sourceLocation)
    }

    /// Plugins of Debian's containernetworking-plugins the suites run.
    static let debianPlugins: Set<String> = ["ptp", "bridge", "host-local", "portmap"]

    /// Whether the IPAM in use keeps host-local's on-disk store (`<dataDir>/<network>/<ip>` files).
    var keepsAddressFiles: Bool { ipamType == "host-local" || ipamType == "podwire-ipam" }
}

/// Finds the `podwire` executable built alongside the test bundle.
enum PodwireBinary {
    static func locate() -> (path: String?, reason: String?) {
        var tried: [String] = []
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["PODWIRE_BIN"], !explicit.isEmpty {
            // An explicit choice that is wrong should fail loudly, not fall back to another build.
            if FileManager.default.isExecutableFile(atPath: explicit) { return (explicit, nil) }
            return (nil, "PODWIRE_BIN=\(explicit) is not an executable file")
        }
        var candidates: [String] = []
        // `swift test` runs the xctest bundle, which sits in the same build folder as the products.
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("podwire").path)
        }
        // When the runner is a toolchain helper instead, fall back to the package's default build folder.
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Support
            .deletingLastPathComponent()  // IntegrationTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
        candidates.append(packageRoot.appendingPathComponent(".build/debug/podwire").path)
        for candidate in candidates {
            tried.append(candidate)
            if FileManager.default.isExecutableFile(atPath: candidate) { return (candidate, nil) }
        }
        return (nil, "podwire binary not found (tried \(tried.joined(separator: ", "))); build it or set PODWIRE_BIN")
    }
}

/// The seed article's network: one Kindnet node whose pod CIDR is 10.244.1.0/24.
struct NetworkConfig {
    var object: [String: Any]

    static func kindnet(type: String, ipamType: String, subnet: String = "10.244.1.0/24",
                        dataDir: String = "/run/cni-ipam-state", mtu: Int = 1500) -> NetworkConfig {
        NetworkConfig(object: [
            "cniVersion": "1.0.0",
            "name": "kindnet",
            "type": type,
            "mtu": mtu,
            "ipam": [
                "type": ipamType,
                "dataDir": dataDir,
                "ranges": [[["subnet": subnet]]],
                "routes": [["dst": "0.0.0.0/0"]],
            ] as [String: Any],
        ])
    }

    static func kindnet(for plugin: PluginUnderTest) -> NetworkConfig {
        kindnet(type: plugin.type, ipamType: plugin.ipamType)
    }

    var name: String { object["name"] as? String ?? "" }
    var dataDir: String { (object["ipam"] as? [String: Any])?["dataDir"] as? String ?? "/var/lib/cni/networks" }

    /// Where host-local (and podwire-ipam) record that `address` is taken.
    func addressFile(_ address: String) -> String { "\(dataDir)/\(name)/\(address)" }

    /// Sorted keys and unescaped slashes, like a runtime's stdin.
    var data: Data {
        // The object is built from JSON types only, so serialization cannot fail.
        try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }
}

/// What one plugin invocation produced.
struct CNIResponse: CustomStringConvertible {
    var command: String
    var status: Int32
    var stdout: String
    var stderr: String
    /// stdout parsed as a single JSON object; nil when stdout is empty.
    var json: [String: Any]?
    /// Why stdout is not exactly one JSON object (or empty), if it is not.
    var stdoutProblem: String?

    var succeeded: Bool { status == 0 }

    var description: String {
        "CNI \(command): exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)"
    }

    /// stdout decoded as `type`; fails the test when stdout is not such a document.
    func decode<T: Decodable>(_ type: T.Type, sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(stdout.utf8))
        } catch {
            Issue.record("cannot decode \(T.self) from \(self): \(error)", sourceLocation: sourceLocation)
            throw error
        }
    }
}

extension CNIResponse {
    /// A plugin's answer; stdout is parsed as JSON only to check that it is exactly one object
    /// (JSONSerialization rejects trailing content, so a parse also proves "one document").
    init(command: String, result: CommandResult) {
        self.init(command: command, status: result.status, stdout: result.stdout, stderr: result.stderr)
        guard !result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return }
        do {
            if let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] {
                json = object
            } else {
                stdoutProblem = "stdout is JSON but not an object"
            }
        } catch {
            stdoutProblem = "stdout is not exactly one JSON document: \(error)"
        }
    }
}

/// A 1.0.0 ADD result.
struct CNIResult: Decodable, Sendable {
    struct Interface: Decodable, Sendable {
        var name: String
        var mac: String?
        var sandbox: String?
    }
    struct IP: Decodable, Sendable {
        var address: String
        var gateway: String?
        var interface: Int?
    }
    struct Route: Decodable, Sendable, Equatable {
        var dst: String
        var gw: String?
    }
    var cniVersion: String
    var interfaces: [Interface]?
    var ips: [IP]?
    var routes: [Route]?
}

/// A CNI error document.
struct CNIErrorDocument: Decodable, Sendable {
    var cniVersion: String?
    var code: Int
    var msg: String
    var details: String?
}

/// Execs a CNI plugin inside a node the way a container runtime does: CNI_* environment, the network
/// config on stdin, the result (or error) on stdout.
struct CNIRunner {
    let node: TestNode
    let plugin: PluginUnderTest
    var config: NetworkConfig

    init(node: TestNode, plugin: PluginUnderTest, config: NetworkConfig? = nil) {
        self.node = node
        self.plugin = plugin
        self.config = config ?? .kindnet(for: plugin)
    }

    /// Runs one command. `netns == nil` leaves CNI_NETNS unset; `""` sets it empty (containerd's DEL).
    func exec(_ command: String, containerID: String? = nil, netns: String? = nil, ifname: String? = nil,
              args: String? = nil, config: NetworkConfig? = nil, stdin: Data? = nil,
              extraEnvironment: [String: String] = [:],
              sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        let binary = try plugin.requireBinary(sourceLocation: sourceLocation)
        var environment = ["CNI_COMMAND": command, "CNI_PATH": plugin.cniPath]
        environment["CNI_CONTAINERID"] = containerID
        environment["CNI_NETNS"] = netns
        environment["CNI_IFNAME"] = ifname
        environment["CNI_ARGS"] = args
        environment.merge(extraEnvironment) { _, new in new }
        let input = stdin ?? (config ?? self.config).data
        let result = try node.run([binary], environment: environment, stdin: input)
        if result.timedOut { Issue.record("CNI \(command) timed out: \(result)", sourceLocation: sourceLocation) }
        if command == "ADD" && result.succeeded { try node.settleLinks() }

        return CNIResponse(command: command, result: result)
    }

    /// ADD `ifname` into a pod netns; the container ID defaults to the pod's name.
    func add(pod: String, containerID: String? = nil, ifname: String = "eth0", args: String? = nil,
             sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        try exec("ADD", containerID: containerID ?? pod, netns: node.netnsPath(pod), ifname: ifname, args: args,
                 sourceLocation: sourceLocation)
    }

    /// DEL; `netns` defaults to the pod's path, pass `""` for a runtime that no longer knows it.
    func del(pod: String, containerID: String? = nil, netns: String? = nil, ifname: String = "eth0",
             sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        try exec("DEL", containerID: containerID ?? pod, netns: netns ?? node.netnsPath(pod), ifname: ifname,
                 sourceLocation: sourceLocation)
    }

    func version(sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        try exec("VERSION", stdin: Data(#"{"cniVersion":"1.0.0"}"#.utf8), sourceLocation: sourceLocation)
    }

    // MARK: Assertions shared by tests

    /// Expects exit 0 and a single JSON result object; returns the decoded 1.0.0 result.
    @discardableResult
    func expectAddSucceeded(_ response: CNIResponse,
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResult {
        try #require(response.succeeded, "\(response)", sourceLocation: sourceLocation)
        #expect(response.stdoutProblem == nil, "\(response)", sourceLocation: sourceLocation)
        try #require(response.json != nil, "ADD printed no result: \(response)", sourceLocation: sourceLocation)
        return try response.decode(CNIResult.self, sourceLocation: sourceLocation)
    }

    /// Expects exit 0 and nothing on stdout, as a successful DEL must print.
    func expectDelSucceeded(_ response: CNIResponse, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.succeeded, "\(response)", sourceLocation: sourceLocation)
        #expect(response.stdout.isEmpty, "DEL must print nothing: \(response)", sourceLocation: sourceLocation)
    }

    /// Expects a non-zero exit with exactly one `{code, msg}` object on stdout; returns it.
    @discardableResult
    func expectFailure(_ response: CNIResponse,
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIErrorDocument {
        #expect(!response.succeeded, "expected failure: \(response)", sourceLocation: sourceLocation)
        try #require(response.stdoutProblem == nil, "\(response.stdoutProblem ?? "")\n\(response)",
                     sourceLocation: sourceLocation)
        let json = try #require(response.json, "error must be on stdout: \(response)", sourceLocation: sourceLocation)
        #expect(json["code"] is Int, "error needs an integer code: \(response)", sourceLocation: sourceLocation)
        #expect(json["msg"] is String, "error needs a msg: \(response)", sourceLocation: sourceLocation)
        return try response.decode(CNIErrorDocument.self, sourceLocation: sourceLocation)
    }
}
