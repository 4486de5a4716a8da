import LinuxSystem
import NetAddress
import Netlink
import CNIProtocol
import PodWiring
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The hostPorts of one CNI network, in the network's nftables table (the masquerade's, see
/// `MasqueradeTable`) beside the masquerade's sets and chain:
///
///     table inet podwire-<network> {
///         map hp4    { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }  # hostIP given
///         map hp4any { type inet_proto . inet_service : ipv4_addr . inet_service; }              # every address
///         map hp6    { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
///         map hp6any { type inet_proto . inet_service : ipv6_addr . inet_service; }
///         set hpsnat4 { type ipv4_addr . ipv4_addr; }   # pod . pod (hairpin), 127.0.0.1 . pod
///         set hpsnat6 { type ipv6_addr . ipv6_addr; }   # pod . pod
///         set hpseen4 { type inet_service; flags dynamic,timeout; }  # UDP ports the node was sent to
///         set hpseen6 { type inet_service; flags dynamic,timeout; }
///         chain hostports {
///             dnat ip to ip daddr . meta l4proto . th dport map @hp4
///             dnat ip to meta l4proto . th dport map @hp4any
///             dnat ip6 to ip6 daddr . meta l4proto . th dport map @hp6
///             dnat ip6 to meta l4proto . th dport map @hp6any
///         }
///         chain hpprerouting { type nat hook prerouting priority dstnat; fib daddr type local jump hostports }
///         chain hpoutput { type nat hook output priority -100; fib daddr type local jump hostports }
///         chain hppostrouting {
///             type nat hook postrouting priority srcnat;
///             ip saddr . ip daddr @hpsnat4 masquerade
///             ip6 saddr . ip6 daddr @hpsnat6 masquerade
///         }
///         chain hpinput {
///             type filter hook input priority filter;
///             iifname != "lo" ip daddr 127.0.0.0/8 ct state ! established,related drop
///             meta nfproto ipv4 meta l4proto udp ct state new add @hpseen4 { udp dport }
///             meta nfproto ipv6 meta l4proto udp ct state new add @hpseen6 { udp dport }
///         }
///     }
///
/// Each map element is commented with its owner ("<containerID>/<ifname>"), so a port's holder
/// can be named, and DEL and GC remove exactly an attachment's elements. A pod costs a few
/// elements, never a rule: an ADD or DEL is one small transaction whatever the number of pods.
///
/// - `fib daddr type local` keeps the maps to packets for the node's own addresses: a packet
///   a pod sends through the node to some other host's port 53 is not hijacked (the
///   reference portmap's GHSA-jv3w-x3r3-g6rm).
/// - `hpinput` is the guard that goes with route_localnet (set on hostPort pods' host veths so
///   127.0.0.1 can be forwarded): without it a pod could open connections to services the
///   node binds to 127.0.0.1 only (CVE-2020-8558). It is kube-proxy's rule, limited to
///   packets that did not come from the node itself.
/// - `hpseen4`/`hpseen6` record each UDP port a new flow was delivered to on the node itself,
///   untranslated: the only flows an ADD must make conntrack forget for a new UDP hostPort
///   (their entries outlive the mapping while the client keeps sending). A port no such flow
///   ever reached has none to forget, and the ADD spares the kernel a walk of its whole
///   conntrack table. Never expired (a flow can last for ever); at most one element per port.
///   The sets know nothing of the flows before them, so the ADD that makes them puts port 0 in
///   each for the node's UDP conntrack timeout (30 s by default): while it is there every ADD
///   forgets the flows to its UDP ports. By then every flow from before that still lives has sent
///   again (an unanswered UDP flow's entry dies after that timeout), which the sets recorded
///   (its packets stay `ct state new` while nothing answers).
///
/// A port held by another attachment is refused, never stolen: the holders are read and the
/// transaction made conditional on the ruleset's generation, so two ADDs racing for a port
/// cannot both win (the loser reads again and finds the winner).
public final class HostPortTable {
    public let network: String
    private var openSocket: NFTSocket?
    private let masquerade: MasqueradeTable?

    /// With `masquerade`, its socket is used: closing a netfilter socket after a removal waits
    /// for an RCU grace period, which a DEL should pay once, while its veth's deletion waits
    /// out the same one (see `MasqueradeTable`).
    public init(network: String, sharingSocketWith masquerade: MasqueradeTable? = nil) {
        self.network = network
        self.masquerade = masquerade
    }

    public var name: String { MasqueradeTable(network: network).name }

    /// Whether the last `install` made the table's structure (first use, or repaired): the seen
    /// sets are new then, and say nothing of the flows before them.
    public private(set) var madeStructure = false

    static let dnatChain = "hostports"
    static let preroutingChain = "hpprerouting"
    static let outputChain = "hpoutput"
    static let postroutingChain = "hppostrouting"
    static let inputChain = "hpinput"

    static func map(_ family: IPFamily, anyAddress: Bool) -> String {
        (family == .v4 ? "hp4" : "hp6") + (anyAddress ? "any" : "")
    }

    static func snatSet(_ family: IPFamily) -> String { family == .v4 ? "hpsnat4" : "hpsnat6" }

    static func seenSet(_ family: IPFamily) -> String { family == .v4 ? "hpseen4" : "hpseen6" }

    /// The element that says a seen set is younger than the node's UDP conntrack timeout: port 0,
    /// which no UDP flow is sent to.
    static let youngKey: [UInt8] = [0, 0]

    /// How long a new seen set stays young: the namespace's `nf_conntrack_udp_timeout` (30 s by
    /// default), in milliseconds.
    static func youth() -> UInt64 {
        guard let text = try? Sysctl.read("net/netfilter/nf_conntrack_udp_timeout"), let seconds = UInt64(text), seconds > 0 else {
            return 30_000
        }
        return seconds * 1000
    }

    static let families: [IPFamily] = [.v4, .v6]

    func socket() throws(NetlinkError) -> NFTSocket {
        if let masquerade { return try masquerade.socket() }
        if let openSocket { return openSocket }
        let socket = try NFTSocket()
        openSocket = socket
        return socket
    }

    /// One forward as the maps hold it, with its owner.
    public struct Held: Sendable, Equatable {
        public var forward: HostPortForward
        /// The element's comment; nil for an element without one.
        public var owner: String?

        public init(forward: HostPortForward, owner: String?) {
            self.forward = forward
            self.owner = owner
        }
    }

    // MARK: ADD

    /// Another attachment's forward that overlaps one of the plan's.
    public struct Conflict: Error, Sendable, Equatable {
        public var wanted: HostPortForward
        public var holder: Held
    }

    /// Puts the plan's forwards and SNAT pairs in the table (made on first use), in one
    /// transaction; returns the first conflict instead, having changed nothing.
    ///
    /// A forward of the same owner already there is replaced (a runtime's retried ADD); a SNAT
    /// pair left by an earlier holder of the pod's address is taken over.
    public func install(_ plan: HostPortPlan) throws(NetlinkError) -> Conflict? {
        let socket = try self.socket()
        let owner = comment(plan.owner)
        var attempt = 0
        while true {
            attempt += 1
            // The generation first, then every element the plan touches, in one round trip; the
            // dumps after. A change by anyone after the generation was read fails the commit.
            var gets = [NFT.getGeneration()]
            for forward in plan.forwards {
                let port = NodePort(forward)
                gets.append(getRequest(Self.map(forward.family, anyAddress: true), key: port.anyKey))
                if let hostAddress = forward.hostAddress {
                    gets.append(getRequest(Self.map(forward.family, anyAddress: false), key: port.addressKey(hostAddress)))
                }
            }
            for pair in plan.snat { gets.append(getRequest(Self.snatSet(pair.source.family), key: Self.snatKey(pair))) }
            let chainsAt = gets.count
            for chain in Self.chains { gets.append(NFT.getChain(name, chain)) }
            let answers = try socket.queryEach(gets)
            let generation = answers.errors[0] == 0 ? NFT.generation(answers.replies[0]) : nil

            var requests: [NFTRequest] = []
            let inPlace = Self.expectedUse.indices.allSatisfy { index in
                answers.errors[chainsAt + index] == 0 && NFT.chainUse(answers.replies[chainsAt + index].first) == Self.expectedUse[index]
            }
            if !inPlace { requests += Self.creation(name, youth: Self.youth()) }
            var addressMaps = AddressMaps()
            var next = 1
            for forward in plan.forwards {
                var held = try Self.found(answers, at: next, family: forward.family, anyAddress: true)
                next += 1
                if forward.hostAddress != nil {
                    held += try Self.found(answers, at: next, family: forward.family, anyAddress: false)
                    next += 1
                } else {
                    held += try addressForwards(forward.family, &addressMaps)
                        .filter { $0.forward.proto == forward.proto && $0.forward.hostPort == forward.hostPort }
                }
                var inPlace = false
                for holder in held {
                    guard holder.owner == owner else { return Conflict(wanted: forward, holder: holder) }
                    // Ours from an earlier ADD (a runtime's retry): kept if the same, replaced if
                    // the pod port or address changed (a plain add would keep the old data).
                    // Our other forwards of the port (a hostIP beside every address) stay.
                    if holder.forward == forward {
                        inPlace = true
                    } else if holder.forward.hostAddress == forward.hostAddress {
                        requests.append(deletion(holder.forward))
                    }
                }
                if !inPlace { requests.append(addition(forward, owner: plan.owner)) }
            }
            for pair in plan.snat {
                let errno = answers.errors[next], element = NFT.parseElements(answers.replies[next]).first
                next += 1
                if errno != 0 && errno != ENOENT { throw NetlinkError(gets[next - 1].what, errno: errno) }
                if let element {
                    if element.comment == owner { continue }
                    // Left by an earlier holder of the pod's address whose DEL never came.
                    requests.append(snatRequest(delete: true, pair, owner: nil))
                }
                requests.append(snatRequest(delete: false, pair, owner: plan.owner))
            }
            do {
                try socket.commit(requests, ifGeneration: generation)
                madeStructure = !inPlace
                return nil
            } catch where error.isGenerationChanged && attempt < 20 {
                continue // the ruleset changed since it was read: read again
            }
        }
    }

    /// Of `forwards` (UDP ones), those whose port a new untranslated UDP flow was delivered to
    /// on the node (an element of the family's seen set), or all of a family whose set is still
    /// young; read in one round trip, after the commit, so a flow that came before the mapping
    /// was active is in the set by then.
    public func seenPorts(_ forwards: [HostPortForward]) throws(NetlinkError) -> [HostPortForward] {
        var families: [IPFamily] = []
        var ports: [HostPortForward] = []
        for forward in forwards where !ports.contains(where: { $0.family == forward.family && $0.hostPort == forward.hostPort }) {
            ports.append(forward)
            if !families.contains(forward.family) { families.append(forward.family) }
        }
        guard !ports.isEmpty else { return [] }
        // Each family's youth first, then each port.
        var gets = families.map { getRequest(Self.seenSet($0), key: Self.youngKey) }
        gets += ports.map { getRequest(Self.seenSet($0.family), key: [UInt8($0.hostPort >> 8), UInt8($0.hostPort & 0xff)]) }
        let answers = try socket().queryEach(gets)
        func found(_ index: Int) throws(NetlinkError) -> Bool {
            switch answers.errors[index] {
            case 0: return true
            case ENOENT: return false
            default: throw NetlinkError(gets[index].what, errno: answers.errors[index])
            }
        }
        var young: [IPFamily] = []
        for index in families.indices where try found(index) { young.append(families[index]) }
        var seen: [HostPortForward] = []
        for index in ports.indices {
            if young.contains(ports[index].family) { seen.append(ports[index]); continue }
            if try found(families.count + index) { seen.append(ports[index]) }
        }
        return forwards.filter { forward in seen.contains { $0.family == forward.family && $0.hostPort == forward.hostPort } }
    }

    func getRequest(_ set: String, key: [UInt8]) -> NFTRequest {
        let table = name
        return NFT.getElement(name, set, key: key, what: "nft get element inet \(table) \(set)")
    }

    /// The forward `answers` hold at `index`: none when the element (or the map, or the table) is
    /// not there.
    static func found(_ answers: NFTSocket.Answers, at index: Int, family: IPFamily, anyAddress: Bool) throws(NetlinkError) -> [Held] {
        let errno = answers.errors[index]
        if errno == ENOENT { return [] }
        if errno != 0 { throw NetlinkError("nft get element inet ... \(map(family, anyAddress: anyAddress))", errno: errno) }
        return held(answers.replies[index], family: family, anyAddress: anyAddress)
    }

    /// The forwards, with their owners, in a map's GETSETELEM replies.
    static func held(_ replies: [NFTReply], family: IPFamily, anyAddress: Bool) -> [Held] {
        NFT.parseElements(replies).compactMap { element in
            forward(element, family: family, anyAddress: anyAddress).map { Held(forward: $0, owner: element.comment) }
        }
    }

    /// The forwards with a hostIP of `family`, read once per operation.
    func addressForwards(_ family: IPFamily, _ addressMaps: inout AddressMaps) throws(NetlinkError) -> [Held] {
        switch family {
        case .v4:
            if addressMaps.v4 == nil { addressMaps.v4 = try elements(of: Self.map(.v4, anyAddress: false), family: .v4, lookingUp: nil) }
            return addressMaps.v4 ?? []
        case .v6:
            if addressMaps.v6 == nil { addressMaps.v6 = try elements(of: Self.map(.v6, anyAddress: false), family: .v6, lookingUp: nil) }
            return addressMaps.v6 ?? []
        }
    }

    /// The use count each of podwire's chains has when the structure is in place: its rules,
    /// and for `hostports` the two jumps into it. ADD reads the counts with its other gets, in
    /// the same round trip: a chain missing, or a rule removed or added by hand, makes it create
    /// the structure again (the creation flushes each chain first). A rule replaced by hand is
    /// left to CHECK, which compares every expression (`structureProblems`).
    static let expectedUse: [UInt32] = [4 + 2, 1, 1, 2, 3]

    static let chains = [dnatChain, preroutingChain, outputChain, postroutingChain, inputChain]

    /// The table's rules, or nil without the table.
    func tableRules() throws(NetlinkError) -> [NFTReply]? {
        do {
            return try socket().query(NFT.dumpTableRules(name))
        } catch where error.isNotFound {
            return nil
        }
    }

    /// What CHECK says is wrong with the chains: each chain's rules compared with what podwire
    /// makes, expression for expression.
    func structureProblems() throws(NetlinkError) -> [String] {
        guard let replies = try tableRules() else { return ["nftables table inet \(name) is missing"] }
        var problems: [String] = []
        for (chain, rules) in Self.chainRules() {
            let dumped = replies.filter { NFT.ruleChain($0) == chain }
            guard dumped.count == rules.count, zip(dumped, rules).allSatisfy({ NFT.rule($0, matches: $1.expressions) }) else {
                problems.append("chain \(chain) of table inet \(name) does not hold podwire's \(rules.count) hostPort rule(s)")
                continue
            }
        }
        return problems
    }

    /// A node port as a mapping claims it: the map it goes in and its key.
    struct NodePort {
        var family: IPFamily
        var hostAddress: IPAddress?
        var proto: PortMapping.TransportProtocol
        var port: UInt16

        init(_ forward: HostPortForward) {
            self.init(family: forward.family, hostAddress: forward.hostAddress, proto: forward.proto, port: forward.hostPort)
        }

        init(family: IPFamily, hostAddress: IPAddress?, proto: PortMapping.TransportProtocol, port: UInt16) {
            self.family = family
            self.hostAddress = hostAddress
            self.proto = proto
            self.port = port
        }

        // The bytes of `NFT.concatenatedValue([.proto, .port])` and `[.address, .proto, .port]`,
        // written out: an array of the enum costs the runtime a metadata instantiation per ADD.
        var anyKey: [UInt8] { [proto.number, 0, 0, 0, UInt8(port >> 8), UInt8(port & 0xff), 0, 0] }
        func addressKey(_ address: IPAddress) -> [UInt8] { address.bytes + anyKey }
    }

    /// The forwards with a hostIP of each family, read once per operation: asking for a port on
    /// every address must look at all of them, and the map holds only those (usually none).
    struct AddressMaps {
        var v4: [Held]?
        var v6: [Held]?
    }

    /// Every forward in the maps of the port's family that claims the same node port: the same
    /// protocol and port, on the same address or with either on every address.
    func holders(of port: NodePort, _ addressMaps: inout AddressMaps) throws(NetlinkError) -> [Held] {
        var found = try elements(of: Self.map(port.family, anyAddress: true), family: port.family, lookingUp: port.anyKey)
        let addressMap = Self.map(port.family, anyAddress: false)
        if let hostAddress = port.hostAddress {
            found += try elements(of: addressMap, family: port.family, lookingUp: port.addressKey(hostAddress))
        } else {
            found += try addressForwards(port.family, &addressMaps)
                .filter { $0.forward.proto == port.proto && $0.forward.hostPort == port.port }
        }
        return found
    }

    /// The elements of one map, or the one with `key`; none when the map does not exist.
    func elements(of map: String, family: IPFamily, lookingUp key: [UInt8]?) throws(NetlinkError) -> [Held] {
        let table = name
        let request = key.map { NFT.getElement(name, map, key: $0, what: "nft get element inet \(table) \(map) { ... }") }
            ?? NFT.dumpMap(name, map)
        let replies: [NFTReply]
        do {
            replies = try socket().query(request)
        } catch where error.isNotFound {
            return []
        }
        return Self.held(replies, family: family, anyAddress: map.hasSuffix("any"))
    }

    /// The comment of a SNAT pair's element: nil when there is none, .some(nil) when uncommented.
    func snatOwner(_ pair: SNATPair) throws(NetlinkError) -> String?? {
        let set = Self.snatSet(pair.source.family)
        let table = name
        let request = NFT.getElement(name, set, key: Self.snatKey(pair), what: "nft get element inet \(table) \(set) { \(pair.source) . \(pair.destination) }")
        do {
            guard let element = NFT.parseElements(try socket().query(request)).first else { return nil }
            return .some(element.comment)
        } catch where error.isNotFound {
            return nil
        }
    }

    // MARK: DEL and GC

    /// Removes `owner`'s forwards and SNAT pairs. `podAddresses` are the attachment's addresses
    /// where known, `mappings` the runtime's portMappings (DEL carries ADD's): the SNAT pairs
    /// tell cheaply whether the attachment has hostPorts at all, and its forwards are looked up
    /// by the mappings' keys, or found by owner when the runtime named none.
    /// Returns the forwards removed (their conntrack entries are the caller's).
    public func remove(owner: String, podAddresses: [IPAddress], mappings: [PortMapping]) throws(NetlinkError) -> [HostPortForward] {
        do {
            return try removeOnce(owner: owner, podAddresses: podAddresses, mappings: mappings)
        } catch where error.isNotFound {
            // An element went between reading and deleting (a concurrent DEL or GC): read again.
            return try removeOnce(owner: owner, podAddresses: podAddresses, mappings: mappings)
        }
    }

    func removeOnce(owner: String, podAddresses: [IPAddress], mappings: [PortMapping]) throws(NetlinkError) -> [HostPortForward] {
        let owner = comment(owner)
        var hadHostPorts: [IPAddress] = []
        var requests: [NFTRequest] = []
        for pod in podAddresses {
            // The hairpin pair first: a pod without it has no hostPorts, and costs one lookup.
            for pair in SNATPair.pairs(of: pod) {
                guard case .some(let found) = try snatOwner(pair), found == owner else {
                    if pair.source == pod { break } else { continue }
                }
                if !hadHostPorts.contains(pod) { hadHostPorts.append(pod) }
                requests.append(snatRequest(delete: true, pair, owner: nil))
            }
        }
        // Known addresses without SNAT pairs: no hostPorts. Unknown ones: look for forwards.
        guard !hadHostPorts.isEmpty || podAddresses.isEmpty else { return [] }
        var held: [Held] = []
        var addressMaps = AddressMaps()
        for mapping in mappings {
            for family in Self.families where mapping.hostAddress.covers(family) {
                var hostAddress: IPAddress?
                if case .address(let address) = mapping.hostAddress { hostAddress = address }
                held += try holders(of: NodePort(family: family, hostAddress: hostAddress, proto: mapping.proto, port: mapping.hostPort),
                                    &addressMaps).filter { $0.owner == owner }
            }
        }
        if held.isEmpty {
            held = try allForwards().filter { $0.owner == owner }
        }
        var seen: [HostPortForward] = []
        for entry in held where !seen.contains(entry.forward) {
            seen.append(entry.forward)
            requests.append(deletion(entry.forward))
            if !hadHostPorts.contains(entry.forward.pod) { hadHostPorts.append(entry.forward.pod) }
        }
        if podAddresses.isEmpty {
            for pod in hadHostPorts {
                for pair in SNATPair.pairs(of: pod) {
                    guard case .some(let found) = try snatOwner(pair), found == owner else { continue }
                    requests.append(snatRequest(delete: true, pair, owner: nil))
                }
            }
        }
        if !requests.isEmpty { try socket().commit(requests) }
        return seen
    }

    /// Every forward in the four maps; empty without the table.
    public func allForwards() throws(NetlinkError) -> [Held] {
        var result: [Held] = []
        for family in Self.families {
            for anyAddress in [false, true] {
                result += try elements(of: Self.map(family, anyAddress: anyAddress), family: family, lookingUp: nil)
            }
        }
        return result
    }

    /// Every SNAT pair with its owner.
    public func allSNATPairs() throws(NetlinkError) -> [(pair: SNATPair, owner: String?)] {
        var result: [(pair: SNATPair, owner: String?)] = []
        for family in Self.families {
            let replies: [NFTReply]
            do {
                replies = try socket().query(NFT.dumpElements(name, Self.snatSet(family)))
            } catch where error.isNotFound {
                continue
            }
            for element in NFT.parseElements(replies) {
                guard let pair = Self.snatPair(element.key, family: family) else { continue }
                result.append((pair, element.comment))
            }
        }
        return result
    }

    /// GC: removes every forward and SNAT pair whose owner `shouldRemove` picks, in transactions
    /// of bounded size. Returns the forwards removed whose pod address no kept forward goes to.
    public func removeAll(where shouldRemove: (String?) -> Bool) throws(NetlinkError) -> [HostPortForward] {
        var requests: [NFTRequest] = []
        var removed: [HostPortForward] = []
        var kept: [IPAddress] = []
        for held in try allForwards() {
            guard shouldRemove(held.owner) else {
                kept.append(held.forward.pod)
                continue
            }
            requests.append(deletion(held.forward))
            removed.append(held.forward)
        }
        for (pair, owner) in try allSNATPairs() where shouldRemove(owner) {
            requests.append(snatRequest(delete: true, pair, owner: nil))
        }
        var remaining = requests[...]
        while !remaining.isEmpty {
            try socket().commit(Array(remaining.prefix(256)))
            remaining = remaining.dropFirst(256)
        }
        // An address a kept forward goes to is a live pod's now: its flows stay.
        return removed.filter { !kept.contains($0.pod) }
    }

    /// Removes these forwards and SNAT pairs, whoever holds them (an operator's repair of
    /// elements no attachment accounts for), in transactions of bounded size. Elements already
    /// gone are skipped, not an error.
    public func remove(forwards: [HostPortForward], pairs: [SNATPair]) throws(NetlinkError) {
        let present = try allForwards().map(\.forward)
        let presentPairs = try allSNATPairs().map(\.pair)
        var requests = forwards.filter { present.contains($0) }.map(deletion)
        requests += pairs.filter { presentPairs.contains($0) }.map { snatRequest(delete: true, $0, owner: nil) }
        var remaining = requests[...]
        while !remaining.isEmpty {
            try socket().commit(Array(remaining.prefix(256)))
            remaining = remaining.dropFirst(256)
        }
    }

    // MARK: CHECK

    /// What is missing for `plan` to be in place, each named; empty when nothing is.
    public func problems(for plan: HostPortPlan) throws(NetlinkError) -> [String] {
        var problems = try structureProblems()
        var addressMaps = AddressMaps()
        for forward in plan.forwards {
            let held = try holders(of: NodePort(forward), &addressMaps)
            if held.contains(where: { $0.forward == forward && $0.owner == comment(plan.owner) }) { continue }
            let map = Self.map(forward.family, anyAddress: forward.hostAddress == nil)
            if let other = held.first {
                problems.append("hostPort \(forward) is missing from map \(map) of table inet \(name): it holds \(other.forward) for \(other.owner ?? "nobody named")")
            } else {
                problems.append("hostPort \(forward) is missing from map \(map) of table inet \(name)")
            }
        }
        for pair in plan.snat {
            guard case .some(let owner) = try snatOwner(pair), owner == comment(plan.owner) else {
                problems.append("\(pair.source) . \(pair.destination) is missing from set \(Self.snatSet(pair.source.family)) of table inet \(name)")
                continue
            }
        }
        return problems
    }

    // MARK: The structure

    /// The table, the maps and sets, the chains flushed and their rules: what the first ADD with
    /// hostPorts sends. Flushing before adding leaves each rule once when ADDs race to create
    /// the structure (nf_tables serializes transactions); the maps' elements are untouched.
    /// The structure, its seen sets young for `youth` milliseconds (see `youngKey`).
    static func creation(_ name: String, youth: UInt64) -> [NFTRequest] {
        var requests = [NFT.newTable(name)]
        var id: UInt32 = 0
        for family in families {
            let address: NFT.ConcatField = family == .v4 ? .ipv4Address : .ipv6Address
            id += 1
            requests.append(NFT.newMap(name, map(family, anyAddress: false), key: [address, .inetProto, .inetService],
                                       data: [address, .inetService], id: id))
            id += 1
            requests.append(NFT.newMap(name, map(family, anyAddress: true), key: [.inetProto, .inetService],
                                       data: [address, .inetService], id: id))
        }
        for family in families {
            let address: NFT.ConcatField = family == .v4 ? .ipv4Address : .ipv6Address
            id += 1
            requests.append(NFT.newSet(name, snatSet(family), key: [address, address], id: id))
        }
        for family in families {
            id += 1
            requests.append(NFT.newDynamicServiceSet(name, seenSet(family), id: id))
        }
        for family in families {
            let set = seenSet(family)
            requests.append(NFT.addElements(name, set, [NFT.Element(key: youngKey, timeoutMilliseconds: youth)],
                                            what: "nft add element inet \(name) \(set) { 0 timeout \(youth / 1000)s }"))
        }
        requests.append(NFT.newChain(name, dnatChain))
        requests.append(NFT.newChain(name, preroutingChain, type: "nat", hook: .prerouting, priority: NFT.dstnatPriority,
                                     description: "type nat hook prerouting priority dstnat"))
        requests.append(NFT.newChain(name, outputChain, type: "nat", hook: .output, priority: NFT.dstnatPriority,
                                     description: "type nat hook output priority -100"))
        requests.append(NFT.newChain(name, postroutingChain, type: "nat", hook: .postrouting, priority: NFT.srcnatPriority,
                                     description: "type nat hook postrouting priority srcnat"))
        requests.append(NFT.newChain(name, inputChain, type: "filter", hook: .input, priority: 0,
                                     description: "type filter hook input priority filter"))
        for (chain, rules) in chainRules() {
            requests.append(NFT.flushChain(name, chain))
            for rule in rules { requests.append(NFT.newRule(name, chain, rule.expressions, text: rule.text, comment: rule.comment)) }
        }
        return requests
    }

    struct Rule {
        var expressions: [NFTExpression]
        var text: String
        var comment: String
    }

    /// Each chain's rules' comments, in order: each names its rule and the structure's version.
    static let chainComments: [(chain: String, comments: [String])] = [
        (dnatChain, ["podwire v1: dnat hp4", "podwire v1: dnat hp4any", "podwire v1: dnat hp6", "podwire v1: dnat hp6any"]),
        (preroutingChain, ["podwire v1: hostPorts of local addresses"]),
        (outputChain, ["podwire v1: hostPorts of local addresses"]),
        (postroutingChain, ["podwire v1: hairpin and localhost snat4", "podwire v1: hairpin snat6"]),
        (inputChain, ["podwire v1: loopback guard", "podwire v2: udp ports seen4", "podwire v2: udp ports seen6"]),
    ]

    /// Each chain's rules, in order.
    static func chainRules() -> [(chain: String, rules: [Rule])] {
        var dnat: [Rule] = []
        for family in families {
            let ip = family == .v4 ? "ip" : "ip6"
            for anyAddress in [false, true] {
                var expressions = anyAddress ? [] : NFT.matchFamily(family)
                expressions += NFT.concatenation((anyAddress ? [] : [.destinationAddress(family)]) + [.l4proto, .destinationPort])
                expressions += [NFT.mapLookup(map(family, anyAddress: anyAddress)), NFT.dnatFromMap(family)]
                dnat.append(Rule(expressions: expressions,
                                 text: "dnat \(ip) to \(anyAddress ? "" : "\(ip) daddr . ")meta l4proto . th dport map @\(map(family, anyAddress: anyAddress))",
                                 comment: ""))
            }
        }
        let local = Rule(expressions: NFT.fibDestinationIsLocal() + [NFT.jump(dnatChain)], text: "fib daddr type local jump \(dnatChain)",
                         comment: "")
        let snat = families.map { family in
            let ip = family == .v4 ? "ip" : "ip6"
            return Rule(expressions: NFT.matchFamily(family) + NFT.concatenation([.sourceAddress(family), .destinationAddress(family)])
                            + [NFT.lookup(snatSet(family), inverted: false), NFT.masquerade()],
                        text: "\(ip) saddr . \(ip) daddr @\(snatSet(family)) masquerade", comment: "")
        }
        let guardRule = Rule(expressions: NFT.inputInterfaceNameIsNot("lo") + NFT.matchFamily(.v4)
                                 + [NFT.networkHeader(offset: 16, length: 1), NFT.compare(equal: true, [127])]
                                 + NFT.connectionIsNeitherEstablishedNorRelated() + [NFT.drop()],
                             text: "iifname != \"lo\" ip daddr 127.0.0.0/8 ct state ! established,related drop", comment: "")
        let seen = families.map { family in
            Rule(expressions: NFT.matchFamily(family) + NFT.concatenation([.l4proto]) + [NFT.compare(equal: true, [UInt8(IPPROTO_UDP)])]
                            + NFT.connectionIsNew() + NFT.concatenation([.destinationPort]) + [NFT.addToSet(seenSet(family))],
                 text: "meta nfproto \(family == .v4 ? "ipv4" : "ipv6") meta l4proto udp ct state new add @\(seenSet(family)) { udp dport }",
                 comment: "")
        }
        let chains = [(dnatChain, dnat), (preroutingChain, [local]), (outputChain, [local]), (postroutingChain, snat),
                      (inputChain, [guardRule] + seen)]
        // Each rule with its comment, from the one list ADD checks.
        return zip(chains, chainComments).map { chain, comments in
            (chain.0, zip(chain.1, comments.comments).map { rule, comment in
                Rule(expressions: rule.expressions, text: rule.text, comment: comment)
            })
        }
    }

    // MARK: Elements

    /// nft prints comments of up to 128 bytes (NUL included); a longer owner goes uncommented.
    func comment(_ owner: String) -> String? {
        owner.utf8.count <= MasqueradeTable.maximumCommentLength ? owner : nil
    }

    static func key(_ forward: HostPortForward) -> [UInt8] {
        let port = NodePort(forward)
        return forward.hostAddress.map(port.addressKey) ?? port.anyKey
    }

    /// `NFT.concatenatedValue([.address(pod), .port(podPort)])`, written out as `NodePort`'s keys are.
    static func data(_ forward: HostPortForward) -> [UInt8] {
        forward.pod.bytes + [UInt8(forward.podPort >> 8), UInt8(forward.podPort & 0xff), 0, 0]
    }

    /// `NFT.concatenatedValue([.address(source), .address(destination)])`.
    static func snatKey(_ pair: SNATPair) -> [UInt8] {
        pair.source.bytes + pair.destination.bytes
    }

    /// A map element read back as a forward; nil for bytes not of the map's shape.
    static func forward(_ element: NFT.Element, family: IPFamily, anyAddress: Bool) -> HostPortForward? {
        let width = family == .v4 ? 4 : 16
        let key = element.key
        guard let data = element.data, data.count == width + 4 else { return nil }
        var hostAddress: IPAddress?
        var offset = 0
        if !anyAddress {
            guard key.count == width + 8 else { return nil }
            hostAddress = address(key[0..<width], family: family)
            offset = width
        } else {
            guard key.count == 8 else { return nil }
        }
        guard let proto = PortMapping.TransportProtocol(number: key[offset]),
              let pod = address(data[0..<width], family: family) else { return nil }
        let hostPort = UInt16(key[offset + 4]) << 8 | UInt16(key[offset + 5])
        let podPort = UInt16(data[width]) << 8 | UInt16(data[width + 1])
        return HostPortForward(hostAddress: hostAddress, proto: proto, hostPort: hostPort, pod: pod, podPort: podPort)
    }

    static func snatPair(_ key: [UInt8], family: IPFamily) -> SNATPair? {
        let width = family == .v4 ? 4 : 16
        guard key.count == 2 * width, let source = address(key[0..<width], family: family),
              let destination = address(key[width...], family: family) else { return nil }
        return SNATPair(source: source, destination: destination)
    }

    static func address(_ bytes: ArraySlice<UInt8>, family: IPFamily) -> IPAddress? {
        switch (family, bytes.count) {
        case (.v4, 4): .v4(IPv4Address(bytes: bytes))
        case (.v6, 16): .v6(IPv6Address(bytes: bytes))
        default: nil
        }
    }

    func addition(_ forward: HostPortForward, owner: String) -> NFTRequest {
        let map = Self.map(forward.family, anyAddress: forward.hostAddress == nil)
        let table = name
        return NFT.addElements(name, map, [NFT.Element(key: Self.key(forward), data: Self.data(forward), comment: comment(owner))],
                               what: "nft add element inet \(table) \(map) { \(forward) }")
    }

    func deletion(_ forward: HostPortForward) -> NFTRequest {
        let map = Self.map(forward.family, anyAddress: forward.hostAddress == nil)
        let table = name
        return NFT.deleteElements(name, map, [NFT.Element(key: Self.key(forward))],
                                  what: "nft delete element inet \(table) \(map) { \(forward) }")
    }

    func snatRequest(delete: Bool, _ pair: SNATPair, owner: String?) -> NFTRequest {
        let set = Self.snatSet(pair.source.family), name = name
        let text: @Sendable () -> String = { "nft \(delete ? "delete" : "add") element inet \(name) \(set) { \(pair.source) . \(pair.destination) }" }
        let element = NFT.Element(key: Self.snatKey(pair), comment: owner.flatMap(comment))
        return delete ? NFT.deleteElements(name, set, [element], what: text())
                      : NFT.addElements(name, set, [element], what: text())
    }
}
