import CNIProtocol
import LinuxSystem
import NetAddress

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The store as seen by one operation, under the lock: the allocator's AddressBook, and the
/// whole-store operations of DEL, GC and STATUS. What the operation changes is gathered here so the
/// index and the stamp are written once, by `commit`.
struct StoreTransaction: AddressBook {
    let store: IPAMStore
    /// Entries were created or removed in the network directory: the stamp must be renewed.
    var directoryChanged = false
    /// Index entries read or changed by this operation, verified.
    var entries = IndexEntries()

    init(store: IPAMStore) { self.store = store }

    var directory: Directory { store.directory }
    var index: Directory { store.index }

    // MARK: AddressBook

    mutating func addresses(of attachment: PodAttachment) throws(CNIError) -> [IPAddress] {
        guard let name = Self.indexName(attachment), let legacy = Self.legacyIndexName(attachment.containerID) else {
            return try scan().filter { $0.owner.belongs(to: attachment) }.map(\.address)
        }
        return try entry(name, owner: .attachment(attachment))
            + entry(legacy, owner: .legacy(containerID: attachment.containerID))
    }

    mutating func reserve(_ address: IPAddress, for attachment: PodAttachment) throws(CNIError) -> Bool {
        let name = address.description
        do {
            guard try directory.createRecord(name, contents: attachment.record) else { return false }
        } catch {
            throw IPAMStore.failure(error, "create the address file", path: directory.child(name))
        }
        directoryChanged = true
        if let indexName = Self.indexName(attachment) {
            var addresses = try entry(indexName, owner: .attachment(attachment))
            addresses.append(address)
            entries.set(indexName, addresses, changed: true)
        }
        return true
    }

    mutating func release(_ address: IPAddress) throws(CNIError) {
        let name = address.description
        do {
            try directory.remove(name)
        } catch {
            throw IPAMStore.failure(error, "remove the address file", path: directory.child(name))
        }
        directoryChanged = true
        entries.remove(address)
    }

    mutating func lastReserved(rangeSet: Int) throws(CNIError) -> IPAddress? {
        let name = IPAMStore.lastReservedPrefix + String(rangeSet)
        do {
            // Garbage is no reason to fail an ADD: the walk then starts at rangeStart, as host-local's does.
            return try directory.read(name, limit: 256).flatMap { IPAddress(String(decoding: $0, as: UTF8.self).trimmingASCIIWhitespace) }
        } catch {
            throw IPAMStore.failure(error, "read", path: directory.child(name))
        }
    }

    mutating func setLastReserved(_ address: IPAddress, rangeSet: Int) throws(CNIError) {
        let name = IPAMStore.lastReservedPrefix + String(rangeSet)
        do {
            try directory.replace(name, contents: Array(address.description.utf8))
        } catch {
            throw IPAMStore.failure(error, "write", path: directory.child(name))
        }
        // It may not have existed: a new directory entry, which the stamp must account for.
        directoryChanged = true
    }

    mutating func owner(of address: IPAddress) -> RecordOwner {
        (try? readOwner(address.description)) ?? .unknown
    }

    // MARK: Whole-store operations

    /// Removes `attachment`'s address files (and its legacy id-only ones), trying every one even when
    /// some fail. Unknown attachments succeed: DEL is idempotent.
    mutating func releaseAll(of attachment: PodAttachment) throws(CNIError) -> [IPAddress] {
        var failures: [CNIError] = []
        var released: [IPAddress] = []
        for address in try addresses(of: attachment) {
            do {
                try release(address)
                released.append(address)
            } catch {
                failures.append(error)
            }
        }
        if let first = failures.first {
            throw CNIError(.ioFailure, failures.count == 1 ? first.message : "\(first.message) (and \(failures.count - 1) more)",
                           details: failures.map(\.description).joined(separator: "; "))
        }
        return released
    }

    /// Releases every address whose record is not one of `valid` (legacy records are kept when their
    /// container ID is valid). Keeps going past failures; reports them all in one error at the end.
    mutating func collectGarbage(valid: Set<PodAttachment>) throws(CNIError) -> [IPAddress] {
        let validIDs = Set(valid.map(\.containerID))
        var kept: [Record] = []
        var released: [IPAddress] = []
        var failures: [String] = []
        for record in try scan() {
            let keep = switch record.owner {
            case .attachment(let attachment): valid.contains(attachment)
            case .legacy(let id): validIDs.contains(id)
            case .unknown: false
            }
            if keep {
                kept.append(record)
                continue
            }
            do {
                try directory.remove(record.address.description)
                released.append(record.address)
            } catch {
                failures.append("\(directory.child(record.address.description)): \(error.reason)")
                kept.append(record)
            }
        }
        if !released.isEmpty { directoryChanged = true }
        try rebuildIndex(from: kept)
        if !failures.isEmpty {
            throw CNIError(.ioFailure, "GC could not release \(failures.count) address\(failures.count == 1 ? "" : "es") of network \(store.network)",
                           details: failures.joined(separator: "; "))
        }
        return released
    }

    /// Creates and removes a file where ADD writes (the network directory and the index): proof the
    /// store can be written. The probe moves the directory's mtime, so the stamp is renewed, but only
    /// if it was valid before: a stale index must stay marked stale.
    mutating func probeWritable() throws(CNIError) {
        let stampWasValid = try stampMatches()
        let name = IPAMStore.probePrefix + String(getpid())
        for place in [directory, index] {
            do {
                _ = try place.createExclusive(name, contents: [])
                try place.remove(name)
            } catch {
                throw IPAMStore.failure(error, "write to", path: place.path)
            }
        }
        if stampWasValid { try writeStamp() }
    }
}
