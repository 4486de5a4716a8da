internal import CNFTables
import NetAddress

// The verbs hostPorts needs on top of NFTMessages.swift: maps and sets with concatenated keys,
// regular chains, jumps, fib, transport-header loads and DNAT from a map's data. As there, each
// builds what the `nft` command in its comment sends (nftables 1.0.6, checked byte for byte in
// HostPortWireTests), so `nft list` prints the result back as that syntax.

extension NFT {
    /// NF_IP_PRI_NAT_DST (linux/netfilter_ipv4.h), the priority nft calls "dstnat".
    package static let dstnatPriority: Int32 = -100

    // MARK: Concatenated types and values

    /// One field of a concatenated key or map data, as nft types it (include/datatype.h).
    package enum ConcatField: Sendable {
        case ipv4Address, ipv6Address, inetProto, inetService

        /// nft's datatype number: ipv4_addr 7, ipv6_addr 8, inet_proto 12, inet_service 13.
        var type: UInt32 {
            switch self {
            case .ipv4Address: 7
            case .ipv6Address: 8
            case .inetProto: 12
            case .inetService: 13
            }
        }

        /// The field's bytes before padding.
        var length: Int {
            switch self {
            case .ipv4Address: 4
            case .ipv6Address: 16
            case .inetProto: 1
            case .inetService: 2
            }
        }

        var name: String {
            switch self {
            case .ipv4Address: "ipv4_addr"
            case .ipv6Address: "ipv6_addr"
            case .inetProto: "inet_proto"
            case .inetService: "inet_service"
            }
        }
    }

    /// The concatenation's type: nft shifts the fields' types in 6 bits at a time
    /// (concat_subtype_add, TYPE_BITS), `ipv4_addr . inet_proto . inet_service` being 0x730d.
    static func concatenatedType(_ fields: [ConcatField]) -> UInt32 {
        fields.reduce(0) { $0 << 6 | $1.type }
    }

    /// The concatenation's length: each field takes whole 4-byte registers.
    static func concatenatedLength(_ fields: [ConcatField]) -> UInt32 {
        UInt32(fields.reduce(0) { $0 + (($1.length + 3) & ~3) })
    }

    static func typeText(_ fields: [ConcatField]) -> String { fields.map(\.name).joined(separator: " . ") }

    /// One field of a concatenated key or data value.
    package enum ConcatValue: Sendable {
        case address(IPAddress)
        /// An IP protocol number (`tcp` 6, `udp` 17).
        case proto(UInt8)
        case port(UInt16)
    }

    /// A concatenated key or data value as nft sends it: each field big-endian, padded with
    /// zeros to 4 bytes (`tcp . 8080` is 06000000 1f900000).
    package static func concatenatedValue(_ values: [ConcatValue]) -> [UInt8] {
        var bytes: [UInt8] = []
        for value in values {
            switch value {
            case .address(let address): bytes += address.bytes
            case .proto(let proto): bytes += [proto]
            case .port(let port): bytes += [UInt8(port >> 8), UInt8(port & 0xff)]
            }
            bytes += [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
        }
        return bytes
    }

    /// nft's userdata for a key (or data) declared with `type a . b`: the expression type
    /// (NFTNL_UDATA_SET_TYPEOF_EXPR, host-endian 13, nft's EXPR_CONCAT) and its empty
    /// NFTNL_UDATA_SET_TYPEOF_DATA, nested in NFTNL_UDATA_SET_KEY_TYPEOF (3) or _DATA_TYPEOF (4).
    static func concatTypeofUserdata(_ type: UInt8) -> [UInt8] {
        [type, 8, 0, 4] + hostBytes(UInt32(13)) + [1, 0]
    }

    // MARK: Maps, sets and chains

    /// `nft add map inet <table> <map> { type <key> : <data>; }`, a hash map whose key and data
    /// are both concatenations (`ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service`).
    package static func newMap(_ table: String, _ map: String, key: [ConcatField], data: [ConcatField], id: UInt32) -> NFTRequest {
        precondition(key.count > 1 && data.count > 1, "newMap builds maps with a concatenated key and data")
        return NFTRequest(
            message: NFT_MSG_NEWSET.rawValue, flags: Int32(NLM_F_CREATE),
            attributes: [
                .string(attr(NFTA_SET_TABLE), table), .string(attr(NFTA_SET_NAME), map),
                .u32(attr(NFTA_SET_FLAGS), UInt32(NFT_SET_MAP.rawValue)),
                .u32(attr(NFTA_SET_KEY_TYPE), concatenatedType(key)), .u32(attr(NFTA_SET_KEY_LEN), concatenatedLength(key)),
                .u32(attr(NFTA_SET_DATA_TYPE), concatenatedType(data)), .u32(attr(NFTA_SET_DATA_LEN), concatenatedLength(data)),
                .u32(attr(NFTA_SET_ID), id),
                // Key and data byte order BYTEORDER_INVALID (0: a concatenation has none), the
                // typeof records, and NFTNL_UDATA_SET_DATA_INTERVAL (6) = 0.
                .bytes(attr(NFTA_SET_USERDATA), [0, 4] + hostBytes(UInt32(0)) + [1, 4] + hostBytes(UInt32(0))
                       + concatTypeofUserdata(3) + concatTypeofUserdata(4) + [6, 4] + hostBytes(UInt32(0))),
            ],
            what: "nft add map inet \(table) \(map) { type \(typeText(key)) : \(typeText(data)); }")
    }

    /// `nft add set inet <table> <set> { type <a> . <b>; }`, a hash set with a concatenated key.
    package static func newSet(_ table: String, _ set: String, key: [ConcatField], id: UInt32) -> NFTRequest {
        precondition(key.count > 1, "newSet(key:) builds sets with a concatenated key")
        return NFTRequest(
            message: NFT_MSG_NEWSET.rawValue, flags: Int32(NLM_F_CREATE),
            attributes: [
                .string(attr(NFTA_SET_TABLE), table), .string(attr(NFTA_SET_NAME), set),
                .u32(attr(NFTA_SET_FLAGS), 0),
                .u32(attr(NFTA_SET_KEY_TYPE), concatenatedType(key)), .u32(attr(NFTA_SET_KEY_LEN), concatenatedLength(key)),
                .u32(attr(NFTA_SET_ID), id),
                .bytes(attr(NFTA_SET_USERDATA), [0, 4] + hostBytes(UInt32(0)) + concatTypeofUserdata(3)),
            ],
            what: "nft add set inet \(table) \(set) { type \(typeText(key)); }")
    }

    /// `nft add chain inet <table> <chain>`: a regular chain, entered only by a jump.
    package static func newChain(_ table: String, _ chain: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_NEWCHAIN.rawValue, flags: Int32(NLM_F_CREATE),
                   attributes: [.string(attr(NFTA_CHAIN_TABLE), table), .string(attr(NFTA_CHAIN_NAME), chain)],
                   what: "nft add chain inet \(table) \(chain)")
    }

    /// `nft list map inet <table> <map>`: its GETSETELEM dump, which `parseElements` reads
    /// (key, data and comment of each element).
    package static func dumpMap(_ table: String, _ map: String) -> NFTRequest {
        var request = dumpElements(table, map)
        request.describe = { "nft list map inet \(table) \(map)" }
        return request
    }

    // MARK: Expressions

    /// nft's number for the 4-byte slot `slot` of a concatenation that starts at register 1:
    /// where a 16-byte register starts, that register (NFT_REG_1 ... NFT_REG_4), else the 32-bit
    /// one (NFT_REG32_00 + slot), as nft's netlink_put_register numbers them. `ip daddr . meta
    /// l4proto . th dport` is reg 1, 9, 10; `ip6 daddr . meta l4proto . th dport` is 1, 2, 13.
    static func register(slot: Int) -> UInt32 {
        slot % 4 == 0 ? register1 + UInt32(slot / 4) : UInt32(NFT_REG32_00.rawValue) + UInt32(slot)
    }

    /// One field of a concatenation loaded into registers.
    package enum Load: Sendable {
        /// `length` bytes of the network header at `offset`.
        case networkHeader(offset: UInt32, length: UInt32)
        /// `length` bytes of the transport header at `offset`.
        case transportHeader(offset: UInt32, length: UInt32)
        /// `meta l4proto` (1 byte).
        case l4proto

        /// `ip saddr` / `ip6 saddr`.
        package static func sourceAddress(_ family: IPFamily) -> Load {
            family == .v4 ? .networkHeader(offset: 12, length: 4) : .networkHeader(offset: 8, length: 16)
        }

        /// `ip daddr` / `ip6 daddr`.
        package static func destinationAddress(_ family: IPFamily) -> Load {
            family == .v4 ? .networkHeader(offset: 16, length: 4) : .networkHeader(offset: 24, length: 16)
        }

        /// `th dport`.
        package static let destinationPort = Load.transportHeader(offset: 2, length: 2)

        var length: Int {
            switch self {
            case .networkHeader(_, let length), .transportHeader(_, let length): Int(length)
            case .l4proto: 1
            }
        }
    }

    /// `a . b . c` on the left of a lookup: each field loaded into the registers nft assigns it,
    /// from register 1 on, each field starting at the next 4-byte slot.
    package static func concatenation(_ loads: [Load]) -> [NFTExpression] {
        var slot = 0
        var expressions: [NFTExpression] = []
        for load in loads {
            let register = register(slot: slot)
            switch load {
            case .networkHeader(let offset, let length):
                expressions.append(payload(UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue), offset: offset, length: length, into: register))
            case .transportHeader(let offset, let length):
                expressions.append(payload(UInt32(NFT_PAYLOAD_TRANSPORT_HEADER.rawValue), offset: offset, length: length, into: register))
            case .l4proto:
                expressions.append(meta(UInt32(NFT_META_L4PROTO.rawValue), into: register))
            }
            slot += (load.length + 3) / 4
        }
        return expressions
    }

    /// A payload load, attributes in networkHeader's (and nft's) order.
    static func payload(_ base: UInt32, offset: UInt32, length: UInt32, into register: UInt32) -> NFTExpression {
        expression("payload", [.u32(attr(NFTA_PAYLOAD_DREG), register), .u32(attr(NFTA_PAYLOAD_BASE), base),
                               .u32(attr(NFTA_PAYLOAD_OFFSET), offset), .u32(attr(NFTA_PAYLOAD_LEN), length)])
    }

    /// `nft add set inet <table> <set> { type inet_service; flags dynamic,timeout; }`: ports the
    /// packet path adds to (with `addToSet`, for ever), and elements added with a timeout.
    /// nft's attributes, in nft's order.
    package static func newDynamicServiceSet(_ table: String, _ set: String, id: UInt32) -> NFTRequest {
        NFTRequest(message: NFT_MSG_NEWSET.rawValue, flags: Int32(NLM_F_CREATE),
                   attributes: [.string(attr(NFTA_SET_TABLE), table), .string(attr(NFTA_SET_NAME), set),
                                .u32(attr(NFTA_SET_FLAGS), UInt32(NFT_SET_EVAL.rawValue | NFT_SET_TIMEOUT.rawValue)),
                                .u32(attr(NFTA_SET_KEY_TYPE), ConcatField.inetService.type),
                                .u32(attr(NFTA_SET_KEY_LEN), UInt32(ConcatField.inetService.length)),
                                .u32(attr(NFTA_SET_ID), id),
                                // NFTNL_UDATA_SET_KEYBYTEORDER = BYTEORDER_BIG_ENDIAN, as nft sends it.
                                .bytes(attr(NFTA_SET_USERDATA), [0, 4] + hostBytes(UInt32(2)))],
                   what: "nft add set inet \(table) \(set) { type inet_service; flags dynamic,timeout; }")
    }

    /// `ct state new`: a packet of a connection nothing has answered yet (its first, and each later
    /// one in the same direction until a reply comes).
    package static func connectionIsNew() -> [NFTExpression] {
        // NF_CT_STATE_BIT(IP_CT_NEW) (linux/netfilter/nf_conntrack_common.h); key before register, as nft sends them.
        let new: UInt32 = 1 << 3
        return [expression("ct", [.u32(attr(NFTA_CT_KEY), UInt32(NFT_CT_STATE.rawValue)), .u32(attr(NFTA_CT_DREG), register1)]),
                bitwise(mask: hostBytes(new)),
                compare(equal: false, hostBytes(UInt32(0)))]
    }

    /// `add @<set> { <register 1> }`: the packet path adds the key to the set (a dynset; the set
    /// must be dynamic). By name, as `lookup` names its set.
    package static func addToSet(_ set: String) -> NFTExpression {
        expression("dynset", [.u32(attr(NFTA_DYNSET_SREG_KEY), register1), .u32(attr(NFTA_DYNSET_OP), UInt32(NFT_DYNSET_OP_ADD.rawValue)),
                              .string(attr(NFTA_DYNSET_SET_NAME), set)])
    }

    /// A meta load, register then key as in matchFamily (nft sends key, then register).
    static func meta(_ key: UInt32, into register: UInt32) -> NFTExpression {
        expression("meta", [.u32(attr(NFTA_META_DREG), register), .u32(attr(NFTA_META_KEY), key)])
    }

    /// `fib daddr type local`: the route type of the destination address (NFT_FIB_RESULT_ADDRTYPE
    /// with NFTA_FIB_F_DADDR) compared with RTN_LOCAL, which the kernel writes in host byte
    /// order (nft_fib_store_result), unlike every other value here.
    package static func fibDestinationIsLocal() -> [NFTExpression] {
        let rtnLocal: UInt32 = 2 // linux/rtnetlink.h
        return [expression("fib", [.u32(attr(NFTA_FIB_FLAGS), UInt32(NFTA_FIB_F_DADDR.rawValue)),
                                   .u32(attr(NFTA_FIB_RESULT), UInt32(NFT_FIB_RESULT_ADDRTYPE.rawValue)),
                                   .u32(attr(NFTA_FIB_DREG), register1)]),
                compare(equal: true, hostBytes(rtnLocal))]
    }

    /// `jump <chain>`: an immediate verdict NFT_JUMP to a chain of the same table.
    package static func jump(_ chain: String) -> NFTExpression {
        expression("immediate", [
            .u32(attr(NFTA_IMMEDIATE_DREG), UInt32(NFT_REG_VERDICT.rawValue)),
            .nest(attr(NFTA_IMMEDIATE_DATA), [
                .nest(attr(NFTA_DATA_VERDICT), [.u32(attr(NFTA_VERDICT_CODE), UInt32(bitPattern: NFT_JUMP.rawValue)),
                                                .string(attr(NFTA_VERDICT_CHAIN), chain)]),
            ]),
        ])
    }

    /// `<concatenation> map @map`: looks the key in register 1 up in `map` and puts the element's
    /// data in registers from 1 on (no match ends the rule).
    package static func mapLookup(_ map: String) -> NFTExpression {
        expression("lookup", [.u32(attr(NFTA_LOOKUP_SREG), register1), .u32(attr(NFTA_LOOKUP_DREG), register1),
                              .string(attr(NFTA_LOOKUP_SET), map)])
    }

    /// `dnat ip to ... map @m` / `dnat ip6 to ... map @m` after `mapLookup`: the address from
    /// the map's data (register 1) and the port after it (the next 4-byte slot: reg 9 after an
    /// IPv4 address, reg 2 after an IPv6 one). nft sends no NFTA_NAT_FLAGS: the kernel sets
    /// NF_NAT_RANGE_MAP_IPS and NF_NAT_RANGE_PROTO_SPECIFIED itself for the registers given.
    package static func dnatFromMap(_ family: IPFamily) -> NFTExpression {
        dnat(family, address: register1, proto: register(slot: family == .v4 ? 1 : 4))
    }

    /// `nat dnat <family> addr_min reg <address> proto_min reg <proto>`.
    static func dnat(_ family: IPFamily, address: UInt32, proto: UInt32?) -> NFTExpression {
        var data: [Attribute] = [.u32(attr(NFTA_NAT_TYPE), UInt32(NFT_NAT_DNAT.rawValue)),
                                 .u32(attr(NFTA_NAT_FAMILY), UInt32(family == .v4 ? NFPROTO_IPV4 : NFPROTO_IPV6)),
                                 .u32(attr(NFTA_NAT_REG_ADDR_MIN), address)]
        if let proto { data.append(.u32(attr(NFTA_NAT_REG_PROTO_MIN), proto)) }
        return expression("nat", data)
    }
}

// MARK: The loopback guard and optimistic transactions

extension NFT {
    /// `iifname != "<name>"`: the interface name compared as nft pads it, to 16 bytes.
    package static func inputInterfaceNameIsNot(_ name: String) -> [NFTExpression] {
        var padded = Array(name.utf8.prefix(15))
        padded += [UInt8](repeating: 0, count: 16 - padded.count)
        return [meta(UInt32(NFT_META_IIFNAME.rawValue), into: register1), compare(equal: false, padded)]
    }

    /// `ct state ! established,related`: the state bits (host-endian, as the kernel stores them)
    /// masked with ESTABLISHED | RELATED and compared with zero.
    package static func connectionIsNeitherEstablishedNorRelated() -> [NFTExpression] {
        // NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED) (linux/netfilter/nf_conntrack_common.h)
        let establishedOrRelated: UInt32 = 1 << 1 | 1 << 2
        // Key before register, in nft's order.
        return [expression("ct", [.u32(attr(NFTA_CT_KEY), UInt32(NFT_CT_STATE.rawValue)), .u32(attr(NFTA_CT_DREG), register1)]),
                bitwise(mask: hostBytes(establishedOrRelated)),
                compare(equal: true, hostBytes(UInt32(0)))]
    }

    /// `drop`: an immediate verdict NF_DROP.
    package static func drop() -> NFTExpression {
        expression("immediate", [
            .u32(attr(NFTA_IMMEDIATE_DREG), UInt32(NFT_REG_VERDICT.rawValue)),
            .nest(attr(NFTA_IMMEDIATE_DATA), [.nest(attr(NFTA_DATA_VERDICT), [.u32(attr(NFTA_VERDICT_CODE), UInt32(NF_DROP))])]),
        ])
    }

    /// `nft list ruleset`'s generation: the number the kernel bumps at every committed
    /// transaction, which `NFTSocket.commit(_:ifGeneration:)` makes a batch conditional on.
    package static func getGeneration() -> NFTRequest {
        NFTRequest(message: NFT_MSG_GETGEN.rawValue, attributes: [], what: "nft list ruleset (its generation)")
    }

    /// The generation in a GETGEN reply.
    package static func generation(_ replies: [NFTReply]) -> UInt32? {
        replies.first?.attributes[attr(NFTA_GEN_ID)]?.u32
    }

    /// `nft list table inet <table>`'s rules: every rule of every chain of the table, each reply
    /// naming its chain (`ruleChain`).
    package static func dumpTableRules(_ table: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_GETRULE.rawValue, flags: Int32(NLM_F_DUMP),
                   attributes: [.string(attr(NFTA_RULE_TABLE), table)],
                   what: "nft list table inet \(table)")
    }

    /// The chain a dumped rule belongs to.
    package static func ruleChain(_ reply: NFTReply) -> String? {
        reply.attributes[attr(NFTA_RULE_CHAIN)]?.string
    }
}
