import CNIProtocol
import Netlink

/// The one place where kernel failures become CNI errors.
extension CNIError {
    /// `doing` says what podwire was doing, for a person ("create the veth pair for pod eth0").
    init(_ kernel: KernelError, doing: String) {
        var message = "failed to \(doing): \(kernel.reason)"
        if kernel.isPermissionDenied {
            message += " (podwire needs CAP_NET_ADMIN and CAP_SYS_ADMIN: run it as root, as runtimes do)"
        }
        self.init(.kernelRefused, message, details: kernel.description)
    }
}
