import ArgumentParser
import CNIProtocol
import NetAddress
import Netlink
import PodIPAM
import PodwireControl

struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List the network's attachments: addresses, veths, hostPorts, masquerade, age.",
        discussion: """
            One row per attachment the IPAM store holds, joined with the kernel: whether its host \
            veth (and with it the pod's end) still exists, the node ports forwarded to it, whether \
            it is masqueraded, and how long ago its address was allocated. Takes the store's lock \
            for a moment; read-only.

            Example:
              podwirectl ls
              podwirectl ls --conflist /etc/cni/net.d/10-podwire.conflist --json
            """)

    @OptionGroup var network: NetworkOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let list = try network.network()
        let snapshot = try NodeView.snapshot(list)
        let rows = Listing.rows(snapshot)
        if output.json {
            let document: JSONValue = .object(["network": .string(list.name), "attachments": .array(rows.map(\.json))])
            print(String(decoding: CNIJSON.encode(document), as: UTF8.self))
            return
        }
        var table = [["ADDRESSES", "CONTAINER", "IFNAME", "HOST VETH", "POD END", "HOSTPORTS", "MASQ", "AGE"]]
        for row in rows {
            let podEnd = row.podEnd.map { end in "ifindex \(end.index)" + (end.netnsID.map { " netnsid \($0)" } ?? "") } ?? "gone"
            table.append([row.addresses.map(\.description).joined(separator: ","), String(row.containerID.prefix(12)), row.ifname,
                          row.hostVeth + (row.hostVethPresent ? "" : " (gone)"), podEnd,
                          row.hostPorts.isEmpty ? "-" : row.hostPorts.joined(separator: ","), row.masqueraded ? "yes" : "no",
                          Listing.ageText(row.age)])
        }
        printTable(table)
        if rows.isEmpty { print("(network \(list.name) has no attachments on this node)") }
    }
}

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor", abstract: "Find (and with --fix repair) what the IPAM store and the kernel disagree on.",
        discussion: """
            Finds leaked addresses (allocated, host veth gone), podwire veths without an allocation, \
            stray host routes to pod addresses, routes missing from live pods, masquerade and \
            hostPort elements of addresses nobody holds, a hostPort forwarded to two pods, and an \
            index that disagrees with the address files. One line each: the address, the object, \
            what is wrong and what --fix does. Looks twice, a quarter of a second apart, so a \
            plugin call in flight is not reported; the second look (and --fix) holds the store's \
            lock. --fix never touches a live, consistent pod.

            Exit status: 0 nothing found (or everything fixed), 1 problems found (or a repair \
            failed), 2 the node could not be read.

            Example:
              podwirectl doctor
              podwirectl doctor --fix
            """)

    @OptionGroup var network: NetworkOptions
    @OptionGroup var output: OutputOptions
    @Flag(name: .long, help: "Repair what is found.")
    var fix = false

    func run() throws {
        let list = try network.network()
        let report = try DoctorSession(network: list).run(fix: fix)
        if output.json {
            let document: JSONValue = .object([
                "network": .string(report.network),
                "findings": .array(report.findings.map(\.json)),
                "fixed": .bool(report.fixed && report.failures.isEmpty),
                "failures": .array(report.failures.map { .object(["finding": .string($0.finding), "reason": .string($0.reason)]) }),
            ])
            print(String(decoding: CNIJSON.encode(document), as: UTF8.self))
        } else {
            let failed = Set(report.failures.map(\.finding))
            for finding in report.findings where !failed.contains(finding.line) { print(fix ? finding.fixedLine : finding.line) }
            for failure in report.failures { writeError("podwirectl: could not fix \(failure.finding): \(failure.reason)") }
            if report.findings.isEmpty { print("network \(report.network): no problems found") }
        }
        if !report.failures.isEmpty || (!fix && !report.findings.isEmpty) { throw ExitCode(1) }
    }
}

/// Reads a network's state for the read-only verbs: the store under its lock for a moment.
enum NodeView {
    static func snapshot(_ list: NetworkList) throws -> NodeSnapshot {
        let ipam = try list.ipamConfig()
        let store: LockedIPAMStore
        do {
            store = try LockedIPAMStore(dataDir: ipam.dataDir, network: list.name)
        } catch {
            throw ControlError(access: error)
        }
        defer { try? store.close() }
        let socket: RouteSocket
        do {
            socket = try RouteSocket()
        } catch {
            throw ControlError(.access, "cannot open a netlink socket: \(error)")
        }
        return try NodeSnapshot.read(network: list, store: store, routeSocket: socket)
    }
}

/// Columns padded to their widest cell, two spaces apart.
func printTable(_ rows: [[String]]) {
    guard let first = rows.first else { return }
    var widths = first.map(\.count)
    for row in rows {
        for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) }
    }
    for row in rows {
        var line = ""
        for (column, cell) in row.enumerated() {
            line += column == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count + 2)
        }
        print(line)
    }
}

extension AttachmentRow {
    var json: JSONValue {
        var podEndValue: JSONValue = .object(["present": .bool(false)])
        if let end = podEnd {
            var object: [String: JSONValue] = ["present": .bool(true), "ifindex": .number(Double(end.index))]
            if let id = end.netnsID { object["netnsid"] = .number(Double(id)) }
            podEndValue = .object(object)
        }
        return .object([
            "addresses": .array(addresses.map { .string($0.description) }),
            "containerID": .string(containerID), "ifname": .string(ifname),
            "hostVeth": .string(hostVeth), "hostVethPresent": .bool(hostVethPresent), "podEnd": podEndValue,
            "hostPorts": .array(hostPorts.map { .string($0) }), "masquerade": .bool(masqueraded),
            "ageSeconds": .number(Double(age)),
        ])
    }
}

extension Finding {
    var json: JSONValue {
        var object: [String: JSONValue] = ["kind": .string(kind.rawValue), "object": .string(object), "problem": .string(problem),
                                           "fix": .string(repair.description), "line": .string(line)]
        if let address { object["address"] = .string(address.description) }
        return .object(object)
    }
}
