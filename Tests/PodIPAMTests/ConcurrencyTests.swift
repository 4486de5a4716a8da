import CNIProtocol
import Foundation
@testable import PodIPAM
import Synchronization
import Testing

@Suite("Concurrency")
struct ConcurrencyTests {
    @Test func fortyThreadsGetFortyAddresses() throws {
        let directory = try TemporaryDirectory()
        let network = TestNetwork(dataDir: directory.path)
        let ipam = try network.ipam()
        let results = together(40) { index in
            try ipam.add(containerID: "pod-\(index)", ifname: "eth0").addresses
        }
        let addresses = try results.flatMap { try $0.get() }
        #expect(addresses.count == 40 && Set(addresses).count == 40)
        #expect(try network.addressFiles() == (2...41).map { "10.244.1.\($0)" })
        for index in 0..<40 {
            let expected = addresses[index]
            #expect(network.contents(expected) == "pod-\(index)\r\neth0")
            #expect(network.contents(".podwire/pod-\(index):eth0") == "# podwire-index v1\n\(expected)\n")
        }
    }

    /// One address one pod surely held: from just after its ADD returned to just before its DEL.
    struct Hold: Sendable {
        var pod: String
        var address: String
        var from: ContinuousClock.Instant
        var until: ContinuousClock.Instant
        /// Who the address file named while the pod held it.
        var recordedOwner: String?
    }

    @Test func concurrentAddsAndDelsNeverShareAnAddress() throws {
        let directory = try TemporaryDirectory()
        let network = TestNetwork(dataDir: directory.path, ranges: #"[[{"subnet": "10.244.1.0/27"}]]"#)
        let ipam = try network.ipam()
        let pool = Set((2...30).map { "10.244.1.\($0)" })
        // 29 addresses, 40 threads each adding and deleting its pod 5 times, holding the address a
        // moment in between: threads contend for addresses that others are releasing.
        let clock = ContinuousClock()
        let results = together(40) { index in
            var holds: [Hold] = []
            var exhausted = 0
            for round in 0..<5 {
                let pod = "pod-\(index)"
                let addresses: [String]
                do {
                    addresses = try ipam.add(containerID: pod, ifname: "eth0").addresses
                } catch let error as CNIError where error.code == .rangeExhausted {
                    exhausted += 1
                    continue
                }
                let from = clock.now
                // While held, the store must name this pod as the address's owner.
                let owner = addresses.first.flatMap { network.contents($0) }
                usleep(UInt32((index * 7 + round * 13) % 400))
                let until = clock.now
                try ipam.del(containerID: pod, ifname: "eth0")
                holds += addresses.map { Hold(pod: pod, address: $0, from: from, until: until, recordedOwner: owner) }
                if addresses.count != 1 { Issue.record("\(pod) got \(addresses), not one address") }
            }
            return (holds, exhausted)
        }
        let perThread = try results.map { try $0.get() }
        let holds = perThread.flatMap(\.0)
        let exhausted = perThread.map(\.1).reduce(0, +)
        #expect(holds.count + exhausted == 200, "\(holds.count) addresses held, \(exhausted) refused as exhausted")
        for hold in holds {
            #expect(pool.contains(hold.address), "\(hold.pod) got \(hold.address), outside the pool")
            #expect(hold.recordedOwner == "\(hold.pod)\r\neth0", "\(hold.address) was recorded for \(hold.recordedOwner ?? "nobody") while \(hold.pod) held it")
        }
        // Each thread's holds against every other's: one address, two pods, never at the same time.
        var overlaps: [String] = []
        let byAddress = Dictionary(grouping: holds, by: \.address)
        for (address, sameAddress) in byAddress {
            for (index, first) in sameAddress.enumerated() {
                for second in sameAddress[(index + 1)...] where first.from < second.until && second.from < first.until {
                    overlaps.append("\(address): \(first.pod) and \(second.pod)")
                }
            }
        }
        #expect(overlaps.isEmpty, "addresses held by two pods at once: \(overlaps)")
        // The pool was contended: addresses went from pod to pod, and some ADDs found none free.
        #expect(byAddress.values.contains { Set($0.map(\.pod)).count > 1 }, "no address ever changed hands")
        #expect(try network.addressFiles().isEmpty)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: network.storePath + "/.podwire")
        #expect(leftovers == ["stamp"])
    }
}
