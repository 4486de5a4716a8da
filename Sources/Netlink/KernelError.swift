internal import CNetlink
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed kernel request: either a libnl call (negative `NLE_*` code; errno is meaningless
/// afterwards) or a plain syscall (errno captured on the very next line).
public struct KernelError: Error, Sendable, CustomStringConvertible {
    public enum Cause: Sendable, Equatable {
        /// A libnl `NLE_*` code, stored positive.
        case netlink(Int32)
        case errno(Int32)
    }

    /// What was being done, written like the `ip` command it equals ("ip link add vethab12cd34 type veth").
    public var operation: String
    public var cause: Cause

    public init(_ operation: String, netlinkCode: Int32) {
        self.operation = operation
        self.cause = .netlink(netlinkCode < 0 ? -netlinkCode : netlinkCode)
    }

    public init(_ operation: String, errno code: Int32) {
        self.operation = operation
        self.cause = .errno(code)
    }

    /// The object already exists (EEXIST / NLE_EXIST).
    public var isExists: Bool {
        switch cause {
        case .netlink(let code): code == NLE_EXIST
        case .errno(let code): code == EEXIST
        }
    }

    /// The object or device is not there (ENOENT, ENODEV, ESRCH / NLE_OBJ_NOTFOUND, NLE_NODEV).
    public var isNotFound: Bool {
        switch cause {
        case .netlink(let code): code == NLE_OBJ_NOTFOUND || code == NLE_NODEV
        case .errno(let code): code == ENOENT || code == ENODEV || code == ESRCH
        }
    }

    public var isPermissionDenied: Bool {
        switch cause {
        case .netlink(let code): code == NLE_PERM || code == NLE_NOACCESS
        case .errno(let code): code == EPERM || code == EACCES
        }
    }

    public var reason: String {
        switch cause {
        case .netlink(let code): String(cString: nl_geterror(-code))
        case .errno(let code): String(cString: strerror(code))
        }
    }

    public var description: String { "\(operation): \(reason)" }
}

/// Runs a libnl call and turns a negative return into a `KernelError`.
@inline(__always)
func netlinkCall(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(KernelError) {
    let rc = call()
    if rc < 0 { throw KernelError(operation(), netlinkCode: rc) }
}

/// Runs a syscall that returns -1 + errno, retrying EINTR; returns its non-negative result.
@inline(__always)
@discardableResult
func systemCall(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(KernelError) -> Int32 {
    while true {
        let rc = call()
        if rc >= 0 { return rc }
        let code = errno
        if code == EINTR { continue }
        throw KernelError(operation(), errno: code)
    }
}
