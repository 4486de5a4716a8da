import CNIProtocol
import NetAddress

/// One pod interface on one network: what an address is allocated to.
struct PodAttachment: Hashable, Sendable {
    var containerID: String
    var ifname: String

    /// Refuses what could not be written into host-local's record or podwire's index name (code 4).
    init(containerID: String, ifname: String) throws(CNIError) {
        if let problem = CNIEnvironment.containerIDProblem(containerID) {
            throw CNIError(.invalidEnvironment, "invalid container ID \"\(containerID)\": \(problem)")
        }
        if let problem = CNIEnvironment.interfaceNameProblem(ifname) {
            throw CNIError(.invalidEnvironment, "invalid interface name \"\(ifname)\": \(problem)")
        }
        self.containerID = containerID
        self.ifname = ifname
    }

    init(unchecked containerID: String, ifname: String) {
        self.containerID = containerID
        self.ifname = ifname
    }

    /// The bytes host-local writes into an address file.
    var record: [UInt8] { Array("\(containerID)\r\n\(ifname)".utf8) }

    var description: String { "container \(containerID) interface \(ifname)" }
}

/// Who an address file says holds the address.
enum RecordOwner: Hashable, Sendable {
    case attachment(PodAttachment)
    /// Written by host-local before it recorded interface names: the container ID alone.
    case legacy(containerID: String)
    /// Empty, garbage, unreadable or not a regular file: someone's, but nobody podwire can name.
    case unknown

    /// Parses an address file as host-local compares it: its content trimmed of whitespace.
    init(record bytes: [UInt8]) {
        // Bytes, not Characters: "\r\n" is a single Character in Swift.
        let text = Array(String(decoding: bytes, as: UTF8.self).trimmingASCIIWhitespace.utf8)
        if let cr = text.firstIndex(of: 13), cr + 1 < text.count, text[cr + 1] == 10 {
            let id = String(decoding: text[..<cr], as: UTF8.self)
            let ifname = String(decoding: text[(cr + 2)...], as: UTF8.self)
            if let attachment = try? PodAttachment(containerID: id, ifname: ifname) {
                self = .attachment(attachment)
                return
            }
        } else {
            let id = String(decoding: text, as: UTF8.self)
            if CNIEnvironment.containerIDProblem(id) == nil {
                self = .legacy(containerID: id)
                return
            }
        }
        self = .unknown
    }

    /// Whether this record is one that releasing `attachment` removes (host-local's two matches).
    func belongs(to attachment: PodAttachment) -> Bool {
        switch self {
        case .attachment(let owner): owner == attachment
        case .legacy(let id): id == attachment.containerID
        case .unknown: false
        }
    }

    var description: String {
        switch self {
        case .attachment(let owner): owner.description
        case .legacy(let id): "container \(id) (a record without interface name)"
        case .unknown: "an unrecognised record"
        }
    }
}

/// What allocation needs from a store. Every call happens with the store's lock held.
protocol AddressBook {
    /// Addresses `attachment` holds, its legacy id-only records included.
    mutating func addresses(of attachment: PodAttachment) throws(CNIError) -> [IPAddress]
    /// Records `address` for `attachment`; false when any record for the address already exists.
    mutating func reserve(_ address: IPAddress, for attachment: PodAttachment) throws(CNIError) -> Bool
    /// Forgets `address` (used to undo this call's reservations).
    mutating func release(_ address: IPAddress) throws(CNIError)
    /// host-local's round-robin cursor, `last_reserved_ip.<set>`; nil when missing or unreadable.
    mutating func lastReserved(rangeSet: Int) throws(CNIError) -> IPAddress?
    mutating func setLastReserved(_ address: IPAddress, rangeSet: Int) throws(CNIError)
    /// Who holds `address`, for error messages.
    mutating func owner(of address: IPAddress) -> RecordOwner
}

/// host-local's round-robin walk over one range set: from just after `lastReserved` (when it is in
/// the set) or from the first rangeStart, to each rangeEnd, wrapping across the set's ranges, until
/// it is back where it started. Reserved addresses (gateway, network, broadcast) are skipped.
struct CandidateWalk: Sequence, IteratorProtocol {
    let ranges: [IPRange]
    var rangeIndex = 0
    var current: IPAddress?
    var start: IPAddress?

    init(ranges: [IPRange], lastReserved: IPAddress?) {
        self.ranges = ranges
        if let last = lastReserved, let index = ranges.firstIndex(where: { $0.contains(last) }) {
            rangeIndex = index
            current = last
        }
    }

    mutating func next() -> (address: IPAddress, range: IPRange)? {
        guard !ranges.isEmpty else { return nil }
        while true {
            if let position = current, position != ranges[rangeIndex].rangeEnd, let following = position.next {
                current = following
            } else if current == nil {
                current = ranges[rangeIndex].rangeStart
            } else {
                rangeIndex = (rangeIndex + 1) % ranges.count
                current = ranges[rangeIndex].rangeStart
            }
            let candidate = current!
            if let start {
                if candidate == start { return nil }
            } else {
                start = candidate
            }
            let range = ranges[rangeIndex]
            if !range.isReserved(candidate) { return (candidate, range) }
        }
    }
}

/// One address handed to an attachment by `Allocator.allocate`.
struct Allocation: Hashable, Sendable {
    var address: IPAddress
    var range: IPRange
    /// False when the attachment already held it (a repeated ADD).
    var isNew: Bool

    var ipConfig: CNIIPConfig {
        CNIIPConfig(address: IPNetwork(address: address, prefixLength: range.subnet.prefixLength)!,
                    gateway: range.gateway)
    }
}

/// The allocation rules, free of any file system: unit tested against an in-memory AddressBook.
enum Allocator {
    /// Which range set each requested address belongs to (nil where none was requested).
    /// Fails, before anything is reserved, for an address outside every set or two in one set.
    /// Empty when nothing was requested (the usual ADD): `allocate` reads a missing entry as nil,
    /// and an empty array costs the runtime no metadata for [IPAddress?] to build.
    static func assignRequested(_ requested: [IPAddress], to rangeSets: [[IPRange]]) throws(CNIError) -> [IPAddress?] {
        if requested.isEmpty { return [] }
        var assigned = [IPAddress?](repeating: nil, count: rangeSets.count)
        for address in requested {
            guard let setIndex = rangeSets.firstIndex(where: { $0.range(containing: address) != nil }) else {
                // The network and broadcast addresses sit outside the default ranges: name their role,
                // "outside every range set" would send a person looking for a typo.
                if let range = rangeSets.joined().first(where: { $0.subnet.contains(address) && $0.isReserved(address) }) {
                    throw CNIError(.addressUnavailable, "requested IP address \(address) is \(range.role(of: address)) of \(range.subnet)",
                                   details: "the gateway, network and broadcast addresses are never handed out")
                }
                let sets = rangeSets.map { "[\($0.rangeSetDescription)]" }.joined(separator: " ")
                throw CNIError(.addressUnavailable, "requested IP address \(address) is outside every range set",
                               details: "the range sets hand out \(sets)")
            }
            if let earlier = assigned[setIndex] {
                throw CNIError(.addressUnavailable,
                               "requested IP addresses \(earlier) and \(address) are both in range set \(setIndex) (\(rangeSets[setIndex].rangeSetDescription))",
                               details: "each range set gives an attachment one address; request at most one per set")
            }
            assigned[setIndex] = address
        }
        return assigned
    }

    /// One address per range set, in set order. A repeated ADD gets the addresses it already holds.
    /// On failure, what this call reserved in earlier sets is released again.
    static func allocate(rangeSets: [[IPRange]], requested: [IPAddress?], for attachment: PodAttachment,
                         book: inout some AddressBook) throws(CNIError) -> [Allocation] {
        let held = try book.addresses(of: attachment)
        var allocations: [Allocation] = []
        do throws(CNIError) {
            for (setIndex, ranges) in rangeSets.enumerated() {
                let wanted = setIndex < requested.count ? requested[setIndex] : nil
                allocations.append(try allocate(ranges: ranges, setIndex: setIndex, requested: wanted,
                                                held: held, for: attachment, book: &book))
            }
        } catch {
            for allocation in allocations where allocation.isNew {
                try? book.release(allocation.address)
            }
            throw error
        }
        return allocations
    }

    static func allocate(ranges: [IPRange], setIndex: Int, requested: IPAddress?, held: [IPAddress],
                         for attachment: PodAttachment, book: inout some AddressBook) throws(CNIError) -> Allocation {
        let existing = held.lazy.compactMap { address in
            ranges.range(containing: address).flatMap { $0.isReserved(address) ? nil : Allocation(address: address, range: $0, isNew: false) }
        }.first

        if let requested {
            guard let range = ranges.range(containing: requested) else {
                throw CNIError(.addressUnavailable,
                               "requested IP address \(requested) is outside range set \(setIndex) (\(ranges.rangeSetDescription))")
            }
            if let existing {
                if existing.address == requested { return existing }
                throw CNIError(.addressUnavailable,
                               "\(attachment.description) already holds \(existing.address) in range set \(setIndex); it cannot also take the requested \(requested)",
                               details: "DEL the attachment first to change its address")
            }
            if range.isReserved(requested) {
                throw CNIError(.addressUnavailable, "requested IP address \(requested) is \(range.role(of: requested)) of \(range.subnet)",
                               details: "the gateway, network and broadcast addresses are never handed out")
            }
            guard try book.reserve(requested, for: attachment) else {
                throw CNIError(.addressUnavailable,
                               "requested IP address \(requested) is already allocated to \(book.owner(of: requested).description)",
                               details: "range set \(setIndex) (\(ranges.rangeSetDescription))")
            }
            try moveCursor(to: requested, rangeSet: setIndex, book: &book)
            return Allocation(address: requested, range: range, isNew: true)
        }

        if let existing { return existing }

        for (candidate, range) in CandidateWalk(ranges: ranges, lastReserved: try book.lastReserved(rangeSet: setIndex)) {
            if try book.reserve(candidate, for: attachment) {
                try moveCursor(to: candidate, rangeSet: setIndex, book: &book)
                return Allocation(address: candidate, range: range, isNew: true)
            }
        }
        let capacity = ranges.reduce(UInt64(0)) { $0.addingReportingOverflow($1.capacity).partialValue }
        throw CNIError(.rangeExhausted,
                       "no IP addresses available in range set \(ranges.rangeSetDescription) (all \(capacity) allocated)",
                       details: "range set \(setIndex): release the addresses of deleted pods (CNI DEL or GC) or widen the range")
    }

    /// Writes `last_reserved_ip.<set>` for an address just reserved. When that fails (a symlink in its
    /// place, a full disk) the reservation is undone here: it is not an allocation yet, so the
    /// caller's rollback of earlier sets would never release it.
    static func moveCursor(to address: IPAddress, rangeSet: Int, book: inout some AddressBook) throws(CNIError) {
        do {
            try book.setLastReserved(address, rangeSet: rangeSet)
        } catch {
            try? book.release(address)
            throw error
        }
    }
}
