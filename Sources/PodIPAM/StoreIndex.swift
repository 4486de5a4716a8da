import CNIProtocol
import LinuxSystem
import NetAddress

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The index entries one operation has read or changed, each with the addresses it verified.
///
/// An ADD or DEL touches one or two entries (the attachment's, and its legacy id-only one), so
/// they are kept in a list searched in order. A hashed table keyed by String would make every ADD
/// and DEL scan all protocol conformances in the binary (String's Hashable, for the table's and the
/// changed-name set's metadata): that lookup happens at first use, and each plugin run is a new
/// process.
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

/// The index under `.podwire/`: an entry per attachment, so that ADD and DEL read one or two small
/// files where host-local reads every address file. Trusted only while the stamp matches the
/// directory (see `IPAMStore`); otherwise rebuilt from the address files.
extension StoreTransaction {
    /// "#" and " " never occur in a container ID, so host-local's legacy match (whole content == ID)
    /// can never take an index entry for a record, whatever follows the header.
    static let indexHeader = "# podwire-index v1"

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
            do throws(SystemError) {
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

    /// Trusts the index when the stamp matches the directory. A mismatch means someone else
    /// (host-local, an administrator, a crash mid-operation) changed the directory since podwire
    /// stamped it, so the index may miss records or list removed ones: it is rebuilt from a scan.
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

    // MARK: Rebuild

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
}
