import ArgumentParser
import PodwireControl

// add | check | del NETNS: what cnitool does. (Filled in by the plugin-chain work.)

struct AddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "ADD a network namespace to the network, as a runtime would.")
    func run() throws { throw ControlError(.usage, "add: not built yet") }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "CHECK an attachment, as a runtime would.")
    func run() throws { throw ControlError(.usage, "check: not built yet") }
}

struct DelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del", abstract: "DEL an attachment, as a runtime would.")
    func run() throws { throw ControlError(.usage, "del: not built yet") }
}
