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

    @Test("ADD/DEL storm: DELs of some pods race ADDs of new ones; no address is ever held by two pods")
    func addDelStorm() throws {
        var random = StormRandom.seeded(from: "PODWIRE_STORM_SEED")
        let seed = "seed \(random.seed) (replay with PODWIRE_STORM_SEED=\(random.seed))"
        print("addDelStorm: \(seed)")
        // 32 addresses for 20 live pods plus 8 arriving per round: freed addresses come back
        // within a round or two, so ADDs keep landing on addresses a concurrent DEL is releasing.
        let poolSize = 32
        let storm = try StormNode(range: ("10.244.1.2", "10.244.1.33"))
        let rounds = 5, churn = 8, initial = 20
        let pods = Self.pods(1...(initial + rounds * churn))
        try storm.addPods(pods)
        let before = try storm.snapshot()

        var live: [String: StormAttachment] = [:]
        var allocations: [String] = []
        var upcoming = pods[...]
        for round in 0...rounds {
            let leaving = round == 0 ? [] : Array(live.keys.sorted().shuffled(using: &random).prefix(churn))
            let arriving = Array(upcoming.prefix(round == 0 ? initial : churn))
            upcoming = upcoming.dropFirst(arriving.count)
            let jobs = (leaving.map { StormJob.del($0) } + arriving.map { StormJob.add($0) }).shuffled(using: &random)
            let outcomes = try storm.runConcurrently(jobs)
            let context = "round \(round), \(seed)"

            var arrived: [StormAttachment] = []
            for outcome in outcomes {
                if outcome.job.command == "DEL" {
                    #expect(outcome.succeeded && outcome.stdout.isEmpty, "\(outcome) (\(context))")
                } else if let result = outcome.result(),
                          let attachment = StormAttachment(pod: outcome.job.containerID, containerID: outcome.job.containerID, result: result) {
                    arrived.append(attachment)
                }
            }
            try #require(arrived.count == arriving.count, "\(context): \(arriving.count - arrived.count) ADDs failed")
            for pod in leaving { live[pod] = nil }
            // Pods that stayed kept their addresses throughout; a newcomer holding one of them
            // would be the double allocation this test hunts.
            let kept = Set(live.values.map(\.address))
            for attachment in arrived {
                #expect(!kept.contains(attachment.address), "\(attachment) was given an address a live pod holds (\(context))")
                live[attachment.pod] = attachment
            }
            allocations += arrived.map(\.address)

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
        // More allocations than addresses: the storm must have handed freed addresses out again.
        #expect(allocations.count > poolSize && Set(allocations).count < allocations.count,
                "no address was reused: \(allocations)")

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

    /// One ping per pair, from the first pod to the second's address; "ok" or what ping printed.
    func ping(_ pairs: [(StormAttachment, StormAttachment)], in storm: StormNode) throws -> [String] {
        let script = pairs.map { from, to in
            "if out=$(nsenter --net=/run/netns/\(from.pod) ping -n -c1 -W2 \(to.address) 2>&1); then echo ok; "
                + "else echo \"failed: $(echo \"$out\" | tr '\\n' ' ')\"; fi"
        }.joined(separator: "\n")
        return try storm.bash(script).split(separator: "\n").map(String.init)
    }
}
