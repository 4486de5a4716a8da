import ArgumentParser
import PodwireControl

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Sum up the call log: counts, errors, latency percentiles per command.")
    func run() throws { throw ControlError(.usage, "stats: not built yet") }
}
