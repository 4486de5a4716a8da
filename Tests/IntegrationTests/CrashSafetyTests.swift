import Foundation
import Testing

/// podwire killed with SIGKILL in the middle of an ADD (the OOM killer, a node reboot, a runtime
/// that gives up on a slow plugin): whatever it had done by then, a DEL of that attachment, or a
/// GC listing only the pods that live on, must leave the node exactly as it was before.
///
/// What makes that possible (see HostVeth and IPAMStore): the host veth's name is derived from the
/// attachment and its MAC is "signed" in the very request that creates the pair, the owner's alias
/// follows; the address file is written before the index entry, and the index is rebuilt when its
/// stamp does not match the directory.
@Suite("Crash safety: podwire killed mid-ADD leaves nothing DEL or GC cannot remove", .serialized,
       .needs(.namespaces))
struct CrashSafetyTests {
    enum Cleanup: String, CaseIterable, CustomTestStringConvertible {
        /// The runtime DELs each attachment whose ADD it never saw finish.
        case del
        /// The runtime never DELs them; a GC lists only the attachments that live on.
        case gc

        var testDescription: String { self == .del ? "cleaned by DEL" : "cleaned by GC" }
    }

    /// Pods wired before the crashes that must come through every cleanup untouched.
    static let survivors = ["keep-1", "keep-2"]

    /// A node whose two survivors are wired, with `pods` created (not ADDed) and the GC config,
    /// listing only the survivors, written.
    func nodeWithSurvivors(pods: [String]) throws -> (StormNode, [StormAttachment]) {
        let storm = try StormNode()
        try storm.addPods(Self.survivors + pods)
        try storm.writeFile(StormNetwork.gcConfigPath,
                            StormNetwork.config(validAttachments: Self.survivors.map { ($0, "eth0") }))
        var survivors: [StormAttachment] = []
        for pod in Self.survivors {
            let outcome = try #require(try storm.runSequentially([.add(pod)]).first)
            let result = try #require(outcome.result())
            survivors.append(try #require(StormAttachment(pod: pod, containerID: pod, result: result)))
        }
        try storm.settle(pods: Self.survivors)
        return (storm, survivors)
    }

    @Test("30 ADDs each killed at a random instant, then cleanup: the node exactly as before",
          arguments: Cleanup.allCases)
    func randomKills(_ cleanup: Cleanup) throws {
        var random = StormRandom.seeded(from: "PODWIRE_CRASH_SEED")
        let seed = "seed \(random.seed) (replay with PODWIRE_CRASH_SEED=\(random.seed))"
        print("randomKills(\(cleanup)): \(seed)")
        let victims = (1...30).map { String(format: "crash-%02d", $0) }
        let probes = (1...5).map { "probe-\($0)" }
        let (storm, survivors) = try nodeWithSurvivors(pods: victims + probes + ["fresh"])

        // How long an ADD takes here, timed exactly as the killed ones are launched: from just
        // before `timeout` forks to its exit. The kill instants are spread over all of it.
        let timing = try storm.bash(probes.map { pod in
            """
            start=$EPOCHREALTIME
            CNI_COMMAND=ADD CNI_CONTAINERID=\(pod) CNI_NETNS=/run/netns/\(pod) CNI_IFNAME=eth0 \\
                timeout -s KILL 60 "$BIN" <\(StormNetwork.addConfigPath) >/dev/null || { echo "ADD \(pod) failed" >&2; exit 1; }
            echo "$start $EPOCHREALTIME"
            CNI_COMMAND=DEL CNI_CONTAINERID=\(pod) CNI_NETNS=/run/netns/\(pod) CNI_IFNAME=eth0 "$BIN" <\(StormNetwork.addConfigPath)
            """
        }.joined(separator: "\n"))
        let durations = timing.split(separator: "\n").compactMap { line -> Double? in
            let fields = line.split(separator: " ").compactMap { Double($0) }
            return fields.count == 2 ? fields[1] - fields[0] : nil
        }.sorted()
        try #require(durations.count == probes.count, "timing run: \(timing)")
        let addDuration = durations[durations.count / 2]
        let before = try storm.snapshot()

        let delays = victims.map { _ in Double.random(in: 0.000_01...addDuration, using: &random) }
        let killScript = zip(victims, delays).map { victim, delay in
            """
            status=0
            CNI_COMMAND=ADD CNI_CONTAINERID=\(victim) CNI_NETNS=/run/netns/\(victim) CNI_IFNAME=eth0 \\
                timeout -s KILL \(String(format: "%.6f", delay)) "$BIN" <\(StormNetwork.addConfigPath) >/dev/null 2>&1 || status=$?
            echo "\(victim) $status"
            """
        }.joined(separator: "\n")
        let killOutput = try storm.bash(killScript)
        let statuses = Dictionary(uniqueKeysWithValues: killOutput.split(separator: "\n").compactMap { line -> (String, Int)? in
            let fields = line.split(separator: " ")
            guard fields.count == 2, let status = Int(fields[1]) else { return nil }
            return (String(fields[0]), status)
        })
        try #require(statuses.keys.sorted() == victims, "the kill script did not report every victim once: \(killOutput)")
        let crashed = try storm.snapshot()
        var report: [String] = []
        var stages: [String: Int] = [:]
        for (victim, delay) in zip(victims, delays) {
            let status = try #require(statuses[victim])
            // 137: killed (128 + SIGKILL); 0: the ADD finished before its kill was due.
            #expect(status == 137 || status == 0, "ADD \(victim) exited \(status) (\(seed))")
            let stage = (status == 137 ? "killed at " : "finished: ") + Self.stage(of: victim, in: crashed)
            stages[stage, default: 0] += 1
            report.append("\(victim) after \(String(format: "%.2f", delay * 1000)) ms: \(stage)")
        }
        let killed = statuses.values.filter { $0 == 137 }.count
        print("randomKills(\(cleanup)): an ADD takes \(String(format: "%.2f", addDuration * 1000)) ms here; \(killed) of \(victims.count) killed; "
              + stages.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: "; "))
        #expect(killed > 0, "no ADD was killed: \(report)")

        switch cleanup {
        case .del:
            for outcome in try storm.runSequentially(victims.map { .del($0) }) {
                #expect(outcome.succeeded && outcome.stdout.isEmpty, "\(outcome)")
            }
        case .gc:
            let outcome = try #require(try storm.runSequentially([.gc()]).first)
            #expect(outcome.succeeded && outcome.stdout.isEmpty, "\(outcome)")
        }
        let after = try storm.snapshot()
        #expect(after == before, "left behind after \(cleanup) (\(seed)):\n\(after.differences(from: before))\n\(report.joined(separator: "\n"))")

        try expectNextAddWorks(storm, survivors: survivors, before: before)
    }

    // MARK: Deterministic kill points

    /// The syscalls through which podwire changes the kernel or the store: killing the process right
    /// before each of them, in turn, visits every intermediate state an ADD or a DEL goes through.
    static let mutatingSyscalls = "sendmsg,sendto,write,pwrite64,writev,ftruncate,utimensat,unlinkat,linkat,renameat,renameat2,mkdirat,flock"

    @Test("an ADD killed right before each of its kernel and store writes, then cleanup: the node exactly as before",
          .needs(.strace),
          arguments: Cleanup.allCases)
    func addKilledBeforeEveryWrite(_ cleanup: Cleanup) throws {
        try killBeforeEveryWrite(of: "ADD", then: cleanup == .del ? Self.plugin("DEL") : Self.plugin("GC", config: StormNetwork.gcConfigPath),
                                 named: cleanup.testDescription)
    }

    @Test("a DEL killed right before each of its kernel and store writes, then DEL again: the node exactly as before",
          .needs(.strace))
    func delKilledBeforeEveryWrite() throws {
        try killBeforeEveryWrite(of: "DEL", then: Self.plugin("DEL"), named: "DEL again", setup: Self.plugin("ADD") + " >/dev/null")
    }

    /// STATUS proves the store writable by creating and removing a probe file under the store's lock.
    @Test("a STATUS killed right before each of its store writes, then any operation on the store: the store exactly as before",
          .needs(.strace))
    func statusKilledBeforeEveryWrite() throws {
        try killBeforeEveryWrite(of: "STATUS", then: Self.plugin("DEL"), named: "a DEL of an attachment that holds nothing")
    }

    /// For each point at which `command` can be killed (see `killPoints`): run `setup`, run the
    /// command and kill it there, run `cleanup`, and expect the node exactly as it was before.
    func killBeforeEveryWrite(of command: String, then cleanup: String, named cleanupName: String, setup: String = "",
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (storm, survivors) = try nodeWithSurvivors(pods: ["victim", "fresh"])
        let before = try storm.snapshot()
        let points = try killPoints(storm, of: command, setup: setup, teardown: command == "ADD" ? Self.plugin("DEL") : "",
                                    before: before)
        let steps = try sweep(storm, points: points, perPoint: """
            \(setup)
            status=0
            \(Self.plugin(command, killAt: "point")) >/dev/null 2>&1 || status=$?
            echo "@@killed $status"
            podwire_snapshot
            status=0
            \(cleanup) >/run/storm/out 2>&1 || status=$?
            echo "@@cleaned $status $(base64 -w0 /run/storm/out)"
            podwire_snapshot
            """)
        for step in steps {
            #expect(step.killedStatus == 137, "the \(command) was not killed at \(step.point): exit \(step.killedStatus)",
                    sourceLocation: sourceLocation)
            #expect(step.cleanupStatus == 0 && step.cleanupOutput.isEmpty,
                    "\(cleanupName) after \(command) was killed at \(step.point): exit \(step.cleanupStatus) \(step.cleanupOutput)",
                    sourceLocation: sourceLocation)
            #expect(step.after == before, """
                \(command) killed before \(step.point) (\(Self.stage(of: "victim", in: step.crashed))), then \(cleanupName); left behind:
                \(step.after.differences(from: before))
                """, sourceLocation: sourceLocation)
        }
        try expectNextAddWorks(storm, survivors: survivors, before: before, sourceLocation: sourceLocation)
    }

    /// A shell command running podwire's `command` for the victim pod (STATUS and GC name no
    /// attachment). With `trace`, under strace writing the mutating syscalls to /run/storm/trace;
    /// with `killAt`, the name of a shell variable holding "syscall:N", SIGKILLed on entering the
    /// N-th call of that syscall.
    static func plugin(_ command: String, config: String = StormNetwork.addConfigPath, trace: Bool = false,
                       killAt variable: String? = nil) -> String {
        var line = "CNI_COMMAND=\(command) "
        if command != "STATUS" && command != "GC" {
            line += "CNI_CONTAINERID=victim CNI_NETNS=/run/netns/victim CNI_IFNAME=eth0 "
        }
        if let variable {
            line += "strace -f -qq -o /dev/null -e trace=\"${\(variable)%%:*}\" -e inject=\"${\(variable)%%:*}:signal=KILL:when=${\(variable)##*:}\" "
        } else if trace {
            line += "strace -f -qq -o /run/storm/trace -e trace=\(mutatingSyscalls) "
        }
        return line + "\"$BIN\" <\(config)"
    }

    /// Every mutating syscall of one `command` of the victim, as "name:N" (the N-th call of that
    /// syscall by the main thread), in the order they happen. Runs the command once, traced and
    /// uninterrupted, between `setup` and `teardown`, which must leave the node as `before`.
    func killPoints(_ storm: StormNode, of command: String, setup: String, teardown: String,
                    before: StormSnapshot) throws -> [String] {
        // set -e: the setup, the traced run (strace exits with the plugin's status) and the teardown
        // must each succeed; the run's stdout is kept to check what it answered.
        let output = try storm.bash("""
            \(setup)
            \(Self.plugin(command, trace: true)) >/run/storm/traced-out
            \(teardown)
            echo "@@answer $(base64 -w0 /run/storm/traced-out)"
            cat /run/storm/trace
            """)
        let answerLine = try #require(output.split(separator: "\n").first { $0.hasPrefix("@@answer ") }, "\(output)")
        let answer = String(decoding: Data(base64Encoded: String(answerLine.dropFirst("@@answer ".count))) ?? Data(), as: UTF8.self)
        if command == "ADD" {
            let result = try #require(try? JSONDecoder().decode(CNIResult.self, from: Data(answer.utf8)),
                                      "the traced, uninterrupted ADD printed no result: \(answer)")
            #expect(result.ips?.first?.address.hasPrefix("10.244.1.") == true, "the traced ADD: \(answer)")
        } else {
            #expect(answer.isEmpty, "the traced, uninterrupted \(command) must print nothing: \(answer)")
        }
        #expect(try storm.snapshot() == before, "an uninterrupted \(command) did not leave the node as it was")
        var mainThread: Substring?
        var counts: [Substring: Int] = [:]
        var points: [String] = []
        for line in output.split(separator: "\n") where !line.hasPrefix("@@answer ") {
            // A call the kernel restarts (a sysctl write finding the rtnl lock busy returns
            // ERESTARTNOINTR until it is free) shows once per attempt; it is one kill point.
            if line.contains("ERESTART") { continue }
            guard let match = line.firstMatch(of: /^(\d+) +([a-z0-9_]+)\(/) else { continue }
            mainThread = mainThread ?? match.1
            guard match.1 == mainThread else { continue }
            counts[match.2, default: 0] += 1
            points.append("\(match.2):\(counts[match.2]!)")
        }
        // An ADD talks to the kernel a dozen times and writes the store a handful; DEL and STATUS
        // at least lock, write and unlock the store. Fewer points: the trace did not see the plugin.
        #expect(points.count >= (command == "ADD" ? 15 : 4), "too few kill points in the trace of \(command): \(output)")
        print("\(command) kill points: \(points.joined(separator: " "))")
        return points
    }

    struct SweepStep {
        var point: String
        var killedStatus: Int
        var crashed: StormSnapshot
        var cleanupStatus: Int
        var cleanupOutput: String
        var after: StormSnapshot
    }

    /// Runs `perPoint` (which sees `$point`) for each point, in one script, and parses what it
    /// printed: "@@killed <status>", a snapshot, "@@cleaned <status> <base64 output>", a snapshot.
    func sweep(_ storm: StormNode, points: [String], perPoint: String) throws -> [SweepStep] {
        let output = try storm.bash("""
            for point in \(points.joined(separator: " ")); do
                echo "@@point $point"
            \(perPoint)
            done
            """, timeout: 300)
        var steps: [SweepStep] = []
        for chunk in output.components(separatedBy: "@@point ").dropFirst() {
            let killedParts = chunk.components(separatedBy: "@@killed ")
            let cleanedParts = killedParts.count == 2 ? killedParts[1].components(separatedBy: "@@cleaned ") : []
            guard cleanedParts.count == 2 else {
                Issue.record("cannot parse a sweep step: \(chunk)")
                continue
            }
            let point = String(killedParts[0].prefix { $0 != "\n" })
            let killedLines = cleanedParts[0].split(separator: "\n", maxSplits: 1).map(String.init)
            let cleanedLines = cleanedParts[1].split(separator: "\n", maxSplits: 1).map(String.init)
            let cleanedFields = (cleanedLines.first ?? "").split(separator: " ").map(String.init)
            steps.append(SweepStep(
                point: point,
                killedStatus: Int(killedLines.first ?? "") ?? -1,
                crashed: StormSnapshot(parsing: killedLines.count > 1 ? killedLines[1] : ""),
                cleanupStatus: Int(cleanedFields.first ?? "") ?? -1,
                cleanupOutput: String(decoding: Data(base64Encoded: cleanedFields.count > 1 ? cleanedFields[1] : "") ?? Data(), as: UTF8.self),
                after: StormSnapshot(parsing: cleanedLines.count > 1 ? cleanedLines[1] : "")))
        }
        #expect(steps.map(\.point) == points, "the sweep did not visit every point")
        return steps
    }

    // MARK: Shared checks

    /// How far a killed ADD got, as the crashed node shows it.
    static func stage(of containerID: String, in snapshot: StormSnapshot) -> String {
        let veth = StormHostVeth(containerID: containerID)
        let link = snapshot["node links"].first { $0.split(separator: " ").dropFirst().first?.hasPrefix(veth.name + "@") == true }
        var parts: [String] = []
        if snapshot.addressFiles.contains(where: { $0.hasSuffix(" = \(containerID)^|eth0") }) { parts.append("address file") }
        // Nobody's record: an address file created but never written.
        if snapshot.addressFiles.contains(where: { $0.hasSuffix(" =") }) { parts.append("EMPTY address file") }
        if snapshot.indexEntries.contains(where: { $0.hasPrefix("./.podwire/\(containerID):") }) { parts.append("index entry") }
        if let link {
            parts.append(link.contains("link/ether \(veth.mac) ") ? "signed veth" : "veth")
            if link.contains(" alias ") { parts.append("alias") }
        }
        if snapshot.hostRoutes.contains(where: { $0.hasSuffix(" \(veth.name)") }) { parts.append("host route") }
        if snapshot["pod \(containerID)"].contains(where: { $0.contains(" eth0") }) { parts.append("pod eth0") }
        return parts.isEmpty ? "nothing yet" : parts.joined(separator: ", ")
    }

    /// After the cleanup the network works as if nothing happened: a new pod gets a free address
    /// of the range, reaches a survivor, and its DEL leaves the node as `before` once more.
    func expectNextAddWorks(_ storm: StormNode, survivors: [StormAttachment], before: StormSnapshot,
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let outcome = try #require(try storm.runSequentially([.add("fresh")]).first, sourceLocation: sourceLocation)
        let result = try #require(outcome.result(sourceLocation: sourceLocation), sourceLocation: sourceLocation)
        let fresh = try #require(StormAttachment(pod: "fresh", containerID: "fresh", result: result), sourceLocation: sourceLocation)
        let last = Int(fresh.address.split(separator: ".").last ?? "") ?? 0
        #expect(fresh.address.hasPrefix("10.244.1.") && (2...254).contains(last), "\(fresh)", sourceLocation: sourceLocation)
        #expect(!survivors.map(\.address).contains(fresh.address), "\(fresh) took a survivor's address", sourceLocation: sourceLocation)
        let snapshot = try storm.snapshot()
        #expect(snapshot.addressFiles == (survivors + [fresh]).map { StormSnapshot.addressFile($0.address, $0.containerID) }.sorted(),
                sourceLocation: sourceLocation)
        #expect(snapshot.hostRoutes == (survivors + [fresh]).map { "\($0.address) \($0.hostVeth)" }.sorted(),
                sourceLocation: sourceLocation)
        let ping = try storm.node.ping(from: "fresh", to: survivors[0].address)
        #expect(ping.succeeded, "fresh -> \(survivors[0]): \(ping)", sourceLocation: sourceLocation)

        let del = try #require(try storm.runSequentially([.del("fresh")]).first, sourceLocation: sourceLocation)
        #expect(del.succeeded && del.stdout.isEmpty, "\(del)", sourceLocation: sourceLocation)
        let after = try storm.snapshot()
        #expect(after == before, "after the next ADD and its DEL:\n\(after.differences(from: before))", sourceLocation: sourceLocation)
    }
}
