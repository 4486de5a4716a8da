import ArgumentParser
import PodwireControl

// status, gc --keep ID/IFNAME...: the CNI verbs. (Filled in by the plugin-chain work.)

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Ask the network's plugins whether an ADD could succeed (CNI STATUS).")
    func run() throws { throw ControlError(.usage, "status: not built yet") }
}

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gc", abstract: "Remove every attachment but those listed (CNI GC).")
    func run() throws { throw ControlError(.usage, "gc: not built yet") }
}
