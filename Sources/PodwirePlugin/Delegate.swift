import CLinuxShim
import CNIProtocol
import LinuxSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs another CNI plugin (a delegated IPAM such as host-local) exactly as a runtime would:
/// found on CNI_PATH, the same environment but for CNI_COMMAND, the config on stdin, its
/// stderr passed through, its stdout read as the one result or error document.
struct DelegatedPlugin {
    let type: String
    let executable: String

    /// Finds `type` on CNI_PATH. The type becomes a file name, so it may not climb out of the
    /// directories the runtime listed.
    init(type: String, searchPath: [String]) throws(CNIError) {
        guard CNIEnvironment.containerIDProblem(type) == nil else {
            throw CNIError(.invalidNetworkConfig, "invalid plugin type \"\(type)\"",
                           details: "a plugin type is a file name: letters, digits, _ . - only")
        }
        guard !searchPath.isEmpty else {
            throw CNIError(.invalidEnvironment, "required env variables [CNI_PATH] missing",
                           details: "CNI_PATH must list the directory that holds the \(type) plugin")
        }
        for directory in searchPath {
            let candidate = directory.hasSuffix("/") ? directory + type : directory + "/" + type
            if access(candidate, X_OK) == 0 {
                self.type = type
                self.executable = candidate
                return
            }
        }
        throw CNIError(.invalidNetworkConfig, "failed to find plugin \"\(type)\" in path [\(searchPath.joined(separator: " "))]",
                       details: "install the \(type) plugin in one of the CNI_PATH directories")
    }

    /// Runs the plugin for `command` and returns its stdout on success; a failure becomes the
    /// plugin's own CNI error (code kept, message prefixed with the plugin's name).
    func run(_ command: CNICommand, stdin: [UInt8]) throws(CNIError) -> [UInt8] {
        var environment: [String] = []
        if var entry = CLinuxShim_environ() {
            while let current = entry.pointee {
                let text = String(cString: current)
                if !text.hasPrefix("CNI_COMMAND=") { environment.append(text) }
                entry += 1
            }
        }
        environment.append("CNI_COMMAND=\(command.rawValue)")

        // "text file busy" happens when the plugin binary is being replaced while we exec it.
        var attempt = 0
        while true {
            do {
                return try spawn(environment: environment, stdin: stdin)
            } catch let error as SystemError where error.code == ETXTBSY && attempt < 5 {
                attempt += 1
                usleep(200_000)
            } catch let error as SystemError {
                throw CNIError(.delegateFailed, "cannot run plugin \(executable)", details: error.reason)
            } catch let error as CNIError {
                throw error
            } catch {
                throw CNIError(.delegateFailed, "cannot run plugin \(executable)", details: "\(error)")
            }
        }
    }

    private func spawn(environment: [String], stdin: [UInt8]) throws -> [UInt8] {
        var inputPipe: [Int32] = [-1, -1]
        var outputPipe: [Int32] = [-1, -1]
        try valueOrErrno("pipe2") { CLinuxShim_pipe2(&inputPipe, O_CLOEXEC) }
        do {
            try valueOrErrno("pipe2") { CLinuxShim_pipe2(&outputPipe, O_CLOEXEC) }
        } catch {
            close(inputPipe[0]); close(inputPipe[1])
            throw error
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inputPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 1)

        let pid: pid_t
        do {
            pid = try ProcessSpawn.spawn(executable, environment: environment, actions: &actions)
        } catch {
            for fd in inputPipe + outputPipe { close(fd) }
            throw error
        }
        close(inputPipe[0])
        close(outputPipe[1])
        // A config is far smaller than a pipe buffer, and plugins read stdin before writing,
        // so writing it all before reading cannot deadlock.
        // A plugin that exits without reading its config is judged by its exit status below.
        try? FileDescriptorIO.writeAll(inputPipe[1], stdin, operation: "write the config to \(type)")
        close(inputPipe[1])
        // A read error leaves no answer to decode: the exit status then says what happened.
        let output = (try? FileDescriptorIO.readAll(outputPipe[0], operation: "read the answer of \(type)")) ?? []
        close(outputPipe[0])
        var status: Int32 = 0
        _ = retryingInterrupts { waitpid(pid, &status, 0) }
        if CLinuxShim_WIFEXITED(status) != 0 && CLinuxShim_WEXITSTATUS(status) == 0 { return output }
        throw delegateError(output: output, status: status)
    }

    private func delegateError(output: [UInt8], status: Int32) -> CNIError {
        let trimmed = output.drop { $0 == 32 || $0 == 10 }
        if let document = try? CNIJSON.parse(Array(trimmed), what: "plugin error"), let code = document["code"]?.intValue {
            return CNIError(CNIErrorCode(rawValue: code), "\(type): \(document["msg"]?.stringValue ?? "failed")",
                            details: document["details"]?.stringValue)
        }
        let how = CLinuxShim_WIFSIGNALED(status) != 0 ? "killed by signal \(CLinuxShim_WTERMSIG(status))"
            : "exited with status \(CLinuxShim_WEXITSTATUS(status))"
        return CNIError(.delegateFailed, "\(type) \(how)", details: output.isEmpty ? nil : String(decoding: output.prefix(512), as: UTF8.self))
    }
}
