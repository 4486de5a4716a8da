internal import CNetlink
import LinuxSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed netlink request, the one error type of this module: either a libnl call (a negative
/// `NLE_*` code; errno is meaningless afterwards), or the kernel's answer or a socket call (an
/// errno: the kernel's NLMSG_ERROR, or errno captured on the call's own line).
public struct NetlinkError: Error, Sendable, CustomStringConvertible {
    public enum Cause: Sendable, Equatable {
        /// A libnl `NLE_*` code, stored positive.
        case netlink(Int32)
        /// An errno: from the kernel's answer, or from a socket call.
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

    init(_ system: SystemError) {
        self.init(system.operation, errno: system.code)
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

    /// No route to the destination (ENETUNREACH, EHOSTUNREACH): a route lookup's "none".
    public var isUnreachable: Bool {
        switch cause {
        case .netlink: false
        case .errno(let code): code == ENETUNREACH || code == EHOSTUNREACH
        }
    }

    /// An nf_tables batch made conditional on a generation (`NFTSocket.commit(_:ifGeneration:)`)
    /// found the ruleset changed since (ERESTART): read again and retry.
    public var isGenerationChanged: Bool { cause == .errno(ERESTART) }

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

/// Runs a libnl call and turns a negative return into a `NetlinkError`.
@inline(__always)
func netlinkCall(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(NetlinkError) {
    let rc = call()
    if rc < 0 { throw NetlinkError(operation(), netlinkCode: rc) }
}

/// Runs a socket call (LinuxSystem's `valueOrErrno`: EINTR retried, errno captured at once) and
/// returns its non-negative result as an Int.
@inline(__always)
@discardableResult
func socketCall<T: FixedWidthInteger>(_ operation: @autoclosure () -> String, _ call: () -> T) throws(NetlinkError) -> Int {
    do {
        return Int(try valueOrErrno(operation(), call))
    } catch {
        throw NetlinkError(error)
    }
}
