import Foundation
import Testing

extension PodwireBinary {
    /// podwirectl, built next to podwire.
    static func locateControl() -> (path: String?, reason: String?) {
        let podwire = locate()
        guard let path = podwire.path else { return (nil, podwire.reason) }
        let candidate = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("podwirectl").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return (candidate, nil) }
        return (nil, "podwirectl not found next to \(path); build the podwirectl product")
    }
}

/// podwirectl run inside a node as an operator runs it, on a conflist written into the node.
struct PodwirectlRunner {
    let node: TestNode
    let conflist: String

    /// Writes `config` (one plugin's config, as CNIRunner sends it) into the node as a
    /// one-entry conflist, the way `conf/10-podwire.conflist` holds podwire.
    init(node: TestNode, config: NetworkConfig, path: String = "/run/podwirectl/net.d/10-podwire.conflist") throws {
        self.node = node
        conflist = path
        var plugin = config.object
        let name = plugin.removeValue(forKey: "name") ?? "kindnet"
        let version = plugin.removeValue(forKey: "cniVersion") ?? "1.1.0"
        plugin.removeValue(forKey: "runtimeConfig")
        let list: [String: Any] = ["cniVersion": version, "name": name, "plugins": [plugin]]
        let data = try JSONSerialization.data(withJSONObject: list, options: [.sortedKeys, .withoutEscapingSlashes])
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try node.check(["mkdir", "-p", directory])
        let written = try node.run(["sh", "-c", "cat > '\(path)'"], stdin: data)
        guard written.succeeded else { throw TestNodeError.commandFailed(argv: ["write", path], result: written) }
    }

    /// `podwirectl <arguments> --conflist <the conflist>`.
    func run(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        let binary = try #require(PodwireBinary.locateControl().path, "\(PodwireBinary.locateControl().reason ?? "")",
                                  sourceLocation: sourceLocation)
        return try node.run([binary] + arguments + ["--conflist", conflist])
    }

    /// stdout parsed as one JSON object.
    func json(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let result = try run(arguments + ["--json"], sourceLocation: sourceLocation)
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                            "not one JSON object: \(result)", sourceLocation: sourceLocation)
    }
}
