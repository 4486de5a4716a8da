import CNIProtocol
import NetAddress
@testable import PodIPAM
import Testing

@Suite("Allocation rules (pure core)")
struct AllocatorTests {
    let slash24 = [try! IPRange(subnet: net("10.244.1.0/24"))]

    func allocate(_ sets: [[IPRange]], _ id: String, ifname: String = "eth0", requested: [IPAddress] = [],
                  book: inout MemoryBook) throws(CNIError) -> [IPAddress] {
        let assigned = try Allocator.assignRequested(requested, to: sets)
        return try Allocator.allocate(rangeSets: sets, requested: assigned, for: attachment(id, ifname), book: &book)
            .map(\.address)
    }

    @Test func firstAddressSkipsTheGateway() throws {
        var book = MemoryBook()
        #expect(try allocate([slash24], "a", book: &book) == [ip("10.244.1.2")])
        #expect(try allocate([slash24], "b", book: &book) == [ip("10.244.1.3")])
        #expect(book.last[0] == ip("10.244.1.3"))
    }

    @Test func slash29IsExhaustedAfterFiveAddresses() throws {
        let sets = [[try IPRange(subnet: net("10.244.1.0/29"))]]
        var book = MemoryBook()
        var issued: [String] = []
        for pod in 0..<5 { issued += try allocate(sets, "pod\(pod)", book: &book).map(\.description) }
        #expect(issued == ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"])
        book.attempts = []
        let error = try #require(cniError { _ = try allocate(sets, "pod5", book: &book) })
        #expect(error.code == .rangeExhausted)
        #expect(error.message.hasPrefix("no IP addresses available in range set 10.244.1.2-10.244.1.6"))
        #expect(error.message.contains("all 5 allocated"))
        // Every address was tried exactly once, from just after the cursor (.6) round to it, and
        // nothing more: the walk stops where it started.
        #expect(book.attempts.map(\.description) == ["10.244.1.2", "10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"])
        #expect(book.records.count == 5)
    }

    @Test func networkBroadcastAndGatewayAreNeverIssued() throws {
        // rangeStart/rangeEnd cover the whole /29 and the gateway sits in the middle.
        let sets = [[try IPRange(subnet: net("10.0.0.0/29"), rangeStart: ip("10.0.0.0"), rangeEnd: ip("10.0.0.7"), gateway: ip("10.0.0.4"))]]
        var book = MemoryBook()
        var issued: [String] = []
        for pod in 0..<5 { issued += try allocate(sets, "pod\(pod)", book: &book).map(\.description) }
        #expect(issued == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"])
        #expect(cniError { _ = try allocate(sets, "pod5", book: &book) }?.code == .rangeExhausted)
    }

    @Test func roundRobinDoesNotReuseAReleasedAddressAtOnce() throws {
        var book = MemoryBook()
        _ = try allocate([slash24], "a", book: &book)  // .2
        _ = try allocate([slash24], "b", book: &book)  // .3
        book.release(ip("10.244.1.2"))
        #expect(try allocate([slash24], "c", book: &book) == [ip("10.244.1.4")])
    }

    @Test func walkWrapsAroundToRangeStart() throws {
        var book = MemoryBook()
        book.last[0] = ip("10.244.1.254")
        #expect(try allocate([slash24], "a", book: &book) == [ip("10.244.1.2")])
        book.last[0] = ip("10.244.1.253")
        book.records[ip("10.244.1.254")] = .unknown
        #expect(try allocate([slash24], "b", book: &book) == [ip("10.244.1.3")])
    }

    @Test func lastReservedOutsideTheSetStartsAtRangeStart() throws {
        var book = MemoryBook()
        book.last[0] = ip("192.168.7.7")
        #expect(try allocate([slash24], "a", book: &book) == [ip("10.244.1.2")])
    }

    @Test func walkCrossesTheRangesOfASet() throws {
        let set = [try IPRange(subnet: net("10.1.0.0/24"), rangeStart: ip("10.1.0.10"), rangeEnd: ip("10.1.0.11")),
                   try IPRange(subnet: net("10.2.0.0/24"), rangeStart: ip("10.2.0.10"), rangeEnd: ip("10.2.0.11"))]
        let walk = CandidateWalk(ranges: set, lastReserved: ip("10.1.0.11")).map(\.address.description)
        #expect(walk == ["10.2.0.10", "10.2.0.11", "10.1.0.10", "10.1.0.11"])
        let fresh = CandidateWalk(ranges: set, lastReserved: nil).map(\.address.description)
        #expect(fresh == ["10.1.0.10", "10.1.0.11", "10.2.0.10", "10.2.0.11"])

        var book = MemoryBook()
        var issued: [String] = []
        for pod in 0..<4 { issued += try allocate([set], "pod\(pod)", book: &book).map(\.description) }
        #expect(issued == fresh)
        let error = try #require(cniError { _ = try allocate([set], "pod4", book: &book) })
        #expect(error.message.contains("10.1.0.10-10.1.0.11,10.2.0.10-10.2.0.11"))
    }

    @Test func walkVisitsEveryAddressOnceWhateverTheStart() throws {
        let set = [try IPRange(subnet: net("10.0.0.0/29"))]
        for start in ["10.0.0.1", "10.0.0.3", "10.0.0.6", "10.0.0.9"] {
            let walk = CandidateWalk(ranges: set, lastReserved: ip(start)).map(\.address)
            #expect(walk.count == 5 && Set(walk).count == 5, "from \(start): \(walk)")
        }
    }

    @Test func repeatedAddReturnsTheSameAddresses() throws {
        let sets = [slash24, [try IPRange(subnet: net("fd00::/64"))]]
        var book = MemoryBook()
        let first = try allocate(sets, "a", book: &book)
        #expect(first == [ip("10.244.1.2"), ip("fd00::2")])
        let again = try Allocator.allocate(rangeSets: sets, requested: [nil, nil], for: attachment("a"), book: &book)
        #expect(again.map(\.address) == first && again.allSatisfy { !$0.isNew })
        // Another interface of the same container is another attachment.
        #expect(try allocate(sets, "a", ifname: "net1", book: &book) == [ip("10.244.1.3"), ip("fd00::3")])
    }

    @Test func aLegacyRecordCountsAsHeld() throws {
        var book = MemoryBook()
        book.records[ip("10.244.1.77")] = .legacy(containerID: "old")
        #expect(try allocate([slash24], "old", book: &book) == [ip("10.244.1.77")])
    }

    @Test func requestedAddresses() throws {
        var book = MemoryBook()
        #expect(try allocate([slash24], "a", requested: [ip("10.244.1.50")], book: &book) == [ip("10.244.1.50")])
        #expect(book.last[0] == ip("10.244.1.50"))
        // The same request again is a repeated ADD.
        #expect(try allocate([slash24], "a", requested: [ip("10.244.1.50")], book: &book) == [ip("10.244.1.50")])

        let taken = try #require(cniError { _ = try allocate([slash24], "b", requested: [ip("10.244.1.50")], book: &book) })
        #expect(taken.code == .addressUnavailable)
        #expect(taken.message == "requested IP address 10.244.1.50 is already allocated to container a interface eth0")

        let gateway = try #require(cniError { _ = try allocate([slash24], "b", requested: [ip("10.244.1.1")], book: &book) })
        #expect(gateway.code == .addressUnavailable && gateway.message.contains("is the gateway of 10.244.1.0/24"))

        let broadcast = try #require(cniError {
            let whole = [[try IPRange(subnet: net("10.9.0.0/24"), rangeStart: ip("10.9.0.0"), rangeEnd: ip("10.9.0.255"))]]
            _ = try allocate(whole, "b", requested: [ip("10.9.0.255")], book: &book)
        })
        #expect(broadcast.message.contains("is the broadcast address of 10.9.0.0/24"))

        let outside = try #require(cniError { _ = try allocate([slash24], "b", requested: [ip("10.9.9.9")], book: &book) })
        #expect(outside.code == .addressUnavailable && outside.message == "requested IP address 10.9.9.9 is outside every range set")

        let twice = try #require(cniError { _ = try allocate([slash24], "b", requested: [ip("10.244.1.8"), ip("10.244.1.9")], book: &book) })
        #expect(twice.code == .addressUnavailable && twice.message.contains("both in range set 0"))

        let changed = try #require(cniError { _ = try allocate([slash24], "a", requested: [ip("10.244.1.60")], book: &book) })
        #expect(changed.message.contains("already holds 10.244.1.50"))
    }

    @Test func requestedAddressGoesToItsOwnSet() throws {
        let sets = [slash24, [try IPRange(subnet: net("fd00::/64"))]]
        var book = MemoryBook()
        #expect(try allocate(sets, "a", requested: [ip("fd00::99")], book: &book) == [ip("10.244.1.2"), ip("fd00::99")])
    }

    @Test func aFailureReleasesWhatEarlierSetsGot() throws {
        let tiny = [try IPRange(subnet: net("10.0.0.0/30"))]  // one address: .2
        let sets = [slash24, tiny]
        var book = MemoryBook()
        #expect(try allocate(sets, "a", book: &book) == [ip("10.244.1.2"), ip("10.0.0.2")])
        let error = try #require(cniError { _ = try allocate(sets, "b", book: &book) })
        #expect(error.code == .rangeExhausted)
        #expect(book.records[ip("10.244.1.3")] == nil, "set 0's address for b was not released")
        #expect(book.records.count == 2)
    }

    @Test func ipv6Walk() throws {
        let set = [try IPRange(subnet: net("fd00:10:244:1::/120"))]
        var book = MemoryBook()
        #expect(try allocate([set], "a", book: &book).map(\.description) == ["fd00:10:244:1::2"])
        book.last[0] = ip("fd00:10:244:1::ff")
        // No broadcast in IPv6: the last address is issued, then the walk wraps past ::1 (the gateway).
        #expect(try allocate([set], "b", book: &book).map(\.description) == ["fd00:10:244:1::3"])
        book.last[0] = ip("fd00:10:244:1::fe")
        #expect(try allocate([set], "c", book: &book).map(\.description) == ["fd00:10:244:1::ff"])
    }

    @Test func rangeArithmetic() throws {
        let range = try IPRange(subnet: net("10.0.0.0/30"))
        #expect(range.capacity == 1 && range.description == "10.0.0.2-10.0.0.2")
        let v6 = try IPRange(subnet: net("fd00::/64"), rangeStart: ip("fd00::1:0"), rangeEnd: ip("fd00::1:ffff"))
        #expect(v6.capacity == 65536)
        #expect(IPRange.distance(from: ip("fd00::ffff:ffff:ffff:ffff"), to: ip("fd00:0:0:1::")) == 1)
        #expect(IPRange.distance(from: ip("fd00::"), to: ip("fd01::")) == UInt64.max)
    }

    @Test func recordParsing() {
        #expect(RecordOwner(record: Array("abc\r\neth0".utf8)) == .attachment(attachment("abc")))
        #expect(RecordOwner(record: Array("abc\r\neth0\n".utf8)) == .attachment(attachment("abc")))
        #expect(RecordOwner(record: Array(" abc \n".utf8)) == .legacy(containerID: "abc"))
        #expect(RecordOwner(record: []) == .unknown)
        #expect(RecordOwner(record: Array("abc\neth0".utf8)) == .unknown)
        #expect(RecordOwner(record: Array("abc\r\n../x".utf8)) == .unknown)
        #expect(RecordOwner(record: [0xff, 0xfe, 0x00]) == .unknown)
        #expect(RecordOwner(record: Array("# podwire-index v1\n10.0.0.2\n".utf8)) == .unknown)
    }

    // MARK: Requests and failures at the edges

    @Test func networkAndBroadcastOutsideTheRangesAreNamed() throws {
        var book = MemoryBook()
        for (address, role) in [("10.244.1.0", "the network address"), ("10.244.1.255", "the broadcast address")] {
            let error = try #require(cniError { _ = try allocate([slash24], "a", requested: [ip(address)], book: &book) })
            #expect(error.code == .addressUnavailable)
            #expect(error.message == "requested IP address \(address) is \(role) of 10.244.1.0/24")
        }
        // A gateway left outside rangeStart...rangeEnd is still named as the gateway.
        let narrow = [[try IPRange(subnet: net("10.244.1.0/24"), rangeStart: ip("10.244.1.10"), rangeEnd: ip("10.244.1.20"))]]
        let gateway = try #require(cniError { _ = try allocate(narrow, "a", requested: [ip("10.244.1.1")], book: &book) })
        #expect(gateway.message == "requested IP address 10.244.1.1 is the gateway of 10.244.1.0/24")
        // In the subnet, neither reserved nor in a range: plainly outside.
        let between = try #require(cniError { _ = try allocate(narrow, "a", requested: [ip("10.244.1.30")], book: &book) })
        #expect(between.message == "requested IP address 10.244.1.30 is outside every range set")
        #expect(book.records.isEmpty && book.last.isEmpty)
    }

    /// A book whose `last_reserved_ip` cannot be written, as when a symlink sits in its place.
    struct CursorFailingBook: AddressBook {
        var inner = MemoryBook()
        mutating func addresses(of attachment: PodAttachment) -> [IPAddress] { inner.addresses(of: attachment) }
        mutating func reserve(_ address: IPAddress, for attachment: PodAttachment) -> Bool { inner.reserve(address, for: attachment) }
        mutating func release(_ address: IPAddress) { inner.release(address) }
        mutating func lastReserved(rangeSet: Int) -> IPAddress? { nil }
        mutating func setLastReserved(_ address: IPAddress, rangeSet: Int) throws(CNIError) {
            throw CNIError(.ioFailure, "refusing to follow the symbolic link last_reserved_ip.\(rangeSet)")
        }
        mutating func owner(of address: IPAddress) -> RecordOwner { inner.owner(of: address) }
    }

    @Test(arguments: [[], [ip("10.244.1.50")]])
    func aCursorThatCannotBeWrittenUndoesTheReservation(requested: [IPAddress]) throws {
        var book = CursorFailingBook()
        let assigned = try Allocator.assignRequested(requested, to: [slash24])
        let error = try #require(cniError {
            _ = try Allocator.allocate(rangeSets: [slash24], requested: assigned, for: attachment("a"), book: &book)
        })
        #expect(error.code == .ioFailure)
        #expect(book.inner.records.isEmpty, "the reserved address leaked: \(book.inner.records)")
    }
}
