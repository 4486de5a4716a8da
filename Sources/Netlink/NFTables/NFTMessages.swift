internal import CNFTables
import NetAddress

// The nf_tables verbs: each builds the request the `nft` command it is named after sends, as
// libnftnl builds it (checked against `nft --debug=netlink` and `nft --debug=mnl`), so `nft list`
// prints the result back as that syntax. Modules above (Netfilter) compose tables from these
// verbs and never see a netlink attribute.

package enum NFT {
    typealias Attribute = NetlinkAttribute

    /// The kernel's limit on a table, chain or set name (NFT_NAME_MAXLEN, NUL included).
    package static let maximumNameLength = Int(NFT_NAME_MAXLEN) - 1

    /// A base chain's hook in an inet table.
    package enum Hook: Sendable {
        case prerouting, input, output, postrouting

        var number: UInt32 {
            switch self {
            case .prerouting: UInt32(NF_INET_PRE_ROUTING.rawValue)
            case .input: UInt32(NF_INET_LOCAL_IN.rawValue)
            case .output: UInt32(NF_INET_LOCAL_OUT.rawValue)
            case .postrouting: UInt32(NF_INET_POST_ROUTING.rawValue)
            }
        }
    }

    /// NF_IP_PRI_NAT_SRC (linux/netfilter_ipv4.h), the priority nft calls "srcnat".
    package static let srcnatPriority = CNFTables_PRIORITY_SRCNAT

    static func attr<T: RawRepresentable>(_ value: T) -> UInt16 where T.RawValue == UInt32 { UInt16(value.rawValue) }

    // MARK: Tables, chains, sets

    package static func newTable(_ table: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_NEWTABLE.rawValue, flags: Int32(NLM_F_CREATE),
                   attributes: [.string(attr(NFTA_TABLE_NAME), table), .u32(attr(NFTA_TABLE_FLAGS), 0)],
                   what: "nft add table inet \(table)")
    }

    package static func getTable(_ table: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_GETTABLE.rawValue, attributes: [.string(attr(NFTA_TABLE_NAME), table)],
                   what: "nft list table inet \(table)")
    }

    /// A base chain: `type <type> hook <hook> priority <priority>`, policy accept.
    static func hookAttributes(hook: UInt32, priority: Int32) -> Attribute {
        .nest(attr(NFTA_CHAIN_HOOK), [.u32(attr(NFTA_HOOK_HOOKNUM), hook),
                                      .u32(attr(NFTA_HOOK_PRIORITY), UInt32(bitPattern: priority))])
    }

    package static func newChain(_ table: String, _ chain: String, type: String, hook: Hook, priority: Int32,
                                 description: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_NEWCHAIN.rawValue, flags: Int32(NLM_F_CREATE),
                   attributes: [.string(attr(NFTA_CHAIN_TABLE), table), .string(attr(NFTA_CHAIN_NAME), chain),
                                .string(attr(NFTA_CHAIN_TYPE), type), hookAttributes(hook: hook.number, priority: priority)],
                   what: "nft add chain inet \(table) \(chain) { \(description); }")
    }

    package static func getChain(_ table: String, _ chain: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_GETCHAIN.rawValue,
                   attributes: [.string(attr(NFTA_CHAIN_TABLE), table), .string(attr(NFTA_CHAIN_NAME), chain)],
                   what: "nft list chain inet \(table) \(chain)")
    }

    /// A GETCHAIN reply's use count: the chain's rules plus the jumps into it.
    package static func chainUse(_ reply: NFTReply?) -> UInt32? {
        reply?.attributes[attr(NFTA_CHAIN_USE)]?.u32
    }

    /// Whether a GETCHAIN reply is a base chain of `type` on `hook` at `priority`.
    package static func chain(_ reply: NFTReply?, isBase type: String, hook: Hook, priority: Int32) -> Bool {
        let fields = reply?.attributes ?? []
        return hookAttributes(hook: hook.number, priority: priority).isSatisfied(by: fields)
            && fields[attr(NFTA_CHAIN_TYPE)]?.string == type
    }

    /// nft's datatype numbers for ipv4_addr and ipv6_addr.
    static func keyType(_ family: IPFamily) -> UInt32 { family == .v4 ? 7 : 8 }

    package static func newSet(_ table: String, _ set: String, family: IPFamily, interval: Bool, id: UInt32) -> NFTRequest {
        let keyLength = UInt32(family.bitWidth / 8)
        return NFTRequest(
            message: NFT_MSG_NEWSET.rawValue, flags: Int32(NLM_F_CREATE),
            attributes: [
                .string(attr(NFTA_SET_TABLE), table), .string(attr(NFTA_SET_NAME), set),
                .u32(attr(NFTA_SET_FLAGS), interval ? UInt32(NFT_SET_INTERVAL.rawValue) : 0),
                .u32(attr(NFTA_SET_KEY_TYPE), keyType(family)), .u32(attr(NFTA_SET_KEY_LEN), keyLength),
                .u32(attr(NFTA_SET_ID), id),
                // nft's set userdata: the key is big-endian (NFTNL_UDATA_SET_KEYBYTEORDER = BYTEORDER_BIG_ENDIAN).
                .bytes(attr(NFTA_SET_USERDATA), [0, 4] + hostBytes(UInt32(2))),
            ],
            what: "nft add set inet \(table) \(set) { type \(family == .v4 ? "ipv4_addr" : "ipv6_addr");\(interval ? " flags interval;" : "") }")
    }

    /// `nft list set inet <table> <set>` without its elements: ENOENT when the set (or table) is not there.
    package static func getSet(_ table: String, _ set: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_GETSET.rawValue,
                   attributes: [.string(attr(NFTA_SET_TABLE), table), .string(attr(NFTA_SET_NAME), set)],
                   what: "nft list set inet \(table) \(set)")
    }

    // MARK: Set elements

    package struct Element: Sendable {
        package var key: [UInt8]
        /// A map element's data (NFTA_SET_ELEM_DATA); nil in a set.
        package var data: [UInt8]?
        package var intervalEnd = false
        package var comment: String?
        /// How long the element lives (NFTA_SET_ELEM_TIMEOUT, in a set with timeouts); nil: for ever.
        package var timeoutMilliseconds: UInt64?

        package init(key: [UInt8], data: [UInt8]? = nil, intervalEnd: Bool = false, comment: String? = nil,
                     timeoutMilliseconds: UInt64? = nil) {
            self.key = key
            self.data = data
            self.intervalEnd = intervalEnd
            self.comment = comment
            self.timeoutMilliseconds = timeoutMilliseconds
        }
    }

    /// nft keeps an element's comment in its userdata as a TLV (NFTNL_UDATA_SET_ELEM_COMMENT = 0).
    package static func commentUserdata(_ comment: String) -> [UInt8] {
        let text = Array(comment.utf8) + [0]
        return [0, UInt8(text.count)] + text
    }

    package static func comment(inUserdata bytes: ArraySlice<UInt8>) -> String? {
        var offset = bytes.startIndex
        while offset + 2 <= bytes.endIndex {
            let type = bytes[offset], length = Int(bytes[offset + 1])
            let end = offset + 2 + length
            guard end <= bytes.endIndex else { return nil }
            if type == 0 { return String(decoding: bytes[(offset + 2)..<end].prefix { $0 != 0 }, as: UTF8.self) }
            offset = end
        }
        return nil
    }

    static func elementAttribute(_ element: Element) -> Attribute {
        var attributes: [Attribute] = []
        // Before the key, where nft puts it; big-endian like every nf_tables value.
        if let timeout = element.timeoutMilliseconds {
            attributes.append(.bytes(attr(NFTA_SET_ELEM_TIMEOUT), withUnsafeBytes(of: timeout.bigEndian) { Array($0) }))
        }
        if element.intervalEnd { attributes.append(.u32(attr(NFTA_SET_ELEM_FLAGS), UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue))) }
        attributes.append(.nest(attr(NFTA_SET_ELEM_KEY), [.bytes(attr(NFTA_DATA_VALUE), element.key)]))
        if let data = element.data { attributes.append(.nest(attr(NFTA_SET_ELEM_DATA), [.bytes(attr(NFTA_DATA_VALUE), data)])) }
        if let comment = element.comment { attributes.append(.bytes(attr(NFTA_SET_ELEM_USERDATA), commentUserdata(comment))) }
        return .nest(UInt16(NFTA_LIST_ELEM.rawValue), attributes)
    }

    /// `nft add element inet <table> <set> { ... }`.
    package static func addElements(_ table: String, _ set: String, _ elements: [Element], what: @autoclosure @escaping @Sendable () -> String) -> NFTRequest {
        setElements(NFT_MSG_NEWSETELEM, table, set, elements, what: what())
    }

    /// `nft delete element inet <table> <set> { ... }`: ENOENT for an element not in the set.
    package static func deleteElements(_ table: String, _ set: String, _ elements: [Element], what: @autoclosure @escaping @Sendable () -> String) -> NFTRequest {
        setElements(NFT_MSG_DELSETELEM, table, set, elements, what: what())
    }

    /// `nft flush set inet <table> <set>`.
    package static func flushSet(_ table: String, _ set: String) -> NFTRequest {
        setElements(NFT_MSG_DELSETELEM, table, set, nil, what: "nft flush set inet \(table) \(set)")
    }

    /// NEWSETELEM, or DELSETELEM; DELSETELEM without elements flushes the set.
    static func setElements(_ message: nf_tables_msg_types, _ table: String, _ set: String, _ elements: [Element]?,
                            what: @autoclosure @escaping @Sendable () -> String) -> NFTRequest {
        var attributes: [Attribute] = [.string(attr(NFTA_SET_ELEM_LIST_TABLE), table), .string(attr(NFTA_SET_ELEM_LIST_SET), set)]
        if let elements {
            attributes.append(.nest(attr(NFTA_SET_ELEM_LIST_ELEMENTS), elements.map(elementAttribute)))
        }
        return NFTRequest(message: message.rawValue, flags: message == NFT_MSG_NEWSETELEM ? Int32(NLM_F_CREATE) : 0,
                          attributes: attributes, what: what())
    }

    /// One element, by key (ENOENT when it is not there).
    package static func getElement(_ table: String, _ set: String, key: [UInt8], what: @autoclosure @escaping @Sendable () -> String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_GETSETELEM.rawValue,
                   attributes: [.string(attr(NFTA_SET_ELEM_LIST_TABLE), table), .string(attr(NFTA_SET_ELEM_LIST_SET), set),
                                .nest(attr(NFTA_SET_ELEM_LIST_ELEMENTS), [elementAttribute(Element(key: key))])],
                   what: what())
    }

    package static func dumpElements(_ table: String, _ set: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_GETSETELEM.rawValue, flags: Int32(NLM_F_DUMP),
                   attributes: [.string(attr(NFTA_SET_ELEM_LIST_TABLE), table), .string(attr(NFTA_SET_ELEM_LIST_SET), set)],
                   what: "nft list set inet \(table) \(set)")
    }

    /// The elements in a GETSETELEM dump: key bytes, a map's data bytes, interval-end flag, comment.
    package static func parseElements(_ replies: [NFTReply]) -> [Element] {
        var result: [Element] = []
        for reply in replies {
            guard let list = reply.attributes[attr(NFTA_SET_ELEM_LIST_ELEMENTS)] else { continue }
            for item in list.nested where item.type == UInt16(NFTA_LIST_ELEM.rawValue) {
                let fields = item.nested
                guard let key = fields[attr(NFTA_SET_ELEM_KEY)]?.nested[attr(NFTA_DATA_VALUE)] else { continue }
                let flags = fields[attr(NFTA_SET_ELEM_FLAGS)]?.u32 ?? 0
                result.append(Element(key: Array(key.payload),
                                      data: fields[attr(NFTA_SET_ELEM_DATA)]?.nested[attr(NFTA_DATA_VALUE)].map { Array($0.payload) },
                                      intervalEnd: flags & UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue) != 0,
                                      comment: fields[attr(NFTA_SET_ELEM_USERDATA)].flatMap { comment(inUserdata: $0.payload) }))
            }
        }
        return result
    }

    // MARK: Rules

    package static func flushChain(_ table: String, _ chain: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_DELRULE.rawValue,
                   attributes: [.string(attr(NFTA_RULE_TABLE), table), .string(attr(NFTA_RULE_CHAIN), chain)],
                   what: "nft flush chain inet \(table) \(chain)")
    }

    /// `nft add rule inet <table> <chain> <text> [comment "<comment>"]`.
    package static func newRule(_ table: String, _ chain: String, _ expressions: [NFTExpression], text: String,
                                comment: String? = nil) -> NFTRequest {
        var attributes: [Attribute] = [.string(attr(NFTA_RULE_TABLE), table), .string(attr(NFTA_RULE_CHAIN), chain),
                                       .nest(attr(NFTA_RULE_EXPRESSIONS), expressions.map(\.attribute))]
        // A rule's comment is its userdata, as an element's is (NFTNL_UDATA_RULE_COMMENT = 0).
        if let comment { attributes.append(.bytes(attr(NFTA_RULE_USERDATA), commentUserdata(comment))) }
        return NFTRequest(message: NFT_MSG_NEWRULE.rawValue, flags: Int32(NLM_F_CREATE | NLM_F_APPEND), attributes: attributes,
                          what: "nft add rule inet \(table) \(chain) \(text)" + (comment.map { " comment \"\($0)\"" } ?? ""))
    }

    /// A dumped rule's comment.
    package static func ruleComment(_ reply: NFTReply) -> String? {
        reply.attributes[attr(NFTA_RULE_USERDATA)].flatMap { comment(inUserdata: $0.payload) }
    }

    package static func dumpRules(_ table: String, _ chain: String) -> NFTRequest {
        NFTRequest(message: NFT_MSG_GETRULE.rawValue, flags: Int32(NLM_F_DUMP),
                   attributes: [.string(attr(NFTA_RULE_TABLE), table), .string(attr(NFTA_RULE_CHAIN), chain)],
                   what: "nft list chain inet \(table) \(chain)")
    }

    /// Whether a dumped rule is `expressions`, expression for expression.
    package static func rule(_ reply: NFTReply, matches expressions: [NFTExpression]) -> Bool {
        guard let dumped = reply.attributes[attr(NFTA_RULE_EXPRESSIONS)]?.nested,
              dumped.count == expressions.count else { return false }
        return zip(expressions, dumped).allSatisfy { expected, got in
            guard case .nested(let parts) = expected.attribute.payload else { return false }
            let fields = got.nested
            return parts.allSatisfy { $0.isSatisfied(by: fields) }
        }
    }

    // MARK: Expressions (register 1 throughout, as nft uses it)

    static let register1 = UInt32(NFT_REG_1.rawValue)

    static func expression(_ name: String, _ data: [Attribute]) -> NFTExpression {
        NFTExpression(attribute: .nest(UInt16(NFTA_LIST_ELEM.rawValue), [.string(attr(NFTA_EXPR_NAME), name), .nest(attr(NFTA_EXPR_DATA), data)]))
    }

    /// `meta nfproto ipv4|ipv6`: the dependency nft adds before an `ip`/`ip6` match in an inet table.
    package static func matchFamily(_ family: IPFamily) -> [NFTExpression] {
        [expression("meta", [.u32(attr(NFTA_META_DREG), register1), .u32(attr(NFTA_META_KEY), UInt32(NFT_META_NFPROTO.rawValue))]),
         compare(equal: true, [UInt8(family == .v4 ? NFPROTO_IPV4 : NFPROTO_IPV6)])]
    }

    /// `== value` / `!= value` on register 1.
    package static func compare(equal: Bool, _ value: [UInt8]) -> NFTExpression {
        expression("cmp", [.u32(attr(NFTA_CMP_SREG), register1), .u32(attr(NFTA_CMP_OP), (equal ? NFT_CMP_EQ : NFT_CMP_NEQ).rawValue),
                           .nest(attr(NFTA_CMP_DATA), [.bytes(attr(NFTA_DATA_VALUE), value)])])
    }

    /// Loads `length` bytes of the network header at `offset` (`ip saddr` is 12, 4).
    package static func networkHeader(offset: UInt32, length: UInt32) -> NFTExpression {
        expression("payload", [.u32(attr(NFTA_PAYLOAD_DREG), register1),
                               .u32(attr(NFTA_PAYLOAD_BASE), UInt32(NFT_PAYLOAD_NETWORK_HEADER.rawValue)),
                               .u32(attr(NFTA_PAYLOAD_OFFSET), offset), .u32(attr(NFTA_PAYLOAD_LEN), length)])
    }

    /// `@set` or, inverted, `!= @set`.
    package static func lookup(_ set: String, inverted: Bool) -> NFTExpression {
        var data: [Attribute] = [.u32(attr(NFTA_LOOKUP_SREG), register1), .string(attr(NFTA_LOOKUP_SET), set)]
        if inverted { data.append(.u32(attr(NFTA_LOOKUP_FLAGS), UInt32(NFT_LOOKUP_F_INV.rawValue))) }
        return expression("lookup", data)
    }

    /// Register 1 masked with `mask` (a prefix match such as `224.0.0.0/4`).
    package static func bitwise(mask: [UInt8]) -> NFTExpression {
        expression("bitwise", [.u32(attr(NFTA_BITWISE_SREG), register1), .u32(attr(NFTA_BITWISE_DREG), register1),
                               .u32(attr(NFTA_BITWISE_LEN), UInt32(mask.count)),
                               .nest(attr(NFTA_BITWISE_MASK), [.bytes(attr(NFTA_DATA_VALUE), mask)]),
                               .nest(attr(NFTA_BITWISE_XOR), [.bytes(attr(NFTA_DATA_VALUE), [UInt8](repeating: 0, count: mask.count))])])
    }

    package static func masquerade() -> NFTExpression { expression("masq", []) }
}

/// One expression of a rule, as the verbs above build it; opaque above this module.
package struct NFTExpression: Sendable {
    let attribute: NetlinkAttribute
}
