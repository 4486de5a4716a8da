import Foundation
import Testing

extension PodwireBinary {
    /// podwirectl, built next to podwire.
    static func locateControl() -> (path: String?, reason: String?) { locateBeside("podwirectl") }

    /// podwirectl's path, or a test failure saying why there is none.
    static func requireControl(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let located = locateControl()
        return try #require(located.path, "\(located.reason ?? "podwirectl not found")", sourceLocation: sourceLocation)
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
        try node.run([try PodwireBinary.requireControl(sourceLocation: sourceLocation)] + arguments + ["--conflist", conflist])
    }

    /// stdout parsed as one JSON object.
    func json(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let result = try run(arguments + ["--json"], sourceLocation: sourceLocation)
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                            "not one JSON object: \(result)", sourceLocation: sourceLocation)
    }
}
