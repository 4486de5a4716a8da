import CNIProtocol
import LinuxSystem
import Netlink

/// The one place where kernel failures become CNI errors: code 100 (the kernel refused), with
/// what podwire was doing for a person ("create the veth pair for pod eth0") and the failed
/// call, as `ip`/`nft` would name it, in the details.
extension CNIError {
    init(_ failure: NetlinkError, doing: String) {
        self.init(kernelRefusal: failure.reason, isPermissionDenied: failure.isPermissionDenied, call: failure.description, doing: doing)
    }

    init(_ failure: SystemError, doing: String) {
        self.init(kernelRefusal: failure.reason, isPermissionDenied: failure.isPermissionDenied, call: failure.description, doing: doing)
    }

    private init(kernelRefusal reason: String, isPermissionDenied: Bool, call: String, doing: String) {
        var message = "failed to \(doing): \(reason)"
        if isPermissionDenied {
            message += " (podwire needs CAP_NET_ADMIN and CAP_SYS_ADMIN: run it as root, as runtimes do)"
        }
        self.init(.kernelRefused, message, details: call)
    }
}

/// Runs a netlink operation, turning its failure into the CNI error for `doing`.
func kernel<T>(_ doing: @autoclosure () -> String, _ body: () throws(NetlinkError) -> T) throws(CNIError) -> T {
    do {
        return try body()
    } catch {
        throw CNIError(error, doing: doing())
    }
}

/// Runs a syscall operation (/proc/sys, namespace files), turning its failure into the CNI error for `doing`.
func system<T>(_ doing: @autoclosure () -> String, _ body: () throws(SystemError) -> T) throws(CNIError) -> T {
    do {
        return try body()
    } catch {
        throw CNIError(error, doing: doing())
    }
}

/// Opens the pod's namespace, telling "gone" (code 3) from "not a namespace" (code 4).
func openPodNamespace(_ path: String) throws(CNIError) -> NetworkNamespace {
    do {
        return try NetworkNamespace(path: path)
    } catch {
        if error.isNotFound {
            throw CNIError(.unknownContainer, "network namespace \(path) does not exist", details: error.description)
        }
        throw CNIError(.invalidEnvironment, "CNI_NETNS \(path) is not a usable network namespace", details: error.description)
    }
}
