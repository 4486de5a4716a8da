// swift-tools-version: 6.1
import PackageDescription
import Foundation

// PODWIRE_STATIC=1 links libnl from its archives (release builds for nodes without libnl);
// otherwise the shared libraries found through pkg-config are used (development and tests).
let linkLibnlStatically = ProcessInfo.processInfo.environment["PODWIRE_STATIC"] == "1"

let netlinkLinkerSettings: [LinkerSetting] = linkLibnlStatically
    ? [.unsafeFlags(["-Xlinker", "-l:libnl-route-3.a", "-Xlinker", "-l:libnl-3.a"])]
    : [.linkedLibrary("nl-route-3"), .linkedLibrary("nl-3")]

let package = Package(
    name: "podwire",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "podwire", targets: ["podwire"]),
        .executable(name: "podwire-ipam", targets: ["podwire-ipam"]),
    ],
    targets: [
        // C: what Glibc's Swift module hides (_GNU_SOURCE) and kernel constants that are macros.
        .target(name: "CLinuxShim", cSettings: [.define("_GNU_SOURCE")]),
        // C: argv for the Swift runtime without its /proc/self/maps scan at every start (static links).
        .target(name: "CProcessStart"),
        // C: libnl-3 / libnl-route-3 headers (include path only; linking is chosen above).
        .systemLibrary(name: "CNetlink", providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        // C: the kernel's nf_tables netlink ABI (UAPI headers only; nothing to link).
        .systemLibrary(name: "CNFTables", providers: [.apt(["linux-libc-dev"])]),

        // Pure Swift, no kernel calls.
        .target(name: "NetAddress"),
        .target(name: "CNIProtocol", dependencies: ["NetAddress"]),
        .target(name: "PodIPAM", dependencies: ["NetAddress", "CNIProtocol", "CLinuxShim"]),

        // Kernel work behind a small Swift API.
        .target(name: "Netlink", dependencies: ["CNetlink", "CLinuxShim", "NetAddress"],
                swiftSettings: [.unsafeFlags(["-Xcc", "-I/usr/include/libnl3"])],
                linkerSettings: netlinkLinkerSettings),
        // nftables over NETLINK_NETFILTER, messages built in Swift: no libnftnl or libmnl.
        .target(name: "Netfilter", dependencies: ["CNFTables", "Netlink", "NetAddress"]),

        // The plugin's verbs over those layers, and the thin executable.
        .target(name: "PodwirePlugin", dependencies: ["CNIProtocol", "PodIPAM", "Netlink", "Netfilter", "NetAddress", "CLinuxShim"]),
        .executableTarget(name: "podwire", dependencies: ["PodwirePlugin", "CProcessStart"]),
        .executableTarget(name: "podwire-ipam", dependencies: ["PodwirePlugin", "CProcessStart"]),

        // Replayable randomness for the tests and the fuzz target (Scripts/fuzz.sh compiles it in).
        .target(name: "SeededRandom", path: "Tests/SeededRandom"),
        .testTarget(name: "NetAddressTests", dependencies: ["NetAddress"]),
        .testTarget(name: "CNIProtocolTests", dependencies: ["CNIProtocol", "SeededRandom"]),
        .testTarget(name: "PodIPAMTests", dependencies: ["PodIPAM"]),
        .testTarget(name: "IntegrationTests", dependencies: ["NetAddress", "SeededRandom"]),
    ]
)
