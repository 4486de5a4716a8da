import ArgumentParser
import CNIProtocol
import PodwireControl

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Sum up the call log: counts, errors, latency percentiles per command.",
        discussion: """
            Reads the call log the network's podwire entry names ("callLog"), or --log FILE, with \
            its rotated FILE.1 first. Per command (ADD, DEL, CHECK, GC, STATUS): the calls, the \
            failed ones by CNI error code, the 50th, 90th and 99th percentiles and the maximum of \
            the call's duration (from the plugin's exec to the end of the call, failed calls \
            included), and the phase with the highest median. Lines that are not call-log lines \
            are skipped and counted.

            --prometheus FILE writes the same as a node_exporter textfile collector file (put it in \
            the collector's directory, named *.prom), replaced whole; the table is then not printed \
            (--json still prints its document).

            Example:
              podwirectl stats
              podwirectl stats --log /run/podwire/calls.jsonl --json
              podwirectl stats --prometheus /var/lib/node_exporter/textfile/podwire.prom
            """)

    @Option(name: .long, help: ArgumentHelp("The call log to read.",
                                            discussion: "Default: the \"callLog\" of the network's podwire entry.",
                                            valueName: "file"))
    var log: String?

    @OptionGroup var network: NetworkOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: ArgumentHelp("Write the stats to this node_exporter textfile collector file.",
                                            valueName: "file"))
    var prometheus: String?

    func run() throws {
        let path = try logPath()
        let files = try CallLogReader.read(path: path)
        let stats = CallStats(files: files.map(\.bytes))
        if let prometheus { try PrometheusTextfile.write(stats.prometheus(), to: prometheus) }
        if output.json {
            print(String(decoding: CNIJSON.encode(stats.json(files: files.map(\.path))), as: UTF8.self))
        } else if prometheus == nil {
            print(stats.text(files: files.map(\.path)), terminator: "")
        }
    }

    /// --log, else the network's callLog.
    func logPath() throws -> String {
        if let log {
            guard !log.isEmpty else { throw ControlError(.usage, "--log needs a file") }
            return log
        }
        let list: NetworkList
        do {
            list = try network.network()
        } catch let error as ControlError {
            throw ControlError(error.kind, "\(error.message) (or name the call log with --log FILE)")
        }
        guard let path = try list.podwireConfig().callLog else {
            throw ControlError(.usage, "\(list.path): network \(list.name) has no call log (\"callLog\" in podwire's entry); name one with --log FILE")
        }
        return path
    }
}
