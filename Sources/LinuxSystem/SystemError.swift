#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: what was being done, written like the command a person would type
/// ("open /run/netns/pod1"), and the errno it failed with, captured on the call's own line.
///
/// The one error type for syscalls in podwire; netlink requests have `NetlinkError` (Netlink
/// module), and both become CNI errors in one place (`CNIError(_:doing:)` in PodwirePlugin and
/// the IPAM store's `failure`).
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var code: Int32

    public init(_ operation: String, errno code: Int32) {
        self.operation = operation
        self.code = code
    }

    /// strerror's text, e.g. "No such file or directory".
    public var reason: String { String(cString: strerror(code)) }

    public var description: String { "\(operation): \(reason)" }

    /// The object is not there (ENOENT, ENODEV, ESRCH).
    public var isNotFound: Bool { code == ENOENT || code == ENODEV || code == ESRCH }
    public var isExists: Bool { code == EEXIST }
    public var isPermissionDenied: Bool { code == EPERM || code == EACCES }
}

/// Runs a call that returns -1 (or a negative count) with errno set, retrying EINTR, and returns
/// its non-negative result; errno is read on the line after the call, before anything else runs
/// (as swift-system's `valueOrErrno` does). `operation` is built only on failure.
@inlinable
@discardableResult
public func valueOrErrno<T: FixedWidthInteger>(_ operation: @autoclosure () -> String, _ call: () -> T) throws(SystemError) -> T {
    while true {
        let result = call()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(operation(), errno: code)
    }
}

/// Runs a call that returns -1 with errno set, retrying EINTR; the result and errno are left for
/// the caller, for calls where some errnos are answers rather than failures (ENOENT, EEXIST).
@inlinable
public func retryingInterrupts<T: FixedWidthInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR { return result }
    }
}
