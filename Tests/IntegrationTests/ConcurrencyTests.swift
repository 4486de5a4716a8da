import Foundation
import Testing

/// Many podwire processes at once on one node, as kubelet does when a node fills up or drains:
/// every ADD gets its own address and its own fully wired veth, and concurrent DELs take exactly
/// that away again.
@Suite("Concurrency: many podwire processes at once on one node", .serialized,
       .needs(.namespaces))
struct StormConcurrencyTests {
    /// Pods as "pod-01"...: sorted names sort like their numbers.
    static func pods(_ range: ClosedRange<Int>) -> [String] { range.map { String(format: "pod-%02d", $0) } }

    /// The store of a network that held addresses and holds none any more: the bookkeeping stays.
    static let emptiedStore = ["./.podwire", "./.podwire/stamp", "./last_reserved_ip.0", "./lock"]

    @Test("40 ADDs at once: 40 distinct addresses, 40 veths, 40 routes; 40 DELs at once: the node as before")
    func fortyAtOnce() throws {
        var random = StormRandom.seeded(from: "PODWIRE_STORM_SEED")
        let seed = "seed \(random.seed) (replay with PODWIRE_STORM_SEED=\(random.seed))"
        print("fortyAtOnce: \(seed)")
        let storm = try StormNode()
        let pods = Self.pods(1...40)
        try storm.addPods(pods)
        let before = try storm.snapshot()
        #expect(before["store"] == ["(no store directory)"])
        #expect(before.vethNames.isEmpty)

        // A cold node: the 40 also race to create the store and to switch forwarding on.
        let adds = try storm.runConcurrently(pods.map { .add($0) })
        print("fortyAtOnce: up to \(stormPeakConcurrency(adds)) ADDs ran at the same time")
        #expect(stormPeakConcurrency(adds) > 1, "the ADDs did not overlap at all")
        let attachments = adds.compactMap { outcome in
            outcome.result().flatMap { StormAttachment(pod: outcome.job.containerID, containerID: outcome.job.containerID, result: $0) }
        }
        try #require(attachments.count == 40, "only \(attachments.count) ADDs produced a result")
        try expectWired(attachments, in: try storm.snapshot(), poolSize: 253)
        #expect(try storm.node.sysctl("net.ipv4.ip_forward") == "1")
        // 40 writers of ip_forward at once once left it 1 with every interface's flag 0 (a kernel
        // race when the rtnl lock is busy): the switch, the node's default and each host veth.
        #expect(try storm.node.sysctl("net.ipv4.conf.default.forwarding") == "1")
        for attachment in attachments {
            #expect(try storm.node.sysctl("net.ipv4.conf.\(attachment.hostVeth).forwarding") == "1", "\(attachment.hostVeth) does not forward")
        }

        // A sample of pods reach each other through the node.
        var pairs: [(StormAttachment, StormAttachment)] = [(attachments[0], attachments[39])]
        for _ in 0..<7 {
            let from = attachments.randomElement(using: &random)!
            var to = attachments.randomElement(using: &random)!
            while to == from { to = attachments.randomElement(using: &random)! }
            pairs.append((from, to))
        }
        for (pair, result) in zip(pairs, try ping(pairs, in: storm)) {
            #expect(result == "ok", "ping \(pair.0) -> \(pair.1): \(result) (\(seed))")
        }

        let dels = try storm.runConcurrently(pods.map { .del($0) })
        #expect(stormPeakConcurrency(dels) > 1, "the DELs did not overlap at all")
        for outcome in dels {
            #expect(outcome.succeeded && outcome.stdout.isEmpty, "\(outcome)")
        }
        var expected = before
        expected.sections["store"] = Self.emptiedStore
        let after = try storm.snapshot()
        #expect(after == expected, "left behind after 40 concurrent DELs:\n\(after.differences(from: expected))")
    }

    @Test("ADD/DEL storm on a full pool: newcomers take addresses concurrent DELs release; no address is ever held by two pods")
    func addDelStorm() throws {
        var random = StormRandom.seeded(from: "PODWIRE_STORM_SEED")
        let seed = "seed \(random.seed) (replay with PODWIRE_STORM_SEED=\(random.seed))"
        print("addDelStorm: \(seed)")
        // The pool is full after the first round, so in every later round each of the 8 newcomers
        // can only get an address one of the 8 concurrent DELs is releasing: ADDs that find the
        // range exhausted (code 102) are tried again, as a runtime retries a pod. Every address
        // is handed over while its previous holder's DEL runs: the window where a double
        // allocation would happen.
        let poolSize = 32
        let storm = try StormNode(range: ("10.244.1.2", "10.244.1.33"))
        let rounds = 5, churn = 8
        let pods = Self.pods(1...(poolSize + rounds * churn))
        try storm.addPods(pods)
        let before = try storm.snapshot()

        var live: [String: StormAttachment] = [:]
        var holds: [AddressHold] = []
        var upcoming = pods[...]
        for round in 0...rounds {
            let leaving = round == 0 ? [] : Array(live.keys.sorted().shuffled(using: &random).prefix(churn))
            let arriving = Array(upcoming.prefix(round == 0 ? poolSize : churn))
            upcoming = upcoming.dropFirst(arriving.count)
            let jobs = (leaving.map { StormJob.del($0) } + arriving.map { StormJob.add($0, retriesWhileExhausted: 500) })
                .shuffled(using: &random)
            let outcomes = try storm.runConcurrently(jobs)
            let context = "round \(round), \(seed)"

            var arrived: [StormAttachment] = []
            for outcome in outcomes {
                if outcome.job.command == "DEL" {
                    #expect(outcome.succeeded && outcome.stdout.isEmpty, "\(outcome) (\(context))")
                    let index = try #require(holds.lastIndex { $0.attachment.pod == outcome.job.containerID }, "\(context)")
                    holds[index].delStarted = outcome.started
                    holds[index].delEnded = outcome.ended
                } else if let result = outcome.result(),
                          let attachment = StormAttachment(pod: outcome.job.containerID, containerID: outcome.job.containerID, result: result) {
                    arrived.append(attachment)
                    holds.append(AddressHold(attachment: attachment, addStarted: outcome.started, addEnded: outcome.ended,
                                             attempts: outcome.attempts))
                }
            }
            try #require(arrived.count == arriving.count, "\(context): \(arriving.count - arrived.count) ADDs failed")
            for pod in leaving { live[pod] = nil }
            for attachment in arrived { live[attachment.pod] = attachment }
            #expect(live.count == poolSize, "\(context): \(live.count) live pods")

            // Pods not yet created or long gone have nothing to show: only the ones that changed or live.
            let snapshot = try storm.snapshot(pods: (Array(live.keys) + leaving).sorted())
            try expectWired(Array(live.values), in: snapshot, poolSize: poolSize, context: context)
            for pod in leaving {
                #expect(!snapshot["pod \(pod)"].contains { $0.contains("eth0") },
                        "\(pod) still has eth0 after its DEL (\(context)): \(snapshot["pod \(pod)"])")
            }
            // Everyone who arrived is reachable, from a pod that was there before the round when there is one.
            let sources = live.values.filter { !arrived.contains($0) }.sorted { $0.pod < $1.pod }
            var pairs: [(StormAttachment, StormAttachment)] = []
            for target in arrived {
                let candidates = sources.isEmpty ? arrived.filter { $0 != target } : sources
                if let source = candidates.randomElement(using: &random) { pairs.append((source, target)) }
            }
            for (pair, result) in zip(pairs, try ping(pairs, in: storm)) {
                #expect(result == "ok", "ping \(pair.0) -> \(pair.1): \(result) (\(context))")
            }
        }

        // At every instant, no address held by two pods: a pod surely holds its address from the
        // moment its ADD answered until its DEL began, and no two such spans of one address meet.
        let conflicts = AddressHold.overlaps(in: holds)
        #expect(conflicts.isEmpty, "addresses held by two pods at once (\(seed)):\n\(conflicts.joined(separator: "\n"))")
        // The window was exercised: newcomers answered with an address while the DEL of its
        // previous holder was still running.
        let handovers = AddressHold.handovers(in: holds)
        let duringDEL = handovers.filter { previous, next in next.addEnded < (previous.delEnded ?? .infinity) }
        print("addDelStorm: \(handovers.count) addresses handed over, \(duringDEL.count) while the previous holder's DEL still ran; "
              + "ADD attempts per newcomer up to \(holds.map(\.attempts).max() ?? 0)")
        #expect(handovers.count == rounds * churn, "every newcomer after the first round must reuse a released address")
        #expect(!duringDEL.isEmpty, "no address was handed over while a DEL ran: the storm did not exercise the race")

        let dels = try storm.runConcurrently(live.keys.sorted().map { .del($0) })
        for outcome in dels {
            #expect(outcome.succeeded && outcome.stdout.isEmpty, "\(outcome)")
        }
        var expected = before
        expected.sections["store"] = Self.emptiedStore
        let after = try storm.snapshot()
        #expect(after == expected, "left behind after the storm (\(seed)):\n\(after.differences(from: expected))")
    }

    // MARK: Helpers

    /// Exactly `attachments` are wired, each consistently in all three places that could disagree:
    /// the IPAM store (address files and index), the results, and the kernel (veths and routes).
    func expectWired(_ attachments: [StormAttachment], in snapshot: StormSnapshot, poolSize: Int,
                     context: String = "", sourceLocation: SourceLocation = #_sourceLocation) throws {
        let addresses = attachments.map(\.address)
        #expect(Set(addresses).count == addresses.count, "an address was handed out twice: \(attachments.sorted { $0.address < $1.address }) \(context)",
                sourceLocation: sourceLocation)
        #expect(Set(attachments.map(\.hostVeth)).count == attachments.count, "a host veth name repeats \(context)",
                sourceLocation: sourceLocation)
        for attachment in attachments {
            let last = Int(attachment.address.split(separator: ".").last ?? "") ?? 0
            #expect(attachment.address.hasPrefix("10.244.1.") && (2...(poolSize + 1)).contains(last),
                    "\(attachment) is outside the pool \(context)", sourceLocation: sourceLocation)
            let derived = StormHostVeth(containerID: attachment.containerID)
            #expect(attachment.hostVeth == derived.name && attachment.hostMAC == derived.mac,
                    "\(attachment): expected the derived \(derived.name) \(derived.mac), got \(attachment.hostMAC) \(context)",
                    sourceLocation: sourceLocation)
        }

        // Store: one file per address naming its attachment, one index entry per attachment.
        #expect(snapshot.addressFiles == attachments.map { StormSnapshot.addressFile($0.address, $0.containerID) }.sorted(),
                "address files \(context)", sourceLocation: sourceLocation)
        #expect(snapshot.indexEntries == attachments.map { "./.podwire/\($0.containerID):eth0 = # podwire-index v1|\($0.address)|" }.sorted(),
                "index entries \(context)", sourceLocation: sourceLocation)

        // Kernel: exactly these host veths, labelled with their owner, and one /32 route per pod on its own veth.
        #expect(snapshot.vethNames == attachments.map(\.hostVeth).sorted(), "host veths \(context)", sourceLocation: sourceLocation)
        #expect(snapshot.hostRoutes == attachments.map { "\($0.address) \($0.hostVeth)" }.sorted(),
                "host routes (address dev) \(context)", sourceLocation: sourceLocation)
        let links = snapshot["node links"]
        for attachment in attachments {
            let line = links.first { $0.split(separator: " ").dropFirst().first?.hasPrefix(attachment.hostVeth + "@") == true } ?? ""
            #expect(line.contains("link/ether \(attachment.hostMAC) ") && line.contains("alias \(StormHostVeth.alias(containerID: attachment.containerID))"),
                    "\(attachment): \(line) \(context)", sourceLocation: sourceLocation)
            #expect(snapshot["pod \(attachment.pod)"].contains { $0.hasPrefix("inet \(attachment.address)/24 ") && $0.hasSuffix(" eth0") },
                    "\(attachment): pod side \(snapshot["pod \(attachment.pod)"]) \(context)", sourceLocation: sourceLocation)
        }
    }

    /// One ping per pair, from the first pod to the second's address: "ok" or what ping printed,
    /// exactly one answer per pair, in order (a missing answer throws instead of shortening the list).
    func ping(_ pairs: [(StormAttachment, StormAttachment)], in storm: StormNode) throws -> [String] {
        let script = pairs.enumerated().map { index, pair in
            "if out=$(nsenter --net=/run/netns/\(pair.0.pod) ping -n -c1 -W2 \(pair.1.address) 2>&1); then echo '\(index) ok'; "
                + "else echo \"\(index) failed: $(echo \"$out\" | tr '\\n' ' ')\"; fi"
        }.joined(separator: "\n")
        let output = try storm.bash(script)
        let answers = output.split(separator: "\n").map { line in
            (Int(line.prefix { $0 != " " }) ?? -1, String(line.drop { $0 != " " }.dropFirst()))
        }
        guard answers.map(\.0) == Array(pairs.indices) else {
            throw TestNodeError.unexpectedOutput(argv: ["ping"], output: output, reason: "not one answer per pair")
        }
        return answers.map(\.1)
    }
}

/// One attachment's time with its address, from the storm's own clock (EPOCHREALTIME around each
/// plugin run). The ADD's answer comes before `addEnded` and the DEL starts after `delStarted`,
/// so [addEnded, delStarted] is a span in which the pod surely held the address.
struct AddressHold {
    var attachment: StormAttachment
    var addStarted: Double
    var addEnded: Double
    var attempts: Int
    var delStarted: Double?
    var delEnded: Double?

    var address: String { attachment.address }
    var surelyHeldUntil: Double { delStarted ?? .infinity }

    /// Every pair of holds of one address whose sure spans meet, described.
    static func overlaps(in holds: [AddressHold]) -> [String] {
        var found: [String] = []
        for (index, first) in holds.enumerated() {
            for second in holds[(index + 1)...] where second.address == first.address {
                if max(first.addEnded, second.addEnded) < min(first.surelyHeldUntil, second.surelyHeldUntil) {
                    found.append("\(first.address): \(first.attachment.pod) held it \(first.span), \(second.attachment.pod) \(second.span)")
                }
            }
        }
        return found
    }

    /// (previous holder, next holder) for each address given out again, in the order given out.
    static func handovers(in holds: [AddressHold]) -> [(AddressHold, AddressHold)] {
        var last: [String: AddressHold] = [:]
        var pairs: [(AddressHold, AddressHold)] = []
        for hold in holds.sorted(by: { $0.addEnded < $1.addEnded }) {
            if let previous = last[hold.address] { pairs.append((previous, hold)) }
            last[hold.address] = hold
        }
        return pairs
    }

    private var span: String {
        "from \(addEnded) to \(delStarted.map { String($0) } ?? "the end")"
    }
}
