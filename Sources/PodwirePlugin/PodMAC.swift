import CLinuxShim

/// A locally administered unicast MAC for the pod's end, chosen here so the result needs no
/// read-back from the kernel.
func randomPodMAC() -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 6)
    _ = bytes.withUnsafeMutableBytes { CLinuxShim_getrandom($0.baseAddress, 6) }
    bytes[0] = (bytes[0] & 0xfe) | 0x02
    return bytes
}
