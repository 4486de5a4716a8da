/// "02:42:ac:11:00:02": a link-layer address as `ip link` prints it.
public func formatMAC(_ bytes: [UInt8]) -> String {
    var text = AddressText(capacity: bytes.count * 3)
    for (index, byte) in bytes.enumerated() {
        if index > 0 { text.append(":") }
        text.appendHex(UInt64(byte), digits: 2)
    }
    return text.string
}
