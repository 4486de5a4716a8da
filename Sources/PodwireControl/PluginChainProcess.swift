import CNIProtocol
import LinuxSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs plugin binaries as a runtime does: found by their `type` on `CNI_PATH`, the process's
/// environment with the `CNI_*` variables of the call, the config on stdin, one document read
/// from stdout, stderr passed through to podwirectl's stderr as it comes.
public struct ExecPluginInvoker: PluginInvoker {
    /// `CNI_PATH` as given to every plugin.
    public var searchPath: String

    public init(searchPath: String = PluginSearchPath.fromEnvironment) {
        self.searchPath = searchPath
    }

    /// The binary for `type`: the first executable file of that name in a `CNI_PATH` directory.
    /// Not found is exit 2, naming CNI_PATH.
    public func executable(for type: String) throws(ControlError) -> String {
        guard CNIEnvironment.containerIDProblem(type) == nil else {
            throw ControlError(.usage, "invalid plugin type \"\(type)\": a plugin type is a file name (letters, digits, _ . -)")
        }
        for directory in PluginSearchPath.directories(searchPath) {
            let candidate = directory.hasSuffix("/") ? directory + type : directory + "/" + type
            var info = stat()
            if stat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        throw ControlError(.access, "plugin \"\(type)\" not found in CNI_PATH=\(searchPath); install it there or set CNI_PATH to the directory that holds it")
    }

    /// Every plugin of the list found before any runs, so a missing one stops the verb before it
    /// changed anything.
    public func requirePlugins(of list: NetworkList) throws(ControlError) {
        for plugin in list.plugins {
            _ = try executable(for: plugin["type"]?.stringValue ?? "")
        }
    }

    public func invoke(_ call: PluginCall) throws(PluginFailure) -> [UInt8] {
        let path: String
        do {
            path = try executable(for: call.type)
        } catch {
            throw PluginFailure(call, reason: error.message)
        }
        let environment = Self.environment(for: call, searchPath: searchPath)
        var attempt = 0
        while true {
            let outcome: PluginExec.Outcome
            do {
                outcome = try PluginExec.run(executable: path, environment: environment, stdin: call.stdin)
            } catch let error where error.code == ETXTBSY && attempt < 5 {
                // The binary is being replaced as we exec it: an upgrade in progress.
                attempt += 1
                usleep(200_000)
                continue
            } catch {
                throw PluginFailure(call, reason: "cannot run \(path): \(error.description)")
            }
            if outcome.exitedCleanly { return outcome.stdout }
            throw PluginFailure(call, outcome: outcome)
        }
    }

    /// The variables a plugin sees: podwirectl's own environment without any `CNI_*` variable of
    /// the protocol, then CNI_COMMAND and CNI_PATH always, the attachment's CONTAINERID, NETNS and
    /// IFNAME for ADD, CHECK and DEL, and CNI_ARGS only when arguments were given.
    static func environment(for call: PluginCall, searchPath: String) -> [String] {
        let protocolVariables: Set<String> = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]
        var variables: [String] = []
        var entry = environ
        while let current = entry.pointee {
            let text = String(cString: current)
            let name = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? text
            if !protocolVariables.contains(name) { variables.append(text) }
            entry += 1
        }
        return variables + call.protocolVariables(searchPath: searchPath)
    }
}

/// A plugin process from spawn to exit: stdin written, stdout collected, stderr passed through.
enum PluginExec {
    struct Outcome {
        var status: Int32
        var stdout: [UInt8]
        /// The end of what the plugin wrote on stderr (all of it was passed through already).
        var stderrTail: [UInt8]

        var exited: Bool { status & 0x7f == 0 }
        var exitStatus: Int32 { (status >> 8) & 0xff }
        var signal: Int32? { !exited && status & 0x7f != 0x7f ? status & 0x7f : nil }
        var exitedCleanly: Bool { exited && exitStatus == 0 }

        var how: String {
            if exited { return "exited with status \(exitStatus)" }
            if let signal { return "killed by signal \(signal) (\(String(cString: strsignal(signal))))" }
            return "ended with wait status \(status)"
        }
    }

    /// A plugin answers with one small document; anything past this is not one.
    static let outputLimit = 16 << 20
    static let stderrTailLimit = 2048

    /// A plugin that exits without reading its config must not kill podwirectl with SIGPIPE.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    static func run(executable: String, environment: [String], stdin: [UInt8]) throws(SystemError) -> Outcome {
        _ = ignoreSIGPIPE
        let input = try makePipe()
        let output: (read: Int32, write: Int32)
        let errors: (read: Int32, write: Int32)
        do {
            output = try makePipe()
        } catch {
            close(input.read); close(input.write)
            throw error
        }
        do {
            errors = try makePipe()
        } catch {
            close(input.read); close(input.write); close(output.read); close(output.write)
            throw error
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input.read, 0)
        posix_spawn_file_actions_adddup2(&actions, output.write, 1)
        posix_spawn_file_actions_adddup2(&actions, errors.write, 2)

        // SIGPIPE, ignored here, is the default again in the plugin, as a runtime leaves it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))

        let pid: pid_t
        do {
            pid = try ProcessSpawn.spawn(executable, environment: environment, actions: &actions, attributes: &attributes)
        } catch {
            for fd in [input.read, input.write, output.read, output.write, errors.read, errors.write] { close(fd) }
            throw error
        }
        close(input.read)
        close(output.write)
        close(errors.write)

        var stdout: [UInt8] = []
        var tail: [UInt8] = []
        pump(stdin: stdin, input: input.write, output: output.read, errors: errors.read, stdout: &stdout, stderrTail: &tail)
        var status: Int32 = 0
        _ = retryingInterrupts { waitpid(pid, &status, 0) }
        return Outcome(status: status, stdout: stdout, stderrTail: tail)
    }

    /// Writes the config, reads stdout and stderr, all at once: a plugin that writes before it
    /// has read all of its stdin, or fills the stderr pipe, cannot deadlock against podwirectl.
    private static func pump(stdin: [UInt8], input: Int32, output: Int32, errors: Int32,
                             stdout: inout [UInt8], stderrTail: inout [UInt8]) {
        var input = Optional(input), output = Optional(output), errors = Optional(errors)
        var written = 0
        if let fd = input {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if stdin.isEmpty {
                close(fd)
                input = nil
            }
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while input != nil || output != nil || errors != nil {
            var polled: [pollfd] = []
            if let input { polled.append(pollfd(fd: input, events: Int16(POLLOUT), revents: 0)) }
            if let output { polled.append(pollfd(fd: output, events: Int16(POLLIN), revents: 0)) }
            if let errors { polled.append(pollfd(fd: errors, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&polled, nfds_t(polled.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            for entry in polled where entry.revents != 0 {
                if entry.fd == input {
                    let count = stdin.withUnsafeBytes { write(entry.fd, $0.baseAddress! + written, $0.count - written) }
                    if count > 0 { written += count }
                    if (count < 0 && errno != EAGAIN && errno != EINTR) || written == stdin.count {
                        // Done, or the plugin closed its stdin (EPIPE): its exit status will tell.
                        close(entry.fd)
                        input = nil
                    }
                } else {
                    let count = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                    if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                    if count <= 0 {
                        close(entry.fd)
                        if entry.fd == output { output = nil } else { errors = nil }
                        continue
                    }
                    if entry.fd == output {
                        if stdout.count < outputLimit { stdout.append(contentsOf: buffer[0..<min(count, outputLimit - stdout.count)]) }
                    } else {
                        // Passed through as it comes; a stderr podwirectl cannot write to is not the plugin's failure.
                        try? FileDescriptorIO.writeAll(2, Array(buffer[0..<count]), operation: "pass the plugin's stderr through")
                        stderrTail.append(contentsOf: buffer[0..<count])
                        if stderrTail.count > stderrTailLimit { stderrTail.removeFirst(stderrTail.count - stderrTailLimit) }
                    }
                }
            }
        }
        // Whatever broke the loop early (poll failing for other reasons than EINTR).
        for fd in [input, output, errors].compactMap({ $0 }) { close(fd) }
    }

    private static func makePipe() throws(SystemError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        try valueOrErrno("pipe") { pipe(&fds) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }
}

extension PluginFailure {
    /// A process that did not exit 0: its CNI error document when it printed one, else how it
    /// ended, with what it printed.
    init(_ call: PluginCall, outcome: PluginExec.Outcome) {
        if let error = Self.errorDocument(outcome.stdout) {
            self.init(call, error: error)
            return
        }
        var reason = outcome.how
        let printed = Self.excerpt(outcome.stdout) ?? Self.excerpt(outcome.stderrTail).map { "stderr: \($0)" }
        if let printed { reason += " (\(printed))" } else { reason += " without an error document" }
        self.init(call, reason: reason)
    }

    /// `{code, msg, details}` on stdout, as the spec has plugins report errors.
    static func errorDocument(_ output: [UInt8]) -> CNIError? {
        guard let document = try? CNIJSON.parse(output, what: "plugin error"), let code = document["code"]?.intValue else { return nil }
        return CNIError(CNIErrorCode(rawValue: code), document["msg"]?.stringValue ?? "", details: document["details"]?.stringValue)
    }

    /// The last non-empty line of `bytes`, cut to a readable length; nil when there is none.
    static func excerpt(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let line = text.split(whereSeparator: \.isNewline).last(where: { !$0.allSatisfy(\.isWhitespace) }) else { return nil }
        let trimmed = line.trimmingPrefix(while: \.isWhitespace)
        return trimmed.count > 300 ? String(trimmed.prefix(300)) + "…" : String(trimmed)
    }
}
