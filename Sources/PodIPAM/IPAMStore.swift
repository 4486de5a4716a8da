import CNIProtocol
import LinuxSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
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
                data = try Directory(path: dataDir, create: true)
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

    /// Every syscall failure in the store becomes a CNI error here, so each names its path and
    /// errno the same way. ELOOP gets its own explanation: strerror's "Too many levels of symbolic
    /// links" would send a person looking for a loop, when one symlink is all it takes.
    static func failure(_ error: SystemError, _ action: String, path: String) -> CNIError {
        if error.code == ELOOP {
            return CNIError(.ioFailure, "refusing to follow the symbolic link \(path): the IPAM store never follows symlinks",
                            details: "remove \(path); podwire and host-local only ever create plain files and directories there")
        }
        return CNIError(.ioFailure, "cannot \(action) \(path): \(error.reason)",
                        details: "\(error.operation) failed with errno \(error.code)")
    }
}
