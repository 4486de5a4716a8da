import CNIProtocol
import NetAddress

/// podwire's in-process IPAM ("podwire-ipam"): host-local's allocation rules and on-disk store,
/// with O(1) ADD and DEL through the store's index.
///
/// Each operation opens the store, takes its lock once, and closes it again: the plugin is a
/// short-lived process and host-local may share the store between two podwire runs.
public struct PodIPAM: Sendable {
    public var config: IPAMConfig
    public var network: String

    public init(config: IPAMConfig, network: String) {
        self.config = config
        self.network = network
    }

    /// One address per range set, in set order. A repeated ADD of the same attachment returns the
    /// addresses it already holds (host-local fails it with "duplicate allocation is not allowed").
    /// Errors: `.rangeExhausted` (102), `.addressUnavailable` (103), `.ioFailure` (5), and code 4
    /// for a container ID or interface name that cannot be recorded.
    public func add(containerID: String, ifname: String) throws(CNIError) -> CNIResult {
        let attachment = try PodAttachment(containerID: containerID, ifname: ifname)
        let requested = try Allocator.assignRequested(config.requested, to: config.rangeSets)
        let store = try IPAMStore(dataDir: config.dataDir, network: network)
        let rangeSets = config.rangeSets
        let allocations = try store.withLock { (book: inout StoreTransaction) throws(CNIError) in
            try Allocator.allocate(rangeSets: rangeSets, requested: requested, for: attachment, book: &book)
        }
        return CNIResult(ips: allocations.map(\.ipConfig), routes: config.routes, dns: config.dns)
    }

    /// Releases every address the attachment holds (and its container's legacy id-only records).
    /// An attachment holding nothing succeeds: DEL must be repeatable.
    public func del(containerID: String, ifname: String) throws(CNIError) {
        let attachment = try PodAttachment(containerID: containerID, ifname: ifname)
        let store = try IPAMStore(dataDir: config.dataDir, network: network)
        _ = try store.withLock { (book: inout StoreTransaction) throws(CNIError) in
            try book.releaseAll(of: attachment)
        }
    }

    /// Fails unless the attachment holds exactly `expected` (order does not matter):
    /// `.unknownContainer` (3) when it holds nothing, `.checkFailed` (104) when it holds others.
    public func check(containerID: String, ifname: String, expected: [IPAddress]) throws(CNIError) {
        let attachment = try PodAttachment(containerID: containerID, ifname: ifname)
        let store = try IPAMStore(dataDir: config.dataDir, network: network)
        let held = try store.withLock { (book: inout StoreTransaction) throws(CNIError) in
            try book.addresses(of: attachment)
        }
        let expectedText = expected.map(\.description).joined(separator: ", ")
        if held.isEmpty {
            throw CNIError(.unknownContainer, "\(attachment.description) holds no IP address in network \(network)",
                           details: expected.isEmpty ? nil : "its result lists \(expectedText)")
        }
        if Set(held) != Set(expected) {
            throw CNIError(.checkFailed,
                           "\(attachment.description) holds \(held.sorted().map(\.description).joined(separator: ", ")) in network \(network), but its result lists \(expected.isEmpty ? "none" : expectedText)",
                           details: "store \(store.directory.path)")
        }
    }

    /// The addresses the attachment holds (its container's legacy id-only records included), read
    /// under the lock without changing anything: what DEL must stop masquerading before it
    /// releases them, whether or not the pod's namespace still exists.
    public func addresses(containerID: String, ifname: String) throws(CNIError) -> [IPAddress] {
        let attachment = try PodAttachment(containerID: containerID, ifname: ifname)
        let store = try IPAMStore(dataDir: config.dataDir, network: network)
        return try store.withLock { (book: inout StoreTransaction) throws(CNIError) in
            try book.addresses(of: attachment)
        }
    }

    /// Every address of the network's store and who holds it: "<containerID>/<ifname>", the
    /// container ID alone for a legacy record, nil for a record that names nobody. Reads every
    /// address file (O(N)): for GC, not for ADD or DEL.
    public func allocations() throws(CNIError) -> [(address: IPAddress, owner: String?)] {
        let store = try IPAMStore(dataDir: config.dataDir, network: network)
        return try store.withLock(validatingIndex: false) { (book: inout StoreTransaction) throws(CNIError) in
            try book.scan().map { record in
                switch record.owner {
                case .attachment(let attachment): (record.address, "\(attachment.containerID)/\(attachment.ifname)")
                case .legacy(let containerID): (record.address, containerID)
                case .unknown: (record.address, nil)
                }
            }
        }
    }

    /// Whether an ADD could succeed: the store is writable and no range set is exhausted (an ADD
    /// needs an address from every set). Fails with `.notAvailable` (50). Reads the whole directory.
    public func status() throws(CNIError) {
        let rangeSets = config.rangeSets
        let network = self.network
        do throws(CNIError) {
            let store = try IPAMStore(dataDir: config.dataDir, network: network)
            try store.withLock(validatingIndex: false) { (book: inout StoreTransaction) throws(CNIError) in
                try book.probeWritable()
                let files = try book.listAddressFiles()
                for (setIndex, ranges) in rangeSets.enumerated() {
                    let capacity = ranges.reduce(UInt64(0)) { $0.addingReportingOverflow($1.capacity).partialValue }
                    let used = files.reduce(UInt64(0)) { count, file in
                        guard let range = ranges.range(containing: file.address), !range.isReserved(file.address) else { return count }
                        return count + 1
                    }
                    if used >= capacity {
                        throw CNIError(.notAvailable,
                                       "range set \(setIndex) (\(ranges.rangeSetDescription)) of network \(network) is exhausted: all \(capacity) addresses are allocated",
                                       details: "release the addresses of deleted pods (CNI DEL or GC) or widen the range")
                    }
                }
            }
        } catch where error.code == .notAvailable {
            throw error
        } catch {
            throw CNIError(.notAvailable, "the IPAM store of network \(network) is not usable: \(error.message)",
                           details: error.details)
        }
    }

    /// Releases every address of this network not held by one of `validAttachments` (records without
    /// interface name are kept when their container is valid; unreadable or garbage records are
    /// released). Tries every address; failures are reported together at the end as `.ioFailure`.
    public func gc(validAttachments: [(containerID: String, ifname: String)]) throws(CNIError) {
        let valid = Set(validAttachments.map { PodAttachment(unchecked: $0.containerID, ifname: $0.ifname) })
        let store = try IPAMStore(dataDir: config.dataDir, network: network)
        _ = try store.withLock(validatingIndex: false) { (book: inout StoreTransaction) throws(CNIError) in
            try book.collectGarbage(valid: valid)
        }
    }
}
