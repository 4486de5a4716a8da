import Testing
@testable import Netlink
import NetAddress
#if canImport(Glibc)
import Glibc
#endif

// ConntrackSocket against the kernel, in a network namespace of the test's own: each test runs on
// a pthread of its own (never a Swift concurrency thread) that first unshares its network
// namespace, so only that thread, the sockets it opens and the processes it starts are in a fresh,
// private namespace; the machine's own namespace is never touched (the thread checks it is in
// another before anything else, and stops otherwise). Entries are made there with `conntrack -I`
// through `nsenter --net=/proc/<pid>/task/<tid>/ns/net`, or by real UDP traffic over lo, and what
// is left is read back with `conntrack -L` in the same namespace.
//
// Needs real root (a thread's unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN over the process's user
// namespace, and a process with threads cannot unshare a user namespace of its own), and conntrack,
// nsenter, nft and ip; otherwise the tests are skipped.

@Suite(.serialized) struct ConntrackKernelTests {
    static let tools = ConntrackTestTools.find()
    static var runnable: Bool { geteuid() == 0 && tools != nil }

    static let udp: UInt8 = 17, tcp: UInt8 = 6
    static let pod1 = IPAddress("10.244.1.2")!, pod2 = IPAddress("10.244.1.3")!
    static let pod1v6 = IPAddress("fd00:10:244:1::2")!, pod2v6 = IPAddress("fd00:10:244:1::3")!

    /// Filters, listings and deletes: exactly the matching entries go, and every other one stays.
    @Test(.enabled(if: runnable)) func listsAndDeletesExactlyTheMatches() throws {
        try PrivateNetwork.run { namespace, check in
            guard let tools = Self.tools else { throw PrivateNetwork.Failure("tools missing") }
            func conntrack(_ arguments: String...) throws -> String {
                try namespace.run([tools.conntrack] + arguments, tools: tools)
            }
            // A: a hostPort flow, udp 8080 DNATed to pod1. B: another port DNATed to pod1.
            // C: the same port DNATed to pod2. D: tcp to 8080. E: A's tuple in zone 7.
            // F: an ICMP echo answered by pod1 (no ports). G, H: IPv6, pod1 and pod2, port 8080.
            _ = try conntrack("-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "8080",
                              "-t", "120", "--dst-nat", "10.244.1.2:53")
            _ = try conntrack("-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1001", "--dport", "9090",
                              "-t", "120", "--dst-nat", "10.244.1.2:9090")
            _ = try conntrack("-I", "-p", "udp", "-s", "10.0.0.5", "-d", "10.0.0.3", "--sport", "1000", "--dport", "8080",
                              "-t", "120", "--dst-nat", "10.244.1.3:53")
            _ = try conntrack("-I", "-p", "tcp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "8080",
                              "--state", "ESTABLISHED", "-t", "120")
            _ = try conntrack("-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "8080",
                              "-t", "120", "--zone", "7")
            _ = try conntrack("-I", "-p", "icmp", "-s", "10.0.0.1", "-d", "10.244.1.2", "--icmp-type", "8", "--icmp-code", "0",
                              "--icmp-id", "42", "-t", "120")
            _ = try conntrack("-I", "-p", "udp", "-s", "fd00::1", "-d", "fd00::2", "--sport", "1001", "--dport", "8080",
                              "-t", "120", "--dst-nat", "[fd00:10:244:1::2]:53")
            _ = try conntrack("-I", "-p", "udp", "-s", "fd00::1", "-d", "fd00::3", "--sport", "1002", "--dport", "8080",
                              "-t", "120", "--dst-nat", "[fd00:10:244:1::3]:53")
            let a = "udp 10.0.0.1:1000>10.0.0.2:8080", b = "udp 10.0.0.1:1001>10.0.0.2:9090"
            let c = "udp 10.0.0.5:1000>10.0.0.3:8080", d = "tcp 10.0.0.1:1000>10.0.0.2:8080"
            let e = "udp 10.0.0.1:1000>10.0.0.2:8080 zone 7", f = "icmp 10.0.0.1>10.244.1.2"
            let g = "udp fd00::1:1001>fd00::2:8080", h = "udp fd00::1:1002>fd00::3:8080"
            func kernel(_ family: IPFamily) throws -> Set<String> { try Self.listed(family, in: namespace, tools: tools) }
            check.equal(try kernel(.v4), [a, b, c, d, e, f], "the IPv4 entries conntrack -I made")
            check.equal(try kernel(.v6), [g, h], "the IPv6 entries conntrack -I made")

            let socket = try ConntrackSocket()
            func list(_ family: IPFamily, _ filter: ConntrackFilter) throws -> [ConntrackEntry] {
                try socket.entries(family: family, matching: filter)
            }
            func keys(_ entries: [ConntrackEntry]) -> Set<String> { Set(entries.map(Self.key)) }

            // Listing.
            check.equal(keys(try list(.v4, ConntrackFilter())), [a, b, c, d, e, f], "conntrack -L -f ipv4")
            check.equal(keys(try list(.v4, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080))), [a, c, e],
                        "conntrack -L -f ipv4 -p udp --orig-port-dst 8080")
            check.equal(keys(try list(.v4, ConntrackFilter(proto: Self.tcp, originalDestinationPort: 8080))), [d],
                        "conntrack -L -f ipv4 -p tcp --orig-port-dst 8080")
            check.equal(keys(try list(.v4, ConntrackFilter(replySource: Self.pod1))), [a, b, f], "conntrack -L -f ipv4 --reply-src 10.244.1.2")
            check.equal(keys(try list(.v4, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080, replySource: Self.pod1))), [a],
                        "conntrack -L -f ipv4 -p udp --orig-port-dst 8080 --reply-src 10.244.1.2")
            check.equal(keys(try list(.v4, ConntrackFilter(proto: Self.udp, replySource: Self.pod2))), [c],
                        "conntrack -L -f ipv4 -p udp --reply-src 10.244.1.3")
            check.equal(keys(try list(.v4, ConntrackFilter(replySource: Self.pod1v6))), [], "an IPv6 reply source in the IPv4 table")
            check.equal(keys(try list(.v6, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080))), [g, h],
                        "conntrack -L -f ipv6 -p udp --orig-port-dst 8080")
            check.equal(keys(try list(.v6, ConntrackFilter(replySource: Self.pod1v6))), [g], "conntrack -L -f ipv6 --reply-src fd00:10:244:1::2")
            check.equal(keys(try list(.v6, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080, replySource: Self.pod2v6))), [h],
                        "conntrack -L -f ipv6 -p udp --orig-port-dst 8080 --reply-src fd00:10:244:1::3")
            let natted = try list(.v4, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080, replySource: Self.pod1))
            check.that(natted.count == 1 && natted[0].isDestinationNATed && natted[0].zone == 0, "A is DNATed, in zone 0: \(natted)")
            let zoned = try list(.v4, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080)).filter { $0.zone != 0 }
            check.that(zoned.count == 1 && zoned[0].zone == 7 && !zoned[0].isDestinationNATed, "E is in zone 7, not DNATed: \(zoned)")

            // A filter the kernel refuses (EINVAL: a flag bit it does not know) falls back to the
            // whole family, checked here. Were it applied instead, it would keep only TCP entries.
            let refused: [NetlinkAttribute] = [
                .nest(1, [.nest(2, [.bytes(1, [Self.tcp])])]), // CTA_TUPLE_ORIG { CTA_TUPLE_PROTO { CTA_PROTO_NUM tcp } }
                .nest(25, [.bytes(1, [0x08, 0x10, 0, 0]), .bytes(2, [0, 0, 0, 0])]), // CTA_FILTER { PROTO_NUM | 1 << 12, 0 }
            ]
            check.equal(keys(try socket.entries(family: .v4, matching: ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080),
                                                kernelFilter: refused)), [a, c, e], "a refused filter's fallback")
            // The same filter without the unknown bit is applied: only TCP reaches the re-check.
            let tcpOnly: [NetlinkAttribute] = [refused[0], .nest(25, [.bytes(1, [0x08, 0, 0, 0]), .bytes(2, [0, 0, 0, 0])])]
            check.equal(keys(try socket.entries(family: .v4, matching: ConntrackFilter(), kernelFilter: tcpOnly)), [d],
                        "the kernel's own filtering")

            // Deleting: the hostPort's flow to pod1 only (not A's twin in zone 7, not C).
            check.equal(try socket.delete(natted), 1, "deleted A")
            check.equal(try kernel(.v4), [b, c, d, e, f], "left after deleting A")
            // Everything pod1 answers, ICMP included.
            check.equal(try socket.delete(list(.v4, ConntrackFilter(replySource: Self.pod1))), 2, "deleted B and F")
            check.equal(try kernel(.v4), [c, d, e], "left after deleting pod1's")
            // Every UDP flow to 8080, in any zone; the TCP one stays.
            let port8080 = try list(.v4, ConntrackFilter(proto: Self.udp, originalDestinationPort: 8080))
            check.equal(keys(port8080), [c, e], "UDP to 8080")
            check.equal(try socket.delete(port8080), 2, "deleted C and E")
            check.equal(try kernel(.v4), [d], "left after deleting UDP to 8080")
            // Already gone: not an error, not counted.
            check.equal(try socket.delete(port8080), 0, "deleted C and E again")
            // IPv6: pod1's flow only.
            check.equal(try socket.delete(list(.v6, ConntrackFilter(replySource: Self.pod1v6))), 1, "deleted G")
            check.equal(try kernel(.v6), [h], "IPv6 left after deleting G")
            check.equal(try kernel(.v4), [d], "IPv4 left at the end")
        }
    }

    /// Forgetting by filter, as ADD (untranslated UDP flows to a new hostPort) and DEL (UDP flows
    /// DNATed to a pod) do: exactly the matching entries go, once through the kernel's filtered
    /// flush and once through a listing and deletes by tuple, with the same result.
    @Test(.enabled(if: runnable), arguments: [true, false]) func forgetsExactlyTheMatches(kernelFlush: Bool) throws {
        try PrivateNetwork.run { namespace, check in
            guard let tools = Self.tools else { throw PrivateNetwork.Failure("tools missing") }
            func conntrack(_ arguments: String...) throws -> String {
                try namespace.run([tools.conntrack] + arguments, tools: tools)
            }
            // A: a flow to 5353 that started before any mapping (untranslated). B: one DNATed to
            // pod1 by a hostPort. C: a pod's flow to another host's 5353, masqueraded. D: untranslated,
            // to 5354. E: TCP to 5353. F: A's twin in zone 7. G, H: IPv6, untranslated and DNATed.
            _ = try conntrack("-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "5353", "-t", "120")
            _ = try conntrack("-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1001", "--dport", "5353",
                              "-t", "120", "--dst-nat", "10.244.1.2:53")
            _ = try conntrack("-I", "-p", "udp", "-s", "10.244.1.3", "-d", "198.51.100.9", "--sport", "1002", "--dport", "5353",
                              "-t", "120", "--src-nat", "10.0.0.2")
            _ = try conntrack("-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1003", "--dport", "5354", "-t", "120")
            _ = try conntrack("-I", "-p", "tcp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "5353",
                              "--state", "ESTABLISHED", "-t", "120")
            _ = try conntrack("-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "5353",
                              "-t", "120", "--zone", "7")
            _ = try conntrack("-I", "-p", "udp", "-s", "fd00::1", "-d", "fd00::2", "--sport", "1000", "--dport", "5353", "-t", "120")
            _ = try conntrack("-I", "-p", "udp", "-s", "fd00::1", "-d", "fd00::2", "--sport", "1001", "--dport", "5353",
                              "-t", "120", "--dst-nat", "[fd00:10:244:1::2]:53")
            let a = "udp 10.0.0.1:1000>10.0.0.2:5353", b = "udp 10.0.0.1:1001>10.0.0.2:5353"
            let c = "udp 10.244.1.3:1002>198.51.100.9:5353", d = "udp 10.0.0.1:1003>10.0.0.2:5354"
            let e = "tcp 10.0.0.1:1000>10.0.0.2:5353", f = "udp 10.0.0.1:1000>10.0.0.2:5353 zone 7"
            let g = "udp fd00::1:1000>fd00::2:5353", h = "udp fd00::1:1001>fd00::2:5353"
            func kernel(_ family: IPFamily) throws -> Set<String> { try Self.listed(family, in: namespace, tools: tools) }
            check.equal(try kernel(.v4), [a, b, c, d, e, f], "the IPv4 entries conntrack -I made")
            check.equal(try kernel(.v6), [g, h], "the IPv6 entries conntrack -I made")

            let socket = try ConntrackSocket()
            // The kernel's filtered flush exists from 6.12 on; the listing path serves older ones.
            let flushes = kernelFlush && Self.kernelHasFilteredFlush
            func forget(_ family: IPFamily, _ filters: [ConntrackFilter], applied: Int, _ what: String) throws {
                let done = try socket.forget(family: family, matching: filters, kernelFlush: kernelFlush)
                check.equal(done, flushes ? applied : 0, "filters the kernel applied itself, \(what)")
            }
            func untranslated(_ port: UInt16) -> ConntrackFilter {
                ConntrackFilter(proto: Self.udp, originalDestinationPort: port, translation: ConntrackFilter.Translation.none)
            }
            func natted(to pod: IPAddress) -> ConntrackFilter {
                ConntrackFilter(proto: Self.udp, replySource: pod, translation: .destination)
            }

            // ADD of a hostPort 5353/udp: the flows that no NAT changed, in every zone.
            try forget(.v4, [untranslated(5353)], applied: 1, "ADD, IPv4")
            check.equal(try kernel(.v4), [b, c, d, e], "left after forgetting untranslated UDP flows to 5353")
            try forget(.v6, [untranslated(5353)], applied: 1, "ADD, IPv6")
            check.equal(try kernel(.v6), [h], "IPv6 left after forgetting untranslated UDP flows to 5353")
            // DEL of pod1: its DNATed flows. An IPv6 pod's always take the listing path.
            try forget(.v4, [natted(to: Self.pod1)], applied: 1, "DEL, IPv4")
            check.equal(try kernel(.v4), [c, d, e], "left after forgetting the flows DNATed to pod1")
            try forget(.v6, [natted(to: Self.pod1v6)], applied: 0, "DEL, IPv6")
            check.equal(try kernel(.v6), [], "IPv6 left after forgetting the flows DNATed to pod1")
            // Two ports in one call; 5353's are gone already.
            try forget(.v4, [untranslated(5354), untranslated(5353)], applied: 2, "two ports")
            check.equal(try kernel(.v4), [c, e], "left at the end: the masqueraded flow and TCP")
            // Nothing left to match: no error.
            try forget(.v4, [natted(to: Self.pod2)], applied: 1, "nothing to match")
            check.equal(try kernel(.v4), [c, e], "left after forgetting what is not there")
        }
    }

    /// Whether this kernel deletes by CTA_FILTER itself (6.12 and later).
    static var kernelHasFilteredFlush: Bool {
        var name = utsname()
        guard uname(&name) == 0 else { return false }
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return false }
        return parts[0] > 6 || (parts[0] == 6 && parts[1] >= 12)
    }

    /// A dump of many entries (many recvs, multipart) and deletes in several sends; the entries
    /// come from real UDP traffic over lo, from distinct source ports.
    @Test(.enabled(if: runnable)) func manyEntriesFromRealTraffic() throws {
        try PrivateNetwork.run { namespace, check in
            guard let tools = Self.tools else { throw PrivateNetwork.Failure("tools missing") }
            _ = try namespace.run([tools.ip, "link", "set", "lo", "up"], tools: tools)
            // conntrack follows packets in a namespace only once something there uses it.
            _ = try namespace.run([tools.nft, "add table ip podwire-ct-test"], tools: tools)
            _ = try namespace.run([tools.nft, "add chain ip podwire-ct-test output { type filter hook output priority 0; }"], tools: tools)
            _ = try namespace.run([tools.nft, "add rule ip podwire-ct-test output ct state new counter"], tools: tools)
            try Self.sendUDP(to: 7777, fromPorts: 20000..<21000)
            try Self.sendUDP(to: 7778, fromPorts: 30000..<30300)

            let socket = try ConntrackSocket()
            let flows = try socket.entries(family: .v4, matching: ConntrackFilter(proto: Self.udp, originalDestinationPort: 7777))
            check.equal(flows.count, 1000, "flows to 7777")
            check.equal(Set(flows.map(\.original.sourcePort)), Set(20000..<21000), "their source ports")
            check.that(flows.allSatisfy { $0.original.destination == IPAddress("127.0.0.1")! && $0.reply.source == IPAddress("127.0.0.1")! },
                       "all between 127.0.0.1 and 127.0.0.1")
            check.equal(try socket.entries(family: .v4, matching: ConntrackFilter()).count, 1300, "all IPv4 flows")

            check.equal(try socket.delete(flows), 1000, "deleted the flows to 7777")
            check.equal(try socket.entries(family: .v4, matching: ConntrackFilter(proto: Self.udp, originalDestinationPort: 7777)).count, 0,
                        "flows to 7777 left")
            check.equal(try socket.entries(family: .v4, matching: ConntrackFilter(proto: Self.udp, originalDestinationPort: 7778)).count, 300,
                        "flows to 7778 left")
            let listed = try namespace.run([tools.conntrack, "-L", "-f", "ipv4"], tools: tools).split(separator: "\n").compactMap(Self.key)
            check.equal(listed.count, 300, "conntrack -L -f ipv4 lines")
            check.equal(listed.filter { $0.hasSuffix(":7778") }.count, 300, "conntrack -L -f ipv4 lines of flows to 7778")
        }
    }

    // MARK: Helpers

    /// One datagram from 127.0.0.1:<port> to 127.0.0.1:`destination` for each port, each from a
    /// socket of its own (in the calling thread's namespace).
    static func sendUDP(to destination: UInt16, fromPorts ports: Range<UInt16>) throws {
        func address(_ port: UInt16) -> sockaddr_in {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            return address
        }
        for port in ports {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw PrivateNetwork.Failure("socket: errno \(errno)") }
            defer { close(fd) }
            var source = address(port), target = address(destination)
            let bound = withUnsafePointer(to: &source) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw PrivateNetwork.Failure("bind 127.0.0.1:\(port): errno \(errno)") }
            let sent = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, "x", 1, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard sent == 1 else { throw PrivateNetwork.Failure("sendto 127.0.0.1:\(destination): errno \(errno)") }
        }
    }

    /// `conntrack -L -f <family>` in the namespace, each entry as `key` writes it.
    static func listed(_ family: IPFamily, in namespace: PrivateNetwork.Namespace, tools: ConntrackTestTools) throws -> Set<String> {
        Set(try namespace.run([tools.conntrack, "-L", "-f", family == .v4 ? "ipv4" : "ipv6"], tools: tools)
            .split(separator: "\n").compactMap(key))
    }

    /// An entry as "proto source:port>destination:port[ zone N]" (ICMP: no ports).
    static func key(_ entry: ConntrackEntry) -> String {
        let tuple = entry.original
        var text = ConntrackMessage.protocolName(tuple.proto) + " "
        text += tuple.isICMP ? "\(tuple.source)>\(tuple.destination)"
            : "\(tuple.source):\(tuple.sourcePort)>\(tuple.destination):\(tuple.destinationPort)"
        return entry.zone == 0 ? text : text + " zone \(entry.zone)"
    }

    /// The same for a line of `conntrack -L` ("udp 17 119 src=... dst=... sport=... dport=... ...
    /// zone=7 use=1"): the first src, dst, sport and dport are the original direction's.
    static func key(_ line: Substring) -> String? {
        let fields = line.split(separator: " ")
        guard let proto = fields.first, !line.hasPrefix("conntrack v") else { return nil }
        func first(_ name: String) -> String? {
            fields.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
        }
        guard let source = first("src"), let destination = first("dst") else { return nil }
        var text = "\(proto) "
        if let sourcePort = first("sport"), let destinationPort = first("dport") {
            text += "\(source):\(sourcePort)>\(destination):\(destinationPort)"
        } else {
            text += "\(source)>\(destination)"
        }
        if let zone = first("zone") { text += " zone \(zone)" }
        return text
    }
}

/// The programs the kernel tests run, by absolute path.
struct ConntrackTestTools: Sendable {
    var conntrack: String
    var nsenter: String
    var nft: String
    var ip: String

    static func find() -> ConntrackTestTools? {
        func path(_ name: String) -> String? {
            ["/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"].map { $0 + name }.first { access($0, X_OK) == 0 }
        }
        guard let conntrack = path("conntrack"), let nsenter = path("nsenter"), let nft = path("nft"), let ip = path("ip")
        else { return nil }
        return ConntrackTestTools(conntrack: conntrack, nsenter: nsenter, nft: nft, ip: ip)
    }
}

/// A pthread in a network namespace of its own.
enum PrivateNetwork {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The namespace the thread made: `/proc/<pid>/task/<tid>/ns/net`.
    struct Namespace {
        var path: String

        /// Runs `arguments` (an absolute path first) inside the namespace, through nsenter, and
        /// returns its output; a failure (nonzero exit) throws with the output.
        @discardableResult
        func run(_ arguments: [String], tools: ConntrackTestTools) throws -> String {
            let (status, output) = try PrivateNetwork.spawn([tools.nsenter, "--net=\(path)"] + arguments)
            guard status == 0 else {
                throw Failure("\(arguments.joined(separator: " ")) exited with \(status): \(output)")
            }
            return output
        }
    }

    /// Expectations checked on the namespace's thread, reported as issues of the test once the
    /// thread is done: Swift Testing attributes #expect to a test only on the test's own task.
    final class Checks: @unchecked Sendable {
        fileprivate var failures: [(comment: String, location: SourceLocation)] = []

        func that(_ condition: Bool, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            if !condition { failures.append((what, sourceLocation)) }
        }

        func equal<T: Equatable>(_ actual: T, _ expected: T, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            if actual != expected { failures.append(("\(what): got \(Self.text(actual)), expected \(Self.text(expected))", sourceLocation)) }
        }

        static func text<T>(_ value: T) -> String {
            if let set = value as? Set<String> { return "[" + set.sorted().joined(separator: ", ") + "]" }
            return "\(value)"
        }
    }

    private final class Job: @unchecked Sendable {
        let body: (Namespace, Checks) throws -> Void
        let checks = Checks()
        var failure: (any Error)?
        init(_ body: @escaping (Namespace, Checks) throws -> Void) { self.body = body }

        func main() {
            do {
                let namespace = try PrivateNetwork.enterNew()
                try body(namespace, checks)
            } catch {
                failure = error
            }
        }
    }

    /// Runs `body` on a new pthread that has first unshared its network namespace (only that
    /// thread moves: unshare(CLONE_NEWNET) changes the calling thread's namespaces alone), and
    /// waits for it. The namespace goes away with the thread and whatever it opened there.
    static func run(_ body: @escaping (Namespace, Checks) throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let job = Job(body)
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { context in
            Unmanaged<Job>.fromOpaque(context!).takeUnretainedValue().main()
            return nil
        }, Unmanaged.passUnretained(job).toOpaque())
        guard started == 0 else { throw Failure("pthread_create: \(started)") }
        pthread_join(thread, nil)
        for failure in job.checks.failures { Issue.record(Comment(rawValue: failure.comment), sourceLocation: failure.location) }
        if let failure = job.failure { throw failure }
    }

    /// CLONE_NEWNET (linux/sched.h); Glibc's Swift module hides it and unshare (_GNU_SOURCE).
    static let cloneNewNet: Int32 = 0x4000_0000

    private static func enterNew() throws -> Namespace {
        typealias Unshare = @convention(c) (Int32) -> Int32
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "unshare") else { throw Failure("no unshare in libc") }
        let machine = try link("/proc/self/ns/net") // the thread group leader's: the process's own
        guard unsafeBitCast(symbol, to: Unshare.self)(cloneNewNet) == 0 else {
            throw Failure("unshare(CLONE_NEWNET): errno \(errno)")
        }
        // Nothing runs unless this thread is in a namespace other than the process's.
        let own = try link("/proc/thread-self/ns/net")
        guard own != machine else { throw Failure("still in \(machine) after unshare") }
        return Namespace(path: "/proc/" + (try link("/proc/thread-self")) + "/ns/net") // "<pid>/task/<tid>"
    }

    private static func link(_ path: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { throw Failure("readlink \(path): errno \(errno)") }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// posix_spawn of `arguments` from the calling thread (so in its namespaces); returns the exit
    /// status and stdout, or stderr when the status is not 0. Apart: conntrack's summary line on
    /// stderr would otherwise land inside stdout's lines, which reach a pipe in 4 KiB blocks.
    static func spawn(_ arguments: [String]) throws -> (Int32, String) {
        let out = try closeOnExecPipe(), errors = try closeOnExecPipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out.write, 1)
        posix_spawn_file_actions_adddup2(&actions, errors.write, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        close(out.write)
        close(errors.write)
        defer { close(out.read); close(errors.read) }
        guard spawned == 0 else { throw Failure("posix_spawn \(arguments[0]): \(spawned)") }
        let output = readAll(out.read), errorOutput = readAll(errors.read) // stderr is a line or two: no deadlock
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exit = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) // WEXITSTATUS, or 128 + signal
        return (exit, exit == 0 ? output : errorOutput)
    }

    /// Close-on-exec: a process another test starts meanwhile must not hold a write end open.
    private static func closeOnExecPipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw Failure("pipe: errno \(errno)") }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        return (ends[0], ends[1])
    }

    private static func readAll(_ fd: Int32) -> String {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output += chunk[..<count]
        }
        return String(decoding: output, as: UTF8.self)
    }
}
