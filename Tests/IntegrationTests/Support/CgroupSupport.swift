import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The cgroups a real runtime's containers get: the one thing a test node cannot hold, since the
/// cgroup hierarchies are the machine's. Each runtime kit puts its containers under a parent of
/// its own with a random name (`/podwire-test-…` for containerd, `podwire-podman-…` for podman),
/// and the node's closing removes that tree here.
enum TestCgroups {
    /// Every cgroup hierarchy mounted here: cgroup v1 controllers and named hierarchies, a v2 one.
    static func hierarchies() -> [String] {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return mounts.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 2, fields[2] == "cgroup" || fields[2] == "cgroup2" else { return nil }
            return String(fields[1])
        }
    }

    /// The directories of `parent`'s tree on every hierarchy, deepest first.
    static func tree(_ parent: String) -> [String] {
        let files = FileManager.default
        var directories: [String] = []
        for hierarchy in hierarchies() {
            let top = hierarchy + "/" + parent.drop { $0 == "/" }
            var isDirectory: ObjCBool = false
            guard files.fileExists(atPath: top, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            directories.append(top)
            for sub in (try? files.subpathsOfDirectory(atPath: top)) ?? [] {
                let path = "\(top)/\(sub)"
                if files.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { directories.append(path) }
            }
        }
        // A cgroup can be removed only once it has no children.
        return directories.sorted { $0.split(separator: "/").count > $1.split(separator: "/").count }
    }

    /// Removes `parent`'s tree from every hierarchy, SIGKILLing whatever still runs in it (only the
    /// kit's containers can: the name is random), waiting up to `timeout` for the kernel to let go
    /// of killed processes. Returns what could not be removed.
    static func removeTree(_ parent: String, timeout: TimeInterval = 10) -> [String] {
        // Never anything but a name a kit makes: a wrong one could name a hierarchy's root.
        guard parent.wholeMatch(of: /\/?podwire-(test|podman)-[0-9a-f]+/) != nil else {
            return ["refused to remove cgroup parent \(parent.debugDescription)"]
        }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let directories = tree(parent)
            if directories.isEmpty { return [] }
            for directory in directories {
                let procs = (try? String(contentsOfFile: "\(directory)/cgroup.procs", encoding: .utf8)) ?? ""
                for pid in procs.split(separator: "\n").compactMap({ Int32($0) }) where pid > 1 { kill(pid, SIGKILL) }
                _ = rmdir(directory)
            }
            if Date() >= deadline { return tree(parent) }
            usleep(20_000)
        }
    }
}
