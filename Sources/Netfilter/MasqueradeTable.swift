import NetAddress
import Netlink

/// The masquerade of one CNI network, kept by the kernel as one nftables table:
///
///     table inet podwire-<network> {
///         set masq4   { type ipv4_addr; }                  # pod addresses, each commented "<containerID>/<ifname>"
///         set masq6   { type ipv6_addr; }
///         set exempt4 { type ipv4_addr; flags interval; }  # destinations never masqueraded
///         set exempt6 { type ipv6_addr; flags interval; }
///         chain postrouting {
///             type nat hook postrouting priority srcnat; policy accept;
///             ip saddr @masq4 ip daddr != @exempt4 ip daddr != 224.0.0.0/4 masquerade
///             ip6 saddr @masq6 ip6 daddr != @exempt6 ip6 daddr != ff00::/8 masquerade
///         }
///     }
///
/// Two rules whatever the number of pods, so a pod costs a set element, not a chain and rules
/// as with the reference's iptables; every change is one nf_tables transaction, never an exec.
///
/// What a change removes (a rule, an element) the kernel frees after an RCU grace period, and
/// closing a netfilter netlink socket waits for that grace period. So ADD reads first and, once
/// the table is in place, only adds; and the socket lives as long as this object, so DEL can
/// keep it open while the veth's own deletion waits out the same grace period.
/// All methods work in the network namespace of the thread that first uses the object.
public final class MasqueradeTable {
    public let network: String
    private var openSocket: NFTSocket?

    public init(network: String) { self.network = network }

    public var name: String { "podwire-\(network)" }
    public static let chain = "postrouting"

    /// The kernel's limit on a table name.
    public static let maximumNameLength = NFT.maximumNameLength
    /// nft prints comments of up to 128 bytes (NUL included); a longer owner goes uncommented.
    public static let maximumCommentLength = 127

    public struct Member: Hashable, Sendable {
        public var address: IPAddress
        /// The element's comment: "<containerID>/<ifname>" for podwire's elements.
        public var owner: String?

        public init(address: IPAddress, owner: String?) {
            self.address = address
            self.owner = owner
        }
    }

    static func masqSet(_ family: IPFamily) -> String { family == .v4 ? "masq4" : "masq6" }
    static func exemptSet(_ family: IPFamily) -> String { family == .v4 ? "exempt4" : "exempt6" }
    static let families: [IPFamily] = [.v4, .v6]

    func socket() throws(NetlinkError) -> NFTSocket {
        if let openSocket { return openSocket }
        let socket = try NFTSocket()
        openSocket = socket
        return socket
    }

    // MARK: ADD

    /// Makes the table hold its sets and exactly its two rules, the exempt sets exactly `exempt`,
    /// and puts `addresses` into the masq sets commented with `owner`, in one transaction.
    ///
    /// The rules, the exempt sets and the pod's elements are read first, and only what differs is
    /// written: on a node where the table is in place an ADD sends one element. The first ADD
    /// creates everything; its transaction flushes the chain before adding the rules, so ADDs
    /// racing to create the table leave the rules once (nf_tables serializes transactions).
    public func install(exempt: [IPNetwork], addresses: [IPAddress], owner: String) throws(NetlinkError) {
        let socket = try self.socket()
        let comment = owner.utf8.count <= Self.maximumCommentLength ? owner : nil
        var requests: [NFTRequest] = []

        let rules: [NFTReply]?
        do {
            rules = try socket.query(NFT.dumpRules(name, Self.chain))
        } catch where error.isNotFound {
            rules = nil
        }
        let inPlace = rules.map { rules in
            rules.count == Self.families.count
                && zip(rules, Self.families).allSatisfy { NFT.rule($0, matches: Self.ruleExpressions($1)) }
        } ?? false
        if !inPlace { requests += Self.creation(name) }

        for family in Self.families {
            let set = Self.exemptSet(family)
            let networks = exempt.filter { $0.family == family }
            let wanted = Self.intervalElements(networks, family: family)
            if inPlace {
                let present = NFT.parseElements(try socket.query(NFT.dumpElements(name, set)))
                if Self.sameIntervals(present, wanted, family: family) { continue }
            }
            // Replaced, not added to: interval sets refuse overlapping elements, and the config
            // (noMasqueradeCIDRs, ranges) may have changed since the last ADD.
            requests.append(NFT.flushSet(name, set))
            if !wanted.isEmpty {
                let table = name
                requests.append(NFT.addElements(name, set, wanted,
                                             what: "nft add element inet \(table) \(set) { \(networks.map(\.masked.description).joined(separator: ", ")) }"))
            }
        }

        for address in addresses {
            let set = Self.masqSet(address.family)
            switch element(address) {
            case nil:
                break
            case .some(let existing) where existing == comment:
                continue
            case .some:
                // Left by an earlier holder of the address whose DEL never came: its comment
                // would name the wrong pod to GC. A plain add keeps it, so delete it first.
                let table = name
                requests.append(NFT.deleteElements(name, set, [NFT.Element(key: address.bytes)],
                                             what: Self.elementText("delete", table, set, [address], comment: nil)))
            }
            let table = name
            requests.append(NFT.addElements(name, set, [NFT.Element(key: address.bytes, comment: comment)],
                                         what: Self.elementText("add", table, set, [address], comment: comment)))
        }
        try socket.commit(requests)
    }

    /// The table, its sets, its chain flushed and its two rules: what the first ADD on a node
    /// sends. Flushing before adding leaves the rules once when ADDs race to create the table
    /// (nf_tables serializes transactions).
    static func creation(_ name: String) -> [NFTRequest] {
        var requests = [NFT.newTable(name)]
        for (index, family) in families.enumerated() {
            requests.append(NFT.newSet(name, masqSet(family), family: family, interval: false, id: UInt32(1 + index)))
        }
        for (index, family) in families.enumerated() {
            requests.append(NFT.newSet(name, exemptSet(family), family: family, interval: true, id: UInt32(3 + index)))
        }
        requests.append(NFT.newChain(name, chain, type: "nat", hook: .postrouting, priority: NFT.srcnatPriority,
                                     description: "type nat hook postrouting priority srcnat"))
        requests.append(NFT.flushChain(name, chain))
        for family in families {
            requests.append(NFT.newRule(name, chain, ruleExpressions(family), text: ruleText(family)))
        }
        return requests
    }

    /// The comment of `address`'s element in its masq set: nil when there is no element,
    /// .some(nil) for an element without comment. A set that cannot answer (missing, or not of
    /// podwire's shape) counts as holding nothing: the transaction then says what is wrong.
    func element(_ address: IPAddress) -> String?? {
        let set = Self.masqSet(address.family)
        let table = name
        let request = NFT.getElement(name, set, key: address.bytes, what: "nft get element inet \(table) \(set) { \(address) }")
        guard let replies = try? socket().query(request),
              let found = NFT.parseElements(replies).first(where: { $0.key == address.bytes }) else { return nil }
        return .some(found.comment)
    }

    /// Whether an interval set's elements, as dumped, are `wanted`: compared as (key, end) pairs,
    /// without the leading end element at 0 that nft sends and some kernels do not keep.
    static func sameIntervals(_ present: [NFT.Element], _ wanted: [NFT.Element], family: IPFamily) -> Bool {
        let zero = [UInt8](repeating: 0, count: family.bitWidth / 8)
        func normalized(_ elements: [NFT.Element]) -> Set<[UInt8]> {
            Set(elements.filter { !($0.intervalEnd && $0.key == zero) }.map { $0.key + [$0.intervalEnd ? 1 : 0] })
        }
        return normalized(present) == normalized(wanted)
    }

    // MARK: DEL and GC

    /// Removes `addresses` from the masq sets. Idempotent: an address not in its set is fine, and
    /// false is returned when the table does not exist (nothing to remove).
    @discardableResult
    public func remove(_ addresses: [IPAddress]) throws(NetlinkError) -> Bool {
        // Asked first: a transaction the kernel refuses costs an RCU grace period as it is
        // rolled back, and a network without ipMasq has no masq sets (nor, without hostPorts,
        // a table). The two sets are made in one transaction: one answers for both.
        do {
            _ = try socket().query(NFT.getSet(name, Self.masqSet(.v4)))
        } catch where error.isNotFound {
            return false
        }
        var requests: [NFTRequest] = []
        for family in Self.families {
            let keys = addresses.filter { $0.family == family }
            if !keys.isEmpty { requests += removal(keys, family: family) }
        }
        return try commitUnlessTableMissing(requests)
    }

    /// The masq sets' elements; nil when the table does not exist.
    public func members() throws(NetlinkError) -> [Member]? {
        let socket = try self.socket()
        var result: [Member] = []
        for family in Self.families {
            let replies: [NFTReply]
            do {
                replies = try socket.query(NFT.dumpElements(name, Self.masqSet(family)))
            } catch where error.isNotFound {
                if try tableExists(socket) { continue }
                return nil
            }
            for element in NFT.parseElements(replies) {
                guard let address = Self.address(element.key, family: family) else { continue }
                result.append(Member(address: address, owner: element.comment))
            }
        }
        return result
    }

    /// Removes and adds masq set elements (`adding` ones not in their set), in transactions of a
    /// bounded size (a netlink message must fit the socket's send buffer). Returns false when
    /// the table does not exist.
    @discardableResult
    public func update(removing: [IPAddress], adding: [Member]) throws(NetlinkError) -> Bool {
        let chunk = 256
        var removals = removing[...], additions = adding[...]
        repeat {
            var requests: [NFTRequest] = []
            for family in Self.families {
                let keys = removals.prefix(chunk).filter { $0.family == family }
                if !keys.isEmpty { requests += removal(keys, family: family) }
                for member in additions.prefix(chunk) where member.address.family == family {
                    let comment = member.owner.flatMap { $0.utf8.count <= Self.maximumCommentLength ? $0 : nil }
                    let table = name
                    requests.append(NFT.addElements(name, Self.masqSet(family),
                                                 [NFT.Element(key: member.address.bytes, comment: comment)],
                                                 what: Self.elementText("add", table, Self.masqSet(family), [member.address], comment: comment)))
                }
            }
            removals = removals.dropFirst(chunk)
            additions = additions.dropFirst(chunk)
            guard try commitUnlessTableMissing(requests) else { return false }
        } while !removals.isEmpty || !additions.isEmpty
        return true
    }

    /// Add-then-delete: the delete of an element that is not there would fail the transaction
    /// with ENOENT, and nf_tables has no "delete if present" before Linux 6.3.
    func removal(_ keys: [IPAddress], family: IPFamily) -> [NFTRequest] {
        let set = Self.masqSet(family)
        let elements = keys.map { NFT.Element(key: $0.bytes) }
        let table = name
        return [NFT.addElements(name, set, elements, what: Self.elementText("add", table, set, keys, comment: nil)),
                NFT.deleteElements(name, set, elements, what: Self.elementText("delete", table, set, keys, comment: nil))]
    }

    /// Commits; a missing table (or set) makes it false. Adding an element never fails with
    /// ENOENT otherwise, so ENOENT can only mean the table or set is not there.
    func commitUnlessTableMissing(_ requests: [NFTRequest]) throws(NetlinkError) -> Bool {
        guard !requests.isEmpty else { return true }
        do {
            try socket().commit(requests)
            return true
        } catch where error.isNotFound {
            return false
        }
    }

    func tableExists(_ socket: NFTSocket) throws(NetlinkError) -> Bool {
        do {
            _ = try socket.query(NFT.getTable(name))
            return true
        } catch where error.isNotFound {
            return false
        }
    }

    // MARK: CHECK

    /// What is missing for `addresses` of `owner` to be masqueraded, each named; empty when
    /// nothing is.
    public func problems(for addresses: [IPAddress], owner: String) throws(NetlinkError) -> [String] {
        let socket = try self.socket()
        guard try tableExists(socket) else { return ["nftables table inet \(name) is missing"] }
        var problems: [String] = []
        do {
            let chain = try socket.query(NFT.getChain(name, Self.chain))
            if !NFT.chain(chain.first, isBase: "nat", hook: .postrouting, priority: NFT.srcnatPriority) {
                problems.append("chain \(Self.chain) of table inet \(name) is not a nat chain on hook postrouting at priority srcnat")
            }
            let rules = try socket.query(NFT.dumpRules(name, Self.chain))
            for family in Self.families where !rules.contains(where: { NFT.rule($0, matches: Self.ruleExpressions(family)) }) {
                problems.append("rule \"\(Self.ruleText(family))\" is missing from chain \(Self.chain) of table inet \(name)")
            }
        } catch where error.isNotFound {
            problems.append("chain \(Self.chain) is missing from table inet \(name)")
        }
        for address in addresses {
            let set = Self.masqSet(address.family)
            switch element(address) {
            case nil:
                problems.append("pod address \(address) is missing from set \(set) of table inet \(name)")
            case .some(let comment?) where comment != owner && owner.utf8.count <= Self.maximumCommentLength:
                problems.append("pod address \(address) in set \(set) of table inet \(name) is commented as \"\(comment)\", not \"\(owner)\"")
            case .some:
                break
            }
        }
        return problems
    }

    // MARK: Rules and elements

    static func ruleText(_ family: IPFamily) -> String {
        family == .v4 ? "ip saddr @masq4 ip daddr != @exempt4 ip daddr != 224.0.0.0/4 masquerade"
                      : "ip6 saddr @masq6 ip6 daddr != @exempt6 ip6 daddr != ff00::/8 masquerade"
    }

    /// The expressions nft compiles `ruleText(family)` to in an inet table (the nfproto check is
    /// the dependency nft adds for `ip`/`ip6` matches).
    static func ruleExpressions(_ family: IPFamily) -> [NFTExpression] {
        switch family {
        case .v4:
            NFT.matchFamily(.v4) + [
             NFT.networkHeader(offset: 12, length: 4), NFT.lookup("masq4", inverted: false),
             NFT.networkHeader(offset: 16, length: 4), NFT.lookup("exempt4", inverted: true),
             NFT.networkHeader(offset: 16, length: 4), NFT.bitwise(mask: [0xf0, 0, 0, 0]), NFT.compare(equal: false, [0xe0, 0, 0, 0]),
             NFT.masquerade()]
        case .v6:
            NFT.matchFamily(.v6) + [
             NFT.networkHeader(offset: 8, length: 16), NFT.lookup("masq6", inverted: false),
             NFT.networkHeader(offset: 24, length: 16), NFT.lookup("exempt6", inverted: true),
             NFT.networkHeader(offset: 24, length: 1), NFT.compare(equal: false, [0xff]),
             NFT.masquerade()]
        }
    }

    /// An interval set's elements for `networks`, merged where they nest or touch (the kernel
    /// refuses overlapping intervals): each interval is its first address and, flagged as an
    /// end, the address after its last; like nft, a leading end element at 0 when the first
    /// interval does not start there.
    static func intervalElements(_ networks: [IPNetwork], family: IPFamily) -> [NFT.Element] {
        var merged: [(start: IPAddress, end: IPAddress)] = []
        for network in networks.map(\.masked).sorted(by: { $0.address < $1.address }) {
            let start = network.networkAddress, end = network.lastAddress
            if let last = merged.last, last.end.next.map({ start <= $0 }) ?? true {
                merged[merged.count - 1].end = max(last.end, end)
            } else {
                merged.append((start, end))
            }
        }
        var elements: [NFT.Element] = []
        let zero: IPAddress = family == .v4 ? .v4(IPv4Address(0)) : .v6(IPv6Address(high: 0, low: 0))
        if let first = merged.first, first.start != zero {
            elements.append(NFT.Element(key: zero.bytes, intervalEnd: true))
        }
        for interval in merged {
            elements.append(NFT.Element(key: interval.start.bytes))
            if let after = interval.end.next { elements.append(NFT.Element(key: after.bytes, intervalEnd: true)) }
        }
        return elements
    }

    static func address(_ key: [UInt8], family: IPFamily) -> IPAddress? {
        switch (family, key.count) {
        case (.v4, 4): .v4(IPv4Address(bytes: key))
        case (.v6, 16): .v6(IPv6Address(bytes: key))
        default: nil
        }
    }

    static func elementText(_ verb: String, _ table: String, _ set: String, _ keys: [IPAddress], comment: String?) -> String {
        let elements = keys.map { "\($0)" + (comment.map { " comment \"\($0)\"" } ?? "") }.joined(separator: ", ")
        return "nft \(verb) element inet \(table) \(set) { \(elements) }"
    }
}
