import Foundation
import Testing

/// The CNI spec versions podwire must speak, oldest first (what VERSION must list, in this order).
enum SpecVersion {
    static let all = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

    /// 0.1.0 and 0.2.0 print `ip4`/`ip6` instead of `interfaces`/`ips`.
    static func isLegacy(_ version: String) -> Bool { version == "0.1.0" || version == "0.2.0" }
    /// 0.3.x and 0.4.0 carry `"version":"4"` on each IP.
    static func tagsIPVersion(_ version: String) -> Bool { ["0.3.0", "0.3.1", "0.4.0"].contains(version) }
    static func allowsCheck(_ version: String) -> Bool { ["0.4.0", "1.0.0", "1.1.0"].contains(version) }
    static func allowsStatusAndGC(_ version: String) -> Bool { version == "1.1.0" }
}

/// One podwire variant (own IPAM or host-local) at one config version.
struct VersionCase: Sendable, CustomTestStringConvertible {
    var plugin: PluginUnderTest
    var version: String

    var testDescription: String { "\(plugin.label) @ \(version)" }

    /// Both podwire variants; the reference ptp is left out, since these tests pin podwire's own documents.
    static var podwireVariants: [PluginUnderTest] { PluginUnderTest.podwireVariants }

    /// podwire with its built-in IPAM.
    static var builtInOnly: [PluginUnderTest] { [.podwire] }

    /// Every variant at every version its IPAM can serve.
    static func supported(_ versions: [String] = SpecVersion.all) -> [VersionCase] {
        podwireVariants.flatMap { plugin in
            versions.filter { IPAMVersions.supports(plugin, $0) }.map { VersionCase(plugin: plugin, version: $0) }
        }
    }

    /// Variants whose delegated IPAM does not speak `version` (Debian's host-local 1.1.1 at 1.1.0).
    static func unsupported(_ versions: [String] = SpecVersion.all) -> [VersionCase] {
        podwireVariants.flatMap { plugin in
            versions.filter { !IPAMVersions.supports(plugin, $0) }.map { VersionCase(plugin: plugin, version: $0) }
        }
    }
}

/// What each delegated IPAM speaks. Written down, not asked while the tests are being listed: a
/// list built from a probe that failed would silently empty the tests built on it. The test
/// "Debian's host-local speaks exactly the versions the version tests expect" asks the installed
/// host-local and fails when it disagrees.
enum IPAMVersions {
    /// Debian 12's host-local (containernetworking-plugins 1.1.1).
    static let hostLocal = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]

    static func supports(_ plugin: PluginUnderTest, _ version: String) -> Bool {
        switch plugin.ipamType {
        case "podwire-ipam": true
        case "host-local": hostLocal.contains(version)
        default: false
        }
    }
}

extension NetworkConfig {
    /// This config with `key` set (nil removes it).
    func setting(_ key: String, _ value: Any?) -> NetworkConfig {
        var copy = self
        copy.object[key] = value
        return copy
    }

    /// The seed network at `version`, for `plugin`, optionally under another name/subnet/dataDir.
    static func kindnet(for plugin: PluginUnderTest, version: String, name: String = "kindnet",
                        subnet: String = "10.244.1.0/24", dataDir: String = "/run/cni-ipam-state") -> NetworkConfig {
        kindnet(type: plugin.type, ipamType: plugin.ipamType, subnet: subnet, dataDir: dataDir)
            .setting("cniVersion", version)
            .setting("name", name)
    }
}

enum VersionsJSON {
    /// JSON text with sorted keys, for comparing whole documents: an extra or missing key is a difference.
    static func canonical(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject(value),
              let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return "<not JSON: \(value)>" }
        return String(decoding: data, as: UTF8.self)
    }
}

extension CNIRunner {
    /// STATUS or GC as a runtime sends them: only CNI_COMMAND and CNI_PATH, the config on stdin.
    func networkCommand(_ command: String, config: NetworkConfig? = nil,
                        sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        try exec(command, config: config, sourceLocation: sourceLocation)
    }

    /// GC with the attachments a runtime still knows under `key` (nil: no list at all).
    func gc(valid: [(containerID: String, ifname: String)]?, key: String = "cni.dev/valid-attachments",
            sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        let list = valid.map { $0.map { ["containerID": $0.containerID, "ifname": $0.ifname] } }
        return try networkCommand("GC", config: config.setting("cniVersion", "1.1.0").setting(key, list),
                                  sourceLocation: sourceLocation)
    }

    /// CHECK of `pod`'s eth0 against `prevResult`, with this runner's config otherwise.
    func check(pod: String, prevResult: [String: Any], config: NetworkConfig? = nil,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        try exec("CHECK", containerID: pod, netns: node.netnsPath(pod), ifname: "eth0",
                 config: (config ?? self.config).setting("prevResult", prevResult), sourceLocation: sourceLocation)
    }

    /// Expects exit 0 and nothing on stdout (CHECK, STATUS and GC print nothing on success).
    func expectSilentSuccess(_ response: CNIResponse, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.succeeded, "\(response)", sourceLocation: sourceLocation)
        #expect(response.stdout.isEmpty, "must print nothing: \(response)", sourceLocation: sourceLocation)
    }

    /// Expects an error document with `code` (and `msg`, when given); returns it.
    @discardableResult
    func expectCNIError(_ response: CNIResponse, code: Int, msg: String? = nil,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIErrorDocument {
        let error = try expectFailure(response, sourceLocation: sourceLocation)
        #expect(response.status == 1, "\(response)", sourceLocation: sourceLocation)
        #expect(error.code == code, "\(response)", sourceLocation: sourceLocation)
        if let msg { #expect(error.msg == msg, "\(response)", sourceLocation: sourceLocation) }
        return error
    }
}

/// The host veth name and MAC podwire derives from an attachment (FNV-1a of "containerID/ifname"
/// folded to 32 bits), to fake what an ADD killed between creating the pair and labelling it leaves.
enum DerivedHostVeth {
    static func name(containerID: String, ifname: String) -> (name: String, mac: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array("\(containerID)/\(ifname)".utf8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let folded = UInt32(truncatingIfNeeded: hash >> 32) ^ UInt32(truncatingIfNeeded: hash)
        let hex = String(format: "%08x", folded)
        let bytes = [0x02, folded >> 24, (folded >> 16) & 0xff, (folded >> 8) & 0xff, folded & 0xff, 0x70]
        return ("veth" + hex, bytes.map { String(format: "%02x", $0) }.joined(separator: ":"))
    }
}

extension TestNode {
    /// Makes `directory` read-only for everyone in the node, root included, with a read-only bind
    /// mount of it onto itself (allowed to the node's namespace root, privileged or not).
    func remountReadOnly(_ directory: String) throws {
        try check(["mount", "--bind", directory, directory])
        try check(["mount", "-o", "remount,bind,ro", directory])
    }

    /// Makes `file` impossible to unlink (EBUSY) while it stays readable: a bind mount of the file
    /// onto itself. Works as root and as the namespace root of an unprivileged user, where
    /// `chattr +i` does not (it needs CAP_LINUX_IMMUTABLE in the initial user namespace).
    func pinAgainstUnlink(_ file: String) throws {
        try check(["mount", "--bind", file, file])
    }

    func unpinAgainstUnlink(_ file: String) throws {
        try check(["umount", file])
    }

    /// `ifalias` of a node link, "" when it has none.
    func linkAlias(_ link: String) throws -> String? {
        let objects = try ipObjects(["link", "show"])
        guard let object = objects.first(where: { $0["ifname"] as? String == link }) else { return nil }
        return object["ifalias"] as? String ?? ""
    }

    /// The node's non-loopback links, sorted by name.
    func nonLoopbackLinks() throws -> [LinkInfo] {
        try links().filter { $0.ifname != "lo" }.sorted { $0.ifname < $1.ifname }
    }

    /// Everything that could change in the node, its pods and an IPAM dataDir, as comparable lines.
    func stateSnapshot(pods: [String], storeDirectories: [String]) throws -> [String] {
        var lines: [String] = []
        for object in try ipObjects(["link", "show"]) {
            lines.append("link \(object["ifname"] ?? "") \(object["address"] ?? "") \(object["ifalias"] ?? "")")
        }
        lines += try check(["ip", "-4", "route", "show", "table", "all"]).split(separator: "\n").map { "route \($0)" }
        lines += try check(["ip", "-4", "-o", "address", "show"]).split(separator: "\n").map {
            "address " + $0.split(whereSeparator: \.isWhitespace).prefix(4).joined(separator: " ")
        }
        for directory in storeDirectories {
            for name in try listDirectory(directory) {
                let path = "\(directory)/\(name)"
                let isDirectory = try check(["stat", "-c", "%F", "--", path]).hasPrefix("directory")
                lines.append("store \(path) \(isDirectory ? "<dir>" : try readFile(path) ?? "<vanished>")")
            }
        }
        for pod in pods {
            lines += try links(inPod: pod).map { "\(pod) link \($0.ifname) \($0.address ?? "")" }
            lines += try routeLines(inPod: pod).map { "\(pod) route \($0)" }
        }
        return lines.sorted()
    }
}
