import ArgumentParser
import PodwireControl

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// podwirectl: what an operator runs on a node to see what podwire did, check it against the
/// kernel, repair what others broke, and read the plugin's call log.
@main
struct Podwirectl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "podwirectl",
        abstract: "See, check and repair podwire's pod network on this node.",
        discussion: """
            The network is read from --conflist FILE, or else from the first podwire network in \
            $NETCONFPATH (default /etc/cni/net.d), as a runtime reads it.

            Exit status: 0 when all is well, 1 when problems were found (or a plugin failed), \
            2 on a usage error or when something could not be read or changed.

            Example:
              podwirectl ls
              podwirectl doctor --fix
            """,
        subcommands: [AddCommand.self, CheckCommand.self, DelCommand.self, StatusCommand.self, GCCommand.self,
                      LsCommand.self, DoctorCommand.self, StatsCommand.self])

    /// ArgumentParser's own exit codes (64 for usage) become the contract's: 0, 1 or 2.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ControlError {
            writeError("podwirectl: \(error.message)")
            Glibc.exit(error.exitCode)
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                Glibc.exit(0)
            }
            writeError(message.isEmpty ? "podwirectl: \(error)" : message)
            Glibc.exit(2)
        }
    }
}

/// One line on stderr (stdout carries only what was asked for).
func writeError(_ line: String) {
    let text = Array((line.hasSuffix("\n") ? line : line + "\n").utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
