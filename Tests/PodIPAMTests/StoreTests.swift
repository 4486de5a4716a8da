import CNIProtocol
import Foundation
import NetAddress
@testable import PodIPAM
import Testing

@Suite("On-disk store")
struct StoreTests {
    let directory: TemporaryDirectory
    let network: TestNetwork

    init() throws {
        directory = try TemporaryDirectory()
        network = TestNetwork(dataDir: directory.path + "/networks")
    }

    @Test func filesAreHostLocalsByteForByte() throws {
        let result = try network.ipam().add(containerID: "pod-a", ifname: "eth0")
        #expect(result.ips == [CNIIPConfig(address: net("10.244.1.2/24"), gateway: ip("10.244.1.1"))])
        #expect(network.contents("10.244.1.2") == "pod-a\r\neth0")
        #expect(network.contents("last_reserved_ip.0") == "10.244.1.2")
        #expect(network.contents("lock") == "")
        #expect(try network.mode("10.244.1.2") == 0o600)
        #expect(try network.mode("last_reserved_ip.0") == 0o600)
        #expect(try network.mode("lock") == 0o600)
        let directoryMode = (try FileManager.default.attributesOfItem(atPath: network.storePath)[.posixPermissions] as? NSNumber)?.intValue
        #expect(directoryMode == 0o755)
        #expect(network.contents(".podwire/pod-a:eth0") == "# podwire-index v1\n10.244.1.2\n")
    }

    @Test func resultCarriesRoutesAndDNS() throws {
        var network = network
        let resolv = directory.path + "/resolv.conf"
        try "nameserver 10.96.0.10\nsearch cluster.local\n".write(toFile: resolv, atomically: true, encoding: .utf8)
        network.extraIPAM = #", "routes": [{"dst": "0.0.0.0/0"}], "resolvConf": "\#(resolv)""#
        let result = try network.ipam().add(containerID: "pod-a", ifname: "eth0")
        #expect(result.routes == [CNIRoute(dst: net("0.0.0.0/0"))])
        #expect(result.dns == CNIDNS(nameservers: ["10.96.0.10"], search: ["cluster.local"]))
    }

    @Test func ipv6FilesUseRFC5952Names() throws {
        let network = TestNetwork(dataDir: directory.path, ranges: #"[[{"subnet": "10.244.1.0/24"}], [{"subnet": "FD00:0010:0244:0001::/64"}]]"#)
        let result = try network.ipam().add(containerID: "pod-a", ifname: "eth0")
        #expect(result.addresses == ["10.244.1.2", "fd00:10:244:1::2"])
        #expect(result.ips[1].address == net("fd00:10:244:1::2/64"))
        #expect(network.contents("fd00:10:244:1::2") == "pod-a\r\neth0")
        #expect(network.contents("last_reserved_ip.1") == "fd00:10:244:1::2")
    }

    @Test func repeatedAddReturnsTheSameAddress() throws {
        let ipam = try network.ipam()
        let first = try ipam.add(containerID: "pod-a", ifname: "eth0")
        _ = try ipam.add(containerID: "pod-b", ifname: "eth0")
        let again = try ipam.add(containerID: "pod-a", ifname: "eth0")
        #expect(again == first)
        #expect(try network.addressFiles() == ["10.244.1.2", "10.244.1.3"])
        #expect(network.contents("last_reserved_ip.0") == "10.244.1.3")
    }

    @Test func delIsIdempotent() throws {
        let ipam = try network.ipam()
        _ = try ipam.add(containerID: "pod-a", ifname: "eth0")
        _ = try ipam.add(containerID: "pod-b", ifname: "eth0")
        try ipam.del(containerID: "pod-a", ifname: "eth0")
        #expect(try network.addressFiles() == ["10.244.1.3"])
        #expect(network.contents(".podwire/pod-a:eth0") == nil)
        try ipam.del(containerID: "pod-a", ifname: "eth0")
        try ipam.del(containerID: "never-seen", ifname: "eth0")
        #expect(try network.addressFiles() == ["10.244.1.3"])
        // The round-robin cursor moves on: .2 is not handed out again straight away.
        #expect(try ipam.add(containerID: "pod-c", ifname: "eth0").addresses == ["10.244.1.4"])
    }

    /// A runtime DELs pods of networks this node never served (and DELs again after a reboot
    /// emptied the store): that succeeds, and records nothing. Like host-local, the DEL opens the
    /// store, so its directory, lock and (empty) index with its stamp exist afterwards, holding no address.
    @Test func delOnAMissingStoreSucceedsAndRecordsNothing() throws {
        try network.ipam(command: .del).del(containerID: "pod-a", ifname: "eth0")
        let created = try FileManager.default.subpathsOfDirectory(atPath: directory.path).sorted()
        #expect(created == ["networks", "networks/testnet", "networks/testnet/.podwire", "networks/testnet/.podwire/stamp",
                            "networks/testnet/lock"],
                "DEL of an attachment that holds nothing left \(created)")
        #expect(try network.addressFiles().isEmpty)
        // The first ADD then starts the range as on a new node.
        #expect(try network.ipam().add(containerID: "pod-a", ifname: "eth0").addresses == ["10.244.1.2"])
    }

    @Test func exhaustionIsAnErrorNotACrash() throws {
        let network = TestNetwork(dataDir: directory.path, ranges: #"[[{"subnet": "10.244.1.0/29"}]]"#)
        let ipam = try network.ipam()
        for pod in 0..<5 { _ = try ipam.add(containerID: "pod\(pod)", ifname: "eth0") }
        let error = try #require(cniError { _ = try ipam.add(containerID: "pod5", ifname: "eth0") })
        #expect(error.code == .rangeExhausted)
        #expect(error.message.hasPrefix("no IP addresses available in range set 10.244.1.2-10.244.1.6"))
        #expect(try network.addressFiles().count == 5)
    }

    @Test func aFailedMultiSetAddLeavesNothingBehind() throws {
        let network = TestNetwork(dataDir: directory.path, ranges: #"[[{"subnet": "10.244.1.0/24"}], [{"subnet": "10.9.0.0/30"}]]"#)
        let ipam = try network.ipam()
        _ = try ipam.add(containerID: "pod-a", ifname: "eth0")
        #expect(cniError { _ = try ipam.add(containerID: "pod-b", ifname: "eth0") }?.code == .rangeExhausted)
        #expect(try network.addressFiles() == ["10.9.0.2", "10.244.1.2"].sorted { ip($0) < ip($1) })
        #expect(network.contents(".podwire/pod-b:eth0") == nil)
    }

    @Test func requestedAddressFromCNIArgs() throws {
        let ipam = try network.ipam(args: [("IP", "10.244.1.77/24")])
        #expect(try ipam.add(containerID: "pod-a", ifname: "eth0").addresses == ["10.244.1.77"])
        #expect(network.contents("last_reserved_ip.0") == "10.244.1.77")
        let error = try #require(cniError { _ = try ipam.add(containerID: "pod-b", ifname: "eth0") })
        #expect(error.code == .addressUnavailable)
        #expect(error.message == "requested IP address 10.244.1.77 is already allocated to container pod-a interface eth0")
    }

    // MARK: Hostile and damaged stores

    @Test func aSymlinkAtACandidateAddressIsNeverFollowed() throws {
        let target = directory.path + "/precious"
        try "keep me".write(toFile: target, atomically: true, encoding: .utf8)
        _ = try network.ipam().add(containerID: "pod-a", ifname: "eth0")
        try FileManager.default.createSymbolicLink(atPath: network.file("10.244.1.3"), withDestinationPath: target)
        try FileManager.default.createSymbolicLink(atPath: network.file("10.244.1.4"), withDestinationPath: directory.path + "/dangling")
        #expect(try network.ipam().add(containerID: "pod-b", ifname: "eth0").addresses == ["10.244.1.5"])
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep me")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/dangling"))
        // A requested address behind a symlink is simply taken.
        let error = try #require(cniError { _ = try network.ipam(args: [("IP", "10.244.1.3")]).add(containerID: "pod-c", ifname: "eth0") })
        #expect(error.code == .addressUnavailable && error.message.contains("an unrecognised record"))
    }

    @Test(arguments: ["last_reserved_ip.0", "lock", ".podwire", ".podwire/stamp", ".podwire/pod-a:eth0"])
    func symlinksInTheStoreAreRefused(name: String) throws {
        let target = directory.path + "/precious"
        try "keep me".write(toFile: target, atomically: true, encoding: .utf8)
        _ = try network.ipam().add(containerID: "pod-a", ifname: "eth0")
        try? FileManager.default.removeItem(atPath: network.file(name))
        try FileManager.default.createSymbolicLink(atPath: network.file(name), withDestinationPath: target)
        let error = try #require(cniError {
            _ = try network.ipam().add(containerID: "pod-a", ifname: "eth0")
            _ = try network.ipam().add(containerID: "pod-b", ifname: "eth0")
        })
        #expect(error.code == .ioFailure)
        #expect(error.message.hasPrefix("refusing to follow the symbolic link \(network.file(name))"), "\(error)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep me")
    }

    @Test func aSymlinkedNetworkDirectoryIsRefused() throws {
        try FileManager.default.createDirectory(atPath: directory.path + "/elsewhere", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: network.dataDir, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: network.storePath, withDestinationPath: directory.path + "/elsewhere")
        let error = try #require(cniError { _ = try network.ipam().add(containerID: "pod-a", ifname: "eth0") })
        #expect(error.code == .ioFailure && error.message.contains("refusing to follow the symbolic link \(network.storePath)"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/elsewhere").isEmpty)
    }

    @Test func garbageIsSomeoneElses() throws {
        try FileManager.default.createDirectory(atPath: network.storePath, withIntermediateDirectories: true)
        network.write("last_reserved_ip.0", "\u{0}\u{1}not an address")
        network.write("10.244.1.2", "")
        network.write("10.244.1.3", "garbage\nwith lines\r\n\r\n")
        network.write("10.244.1.4", String(repeating: "x", count: 100_000))
        try FileManager.default.createDirectory(atPath: network.file("10.244.1.5"), withIntermediateDirectories: true)
        network.write("not-an-address", "pod-a\r\neth0")
        let ipam = try network.ipam()
        #expect(try ipam.add(containerID: "pod-a", ifname: "eth0").addresses == ["10.244.1.6"])
        try ipam.del(containerID: "pod-a", ifname: "eth0")
        #expect(try network.addressFiles() == ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5"])
        #expect(network.contents("not-an-address") == "pod-a\r\neth0")
    }

    @Test func unwritableDataDir() throws {
        let blocker = directory.path + "/file"
        try "".write(toFile: blocker, atomically: true, encoding: .utf8)
        let network = TestNetwork(dataDir: blocker + "/networks")
        let error = try #require(cniError { _ = try network.ipam().add(containerID: "pod-a", ifname: "eth0") })
        #expect(error.code == .ioFailure)
        #expect(error.message.contains(blocker) && error.message.contains("Not a directory"), "\(error)")
    }

    @Test func invalidAttachmentNames() throws {
        let ipam = try network.ipam()
        #expect(cniError { _ = try ipam.add(containerID: "../x", ifname: "eth0") }?.code == .invalidEnvironment)
        #expect(cniError { _ = try ipam.add(containerID: "pod", ifname: "a/b") }?.code == .invalidEnvironment)
        #expect(cniError { try ipam.del(containerID: "", ifname: "eth0") }?.code == .invalidEnvironment)
    }

    // MARK: Index

    @Test func indexIsRebuiltAfterChangesBehindItsBack() throws {
        let ipam = try network.ipam()
        _ = try ipam.add(containerID: "pod-a", ifname: "eth0")  // .2
        _ = try ipam.add(containerID: "pod-b", ifname: "eth0")  // .3
        // What host-local (or a person) might do: a new record, a removed one, a stale index entry.
        network.write("10.244.1.50", "pod-c\r\neth0")
        try network.remove("10.244.1.2")
        network.write(".podwire/pod-z:eth0", "# podwire-index v1\n10.244.1.3\n")

        #expect(try ipam.add(containerID: "pod-c", ifname: "eth0").addresses == ["10.244.1.50"])
        #expect(network.contents(".podwire/pod-c:eth0") == "# podwire-index v1\n10.244.1.50\n")
        #expect(network.contents(".podwire/pod-a:eth0") == nil)
        #expect(network.contents(".podwire/pod-z:eth0") == nil)
        #expect(try ipam.add(containerID: "pod-a", ifname: "eth0").addresses == ["10.244.1.4"])
        try ipam.del(containerID: "pod-c", ifname: "eth0")
        #expect(try network.addressFiles() == ["10.244.1.3", "10.244.1.4"])
    }

    @Test func aChangeRightAfterAnOperationIsSeen() throws {
        // No pause between podwire's write and the foreign one: both can fall in one clock tick.
        let ipam = try network.ipam()
        for round in 0..<50 {
            _ = try ipam.add(containerID: "pod-\(round)", ifname: "eth0")
            network.write("10.244.1.\(200 + round)", "other-\(round)\r\neth0")
            let held = try ipam.add(containerID: "other-\(round)", ifname: "eth0").addresses
            #expect(held == ["10.244.1.\(200 + round)"], "round \(round)")
            try ipam.del(containerID: "other-\(round)", ifname: "eth0")
        }
    }

    @Test func steadyStateOperationsDoNotReadTheDirectory() throws {
        // Proof that the index, not a scan, answers: a record planted with the directory's mtime put
        // back is invisible to podwire (a scanning implementation would find it).
        let ipam = try network.ipam()
        _ = try ipam.add(containerID: "pod-a", ifname: "eth0")
        var info = stat()
        #expect(stat(network.storePath, &info) == 0)
        network.write("10.244.1.77", "pod-b\r\neth0")
        var times = [timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2), info.st_mtim]
        #expect(utimensat(AT_FDCWD, network.storePath, &times, 0) == 0)
        #expect(try ipam.add(containerID: "pod-b", ifname: "eth0").addresses == ["10.244.1.3"])
    }

    @Test func legacyIDOnlyRecords() throws {
        let ipam = try network.ipam()
        _ = try ipam.add(containerID: "pod-a", ifname: "eth0")
        network.write("10.244.1.40", "old-pod")
        network.write("10.244.1.41", "old-pod\n")
        // Seen as held (so not re-allocated), checked, and released with the container.
        #expect(try ipam.add(containerID: "old-pod", ifname: "eth0").addresses == ["10.244.1.40"])
        try ipam.check(containerID: "old-pod", ifname: "eth0", expected: [ip("10.244.1.40"), ip("10.244.1.41")])
        try ipam.del(containerID: "old-pod", ifname: "eth0")
        #expect(try network.addressFiles() == ["10.244.1.2"])
        #expect(network.contents(".podwire/old-pod:") == nil)
    }

    @Test func veryLongContainerIDsFallBackToScanning() throws {
        let id = String(repeating: "c", count: 300)
        let ipam = try network.ipam()
        #expect(try ipam.add(containerID: id, ifname: "eth0").addresses == ["10.244.1.2"])
        #expect(try ipam.add(containerID: id, ifname: "eth0").addresses == ["10.244.1.2"])
        #expect(network.contents("10.244.1.2") == "\(id)\r\neth0")
        try ipam.check(containerID: id, ifname: "eth0", expected: [ip("10.244.1.2")])
        try ipam.del(containerID: id, ifname: "eth0")
        #expect(try network.addressFiles().isEmpty)
    }

    // MARK: CHECK, STATUS, GC

    @Test func check() throws {
        let network = TestNetwork(dataDir: directory.path, ranges: #"[[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00::/64"}]]"#)
        let ipam = try network.ipam()
        _ = try ipam.add(containerID: "pod-a", ifname: "eth0")
        try ipam.check(containerID: "pod-a", ifname: "eth0", expected: [ip("fd00::2"), ip("10.244.1.2")])

        let none = try #require(cniError { try ipam.check(containerID: "pod-b", ifname: "eth0", expected: [ip("10.244.1.3")]) })
        #expect(none.code == .unknownContainer)
        #expect(none.message == "container pod-b interface eth0 holds no IP address in network testnet")

        let other = try #require(cniError { try ipam.check(containerID: "pod-a", ifname: "eth0", expected: [ip("10.244.1.9")]) })
        #expect(other.code == .checkFailed)
        #expect(other.message == "container pod-a interface eth0 holds 10.244.1.2, fd00::2 in network testnet, but its result lists 10.244.1.9")
    }

    @Test func status() throws {
        let network = TestNetwork(dataDir: directory.path, ranges: #"[[{"subnet": "10.244.1.0/29"}], [{"subnet": "fd00::/64"}]]"#)
        let ipam = try network.ipam()
        try ipam.status()
        for pod in 0..<4 { _ = try ipam.add(containerID: "pod\(pod)", ifname: "eth0") }
        try ipam.status()
        _ = try ipam.add(containerID: "pod4", ifname: "eth0")
        let full = try #require(cniError { try ipam.status() })
        #expect(full.code == .notAvailable)
        #expect(full.message == "range set 0 (10.244.1.2-10.244.1.6) of network testnet is exhausted: all 5 addresses are allocated")
        try ipam.del(containerID: "pod0", ifname: "eth0")
        try ipam.status()

        let blocker = directory.path + "/file"
        try "".write(toFile: blocker, atomically: true, encoding: .utf8)
        let broken = try TestNetwork(dataDir: blocker).ipam()
        let unusable = try #require(cniError { try broken.status() })
        #expect(unusable.code == .notAvailable && unusable.message.contains(blocker))
    }

    @Test func gc() throws {
        let ipam = try network.ipam()
        for pod in ["keep", "gone", "twoif"] { _ = try ipam.add(containerID: pod, ifname: "eth0") }
        _ = try ipam.add(containerID: "twoif", ifname: "net1")
        network.write("10.244.1.40", "legacy-keep")
        network.write("10.244.1.41", "legacy-gone")
        network.write("10.244.1.42", "")
        try ipam.gc(validAttachments: [("keep", "eth0"), ("twoif", "eth0"), ("legacy-keep", "eth0")])
        #expect(try network.addressFiles() == ["10.244.1.2", "10.244.1.4", "10.244.1.40"])
        #expect(network.contents("lock") != nil && network.contents("last_reserved_ip.0") != nil)
        #expect(network.contents(".podwire/gone:eth0") == nil && network.contents(".podwire/twoif:net1") == nil)
        // The index agrees with the files afterwards.
        #expect(try ipam.add(containerID: "keep", ifname: "eth0").addresses == ["10.244.1.2"])
        #expect(try ipam.add(containerID: "gone", ifname: "eth0").addresses == ["10.244.1.6"])
        try ipam.gc(validAttachments: [])
        #expect(try network.addressFiles().isEmpty)
    }

    @Test func gcReportsFailuresAndKeepsGoing() throws {
        let ipam = try network.ipam()
        for pod in ["gone1", "stuck", "gone2"] { _ = try ipam.add(containerID: pod, ifname: "eth0") }
        // An immutable file cannot be unlinked, even by root: GC must still release the others.
        let stuck = network.file("10.244.1.3")
        try chattr("+i", stuck)
        var immutable = true
        defer { if immutable { try? chattr("-i", stuck) } }
        let error = try #require(cniError { try ipam.gc(validAttachments: []) })
        #expect(error.code == .ioFailure)
        #expect(error.message == "GC could not release 1 address of network testnet")
        #expect(error.details == "\(network.file("10.244.1.3")): Operation not permitted")
        #expect(try network.addressFiles() == ["10.244.1.3"])
        try chattr("-i", stuck)
        immutable = false
        // The stuck record stays in the index: its owner can still be found and released.
        try ipam.del(containerID: "stuck", ifname: "eth0")
        #expect(try network.addressFiles().isEmpty)
    }
}

extension StoreTests {
    @Test func unwritableNetworkDirectory() throws {
        let ipam = try network.ipam()
        _ = try ipam.add(containerID: "pod-a", ifname: "eth0")
        try chattr("+i", network.storePath)
        defer { try? chattr("-i", network.storePath) }
        let error = try #require(cniError { _ = try ipam.add(containerID: "pod-b", ifname: "eth0") })
        #expect(error.code == .ioFailure)
        #expect(error.message == "cannot create the address file \(network.file("10.244.1.3")): Operation not permitted")
        #expect(cniError { try ipam.status() }?.code == .notAvailable)
    }
}

extension StoreTests {
    @Test func statusNeverBlessesAStaleIndex() throws {
        let ipam = try network.ipam()
        _ = try ipam.add(containerID: "pod-a", ifname: "eth0")
        try ipam.status()
        network.write("10.244.1.60", "pod-b\r\neth0")
        try ipam.status()
        #expect(try ipam.add(containerID: "pod-b", ifname: "eth0").addresses == ["10.244.1.60"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: network.storePath).filter { $0.contains("probe") }.isEmpty)
    }
}
