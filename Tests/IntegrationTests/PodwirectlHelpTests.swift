import Foundation
import Testing

/// podwirectl's help, as an operator first meets it: every verb listed, each verb's own help
/// with an example, and exit codes 0 for help, 2 for a verb that does not exist.
@Suite("podwirectl --help")
struct PodwirectlHelpTests {
    static let verbs = ["add", "check", "del", "status", "gc", "ls", "doctor", "stats"]

    func run(_ arguments: [String]) throws -> CommandResult {
        try TestNode.execute(try PodwireBinary.requireControl(), arguments, environment: ["PATH": TestNode.defaultPath], stdin: nil,
                             timeout: 30)
    }

    @Test("--help lists every verb")
    func listsEveryVerb() throws {
        let result = try run(["--help"])
        #expect(result.status == 0, "\(result)")
        let listed = result.stdout.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            return line.hasPrefix("  ") && words.count > 1 ? String(words[0]) : nil
        }
        for verb in Self.verbs { #expect(listed.contains(verb), "\(verb) missing from:\n\(result.stdout)") }
    }

    @Test("each verb's --help works and shows an example", arguments: verbs)
    func verbHelp(_ verb: String) throws {
        let result = try run([verb, "--help"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("USAGE: podwirectl \(verb)"), "\(result.stdout)")
        #expect(result.stdout.contains("Example:"), "\(result.stdout)")
        #expect(result.stdout.contains("podwirectl \(verb)"), "\(result.stdout)")
    }

    @Test("a verb that does not exist, or a bad option, is a usage error: exit 2, one message on stderr")
    func usageErrors() throws {
        for arguments in [["frobnicate"], ["doctor", "--fixx"]] {
            let result = try run(arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(!result.stderr.isEmpty && result.stdout.isEmpty, "\(arguments): \(result)")
        }
    }
}
