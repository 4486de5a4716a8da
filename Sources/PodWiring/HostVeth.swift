import NetAddress

/// The host end's identity, derived from the attachment: its name is "veth" + 8 hex digits, so DEL
/// finds the interface from CNI_CONTAINERID and CNI_IFNAME alone, even when the pod's netns is gone.
public struct HostVeth: Sendable, Equatable {
    public let name: String
    /// 02:<the 4 bytes of the name's hash>:70. The kernel ignores an alias at creation, so the
    /// MAC is what marks a host veth as podwire's from the very request that creates it: a veth
    /// whose MAC repeats its name's hash was made by podwire even if ADD died before labelling it.
    public let mac: [UInt8]

    public init(containerID: String, ifname: String) {
        // FNV-1a over "containerID/ifname" ('/' cannot occur in either), folded to 32 bits: it only
        // spreads names; ownership is confirmed by the alias (or the MAC) before anything is deleted.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        for byte in containerID.utf8 { mix(byte) }
        mix(UInt8(ascii: "/"))
        for byte in ifname.utf8 { mix(byte) }
        let folded = UInt32(truncatingIfNeeded: hash >> 32) ^ UInt32(truncatingIfNeeded: hash)
        name = Self.name(folded)
        mac = Self.signedMAC(folded)
    }

    /// "veth" and the hash as 8 lowercase hex digits.
    static func name(_ hash: UInt32) -> String {
        var text = AddressText(capacity: 12)
        text.append("veth")
        text.appendHex(UInt64(hash), digits: 8)
        return text.string
    }

    static func signedMAC(_ hash: UInt32) -> [UInt8] {
        [0x02, UInt8(truncatingIfNeeded: hash >> 24), UInt8(truncatingIfNeeded: hash >> 16),
         UInt8(truncatingIfNeeded: hash >> 8), UInt8(truncatingIfNeeded: hash), 0x70]
    }

    /// Whether a link called `name` with `mac` (as "aa:bb:...") carries podwire's signature.
    public static func isSigned(name: String, mac: String) -> Bool {
        guard name.utf8.count == 12, name.hasPrefix("veth"), let hash = UInt32(name.dropFirst(4), radix: 16) else { return false }
        return mac.lowercased() == formatMAC(signedMAC(hash))
    }

    /// The alias podwire writes on the host end, naming the attachment that owns it.
    /// Cut to `maxAliasLength` bytes, on a character boundary, for very long container IDs: GC and
    /// DEL compare whole aliases, never parse a cut one.
    public static func alias(network: String, containerID: String, ifname: String) -> String {
        let full = "\(aliasPrefix(network: network))\(containerID) \(ifname)"
        if full.utf8.count <= maxAliasLength { return full }
        var cut = "", length = 0
        for scalar in full.unicodeScalars {
            length += UTF8.width(scalar)
            if length > maxAliasLength { break }
            cut.unicodeScalars.append(scalar)
        }
        return cut
    }

    /// IFALIASZ (256) counts the NUL that libnl sends with the text, so the kernel takes 255 bytes
    /// with it: 254 of alias. Container IDs are usually 64 characters.
    static let maxAliasLength = 254

    public static func aliasPrefix(network: String) -> String { "podwire \(network) " }
}

/// Whose a host-side link is, by the one rule ADD, DEL and GC all apply before they delete a
/// host veth: a veth whose alias names an attachment of this network is that attachment's; a
/// veth without alias whose MAC carries its name's signature is an ADD that died before
/// labelling it (which no runtime lists). Anything else (another network's, a person's, not a
/// veth) is nobody's podwire cares about, and is never deleted.
public enum HostVethOwner: Sendable, Equatable {
    /// The whole alias, as ADD wrote it: compared whole, never parsed (a long one is cut).
    case attachment(alias: String)
    case unlabelled

    public static func of(kind: String, name: String, mac: String, alias: String, network: String) -> HostVethOwner? {
        guard kind == "veth" else { return nil }
        if alias.hasPrefix(HostVeth.aliasPrefix(network: network)) { return .attachment(alias: alias) }
        if alias.isEmpty && HostVeth.isSigned(name: name, mac: mac) { return .unlabelled }
        return nil
    }

    /// Whether a link of this owner may be deleted on behalf of the attachment whose alias is
    /// `alias` (its ADD replacing a leftover, its DEL).
    public func belongs(to alias: String) -> Bool {
        switch self {
        case .attachment(let owner): owner == alias
        case .unlabelled: true
        }
    }

    /// Whether GC removes a link of this owner, given the aliases of the attachments to keep.
    public func isStale(keeping aliases: Set<String>) -> Bool {
        switch self {
        case .attachment(let owner): !aliases.contains(owner)
        case .unlabelled: true
        }
    }
}
