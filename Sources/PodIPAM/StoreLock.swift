import CNIProtocol
import LinuxSystem

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension IPAMStore {
    /// Runs `body` under the store's exclusive lock, the one host-local takes too, so no two
    /// plugin runs on the node ever interleave their changes to the store.
    ///
    /// The index is checked first (and rebuilt if another writer changed the directory), since
    /// `body` answers from it. The index and stamp are written after `body` even when it fails: an
    /// undone allocation has still moved the directory's mtime, and an unrenewed stamp would cost
    /// the next operation a rebuild.
    func withLock<T>(validatingIndex: Bool = true,
                     _ body: (inout StoreTransaction) throws(CNIError) -> T) throws(CNIError) -> T {
        do {
            try valueOrErrno("flock") { flock(lockFD, LOCK_EX) }
        } catch {
            throw Self.failure(error, "lock", path: directory.child(Self.lockName))
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
}
