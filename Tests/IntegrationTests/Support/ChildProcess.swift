import Foundation

/// A child started with posix_spawn and reaped by a thread of its own.
///
/// Foundation's Process crashed inside run() here (a bad pointer in its memcpy) while Swift Testing
/// ran suites in parallel, even with launches serialised, so the harness spawns children itself.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    /// Parent ends of the child's stdin, stdout and stderr pipes.
    let stdinFD: Int32
    let stdoutFD: Int32
    let stderrFD: Int32

    private let lock = NSLock()
    private var waitStatus: Int32?
    /// errno of a waitpid that failed other than with EINTR: the child's fate is then unknown.
    private var waitError: Int32?
    private let exited = DispatchSemaphore(value: 0)

    struct SpawnError: Error, CustomStringConvertible {
        var executable: String
        var code: Int32
        var description: String { "cannot start \(executable): \(String(cString: strerror(code)))" }
    }

    init(executable: String, arguments: [String], environment: [String: String]) throws {
        var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1], errors: [Int32] = [-1, -1]
        for index in 0..<3 {
            var fds: [Int32] = [-1, -1]
            guard pipe(&fds) == 0 else { throw SpawnError(executable: executable, code: errno) }
            // Close-on-exec, so no other child spawned meanwhile inherits these ends and keeps a
            // pipe open; dup2 onto 0/1/2 in the child clears the flag for the child's own copy.
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            switch index {
            case 0: input = fds
            case 1: output = fds
            default: errors = fds
            }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, nil, argv, envp)
        Foundation.close(input[0])
        Foundation.close(output[1])
        Foundation.close(errors[1])
        if rc != 0 {
            Foundation.close(input[1])
            Foundation.close(output[0])
            Foundation.close(errors[0])
            throw SpawnError(executable: executable, code: rc)
        }
        pid = child
        stdinFD = input[1]
        stdoutFD = output[0]
        stderrFD = errors[0]
        let spawned = child
        Thread.detachNewThread { [self] in
            var status: Int32 = 0
            var failure: Int32?
            while waitpid(spawned, &status, 0) < 0 {
                if errno != EINTR {
                    failure = errno
                    break
                }
            }
            lock.withLock {
                waitStatus = status
                waitError = failure
            }
            exited.signal()
        }
    }

    var isRunning: Bool { lock.withLock { waitStatus == nil } }

    /// Waits for the child to exit; its exit status, or 128 + the signal that killed it. Throws
    /// when waitpid failed, rather than invent a status for a child whose end was not seen.
    @discardableResult
    func waitForExit() throws -> Int32 {
        exited.wait()
        exited.signal() // later waiters pass too
        let (status, failure) = lock.withLock { (waitStatus ?? 0, waitError) }
        if let failure { throw TestNodeError.systemCall("waitpid(\(pid))", errno: failure) }
        let signal = status & 0x7f
        return signal != 0 ? 128 + signal : (status >> 8) & 0xff
    }
}
