#if canImport(Glibc)
import Glibc
#endif
public enum TraceTemp {
    nonisolated(unsafe) static var marks: [(StaticString, Int)] = []
    nonisolated(unsafe) static var enabled: Bool = getenv("PW_TRACE") != nil
    @inline(never) public static func mark(_ name: StaticString) {
        guard enabled else { return }
        var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t)
        marks.append((name, t.tv_sec * 1_000_000_000 + t.tv_nsec))
    }
    public static func dump() {
        guard enabled else { return }
        var text = ""
        for (n, t) in marks { text += "\(n)=\(t) " }
        text += "\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
    }
}
