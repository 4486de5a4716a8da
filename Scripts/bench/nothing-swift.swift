// The do-nothing plugin again, as a static Swift binary built like podwire: what the Swift
// runtime's start-up adds to exec'ing a static binary. Shown for information; the floor the
// targets use is the C one (nothing.c).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { buffer in
    while read(0, buffer.baseAddress, buffer.count) > 0 {}
}
