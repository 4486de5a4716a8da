import Foundation
import Testing

/// Addresses asked for by the runtime, several ranges in one set, and several sets (dual-stack),
/// through the real `podwire` binary with its built-in IPAM. Asserted on the pods' and the node's
/// kernel state and on the store's files.
@Suite("Requested addresses, range sets and dual-stack", .serialized,
       .needs(.namespaces))
struct RequestedAddressTests {
    /// A node with its pods' namespaces, ADDing through the binary with full control of the inputs.
    struct Node {
        let node: TestNode
        let cni: CNIRunner

        init(pods: [String]) throws {
            node = try TestNode()
            cni = CNIRunner(node: node, plugin: InputNetwork.podwire)
            for pod in pods { try node.addPod(pod) }
        }

        func add(_ pod: String, args: String? = nil, config: String,
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
            try RawInvocation.add(pod: pod, args: args, config: config).run(on: node, sourceLocation: sourceLocation)
        }

        /// ADD that must succeed; returns the result and the host veth's name.
        func wire(_ pod: String, args: String? = nil, config: String,
                  sourceLocation: SourceLocation = #_sourceLocation) throws -> (result: CNIResult, veth: String) {
            let result = try cni.expectAddSucceeded(try add(pod, args: args, config: config, sourceLocation: sourceLocation),
                                                    sourceLocation: sourceLocation)
            let veth = try #require(result.interfaces?.first?.name, "no host interface", sourceLocation: sourceLocation)
            return (result, veth)
        }

        func del(_ pod: String, args: String? = nil, config: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            cni.expectDelSucceeded(try cni.exec("DEL", containerID: pod, netns: node.netnsPath(pod), ifname: "eth0",
                                                args: args, stdin: Data(config.utf8), sourceLocation: sourceLocation),
                                   sourceLocation: sourceLocation)
        }

        func storeFile(_ name: String) throws -> String? {
            try node.readFile("\(InputNetwork.store)/\(name)")
        }

        /// Address files (named by an address) of the default network, sorted as text.
        func addressFiles() throws -> [String] {
            try node.listDirectory(InputNetwork.store).filter { $0.first?.isHexDigit == true && !$0.hasPrefix("last") }
        }
    }

    // MARK: One requested address, from each place a runtime can put it

    struct Source: Sendable, CustomTestStringConvertible {
        var label: String
        var args: String?
        var extra: String = ""
        var address: String
        var testDescription: String { label }
    }

    static let sources: [Source] = [
        Source(label: "CNI_ARGS IP=, as podman sends it", args: "IgnoreUnknown=1;K8S_POD_NAME=pod-a;IP=10.244.1.50",
               address: "10.244.1.50"),
        Source(label: "CNI_ARGS as kubelet sends it, IP= with a prefix",
               args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;K8S_POD_INFRA_CONTAINER_ID=pod-a;IP=10.244.1.51/24",
               address: "10.244.1.51"),
        Source(label: "CNI_ARGS with only IP=, no IgnoreUnknown needed", args: "IP=10.244.1.52", address: "10.244.1.52"),
        Source(label: "args.cni.ips", args: nil, extra: #","args":{"cni":{"ips":["10.244.1.60"]}}"#, address: "10.244.1.60"),
        Source(label: "runtimeConfig.ips", args: "IgnoreUnknown=1;K8S_POD_NAME=pod-a",
               extra: #","runtimeConfig":{"ips":["10.244.1.70/24"]}"#, address: "10.244.1.70"),
    ]

    @Test("a requested address is wired and recorded, and the round robin carries on after it",
          arguments: sources)
    func requested(_ source: Source) throws {
        let setup = try Node(pods: ["pod-a", "pod-b"])
        let node = setup.node
        let config = InputNetwork.kindnet(extra: source.extra)
        let address = source.address

        let (result, veth) = try setup.wire("pod-a", args: source.args, config: config)
        let ips = try #require(result.ips)
        #expect(ips.map(\.address) == ["\(address)/24"])
        #expect(ips.first?.gateway == "10.244.1.1")
        #expect(try node.addresses(of: "eth0", inPod: "pod-a").map(\.cidr) == ["\(address)/24"])
        #expect(try node.routeLines(inPod: "pod-a") == [
            "default via 10.244.1.1 dev eth0",
            "10.244.1.0/24 via 10.244.1.1 dev eth0 src \(address)",
            "10.244.1.1 dev eth0 scope link src \(address)",
        ])
        let nodeRoutes = try node.routes()
        #expect(nodeRoutes.contains { $0.dst == address && $0.dev == veth && $0.scope == "host" },
                "no `\(address) dev \(veth) scope host` in \(nodeRoutes)")
        #expect(try node.addresses(of: veth).map(\.cidr) == ["10.244.1.1/32"])
        #expect(try setup.storeFile(address) == "pod-a\r\neth0")
        // host-local moves its cursor to a requested address too, so both plugins continue from here.
        #expect(try setup.storeFile("last_reserved_ip.0") == address)
        #expect(try setup.addressFiles() == [address])

        // pod-b asks for nothing and gets the next address after the cursor.
        let next = "10.244.1.\(Int(address.split(separator: ".").last!)! + 1)"
        let b = try setup.wire("pod-b", config: InputNetwork.kindnet())
        #expect(b.result.ips?.map(\.address) == ["\(next)/24"])
        let ping = try node.ping(from: "pod-a", to: next)
        #expect(ping.succeeded, "\(ping)")

        try setup.del("pod-a", config: config)
        #expect(try setup.addressFiles() == [next])
        #expect(try node.link(veth) == nil)
    }

    // MARK: Requests that cannot be met

    struct Refusal: Sendable, CustomTestStringConvertible {
        var label: String
        var args: String?
        var extra: String = ""
        var code: Int
        var mentions: [String]
        var testDescription: String { label }
    }

    /// Against the dual-stack network, after pod-z took 10.244.1.2 and fd00:10:244:1::2.
    static let refusals: [Refusal] = [
        Refusal(label: "IPv4 address held by another pod", args: "IgnoreUnknown=1;K8S_POD_NAME=pod-a;IP=10.244.1.2", code: 103,
                mentions: ["requested IP address 10.244.1.2 is already allocated to container pod-z interface eth0"]),
        Refusal(label: "IPv6 address held by another pod, its IPv4 free (undone)", args: "IP=10.244.1.50,fd00:10:244:1::2", code: 103,
                mentions: ["requested IP address fd00:10:244:1::2 is already allocated to container pod-z interface eth0"]),
        Refusal(label: "held address from runtimeConfig.ips", args: nil, extra: #","runtimeConfig":{"ips":["10.244.1.2/24"]}"#,
                code: 103, mentions: ["10.244.1.2 is already allocated to container pod-z"]),
        Refusal(label: "the IPv4 gateway", args: "IP=10.244.1.1", code: 103,
                mentions: ["requested IP address 10.244.1.1 is the gateway of 10.244.1.0/24"]),
        Refusal(label: "the IPv6 gateway, from args.cni.ips", args: nil, extra: #","args":{"cni":{"ips":["fd00:10:244:1::1"]}}"#,
                code: 103, mentions: ["requested IP address fd00:10:244:1::1 is the gateway of fd00:10:244:1::/64"]),
        Refusal(label: "the IPv4 network address", args: "IP=10.244.1.0", code: 103,
                mentions: ["requested IP address 10.244.1.0 is the network address of 10.244.1.0/24"]),
        Refusal(label: "the IPv6 network address", args: "IP=fd00:10:244:1::", code: 103,
                mentions: ["requested IP address fd00:10:244:1:: is the network address of fd00:10:244:1::/64"]),
        Refusal(label: "the broadcast address", args: "IP=10.244.1.255", code: 103,
                mentions: ["requested IP address 10.244.1.255 is the broadcast address of 10.244.1.0/24"]),
        Refusal(label: "outside every range", args: "IP=10.244.9.9", code: 103,
                mentions: ["requested IP address 10.244.9.9 is outside every range set", "10.244.1.2-10.244.1.254"]),
        Refusal(label: "two addresses for one set", args: "IP=10.244.1.50,10.244.1.51", code: 103,
                mentions: ["10.244.1.50 and 10.244.1.51 are both in range set 0"]),
        Refusal(label: "not an address", args: "IgnoreUnknown=1;IP=10.244.1.256", code: 4,
                mentions: ["invalid IP \"10.244.1.256\" in CNI_ARGS"]),
        Refusal(label: "an unknown key without IgnoreUnknown", args: "K8S_POD_NAME=pod-a;IP=10.244.1.50", code: 4,
                mentions: ["unknown CNI_ARGS key K8S_POD_NAME", "IgnoreUnknown=1"]),
        Refusal(label: "ip= in lower case (an unknown key)", args: "ip=10.244.1.50", code: 4,
                mentions: ["unknown CNI_ARGS key ip", "case-sensitive"]),
        Refusal(label: "IgnoreUnknown=0 and an unknown key", args: "IgnoreUnknown=0;K8S_POD_NAME=pod-a", code: 4,
                mentions: ["unknown CNI_ARGS key K8S_POD_NAME"]),
        Refusal(label: "IgnoreUnknown not a boolean", args: "IgnoreUnknown=yes;K8S_POD_NAME=pod-a", code: 4,
                mentions: ["invalid IgnoreUnknown \"yes\""]),
        Refusal(label: "runtimeConfig.ips not an address", args: nil, extra: #","runtimeConfig":{"ips":["10.244.1.2/33"]}"#,
                code: 7, mentions: ["invalid address \"10.244.1.2/33\" in runtimeConfig.ips"]),
    ]

    @Test("a request that cannot be met is refused and leaves nothing behind", arguments: refusals)
    func refused(_ refusal: Refusal) throws {
        let setup = try Node(pods: ["pod-z", "pod-a"])
        let node = setup.node
        let seed = try setup.wire("pod-z", config: InputNetwork.dualStack())
        try #require(seed.result.ips?.map(\.address) == ["10.244.1.2/24", "fd00:10:244:1::2/64"])

        let before = try node.leftovers(pods: ["pod-z", "pod-a"])
        let response = try setup.add("pod-a", args: refusal.args, config: InputNetwork.dualStack(extra: refusal.extra))
        try expectRefused(response, code: refusal.code, mentions: refusal.mentions, node: node, before: before,
                          pods: ["pod-z", "pod-a"])
        #expect(try setup.addressFiles() == ["10.244.1.2", "fd00:10:244:1::2"])
        #expect(try setup.storeFile("10.244.1.2") == "pod-z\r\neth0")
        // A runtime DELs after a failed ADD, with the same CNI_ARGS: only ADD reads them, so this
        // succeeds even for the CNI_ARGS the ADD refused, and leaves pod-z alone.
        try setup.del("pod-a", args: refusal.args, config: InputNetwork.dualStack(extra: refusal.extra))
        #expect(try node.leftovers(pods: ["pod-z", "pod-a"]) == before)
        #expect(try node.ping(from: "pod-z", to: "10.244.1.1").succeeded)
    }

    // MARK: Several ranges in one set

    static let twoRanges = InputNetwork.kindnet(ranges: """
        [[{"subnet":"10.244.1.0/24","rangeStart":"10.244.1.10","rangeEnd":"10.244.1.11"},\
        {"subnet":"10.244.1.0/24","rangeStart":"10.244.1.20","rangeEnd":"10.244.1.21"}]]
        """)

    @Test("a set of two ranges fills the first, spills into the second, then is exhausted cleanly")
    func severalRangesInOneSet() throws {
        let pods = ["pod-1", "pod-2", "pod-3", "pod-4", "pod-5"]
        let setup = try Node(pods: pods)
        let node = setup.node
        var veths: [String] = []
        for (pod, address) in zip(pods, ["10.244.1.10", "10.244.1.11", "10.244.1.20", "10.244.1.21"]) {
            let (result, veth) = try setup.wire(pod, config: Self.twoRanges)
            #expect(result.ips?.map(\.address) == ["\(address)/24"], "\(pod)")
            #expect(result.ips?.first?.gateway == "10.244.1.1")
            #expect(try node.addresses(of: "eth0", inPod: pod).map(\.cidr) == ["\(address)/24"])
            #expect(try node.routes().contains { $0.dst == address && $0.dev == veth })
            #expect(try setup.storeFile(address) == "\(pod)\r\neth0")
            veths.append(veth)
        }
        #expect(try setup.storeFile("last_reserved_ip.0") == "10.244.1.21")
        // Across the gap between the ranges, through the node.
        let ping = try node.ping(from: "pod-2", to: "10.244.1.20")
        #expect(ping.succeeded, "\(ping)")

        // Full: the fifth pod is refused with 102 and nothing of it remains.
        let before = try node.leftovers(pods: pods)
        try expectRefused(try setup.add("pod-5", config: Self.twoRanges), code: 102,
                          mentions: ["no IP addresses available in range set 10.244.1.10-10.244.1.11,10.244.1.20-10.244.1.21"],
                          node: node, before: before, pods: pods)

        // An address between the ranges is outside the set, whatever its subnet says.
        try expectRefused(try setup.add("pod-5", args: "IP=10.244.1.15", config: Self.twoRanges), code: 103,
                          mentions: ["10.244.1.15 is outside every range set"], node: node, before: before, pods: pods)

        // A freed address in the first range is found by wrapping around from the second.
        try setup.del("pod-2", config: Self.twoRanges)
        #expect(try setup.addressFiles() == ["10.244.1.10", "10.244.1.20", "10.244.1.21"])
        let again = try setup.wire("pod-5", config: Self.twoRanges)
        #expect(again.result.ips?.map(\.address) == ["10.244.1.11/24"])
        #expect(try node.ping(from: "pod-5", to: "10.244.1.21").succeeded)
    }

    // MARK: runtimeConfig.ipRanges

    @Test("runtimeConfig.ipRanges is prepended: its set comes first, ipam.ranges after")
    func ipRangesArePrepended() throws {
        let config = InputNetwork.kindnet(extra: #","runtimeConfig":{"ipRanges":[[{"subnet":"10.244.2.0/24"}]]}"#)
        let setup = try Node(pods: ["pod-a", "pod-b"])
        let node = setup.node
        let (result, veth) = try setup.wire("pod-a", config: config)
        let ips = try #require(result.ips)
        #expect(ips.map(\.address) == ["10.244.2.2/24", "10.244.1.2/24"])
        #expect(ips.map(\.gateway) == ["10.244.2.1", "10.244.1.1"])
        #expect(try setup.storeFile("last_reserved_ip.0") == "10.244.2.2")
        #expect(try setup.storeFile("last_reserved_ip.1") == "10.244.1.2")
        #expect(try setup.storeFile("10.244.2.2") == "pod-a\r\neth0")
        #expect(try setup.storeFile("10.244.1.2") == "pod-a\r\neth0")

        #expect(try node.addresses(of: "eth0", inPod: "pod-a").map(\.cidr) == ["10.244.2.2/24", "10.244.1.2/24"])
        #expect(try Set(node.routeLines(inPod: "pod-a")) == [
            "default via 10.244.2.1 dev eth0",
            "10.244.2.0/24 via 10.244.2.1 dev eth0 src 10.244.2.2",
            "10.244.2.1 dev eth0 scope link src 10.244.2.2",
            "10.244.1.0/24 via 10.244.1.1 dev eth0 src 10.244.1.2",
            "10.244.1.1 dev eth0 scope link src 10.244.1.2",
        ])
        #expect(try Set(node.addresses(of: veth).map(\.cidr)) == ["10.244.2.1/32", "10.244.1.1/32"])
        let routes = try node.routes()
        for address in ["10.244.2.2", "10.244.1.2"] {
            #expect(routes.contains { $0.dst == address && $0.dev == veth && $0.scope == "host" }, "\(routes)")
        }

        let b = try setup.wire("pod-b", config: config)
        #expect(b.result.ips?.map(\.address) == ["10.244.2.3/24", "10.244.1.3/24"])
        for target in ["10.244.2.3", "10.244.1.3"] {
            let ping = try node.ping(from: "pod-a", to: target)
            #expect(ping.succeeded, "\(ping)")
        }
    }

    // MARK: Dual-stack

    @Test("dual-stack: each pod gets an IPv4 and an IPv6 address, routes for both, and a usable IPv6 gateway at once")
    func dualStack() throws {
        let config = InputNetwork.dualStack()
        let setup = try Node(pods: ["pod-a", "pod-b"])
        let node = setup.node
        let a = try setup.wire("pod-a", config: config)
        let b = try setup.wire("pod-b", config: config)
        // The first pings go right after the last ADD, before anything else can give DAD time.
        let v6AToB = try node.ping(from: "pod-a", to: "fd00:10:244:1::3")
        let v6BToA = try node.ping(from: "pod-b", to: "fd00:10:244:1::2")
        let v6ToGateway = try node.ping(from: "pod-a", to: "fd00:10:244:1::1")

        for (pod, wired, index) in [("pod-a", a, 2), ("pod-b", b, 3)] {
            let v4 = "10.244.1.\(index)", v6 = "fd00:10:244:1::\(index)"
            let ips = try #require(wired.result.ips)
            #expect(ips.map(\.address) == ["\(v4)/24", "\(v6)/64"])
            #expect(ips.map(\.gateway) == ["10.244.1.1", "fd00:10:244:1::1"])
            #expect(wired.result.routes == [CNIResult.Route(dst: "0.0.0.0/0", gw: nil), CNIResult.Route(dst: "::/0", gw: nil)])

            // Pod side.
            #expect(try node.addresses(of: "eth0", inPod: pod, family: nil).map(\.cidr).filter { !$0.hasPrefix("fe80:") }
                        == ["\(v4)/24", "\(v6)/64"])
            #expect(try node.routeLines(inPod: pod) == [
                "default via 10.244.1.1 dev eth0",
                "10.244.1.0/24 via 10.244.1.1 dev eth0 src \(v4)",
                "10.244.1.1 dev eth0 scope link src \(v4)",
            ])
            let podV6 = try node.ipv6Routes(inPod: pod).map { "\($0.dst) via \($0.gateway ?? "-") dev \($0.dev ?? "-")" }
            #expect(Set(podV6) == [
                "default via fd00:10:244:1::1 dev eth0",
                "fd00:10:244:1::/64 via fd00:10:244:1::1 dev eth0",
                "fd00:10:244:1::1 via - dev eth0",
            ], "\(podV6)")
            let podAddress = try node.addressInfo(of: "eth0", inPod: pod).first { $0["local"] as? String == v6 }
            #expect(podAddress?["tentative"] as? Bool != true, "\(pod)'s \(v6) is still tentative: \(String(describing: podAddress))")

            // Node side: the gateway on the host veth without DAD, a host route per family.
            let veth = wired.veth
            let gateway = try node.addressInfo(of: veth).first { $0["local"] as? String == "fd00:10:244:1::1" }
            #expect(gateway?["prefixlen"] as? Int == 128, "\(String(describing: gateway))")
            #expect(gateway?["tentative"] as? Bool != true, "the host veth's IPv6 gateway is tentative: \(String(describing: gateway))")
            #expect(try Set(node.addresses(of: veth).map(\.cidr)) == ["10.244.1.1/32"])
            #expect(try node.routes().contains { $0.dst == v4 && $0.dev == veth && $0.scope == "host" })
            let nodeV6 = try node.ipv6Routes()
            #expect(nodeV6.contains { $0.dst == v6 && $0.dev == veth && $0.gateway == nil }, "no `\(v6) dev \(veth)` in \(nodeV6)")
            #expect(try setup.storeFile(v4) == "\(pod)\r\neth0")
            #expect(try setup.storeFile(v6) == "\(pod)\r\neth0")
        }
        #expect(try setup.storeFile("last_reserved_ip.0") == "10.244.1.3")
        #expect(try setup.storeFile("last_reserved_ip.1") == "fd00:10:244:1::3")
        #expect(try node.sysctl("net.ipv6.conf.all.forwarding") == "1")
        #expect(try node.sysctl("net.ipv4.ip_forward") == "1")

        #expect(v6ToGateway.succeeded, "\(v6ToGateway)")
        // The node forwards to pod-b only once it can send neighbour solicitations on pod-b's veth,
        // which needs a link-local address there that is no longer tentative.
        let hostLinkLocal = try node.addressInfo(of: b.veth).filter { ($0["local"] as? String)?.hasPrefix("fe80:") == true }
        let neighbours = try node.ipLines(["-6", "neigh", "show"])
        #expect(v6AToB.succeeded, "\(v6AToB)\nnode neighbours: \(neighbours)\nhost veth link-local: \(hostLinkLocal)")
        #expect(v6BToA.succeeded, "\(v6BToA)")
        let v4 = try node.ping(from: "pod-a", to: "10.244.1.3")
        #expect(v4.succeeded, "\(v4)")

        // DEL takes both families away.
        for pod in ["pod-a", "pod-b"] { try setup.del(pod, config: config) }
        #expect(try setup.addressFiles().isEmpty)
        #expect(try node.links().map(\.ifname) == ["lo"])
        let remaining = try node.ipv6Routes()
        #expect(remaining.allSatisfy { !$0.dst.hasPrefix("fd00:") }, "\(remaining)")
    }

    @Test("dual-stack with both addresses requested, from CNI_ARGS and runtimeConfig.ips together")
    func dualStackRequested() throws {
        let config = InputNetwork.dualStack(extra: #","runtimeConfig":{"ips":["fd00:10:244:1::50/64"]}"#)
        let setup = try Node(pods: ["pod-a", "pod-b"])
        let node = setup.node
        let a = try setup.wire("pod-a", args: "IgnoreUnknown=1;K8S_POD_NAME=pod-a;IP=10.244.1.50", config: config)
        #expect(a.result.ips?.map(\.address) == ["10.244.1.50/24", "fd00:10:244:1::50/64"])
        #expect(try node.addresses(of: "eth0", inPod: "pod-a", family: "inet6").map(\.cidr).filter { !$0.hasPrefix("fe80:") }
                    == ["fd00:10:244:1::50/64"])
        #expect(try node.ipv6Routes().contains { $0.dst == "fd00:10:244:1::50" && $0.dev == a.veth })
        #expect(try setup.storeFile("fd00:10:244:1::50") == "pod-a\r\neth0")
        #expect(try setup.storeFile("last_reserved_ip.1") == "fd00:10:244:1::50")

        let b = try setup.wire("pod-b", config: InputNetwork.dualStack())
        #expect(b.result.ips?.map(\.address) == ["10.244.1.51/24", "fd00:10:244:1::51/64"])
    }
}
