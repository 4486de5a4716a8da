#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The parts of one plugin call, in the order ADD goes through them. Each call records only the
/// ones it passes; the log names them by `name`.
public enum CallPhase: Int, CaseIterable, Sendable {
    /// From the runtime's exec to `main`: the kernel's exec, the loader, the Swift runtime.
    case start
    /// Environment and config read, the IPAM backend and the sockets opened.
    case config
    /// ADD: the veth pair created. DEL: the host veth looked up and its deletion sent.
    case veth
    /// IPAM: the address allocated (ADD) or released (DEL), or read (CHECK, GC, STATUS).
    case ipam
    /// ADD: forwarding, the host veth's sysctls, the pod side's addresses and routes.
    case podSide
    /// ADD: the host veth labelled and brought up, the gateway and the host routes.
    case hostSide
    /// The nftables masquerade: elements added (ADD), removed (DEL), compared (CHECK).
    case masquerade
    /// The hostPort maps.
    case hostPorts
    /// ctnetlink: UDP flows of the hostPorts forgotten (a walk of the kernel's conntrack table).
    case conntrack
    /// DEL: waiting for the kernel to announce the veth gone (its RCU grace periods).
    case vethWait
    /// Anything else a verb does (CHECK's and GC's comparisons, STATUS, a delegated IPAM).
    case work
    /// The result or error written to stdout.
    case output

    public var name: String {
        switch self {
        case .start: "start"
        case .config: "config"
        case .veth: "veth"
        case .ipam: "ipam"
        case .podSide: "podSide"
        case .hostSide: "hostSide"
        case .masquerade: "masquerade"
        case .hostPorts: "hostPorts"
        case .conntrack: "conntrack"
        case .vethWait: "vethWait"
        case .work: "work"
        case .output: "output"
        }
    }

    public init?(name: String) {
        guard let phase = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = phase
    }
}

/// Where one call's time goes: each `lap` gives the time since the previous one to a phase.
///
/// The call's clock starts when the process started, not at `main`: a runtime waits for the
/// exec too. The kernel keeps a process's start time only to a clock tick (10 ms), so it is
/// worked out at `main`, when the process has done nothing but start (fork, exec, loader,
/// runtime, none of which sleeps): it has been running for its CPU time so far, or waiting to
/// run (`/proc/self/schedstat`'s run delay). What comes before the fork and after the exit (the
/// runtime's own spawning and reaping) is not the plugin's to see.
public final class CallTimer {
    public private(set) var started: Int64
    private var last: Int64
    /// Nanoseconds per phase, by `CallPhase.rawValue`; -1 for a phase the call never passed.
    private var spent: [Int64]

    /// Made first thing in `main`.
    public init() {
        let now = Self.monotonicNow()
        let sinceExec = Self.processCPUTime() + Self.runDelay()
        started = now - sinceExec
        last = now
        spent = [Int64](repeating: -1, count: CallPhase.allCases.count)
        spent[CallPhase.start.rawValue] = sinceExec
    }

    /// Gives the time since the last lap to `phase` (added to what it had).
    public func lap(_ phase: CallPhase) {
        let now = Self.monotonicNow()
        let previous = spent[phase.rawValue]
        spent[phase.rawValue] = (previous < 0 ? 0 : previous) + (now - last)
        last = now
    }

    /// Nanoseconds from the process's start to the last lap.
    public var total: Int64 { last - started }

    /// The phases passed, in `CallPhase` order, with their nanoseconds.
    public var phases: [(phase: CallPhase, nanoseconds: Int64)] {
        CallPhase.allCases.compactMap { phase in
            let value = spent[phase.rawValue]
            return value < 0 ? nil : (phase, value)
        }
    }

    static func monotonicNow() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// Nanoseconds the process has waited, runnable, for a CPU; 0 where the kernel does not say.
    static func runDelay() -> Int64 {
        let fd = open("/proc/self/schedstat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 96)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 95) }
        guard count > 0 else { return 0 }
        // "<cpu ns> <run delay ns> <timeslices>\n": the second number, read in place.
        var position = 0
        while position < count && buffer[position] != UInt8(ascii: " ") { position += 1 }
        position += 1
        var value: Int64 = 0
        var digits = 0
        while position < count, buffer[position] >= UInt8(ascii: "0"), buffer[position] <= UInt8(ascii: "9") {
            value = value &* 10 &+ Int64(buffer[position] - UInt8(ascii: "0"))
            position += 1
            digits += 1
        }
        return digits > 0 ? value : 0
    }

    static func processCPUTime() -> Int64 {
        var used = timespec()
        guard clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used) == 0 else { return 0 }
        return Int64(used.tv_sec) * 1_000_000_000 + Int64(used.tv_nsec)
    }
}
