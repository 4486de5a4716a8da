import CLinuxShim
import CNIProtocol
import LinuxSystem
import NetAddress

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The per-address record files, `<network>/<ip>`: host-local's own format, which is what lets the
/// two plugins share a store, and what the index is rebuilt from whenever it cannot be trusted.
extension StoreTransaction {
    struct Record {
        var address: IPAddress
        var owner: RecordOwner
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

    /// Names of address files, without reading them: STATUS only counts them.
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
}

extension Directory {
    /// `createExclusive` for address files, where a name must never appear without its record.
    ///
    /// A file created by name and then written is empty for a moment; a plugin killed right then
    /// (SIGKILL, OOM, power loss) leaves an empty address file that no DEL can attribute, so the
    /// address stays taken until a GC. Here the record is written to an unnamed file in the
    /// directory (O_TMPFILE), which is then linked under `name`: linkat fails with EEXIST when the
    /// name is taken, so this is just as exclusive, and a kill at any point leaves either nothing
    /// or the whole record. Where the filesystem has no O_TMPFILE, or /proc is not mounted to link
    /// it through, the plain create-then-write is used.
    func createRecord(_ name: String, contents: [UInt8]) throws(SystemError) -> Bool {
        let fd = retryingInterrupts { openat(self.fd, ".", CLinuxShim_O_TMPFILE | O_WRONLY | O_CLOEXEC, 0o600) }
        guard fd >= 0 else {
            let code = errno
            switch code {
            case EOPNOTSUPP, EISDIR, EINVAL: return try createExclusive(name, contents: contents)
            default: throw SystemError("open", errno: code)
            }
        }
        defer { close(fd) }
        try FileDescriptorIO.writeAll(fd, contents, operation: "write")
        // Linking the fd itself (AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH, which a plugin run as
        // root has; it spares resolving a path through /proc/self/fd on every ADD. The /proc link
        // works for any owner of the fd.
        if linkat(fd, "", self.fd, name, CLinuxShim_AT_EMPTY_PATH) == 0 { return true }
        if errno == EEXIST { return false }
        if linkat(AT_FDCWD, "/proc/self/fd/\(fd)", self.fd, name, AT_SYMLINK_FOLLOW) == 0 { return true }
        let code = errno
        switch code {
        case EEXIST: return false
        case ENOENT: return try createExclusive(name, contents: contents)
        default: throw SystemError("link", errno: code)
        }
    }
}
