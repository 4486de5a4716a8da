import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Debian's podman (CNI backend, runc, cgroupfs, vfs) inside a real-root node, set up by
/// Tests/Runtimes/podman/podman.sh: every file podman uses lives in the node's /run tmpfs, the
/// network is a podwire conflist, the image a busybox imported from busybox-static.
///
/// The one thing a node cannot hold is cgroups: the kit puts the containers' under a parent of
/// its own in every hierarchy, and `close()` removes them once everything in the node is dead.
final class PodmanNode {
    static let kit = PackageFiles.path("Tests/Runtimes/podman/podman.sh")
    /// The kit's directory: in the node's /run tmpfs, so it vanishes with the node whatever happens.
    static let directory = "/run/podman-kit"
    static let image = "localhost/podwire-busybox:latest"
    /// A container that runs until stopped and stops at once on SIGTERM (a PID 1 without a
    /// handler ignores it, and podman would wait its whole stop timeout).
    static let idleCommand = ["sh", "-c", #"trap "exit 0" TERM; sleep 3600 & wait"#]

    let node: TestNode
    let conflist: Conflist
    /// The cgroup parent the kit chose (`podwire-podman-` and 12 hex digits); nil before setup wrote it.
    private(set) var cgroupParent: String?
    private var closed = false

    init(conflist: Conflist, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let podwire = try PluginUnderTest.podwire.requireBinary(sourceLocation: sourceLocation)
        let located = PodwireBinary.locateIPAM()
        let ipam = try #require(located.path, "\(located.reason ?? "podwire-ipam not found")", sourceLocation: sourceLocation)
        self.conflist = conflist
        node = try TestNode(realRoot: true)
        do {
            let data = try JSONSerialization.data(withJSONObject: conflist.object, options: [.prettyPrinted, .sortedKeys])
            let path = "/run/\(conflist.name).conflist"
            let write = try node.run(["sh", "-c", "cat > \"$0\"", path], stdin: data)
            try #require(write.succeeded, "\(write)", sourceLocation: sourceLocation)
            let setup = try node.run(["bash", Self.kit, "setup", Self.directory, path, podwire, ipam], timeout: 180)
            // What the kit chose, also when a later step of its setup failed.
            let parent = try node.readFile("\(Self.directory)/cgroup-parent")?.trimmingCharacters(in: .whitespacesAndNewlines)
            if let parent {
                try #require(parent.wholeMatch(of: /podwire-podman-[0-9a-f]{12}/) != nil,
                             "the kit's cgroup parent is \(parent.debugDescription)", sourceLocation: sourceLocation)
                cgroupParent = parent
            }
            try #require(setup.succeeded, "podman.sh setup: \(setup)", sourceLocation: sourceLocation)
        } catch {
            for problem in close() { Issue.record("cleanup after a failed setup: \(problem)", sourceLocation: sourceLocation) }
            throw error
        }
    }

    deinit {
        // Tests close explicitly to see what is left; this only catches a path that did not.
        _ = close()
    }

    /// `podman ARGS` against the kit's configs, inside the node.
    func podman(_ arguments: [String], timeout: TimeInterval = 60) throws -> CommandResult {
        try node.run(["bash", Self.kit, "podman", Self.directory] + arguments, timeout: timeout)
    }

    /// Like `podman`, but fails the test unless it exits 0; returns its stdout.
    @discardableResult
    func podmanOK(_ arguments: [String], timeout: TimeInterval = 60,
                  sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try podman(arguments, timeout: timeout)
        try #require(result.succeeded, "podman \(arguments.joined(separator: " ")): \(result)", sourceLocation: sourceLocation)
        return result.stdout
    }

    /// Starts an idle container on the network; returns its full ID.
    func runIdle(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let id = try podmanOK(["run", "-d", "--name", name, "--network", conflist.name, Self.image] + Self.idleCommand,
                              sourceLocation: sourceLocation).trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(id.wholeMatch(of: /[0-9a-f]{64}/) != nil, "podman run printed \(id.debugDescription), not an ID",
                     sourceLocation: sourceLocation)
        return id
    }

    /// The cgroup directories of the kit's parent, in every hierarchy, as the kit lists them.
    func cgroups() throws -> [String] {
        try node.check(["bash", Self.kit, "cgroups", Self.directory]).split(separator: "\n").map(String.init)
    }

    /// What the node must be once podman's containers are removed: nothing of any pod (see
    /// `runtimeLeftovers`), no per-pod element at all in podwire's table (masquerade, hostPort
    /// maps, hairpin SNAT pairs, whatever they name), no container in podman's store, no cgroup
    /// of a container.
    func leftovers(attachments: [String]) throws -> [String] {
        var left = try node.runtimeLeftovers(network: conflist.name, dataDir: conflist.dataDir, attachments: attachments,
                                             podNetworkPrefix: "10.244.", cacheDirectories: ["/var/lib/cni"])
        left += try node.podwirePerPodElements(network: conflist.name).map { "podwire nftables element \($0)" }
        let containers = try podmanOK(["ps", "--all", "--format", "{{.ID}} {{.Names}} {{.Status}}"])
        left += containers.split(separator: "\n").map { "podman container \($0)" }
        // The parent and conmon's cgroup under it are podman's, made once; a container's are its own.
        left += try cgroups().filter { $0.contains("/libpod-") }.map { "cgroup \($0)" }
        return left
    }

    /// Removes every container (the kit's cleanup), kills whatever is left in the node and closes
    /// it, then removes the kit's cgroups from every hierarchy. Returns what could not be removed.
    func close() -> [String] {
        guard !closed else { return [] }
        closed = true
        var problems: [String] = []
        do {
            let cleanup = try node.run(["bash", Self.kit, "cleanup", Self.directory], timeout: 120)
            if !cleanup.succeeded { problems.append("podman.sh cleanup: \(cleanup)") }
        } catch {
            problems.append("podman.sh cleanup could not run: \(error)")
        }
        node.close()
        if let cgroupParent { problems += TestCgroups.removeTree(cgroupParent) }
        return problems
    }
}
