import Foundation
import Synchronization
import Testing

/// What the integration tests need from the machine, each probed once by running it.
///
/// A requirement that is not met fails every test that needs it, with a message naming what is
/// missing and how the probe failed: a green run must have run everything. `Scripts/test.sh`
/// installs every tool named here. The one exception is a machine that cannot make user
/// namespaces at all: a developer there may set `PODWIRE_TEST_SKIP_WITHOUT_NAMESPACES=1`, and the
/// tests that need a namespace are then skipped, with a line saying so at the very end of the run.
enum Requirement: Sendable, CustomStringConvertible {
    /// `unshare -Urnm` works: a private user+network+mount namespace for every test node.
    case namespaces
    /// Real root that can make a private network+mount namespace (`unshare -nm`): for real
    /// runtimes (containerd, podman), which refuse to run in a user namespace of their own.
    case realRoot
    /// strace, which injects SIGKILL at a chosen syscall for the crash-safety sweeps.
    case strace
    /// One of Debian's reference plugins in /usr/lib/cni (host-local, ptp, portmap, bridge),
    /// answering VERSION.
    case referencePlugin(String)

    static let skipWithoutNamespacesVariable = "PODWIRE_TEST_SKIP_WITHOUT_NAMESPACES"

    var description: String {
        switch self {
        case .namespaces: "user+network+mount namespaces"
        case .realRoot: "real root in a private network+mount namespace"
        case .strace: "strace"
        case .referencePlugin(let name): "\(PluginUnderTest.referenceDirectory)/\(name)"
        }
    }

    /// Why the requirement is not met, or nil when it is. Probed once per process.
    var problem: String? {
        switch self {
        case .namespaces: Self.namespaceProblem
        case .realRoot: Self.realRootProblem
        case .strace: Self.straceProblem
        case .referencePlugin(let name): Self.referencePlugins.versions(of: name).problem
        }
    }

    /// Throws, naming the requirement and how its probe failed, unless it is met.
    func require() throws {
        if let problem { throw RequirementError(requirement: self, problem: problem) }
    }

    /// The CNI versions a reference plugin lists in its VERSION answer; throws when it cannot be asked.
    static func versions(ofReferencePlugin name: String) throws -> [String] {
        let answer = referencePlugins.versions(of: name)
        if let problem = answer.problem {
            throw RequirementError(requirement: .referencePlugin(name), problem: problem)
        }
        return answer.versions
    }

    // MARK: Probes

    private static let namespaceProblem: String? = {
        let unshare: String
        do {
            unshare = try TestNode.tool("unshare")
        } catch {
            return "\(error) (apt-get install util-linux)"
        }
        return probe(unshare, ["-Urnm", "true"], what: "cannot create a user+network+mount namespace")
    }()

    private static let realRootProblem: String? = {
        guard geteuid() == 0 else {
            return "this process runs as uid \(geteuid()); containerd and podman need real root (Scripts/test.sh runs these tests as root)"
        }
        let unshare: String
        do {
            unshare = try TestNode.tool("unshare")
        } catch {
            return "\(error) (apt-get install util-linux)"
        }
        return probe(unshare, ["-nm", "true"], what: "cannot create a network+mount namespace")
    }()

    private static let straceProblem: String? = {
        let strace: String
        do {
            strace = try TestNode.tool("strace")
        } catch {
            return "\(error) (apt-get install strace)"
        }
        // A binary that merely exists proves nothing: it must answer as strace does.
        return probe(strace, ["-V"], what: "strace does not work", expecting: "strace -- version")
    }()

    /// Runs a probe command; nil when it exits 0 (and prints `expecting`, when given).
    private static func probe(_ executable: String, _ arguments: [String], what: String,
                              expecting: String? = nil) -> String? {
        let command = ([executable] + arguments).joined(separator: " ")
        let result: CommandResult
        do {
            result = try TestNode.execute(executable, arguments, environment: ["PATH": TestNode.defaultPath, "LC_ALL": "C"],
                                          timeout: 10)
        } catch {
            return "\(what): `\(command)`: \(error)"
        }
        guard result.succeeded else { return "\(what): `\(command)` \(result.oneLine)" }
        if let expecting, !result.stdout.contains(expecting) {
            return "\(what): `\(command)` printed \(result.stdout.debugDescription), not \"\(expecting)...\""
        }
        return nil
    }

    private static let referencePlugins = ReferencePluginProbes()
}

/// The VERSION answers of Debian's plugins, asked once each (VERSION prints; it touches nothing).
private final class ReferencePluginProbes: @unchecked Sendable {
    struct Answer {
        var versions: [String] = []
        var problem: String?
    }

    private let lock = NSLock()
    private var answers: [String: Answer] = [:]

    func versions(of name: String) -> Answer {
        lock.withLock {
            if let known = answers[name] { return known }
            let answer = Self.ask(name)
            answers[name] = answer
            return answer
        }
    }

    private static func ask(_ name: String) -> Answer {
        let binary = "\(PluginUnderTest.referenceDirectory)/\(name)"
        let install = "(apt-get install containernetworking-plugins)"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            return Answer(problem: "\(binary) is not an executable file \(install)")
        }
        let result: CommandResult
        do {
            result = try TestNode.execute(binary, [], environment: ["CNI_COMMAND": "VERSION"],
                                          stdin: Data(#"{"cniVersion":"0.1.0"}"#.utf8), timeout: 10)
        } catch {
            return Answer(problem: "\(binary) VERSION could not run: \(error)")
        }
        guard result.succeeded else { return Answer(problem: "\(binary) VERSION \(result.oneLine)") }
        let object = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        guard let versions = object?["supportedVersions"] as? [String], !versions.isEmpty else {
            return Answer(problem: "\(binary) VERSION printed no supportedVersions: \(result.stdout.debugDescription)")
        }
        return Answer(versions: versions)
    }
}

struct RequirementError: Error, CustomStringConvertible {
    var requirement: Requirement
    var problem: String

    var description: String { "this test needs \(requirement): \(problem)" }
}

extension CommandResult {
    /// "exit 1, stderr: ..." on one line, for probe messages.
    var oneLine: String {
        let stderr = stderr.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: " | ")
        return "exited \(status)\(timedOut ? " (killed after its timeout)" : "")"
            + (stderr.isEmpty ? " and printed nothing on stderr" : ", stderr: \(stderr)")
    }
}

/// `.needs(.namespaces)`: before each test (of a suite, recursively) the requirement is checked; a
/// test whose requirement is not met fails with the probe's message instead of running.
struct RequirementTrait: TestTrait, SuiteTrait {
    var requirement: Requirement
    var isRecursive: Bool { true }

    func prepare(for test: Test) async throws {
        guard let problem = requirement.problem else { return }
        if case .namespaces = requirement, SkipNotice.namespaceSkipsAllowed {
            if !test.isSuite { SkipNotice.record(test) }
            // ConditionTrait's own way of skipping: the test is reported as skipped, with this reason.
            try await ConditionTrait.disabled(
                "skipped (\(Requirement.skipWithoutNamespacesVariable)=1): \(problem)").prepare(for: test)
        }
        throw RequirementError(requirement: requirement, problem: problem)
    }
}

extension Trait where Self == RequirementTrait {
    static func needs(_ requirement: Requirement) -> Self { RequirementTrait(requirement: requirement) }
}

/// Counts the tests skipped for want of namespaces and says so on the run's last line (an atexit
/// handler runs after the test library has printed its summary), so a run that proved less than
/// it holds never looks like a full one.
enum SkipNotice {
    static let namespaceSkipsAllowed = ProcessInfo.processInfo.environment[Requirement.skipWithoutNamespacesVariable] == "1"

    private static let skipped = Mutex(Set<String>())
    private static let registerAtExit: Void = {
        atexit {
            let count = SkipNotice.skipped.withLock { $0.count }
            let line = "podwire: \(count) tests were SKIPPED, not run: no user+network+mount namespaces here "
                + "and \(Requirement.skipWithoutNamespacesVariable)=1 allowed skipping them. This run proves nothing about them.\n"
            // write(2) to fd 1: the test library's own output is unbuffered by now.
            _ = line.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
        }
    }()

    static func record(_ test: Test) {
        _ = registerAtExit
        _ = skipped.withLock { $0.insert(String(describing: test.id)) }
    }
}
