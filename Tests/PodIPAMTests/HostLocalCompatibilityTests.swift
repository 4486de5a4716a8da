import CNIProtocol
import Foundation
import NetAddress
@testable import PodIPAM
import Testing

/// podwire-ipam and Debian's host-local on one store, in both directions.
@Suite("Compatibility with host-local")
struct HostLocalCompatibilityTests {
    let directory: TemporaryDirectory
    let network: TestNetwork

    init() throws {
        directory = try TemporaryDirectory()
        network = TestNetwork(dataDir: directory.path)
    }

    func hostLocal(_ command: String, _ id: String, ifname: String = "eth0", args: String? = nil,
                   in network: TestNetwork? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> HostLocal.Outcome {
        let outcome = try HostLocal.run(command, network ?? self.network, containerID: id, ifname: ifname, args: args)
        #expect(outcome.succeeded, "host-local \(command) \(id): \(outcome.stdout) \(outcome.stderr)", sourceLocation: sourceLocation)
        return outcome
    }

    @Test func hostLocalFirstThenPodwire() throws {
        #expect(try hostLocal("ADD", "pod-a").addresses == ["10.244.1.2"])
        #expect(try hostLocal("ADD", "pod-b").addresses == ["10.244.1.3"])
        #expect(network.contents("10.244.1.2") == "pod-a\r\neth0")

        let ipam = try network.ipam()
        // host-local's record is pod-a's: a repeated ADD through podwire returns it.
        #expect(try ipam.add(containerID: "pod-a", ifname: "eth0").addresses == ["10.244.1.2"])
        // Round robin carries on from host-local's last_reserved_ip.0.
        #expect(try ipam.add(containerID: "pod-c", ifname: "eth0").addresses == ["10.244.1.4"])
        try ipam.del(containerID: "pod-b", ifname: "eth0")
        #expect(try network.addressFiles() == ["10.244.1.2", "10.244.1.4"])

        // host-local again, then podwire sees its change.
        #expect(try hostLocal("ADD", "pod-d").addresses == ["10.244.1.5"])
        #expect(try ipam.add(containerID: "pod-e", ifname: "eth0").addresses == ["10.244.1.6"])
        try ipam.check(containerID: "pod-d", ifname: "eth0", expected: [ip("10.244.1.5")])
        try ipam.del(containerID: "pod-d", ifname: "eth0")
        #expect(try network.addressFiles() == ["10.244.1.2", "10.244.1.4", "10.244.1.6"])
    }

    @Test func podwireFirstThenHostLocal() throws {
        let ipam = try network.ipam()
        #expect(try ipam.add(containerID: "pod-a", ifname: "eth0").addresses == ["10.244.1.2"])
        #expect(try ipam.add(containerID: "pod-b", ifname: "eth0").addresses == ["10.244.1.3"])

        // host-local continues the round robin and reads podwire's records as their owners'.
        #expect(try hostLocal("ADD", "pod-c").addresses == ["10.244.1.4"])
        let duplicate = try HostLocal.run("ADD", network, containerID: "pod-a")
        #expect(!duplicate.succeeded && duplicate.stdout.contains("10.244.1.2 has been allocated to pod-a"), "\(duplicate)")
        _ = try hostLocal("CHECK", "pod-a")

        // host-local releases podwire's record and leaves podwire's index alone (it never matches).
        _ = try hostLocal("DEL", "pod-b")
        #expect(try network.addressFiles() == ["10.244.1.2", "10.244.1.4"])
        #expect(network.contents(".podwire/pod-a:eth0") == "# podwire-index v1\n10.244.1.2\n")
        #expect(network.contents(".podwire/stamp") != nil)

        // podwire notices both of host-local's changes.
        #expect(try ipam.add(containerID: "pod-b", ifname: "eth0").addresses == ["10.244.1.5"])
        #expect(try ipam.add(containerID: "pod-c", ifname: "eth0").addresses == ["10.244.1.4"])
        try ipam.del(containerID: "pod-c", ifname: "eth0")
        _ = try hostLocal("DEL", "pod-a")
        try ipam.del(containerID: "pod-a", ifname: "eth0")
        #expect(try network.addressFiles() == ["10.244.1.5"])
        try ipam.del(containerID: "pod-b", ifname: "eth0")
        #expect(try network.addressFiles().isEmpty)
    }

    @Test func dualStackBothWays() throws {
        let network = TestNetwork(dataDir: directory.path, ranges: #"[[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]]"#)
        #expect(try hostLocal("ADD", "pod-a", in: network).addresses == ["10.244.1.2", "fd00:10:244:1::2"])
        let ipam = try network.ipam()
        #expect(try ipam.add(containerID: "pod-a", ifname: "eth0").addresses == ["10.244.1.2", "fd00:10:244:1::2"])
        #expect(try ipam.add(containerID: "pod-b", ifname: "eth0").addresses == ["10.244.1.3", "fd00:10:244:1::3"])
        #expect(network.contents("fd00:10:244:1::3") == "pod-b\r\neth0")
        #expect(network.contents("last_reserved_ip.1") == "fd00:10:244:1::3")
        #expect(try hostLocal("ADD", "pod-c", in: network).addresses == ["10.244.1.4", "fd00:10:244:1::4"])
        _ = try hostLocal("DEL", "pod-b", in: network)
        try ipam.del(containerID: "pod-a", ifname: "eth0")
        #expect(try network.addressFiles() == ["10.244.1.4", "fd00:10:244:1::4"])
    }

    @Test func requestedAddressesAcrossPlugins() throws {
        _ = try hostLocal("ADD", "pod-a", args: "IP=10.244.1.50")
        let taken = try #require(cniError { _ = try network.ipam(args: [("IP", "10.244.1.50")]).add(containerID: "pod-b", ifname: "eth0") })
        #expect(taken.code == .addressUnavailable && taken.message.contains("container pod-a interface eth0"))
        #expect(try network.ipam(args: [("IP", "10.244.1.60")]).add(containerID: "pod-b", ifname: "eth0").addresses == ["10.244.1.60"])
        let refused = try HostLocal.run("ADD", network, containerID: "pod-c", args: "IP=10.244.1.60")
        #expect(!refused.succeeded && refused.stdout.contains("10.244.1.60"))
    }

    @Test func legacyRecordsReleasedByBoth() throws {
        network.write("10.244.1.8", "old-a")
        network.write("10.244.1.9", "old-b")
        let ipam = try network.ipam()
        try ipam.del(containerID: "old-a", ifname: "eth0")
        _ = try hostLocal("DEL", "old-b")
        #expect(try network.addressFiles().isEmpty)
    }

    @Test func bothPluginsAllocatingAtOnce() throws {
        // 20 host-local processes and 20 podwire threads, all at once, serialised by the shared lock.
        let ipam = try network.ipam()
        let network = self.network
        let results = together(40) { worker in
            if worker.isMultiple(of: 2) {
                let outcome = try HostLocal.run("ADD", network, containerID: "hl-\(worker)")
                if !outcome.succeeded { throw CNIError(.delegateFailed, "host-local: \(outcome.stdout) \(outcome.stderr)") }
                return outcome.addresses
            }
            return try ipam.add(containerID: "pw-\(worker)", ifname: "eth0").addresses
        }
        let all = try results.flatMap { try $0.get() }
        #expect(all.count == 40 && Set(all).count == 40, "\(all.sorted())")
        #expect(try network.addressFiles().count == 40)
        // And every attachment is found again by podwire after the mix.
        for worker in stride(from: 0, to: 40, by: 2) {
            try ipam.del(containerID: "hl-\(worker)", ifname: "eth0")
        }
        #expect(try network.addressFiles().count == 20)
    }
}
