#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// posix_spawn(2) of a program run the way runtimes run CNI plugins: argv is the program's path
/// alone, the environment exactly `environment` ("NAME=value" each).
public enum ProcessSpawn {
    /// Returns the child's pid; the error carries posix_spawn's own error number.
    public static func spawn(_ executable: String, environment: [String],
                             actions: UnsafePointer<posix_spawn_file_actions_t>?,
                             attributes: UnsafePointer<posix_spawnattr_t>? = nil) throws(SystemError) -> pid_t {
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(executable), nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, actions, attributes, argv, envp)
        guard rc == 0 else { throw SystemError("posix_spawn \(executable)", errno: rc) }
        return pid
    }
}
