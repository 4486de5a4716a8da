import CNIProtocol
import LinuxSystem
import NetAddress

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The store as an operator's tool sees it: every address file with its holder and age, and
/// every index entry as written, read under the store's lock, which is held until `close()` so
/// what was read stays true while repairs are decided and made (plugin calls wait meanwhile).
public final class LockedIPAMStore {
    public let network: String
    let store: IPAMStore
    var transaction: StoreTransaction
    private var open = true
    /// The address files as last read; a change through this object reads them again.
    private var scanned: [StoreTransaction.Record]?

    /// An address file.
    public struct Allocation: Sendable, Equatable {
        public var address: IPAddress
        /// The attachment it names; nil for a legacy (container ID only) or unreadable record.
        public var containerID: String?
        public var ifname: String?
        /// The whole record as `owner` text: "<containerID>/<ifname>", a legacy record's container
        /// ID, nil for one that names nobody.
        public var owner: String?
        /// The file's modification time (its creation, for a record podwire or host-local wrote),
        /// in seconds since the epoch.
        public var modified: Int64
        public var path: String

        public init(address: IPAddress, containerID: String?, ifname: String?, owner: String?, modified: Int64, path: String) {
            self.address = address
            self.containerID = containerID
            self.ifname = ifname
            self.owner = owner
            self.modified = modified
            self.path = path
        }
    }

    /// An index entry that does not say what the address files say.
    public struct IndexDisagreement: Sendable, Equatable, CustomStringConvertible {
        public var entry: String
        public var address: IPAddress
        /// true: the entry lists an address whose file does not name its attachment; false: an
        /// address file names the attachment and the entry does not list it.
        public var listedWithoutRecord: Bool

        public var description: String {
            listedWithoutRecord
                ? "index entry .podwire/\(entry) lists \(address), whose address file does not name that attachment"
                : "index entry .podwire/\(entry) does not list \(address), whose address file names that attachment"
        }
    }

    /// Opens the network's store (as the plugin would) and takes its lock.
    public init(dataDir: String, network: String) throws(CNIError) {
        let opened = try IPAMStore(dataDir: dataDir, network: network)
        do {
            try valueOrErrno("flock") { flock(opened.lockFD, LOCK_EX) }
        } catch {
            throw IPAMStore.failure(error, "lock", path: opened.directory.child(IPAMStore.lockName))
        }
        self.network = network
        store = opened
        transaction = StoreTransaction(store: opened)
    }

    deinit { try? close() }

    /// The network's directory.
    public var path: String { store.directory.path }

    /// Every address file, read.
    public func allocations() throws(CNIError) -> [Allocation] {
        var result: [Allocation] = []
        for record in try records() {
            var allocation = Allocation(address: record.address, containerID: nil, ifname: nil, owner: nil, modified: 0,
                                        path: store.directory.child(record.address.description))
            switch record.owner {
            case .attachment(let attachment):
                allocation.containerID = attachment.containerID
                allocation.ifname = attachment.ifname
                allocation.owner = "\(attachment.containerID)/\(attachment.ifname)"
            case .legacy(let containerID):
                allocation.containerID = containerID
                allocation.owner = containerID
            case .unknown:
                break
            }
            var info = stat()
            if fstatat(store.directory.fd, record.address.description, &info, AT_SYMLINK_NOFOLLOW) == 0 {
                allocation.modified = Int64(info.st_mtim.tv_sec)
            }
            result.append(allocation)
        }
        return result
    }

    /// Where the index and the address files disagree, in both directions. The index is podwire's
    /// shortcut, trusted while its stamp matches the directory: a disagreement under a valid stamp
    /// would make ADD or DEL act on a wrong list.
    public func indexDisagreements() throws(CNIError) -> [IndexDisagreement] {
        let records = try records()
        var expected: [String: [IPAddress]] = [:]
        for record in records {
            if let name = StoreTransaction.indexName(for: record.owner) { expected[name, default: []].append(record.address) }
        }
        let listing: [Directory.Entry]
        do {
            listing = try store.index.entries()
        } catch {
            throw IPAMStore.failure(error, "list", path: store.index.path)
        }
        var result: [IndexDisagreement] = []
        var seen: Set<String> = []
        for entry in listing where entry.name.contains(":") {
            seen.insert(entry.name)
            let bytes = (try? store.index.read(entry.name)) ?? nil
            let listed = String(decoding: bytes ?? [], as: UTF8.self).split(separator: "\n")
                .filter { $0 != StoreTransaction.indexHeader }.compactMap { IPAddress(String($0)) }
            let wanted = expected[entry.name] ?? []
            for address in listed where !wanted.contains(address) {
                result.append(IndexDisagreement(entry: entry.name, address: address, listedWithoutRecord: true))
            }
            for address in wanted where !listed.contains(address) {
                result.append(IndexDisagreement(entry: entry.name, address: address, listedWithoutRecord: false))
            }
        }
        for (name, addresses) in expected where !seen.contains(name) {
            for address in addresses { result.append(IndexDisagreement(entry: name, address: address, listedWithoutRecord: false)) }
        }
        return result.sorted { ($0.entry, $0.address) < ($1.entry, $1.address) }
    }

    /// Every address file, read once while nothing here changes the store.
    func records() throws(CNIError) -> [StoreTransaction.Record] {
        if let scanned { return scanned }
        let records = try transaction.scan()
        scanned = records
        return records
    }

    /// Rewrites the whole index from the address files, and stamps it.
    public func rebuildIndex() throws(CNIError) {
        try transaction.rebuildIndex(from: records())
    }

    /// Releases every address the attachment holds (its index entry with them). The index must
    /// agree with the address files (rebuild it first otherwise). Returns what was released.
    public func releaseAll(containerID: String, ifname: String) throws(CNIError) -> [IPAddress] {
        scanned = nil
        return try transaction.releaseAll(of: PodAttachment(unchecked: containerID, ifname: ifname))
    }

    /// Removes one address file whatever it says: for records that name nobody podwire can ask.
    public func releaseUnowned(_ address: IPAddress) throws(CNIError) {
        scanned = nil
        try transaction.release(address)
    }

    /// Records `address` for the attachment; false when the address file exists already.
    public func record(_ address: IPAddress, containerID: String, ifname: String) throws(CNIError) -> Bool {
        scanned = nil
        return try transaction.reserve(address, for: PodAttachment(containerID: containerID, ifname: ifname))
    }

    /// Writes what changed and releases the lock.
    public func close() throws(CNIError) {
        guard open else { return }
        open = false
        defer { flock(store.lockFD, LOCK_UN) }
        try transaction.commit()
    }
}
