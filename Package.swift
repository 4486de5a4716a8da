// swift-tools-version: 6.1
import PackageDescription
import Foundation

// PODWIRE_STATIC=1 links libnl from its archives (release builds for nodes without libnl);
// otherwise the shared libraries found through pkg-config are used (development and tests).
let linkLibnlStatically = ProcessInfo.processInfo.environment["PODWIRE_STATIC"] == "1"

let netlinkLinkerSettings: [LinkerSetting] = linkLibnlStatically
    ? [.unsafeFlags(["-Xlinker", "-l:libnl-route-3.a", "-Xlinker", "-l:libnl-3.a"])]
    : [.linkedLibrary("nl-route-3"), .linkedLibrary("nl-3")]

// PODWIRE_ORDER_FILE (set by Scripts/lib/release.sh): the plugins' hot functions, packed first at link.
let pluginLinkerSettings: [LinkerSetting] = ProcessInfo.processInfo.environment["PODWIRE_ORDER_FILE"].map {
    [.unsafeFlags(["-Xlinker", "--symbol-ordering-file=\($0)"])]
} ?? []

let package = Package(
    name: "podwire",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "podwire", targets: ["podwire"]),
        .executable(name: "podwire-ipam", targets: ["podwire-ipam"]),
        .executable(name: "podwirectl", targets: ["podwirectl"]),
    ],
    dependencies: [
        // podwirectl's command line only: the plugin binaries never link it.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C: what Glibc's Swift module hides (_GNU_SOURCE), and libc constants and macros Swift cannot import.
        .target(name: "CLinuxShim", cSettings: [.define("_GNU_SOURCE")]),
        // C: argv for the Swift runtime without its /proc/self/maps scan at every start (static links).
        .target(name: "CProcessStart"),
        // C: netlink sockets, and the work that needs a thread of its own (a socket made inside a pod's namespace,
        // a request whose answer blocks); no framing, which is all in Netlink.
        .target(name: "CNetlinkSockets"),
        // C: libnl-3 / libnl-route-3 headers (include path only; linking is chosen above).
        .systemLibrary(name: "CNetlink", providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        // C: the kernel's nf_tables netlink ABI (UAPI headers only; nothing to link).
        .systemLibrary(name: "CNFTables", providers: [.apt(["linux-libc-dev"])]),

        // Pure Swift, no kernel calls: addresses, the CNI protocol, the wiring plan.
        .target(name: "NetAddress"),
        .target(name: "CNIProtocol", dependencies: ["NetAddress"]),
        .target(name: "PodWiring", dependencies: ["NetAddress", "CNIProtocol"]),

        // Syscalls: the one SystemError, fd I/O, namespace files, /proc/sys.
        .target(name: "LinuxSystem", dependencies: ["CLinuxShim"]),
        // IPAM: the allocator and its file store (no netlink).
        .target(name: "PodIPAM", dependencies: ["NetAddress", "CNIProtocol", "LinuxSystem", "CLinuxShim"]),
        // Every netlink family podwire speaks (rtnetlink through libnl, nfnetlink framed in Swift),
        // with ip- and nft-style verbs; the only module that frames netlink messages.
        .target(name: "Netlink", dependencies: ["CNetlink", "CNFTables", "CNetlinkSockets", "LinuxSystem", "NetAddress"],
                swiftSettings: [.unsafeFlags(["-Xcc", "-I/usr/include/libnl3"])],
                linkerSettings: netlinkLinkerSettings),
        // podwire's nftables tables (the masquerade), built from Netlink's nftables verbs.
        .target(name: "Netfilter", dependencies: ["Netlink", "NetAddress", "PodWiring", "CNIProtocol", "LinuxSystem"]),

        // The call log: each plugin call's line (phases timed from the process's start), appended with rotation.
        .target(name: "CallLog", dependencies: ["CNIProtocol", "LinuxSystem"]),

        // The process frame every plugin binary shares: environment and stdin in, one document out.
        .target(name: "CNIPlugin", dependencies: ["CNIProtocol", "LinuxSystem"]),
        // podwire-ipam's verbs over PodIPAM: no netlink, no nftables.
        .target(name: "IPAMPlugin", dependencies: ["CNIPlugin", "CNIProtocol", "PodIPAM"]),
        // podwire's verbs: the plan applied to, compared with and removed from the kernel.
        .target(name: "PodwirePlugin", dependencies: ["CNIPlugin", "CNIProtocol", "PodIPAM", "PodWiring", "Netlink", "Netfilter",
                                                      "LinuxSystem", "NetAddress", "CLinuxShim", "CallLog"]),
        .executableTarget(name: "podwire", dependencies: ["PodwirePlugin", "CNIPlugin", "CProcessStart"],
                          linkerSettings: pluginLinkerSettings),
        .executableTarget(name: "podwire-ipam", dependencies: ["IPAMPlugin", "CNIPlugin", "CProcessStart"],
                          linkerSettings: pluginLinkerSettings),

        // The operator's side: a node's podwire networks read from the store and the kernel, checked
        // and repaired, the call log summed up, plugins run as a runtime would.
        .target(name: "PodwireControl", dependencies: ["PodwirePlugin", "CNIProtocol", "PodIPAM", "PodWiring", "Netlink", "Netfilter",
                                                       "LinuxSystem", "NetAddress", "CallLog"]),
        .executableTarget(name: "podwirectl", dependencies: ["PodwireControl", "CNIProtocol", "NetAddress",
                                                             .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Replayable randomness for the tests and the fuzz target (Scripts/fuzz.sh compiles it in).
        .target(name: "SeededRandom", path: "Tests/SeededRandom"),
        .testTarget(name: "NetAddressTests", dependencies: ["NetAddress"]),
        .testTarget(name: "CNIProtocolTests", dependencies: ["CNIProtocol", "SeededRandom"]),
        .testTarget(name: "PodIPAMTests", dependencies: ["PodIPAM", "LinuxSystem"]),
        .testTarget(name: "PodWiringTests", dependencies: ["PodWiring", "CNIProtocol", "NetAddress"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "Netfilter", "NetAddress", "PodWiring"]),
        .testTarget(name: "IntegrationTests", dependencies: ["NetAddress", "SeededRandom"]),
        .testTarget(name: "PodwireControlTests", dependencies: ["PodwireControl", "CallLog", "CNIProtocol", "NetAddress"]),
    ]
)
