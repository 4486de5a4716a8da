/// The host end's name: "veth" + 8 hex digits derived from the attachment, so DEL finds the
/// interface from CNI_CONTAINERID and CNI_IFNAME alone, even when the pod's netns is gone.
public enum HostVethName {
    public static func of(containerID: String, ifname: String) -> String {
        // FNV-1a over "containerID/ifname" ('/' cannot occur in either), folded to 32 bits.
        // It only spreads names; ownership is confirmed by the link's alias before anything is deleted.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in containerID.utf8 + [UInt8(ascii: "/")] + ifname.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let folded = UInt32(truncatingIfNeeded: hash >> 32) ^ UInt32(truncatingIfNeeded: hash)
        let hex = String(folded, radix: 16)
        return "veth" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// The alias podwire writes on the host end, naming the attachment that owns it.
    public static func alias(network: String, containerID: String, ifname: String) -> String {
        // IFALIASZ is 256 including the NUL; container IDs are usually 64 characters.
        String(decoding: "podwire \(network) \(containerID) \(ifname)".utf8.prefix(255), as: UTF8.self)
    }
}
