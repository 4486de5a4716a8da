import CNIProtocol
import NetAddress
import Netfilter
import Netlink
import PodIPAM
import PodWiring
import PodwirePlugin

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `podwirectl doctor`: two looks at the node a moment apart, findings that hold in both, and
/// with `fix` the repairs, all under the store's lock.
///
/// A plugin call in flight is briefly inconsistent (a DEL has deleted the veth and not yet
/// released the address): what is still wrong after the pause is not a call in flight. The
/// second look and the repairs happen under the store's lock, so no ADD, DEL or GC changes the
/// store meanwhile; those that reach the store wait for it.
public struct DoctorSession {
    public var network: NetworkList
    /// Between the two looks.
    public var settle: Double = 0.25

    public init(network: NetworkList) { self.network = network }

    public struct Report: Sendable {
        public var network: String
        public var findings: [Finding]
        /// Filled by `fix`: repairs that failed (the finding's line, and why).
        public var failures: [(finding: String, reason: String)] = []
        public var fixed = false
    }

    public func run(fix: Bool) throws(ControlError) -> Report {
        let ipam = try network.ipamConfig()
        let name = network.name
        let routeSocket: RouteSocket
        do {
            routeSocket = try RouteSocket()
        } catch {
            throw ControlError(.access, "cannot open a netlink socket: \(error)")
        }
        let first: [Finding]
        do {
            let store = try openStore(ipam.dataDir, name)
            first = Doctor.findings(try NodeSnapshot.read(network: network, store: store, routeSocket: routeSocket))
            try? store.close()
        }
        if !first.isEmpty && settle > 0 {
            var pause = timespec(tv_sec: Int(settle), tv_nsec: Int((settle - Double(Int(settle))) * 1e9))
            var left = timespec()
            while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
        }
        let store = try openStore(ipam.dataDir, name)
        defer { try? store.close() }
        let snapshot = try NodeSnapshot.read(network: network, store: store, routeSocket: routeSocket)
        var findings: [Finding] = []
        for finding in Doctor.findings(snapshot) where first.contains(where: { $0.sameObject(as: finding) })
            && !findings.contains(where: { $0.sameObject(as: finding) }) {
            findings.append(finding)
        }
        var report = Report(network: name, findings: findings)
        guard fix else { return report }
        report.failures = repair(findings, snapshot: snapshot, store: store, routeSocket: routeSocket)
        do {
            try store.close()
        } catch {
            report.failures.append(("the store's index", "cannot write it: \(error.message)"))
        }
        report.fixed = true
        return report
    }

    func openStore(_ dataDir: String, _ name: String) throws(ControlError) -> LockedIPAMStore {
        do {
            return try LockedIPAMStore(dataDir: dataDir, network: name)
        } catch {
            throw ControlError(access: error)
        }
    }

    /// Makes each finding's repair, in `Repair.order`; returns what failed.
    func repair(_ findings: [Finding], snapshot: NodeSnapshot, store: LockedIPAMStore,
                routeSocket: RouteSocket) -> [(finding: String, reason: String)] {
        var failures: [(finding: String, reason: String)] = []
        let masquerade = MasqueradeTable(network: snapshot.network)
        let hostPorts = HostPortTable(network: snapshot.network, sharingSocketWith: masquerade)
        var done: [Repair] = []
        for finding in findings.sorted(by: { $0.repair.order < $1.repair.order }) where !done.contains(finding.repair) {
            done.append(finding.repair)
            do throws(ControlError) {
                try apply(finding.repair, snapshot: snapshot, store: store, routeSocket: routeSocket,
                          masquerade: masquerade, hostPorts: hostPorts)
            } catch {
                for same in findings where same.repair == finding.repair { failures.append((same.line, error.message)) }
            }
        }
        return failures
    }

    func apply(_ repair: Repair, snapshot: NodeSnapshot, store: LockedIPAMStore, routeSocket: RouteSocket,
               masquerade: MasqueradeTable, hostPorts: HostPortTable) throws(ControlError) {
        func kernel(_ body: () throws(NetlinkError) -> Void) throws(ControlError) {
            do { try body() } catch { throw ControlError(.access, "\(error)") }
        }
        func stored(_ body: () throws(CNIError) -> Void) throws(ControlError) {
            do { try body() } catch { throw ControlError(access: error) }
        }
        switch repair {
        case .rebuildIndex:
            try stored { () throws(CNIError) in try store.rebuildIndex() }
        case .deleteLink(let name):
            try kernel { () throws(NetlinkError) in _ = try routeSocket.deleteLink(named: name) }
        case .deleteRoute(let route, _):
            try kernel { () throws(NetlinkError) in _ = try routeSocket.deleteRoute(route) }
        case .removeMasquerade(let address):
            try kernel { () throws(NetlinkError) in _ = try masquerade.remove([address]) }
        case .removeForward(let forward):
            try kernel { () throws(NetlinkError) in try hostPorts.remove(forwards: [forward], pairs: []) }
            HostPorts.forgetFlows(through: [forward])
        case .removeSNATPair(let pair):
            try kernel { () throws(NetlinkError) in try hostPorts.remove(forwards: [], pairs: [pair]) }
        case .releaseAttachment(let containerID, let ifname, let addresses):
            // Its elements first: an address released with its masquerade element still in place
            // would masquerade the next pod to get it.
            let forwards = snapshot.forwards.map(\.forward).filter { addresses.contains($0.pod) }
            let pairs = snapshot.snatPairs.map(\.pair).filter { addresses.contains($0.destination) }
            try kernel { () throws(NetlinkError) in
                if snapshot.masquerade?.contains(where: { addresses.contains($0.address) }) == true { _ = try masquerade.remove(addresses) }
                if !forwards.isEmpty || !pairs.isEmpty { try hostPorts.remove(forwards: forwards, pairs: pairs) }
            }
            HostPorts.forgetFlows(through: forwards)
            try stored { () throws(CNIError) in _ = try store.releaseAll(containerID: containerID, ifname: ifname) }
        case .releaseUnattributed(let address):
            try stored { () throws(CNIError) in try store.releaseUnowned(address) }
        case .recordAddresses(let addresses, let containerID, let ifname):
            try stored { () throws(CNIError) in
                for address in addresses where try !store.record(address, containerID: containerID, ifname: ifname) {
                    throw CNIError(.addressUnavailable, "\(address) was allocated meanwhile")
                }
            }
        case .addHostRoute(let address, let linkIndex, _):
            try kernel { () throws(NetlinkError) in
                try routeSocket.addRoute(RouteSpec(route: IPRoute(destination: .host(address), scope: .host), linkIndex: linkIndex), mode: .replace)
            }
        }
    }
}

extension Finding {
    /// The same problem seen twice: the same kind of finding about the same object.
    func sameObject(as other: Finding) -> Bool {
        kind == other.kind && object == other.object && address == other.address
    }
}
