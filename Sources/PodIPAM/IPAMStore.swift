import CLinuxShim
import CNIProtocol
import NetAddress

#if canImport(Glibc)
import Glibc
#endif

/// host-local's on-disk store, `<dataDir>/<network>/`, plus podwire's index of it.
///
/// host-local's layout, byte for byte, so both plugins can share one node's store:
/// - `<ip>` (RFC 5952 text for IPv6): `containerID + "\r\n" + ifname`, no trailing newline;
/// - `last_reserved_ip.<set>`: the address text, no newline (the round-robin cursor);
/// - `lock`: flocked exclusively for each whole operation, by both plugins.
///
/// podwire adds `.podwire/`, which host-local never matches (its walk compares whole file contents
/// with `id\r\nifname`, and nothing in there has that shape):
/// - `.podwire/<containerID>:<ifname>`: `# podwire-index v1` and then the attachment's addresses, one
///   per line; `.podwire/<containerID>:` indexes legacy id-only records. This makes lookup and
///   release O(1) where host-local reads every file.
/// - `.podwire/stamp`: the network directory's identity and mtime as podwire last left it.
///
/// The index is trusted only while the stamp matches the directory. After each change podwire sets
/// the directory's mtime to a sentinel one second in the past and stamps that value; any later
/// entry created or removed by anyone else (host-local, an administrator, a crash mid-operation)
/// moves the mtime to the present, which can never equal the sentinel. Comparing plain mtimes
/// would not do: they come from a clock that ticks every few milliseconds, so a host-local ADD
/// right after podwire's could leave the mtime unchanged. On a mismatch the index is rebuilt from a
/// full scan, once, and everything carries on.
public final class IPAMStore {
    public let dataDir: String
    public let network: String
    let directory: Directory
    let index: Directory
    let lockFD: Int32

    static let indexDirectoryName = ".podwire"
    static let stampName = "stamp"
    static let lockName = "lock"
    static let lastReservedPrefix = "last_reserved_ip."
    static let probePrefix = ".podwire-probe-"

    /// Opens `<dataDir>/<network>`, creating it (0755) and the lock file (0600) when missing.
    /// A symlink in place of the network directory, the index or the lock is refused.
    public init(dataDir: String, network: String) throws(CNIError) {
        if let problem = NetworkConfig.networkNameProblem(network) {
            throw CNIError(.invalidNetworkConfig, "invalid network name \"\(network)\": \(problem)",
                           details: "the network name is used as a directory under \(dataDir)")
        }
        self.dataDir = dataDir
        self.network = network
        if let existing = Directory.openExisting(Directory.child(network, of: dataDir)) {
            directory = existing
        } else {
            let data: Directory
            do {
                data = try Directory.open(path: dataDir, create: true)
            } catch {
                throw Self.failure(error, "create the IPAM data directory", path: dataDir)
            }
            do {
                directory = try data.subdirectory(network, create: true)
            } catch {
                throw Self.failure(error, "create the IPAM directory", path: data.child(network))
            }
        }
        do {
            index = try directory.subdirectory(Self.indexDirectoryName, create: true)
        } catch {
            throw Self.failure(error, "create the IPAM index directory", path: directory.child(Self.indexDirectoryName))
        }
        do {
            lockFD = try directory.openFile(Self.lockName, O_RDONLY | O_CREAT)
        } catch {
            throw Self.failure(error, "open the IPAM lock file", path: directory.child(Self.lockName))
        }
    }

    deinit { close(lockFD) }

    /// Runs `body` under the store's exclusive lock, with the index checked (and rebuilt if another
    /// writer changed the directory) first, and the index and stamp written after, even on failure,
    /// so an undone allocation does not cost the next operation a rebuild.
    func withLock<T>(validatingIndex: Bool = true,
                     _ body: (inout StoreTransaction) throws(CNIError) -> T) throws(CNIError) -> T {
        guard FileIO.retrying({ flock(lockFD, LOCK_EX) }) == 0 else {
            throw Self.failure(SystemCallError("flock"), "lock", path: directory.child(Self.lockName))
        }
        defer { flock(lockFD, LOCK_UN) }
        var transaction = StoreTransaction(store: self)
        let result: T
        do throws(CNIError) {
            if validatingIndex { try transaction.validateIndex() }
            result = try body(&transaction)
        } catch {
            try? transaction.commit()
            throw error
        }
        try transaction.commit()
        return result
    }

    /// An I/O failure as a CNI error naming the path; a symlink gets its own explanation.
    static func failure(_ error: SystemCallError, _ action: String, path: String) -> CNIError {
        if error.code == ELOOP {
            return CNIError(.ioFailure, "refusing to follow the symbolic link \(path): the IPAM store never follows symlinks",
                            details: "remove \(path); podwire and host-local only ever create plain files and directories there")
        }
        return CNIError(.ioFailure, "cannot \(action) \(path): \(error.text)",
                        details: "\(error.operation) failed with errno \(error.code)")
    }
}

/// The index entries one operation has read or changed, each with the addresses it verified.
///
/// An ADD or DEL touches one or two entries (the attachment's, and its legacy id-only one), so
/// they are kept in a list searched in order. A hashed table keyed by String cost every ADD and
/// DEL a scan of all protocol conformances in the binary at first use (String's Hashable, for the
/// table's and the changed-name set's metadata): about a sixth of an ADD's instructions.
struct IndexEntries {
    private struct Entry {
        var name: String
        var addresses: [IPAddress]
        /// The entry's file must be rewritten (or removed, when empty) at commit.
        var changed: Bool
    }

    private var list: [Entry] = []

    init() {}

    /// The entries a rebuild has just written, none of them changed since.
    init(written: [String: [IPAddress]]) {
        list = written.map { Entry(name: $0.key, addresses: $0.value, changed: false) }
    }

    func addresses(_ name: String) -> [IPAddress]? {
        list.first { $0.name == name }?.addresses
    }

    /// Records `addresses` for `name`; `changed` marks the file for rewriting (never unmarks it).
    mutating func set(_ name: String, _ addresses: [IPAddress], changed: Bool) {
        if let position = list.firstIndex(where: { $0.name == name }) {
            list[position].addresses = addresses
            list[position].changed = list[position].changed || changed
        } else {
            list.append(Entry(name: name, addresses: addresses, changed: changed))
        }
    }

    /// Takes `address` out of every entry that lists it.
    mutating func remove(_ address: IPAddress) {
        for position in list.indices where list[position].addresses.contains(address) {
            list[position].addresses.removeAll { $0 == address }
            list[position].changed = true
        }
    }

    /// Hands `write` each entry to write at commit, by name, so files are always written in the
    /// same order, and counts it written once `write` returns.
    mutating func writeChanged<Failure: Error>(_ write: (_ name: String, _ addresses: [IPAddress]) throws(Failure) -> Void) throws(Failure) {
        list.sort { $0.name < $1.name }
        for position in list.indices where list[position].changed {
            try write(list[position].name, list[position].addresses)
            list[position].changed = false
        }
    }
}

/// The store as seen by one operation, under the lock. Implements the allocator's AddressBook.
struct StoreTransaction: AddressBook {
    let store: IPAMStore
    /// Entries were created or removed in the network directory: the stamp must be renewed.
    var directoryChanged = false
    /// Index entries read or changed by this operation, verified.
    var entries = IndexEntries()

    /// "#" and " " never occur in a container ID, so host-local's legacy match (whole content == ID)
    /// can never take an index entry for a record, whatever follows the header.
    static let indexHeader = "# podwire-index v1"

    init(store: IPAMStore) { self.store = store }

    var directory: Directory { store.directory }
    var index: Directory { store.index }

    // MARK: Index names

    /// `<containerID>:<ifname>`; nil when too long for a file name, and then lookups scan instead.
    static func indexName(_ attachment: PodAttachment) -> String? {
        fitting("\(attachment.containerID):\(attachment.ifname)")
    }

    static func legacyIndexName(_ containerID: String) -> String? {
        fitting("\(containerID):")
    }

    static func fitting(_ name: String) -> String? {
        name.utf8.count <= Int(NAME_MAX) ? name : nil
    }

    static func indexName(for owner: RecordOwner) -> String? {
        switch owner {
        case .attachment(let attachment): indexName(attachment)
        case .legacy(let id): legacyIndexName(id)
        case .unknown: nil
        }
    }

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

    // MARK: Index entries

    /// The entry's addresses whose files still hold `owner`'s record; stale lines are dropped.
    mutating func entry(_ name: String, owner: RecordOwner) throws(CNIError) -> [IPAddress] {
        if let cached = entries.addresses(name) { return cached }
        let bytes: [UInt8]?
        do {
            bytes = try index.read(name)
        } catch {
            throw IPAMStore.failure(error, "read the IPAM index entry", path: index.child(name))
        }
        guard let bytes else {
            entries.set(name, [], changed: false)
            return []
        }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").filter { $0 != Self.indexHeader }
        var verified: [IPAddress] = []
        for line in lines {
            guard let address = IPAddress(line), address.description == line,
                  try readOwner(String(line)) == owner else { continue }
            verified.append(address)
        }
        entries.set(name, verified, changed: verified.count != lines.count)
        return verified
    }

    /// The owner an address file names; nil when there is no such file. A symlink, a directory or an
    /// unreadable file is `.unknown`: held by someone podwire cannot name, and never followed.
    func readOwner(_ name: String) throws(CNIError) -> RecordOwner? {
        do {
            return try directory.read(name, limit: 4096).map { RecordOwner(record: $0) }
        } catch {
            if error.code == ELOOP || error.code == EISDIR || error.code == ENXIO { return .unknown }
            throw IPAMStore.failure(error, "read", path: directory.child(name))
        }
    }

    static func indexContents(_ addresses: [IPAddress]) -> [UInt8] {
        // Appended byte by byte: `joined()` over [String] looks its element's conformances up at
        // run time, a measurable part of an ADD.
        var contents = Array(indexHeader.utf8)
        contents.append(UInt8(ascii: "\n"))
        for address in addresses {
            contents.append(contentsOf: address.description.utf8)
            contents.append(UInt8(ascii: "\n"))
        }
        return contents
    }

    /// Writes the changed index entries, then renews the stamp: index after the address files it
    /// describes, stamp last, so a crash anywhere in between leaves a mismatch and so a rebuild.
    mutating func commit() throws(CNIError) {
        let index = self.index
        try entries.writeChanged { (name, addresses) throws(CNIError) in
            do throws(SystemCallError) {
                if addresses.isEmpty {
                    try index.remove(name)
                } else {
                    try index.replace(name, contents: Self.indexContents(addresses))
                }
            } catch {
                throw IPAMStore.failure(error, "write the IPAM index entry", path: index.child(name))
            }
        }
        if directoryChanged {
            try writeStamp()
            directoryChanged = false
        }
    }

    // MARK: Stamp

    static func stampText(_ info: stat) -> String {
        "podwire-stamp-v1 \(info.st_dev) \(info.st_ino) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)\n"
    }

    /// Sets the directory's mtime to a sentinel a second in the past and records what it reads back
    /// (a filesystem may round it). If the mtime cannot be set, the stamp says so and every later
    /// operation rebuilds: slower, never wrong.
    mutating func writeStamp() throws(CNIError) {
        var text = "podwire-stamp-v1 untrusted\n"
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        if (try? directory.setModificationTime(timespec(tv_sec: now.tv_sec - 1, tv_nsec: now.tv_nsec))) != nil,
           let info = try? directory.status() {
            text = Self.stampText(info)
        }
        do {
            try index.replace(IPAMStore.stampName, contents: Array(text.utf8))
        } catch {
            throw IPAMStore.failure(error, "write the IPAM index stamp", path: index.child(IPAMStore.stampName))
        }
    }

    /// Trusts the index when the stamp matches the directory; otherwise rebuilds it from a scan.
    mutating func validateIndex() throws(CNIError) {
        if try !stampMatches() { try rebuildIndex(from: scan()) }
    }

    func stampMatches() throws(CNIError) -> Bool {
        let info: stat
        do {
            info = try directory.status()
        } catch {
            throw IPAMStore.failure(error, "stat", path: directory.path)
        }
        guard let stamp = try? index.read(IPAMStore.stampName, limit: 256) else { return false }
        return String(decoding: stamp, as: UTF8.self) == Self.stampText(info)
    }

    // MARK: Scanning

    struct Record {
        var address: IPAddress
        var owner: RecordOwner
    }

    /// Every address file of the network, read: host-local's O(N) view, for rebuilds, GC and lookups
    /// of IDs too long to index. Names that are not canonical address text are not address files.
    func scan() throws(CNIError) -> [Record] {
        var records: [Record] = []
        for entry in try listAddressFiles() {
            let owner: RecordOwner?
            do {
                owner = try readOwner(entry.name)
            } catch {
                // One unreadable file must not stop a rebuild: it stays someone's address.
                owner = .unknown
            }
            if let owner { records.append(Record(address: entry.address, owner: owner)) }
        }
        return records
    }

    /// Names of address files, without reading them.
    func listAddressFiles() throws(CNIError) -> [(name: String, address: IPAddress)] {
        let listing: [Directory.Entry]
        do {
            listing = try directory.entries()
        } catch {
            throw IPAMStore.failure(error, "list", path: directory.path)
        }
        return listing.compactMap { entry in
            guard entry.type != UInt8(DT_DIR), let address = IPAddress(entry.name),
                  address.description == entry.name else { return nil }
            return (entry.name, address)
        }
    }

    /// Replaces the whole index with what `records` say, then stamps it.
    mutating func rebuildIndex(from records: [Record]) throws(CNIError) {
        var fresh: [String: [IPAddress]] = [:]
        for record in records {
            if let name = Self.indexName(for: record.owner) { fresh[name, default: []].append(record.address) }
        }
        let existing: [Directory.Entry]
        do {
            existing = try index.entries()
        } catch {
            throw IPAMStore.failure(error, "list", path: index.path)
        }
        for entry in existing where entry.name.contains(":") && fresh[entry.name] == nil {
            do {
                try index.remove(entry.name)
            } catch {
                throw IPAMStore.failure(error, "remove the stale IPAM index entry", path: index.child(entry.name))
            }
        }
        // Probes are made and removed under the lock this rebuild holds, so any probe file seen now
        // is left by a STATUS that was killed in between; making it moved the directory's mtime,
        // which is what brought this rebuild on. Best effort: a leftover is clutter, not an address.
        for entry in existing where entry.name.hasPrefix(IPAMStore.probePrefix) {
            _ = try? index.remove(entry.name)
        }
        for entry in (try? directory.entries()) ?? [] where entry.name.hasPrefix(IPAMStore.probePrefix) {
            _ = try? directory.remove(entry.name)
        }
        for (name, addresses) in fresh {
            do {
                try index.replace(name, contents: Self.indexContents(addresses.sorted()))
            } catch {
                throw IPAMStore.failure(error, "write the IPAM index entry", path: index.child(name))
            }
        }
        entries = IndexEntries(written: fresh)
        try writeStamp()
        directoryChanged = false
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
                failures.append("\(directory.child(record.address.description)): \(error.text)")
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

extension Directory {
    /// O_TMPFILE, which Glibc's Swift module hides behind _GNU_SOURCE: __O_TMPFILE with O_DIRECTORY.
    /// 020000000 is __O_TMPFILE everywhere but alpha, parisc and sparc, where Swift does not run.
    static let unnamedFileFlags: Int32 = 0o20000000 | O_DIRECTORY

    /// `createExclusive` for address files, where a name must never appear without its record.
    ///
    /// A file created by name and then written is empty for a moment; a plugin killed right then
    /// (SIGKILL, OOM, power loss) leaves an empty address file that no DEL can attribute, so the
    /// address stays taken until a GC. Here the record is written to an unnamed file in the
    /// directory, which is then linked under `name`: linkat fails with EEXIST when the name is
    /// taken, so this is just as exclusive, and a kill at any point leaves either nothing or the
    /// whole record. Where the filesystem has no O_TMPFILE, or /proc is not mounted to link it
    /// through, the plain create-then-write is used.
    func createRecord(_ name: String, contents: [UInt8]) throws(SystemCallError) -> Bool {
        let fd = FileIO.retrying { openat(self.fd, ".", Self.unnamedFileFlags | O_WRONLY | O_CLOEXEC, 0o600) }
        guard fd >= 0 else {
            switch errno {
            case EOPNOTSUPP, EISDIR, EINVAL: return try createExclusive(name, contents: contents)
            default: throw SystemCallError("open")
            }
        }
        defer { close(fd) }
        try FileIO.writeAll(fd, contents, operation: "write")
        // Linking the fd itself (AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH, which a plugin run as
        // root has; it spares the walk through /proc/self/fd, about 20 us per ADD. The /proc
        // link works for any owner of the fd.
        if linkat(fd, "", self.fd, name, CLinuxShim_AT_EMPTY_PATH) == 0 { return true }
        if errno == EEXIST { return false }
        if linkat(AT_FDCWD, "/proc/self/fd/\(fd)", self.fd, name, AT_SYMLINK_FOLLOW) == 0 { return true }
        switch errno {
        case EEXIST: return false
        case ENOENT: return try createExclusive(name, contents: contents)
        default: throw SystemCallError("link")
        }
    }
}
