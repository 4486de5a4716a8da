import ArgumentParser
import PodwireControl

struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the network's attachments.")
    func run() throws { throw ControlError(.usage, "ls: not built yet") }
}

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "doctor", abstract: "Find (and with --fix repair) what the store and the kernel disagree on.")
    func run() throws { throw ControlError(.usage, "doctor: not built yet") }
}
