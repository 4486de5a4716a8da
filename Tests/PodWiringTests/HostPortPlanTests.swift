import CNIProtocol
import NetAddress
import PodWiring
import Testing

/// The hostPorts of one attachment in kernel terms, computed with no kernel: which node ports
/// go to which pod address (the DNAT maps' elements), which SNAT pairs go with them, and which
/// mappings are refused before anything is touched.
@Suite("HostPortPlan")
struct HostPortPlanTests {
    static let owner = "a0a0a0a0/eth0"
    static let pod4 = IPAddress("10.244.1.2")!
    static let pod6 = IPAddress("fd00:10:244:1::2")!
    static let localhost = IPAddress("127.0.0.1")!
    static let node4 = IPAddress("198.51.100.1")!
    static let node6 = IPAddress("2001:db8::1")!

    static func mapping(_ hostPort: UInt16, to containerPort: UInt16, on hostAddress: PortMapping.HostAddress = .all,
                        proto: PortMapping.TransportProtocol = .tcp) -> PortMapping {
        PortMapping(hostAddress: hostAddress, proto: proto, hostPort: hostPort, containerPort: containerPort)
    }

    static func forward(_ hostPort: UInt16, to pod: IPAddress, _ podPort: UInt16, on hostAddress: IPAddress? = nil,
                        proto: PortMapping.TransportProtocol = .tcp) -> HostPortForward {
        HostPortForward(hostAddress: hostAddress, proto: proto, hostPort: hostPort, pod: pod, podPort: podPort)
    }

    static func pair(_ source: IPAddress, _ destination: IPAddress) -> SNATPair {
        SNATPair(source: source, destination: destination)
    }

    /// The error the plan throws, or nil when it is made.
    static func refusal(_ mappings: [PortMapping], _ addresses: [IPAddress]) -> CNIError? {
        do {
            _ = try HostPortPlan(mappings: mappings, podAddresses: addresses, owner: owner)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Forwards

    @Test("an IPv4 pod: each mapping one forward to the pod, the hairpin and localhost SNAT pairs, route_localnet")
    func ipv4Pod() throws {
        let plan = try HostPortPlan(mappings: [Self.mapping(8080, to: 80), Self.mapping(5353, to: 53, proto: .udp),
                                               Self.mapping(9000, to: 9001, on: .address(Self.node4), proto: .sctp)],
                                    podAddresses: [Self.pod4], owner: Self.owner)
        #expect(plan.owner == Self.owner)
        #expect(plan.forwards == [
            Self.forward(8080, to: Self.pod4, 80),
            Self.forward(5353, to: Self.pod4, 53, proto: .udp),
            Self.forward(9000, to: Self.pod4, 9001, on: Self.node4, proto: .sctp),
        ])
        #expect(plan.snat == [Self.pair(Self.pod4, Self.pod4), Self.pair(Self.localhost, Self.pod4)])
        #expect(plan.needsRouteLocalnet)
        #expect(plan.podAddresses == [Self.pod4])
        #expect(!plan.isEmpty)
    }

    @Test("a dual-stack pod: no hostIP goes to both families, 0.0.0.0 to IPv4 only, :: to IPv6 only, a hostIP to its own family")
    func dualStackPod() throws {
        let plan = try HostPortPlan(mappings: [
            Self.mapping(8080, to: 80),
            Self.mapping(8081, to: 81, on: .allOf(.v4)),
            Self.mapping(8082, to: 82, on: .allOf(.v6)),
            Self.mapping(8083, to: 83, on: .address(Self.node4)),
            Self.mapping(8084, to: 84, on: .address(Self.node6), proto: .udp),
        ], podAddresses: [Self.pod4, Self.pod6], owner: Self.owner)
        #expect(plan.forwards == [
            Self.forward(8080, to: Self.pod4, 80),
            Self.forward(8080, to: Self.pod6, 80),
            Self.forward(8081, to: Self.pod4, 81),
            Self.forward(8082, to: Self.pod6, 82),
            Self.forward(8083, to: Self.pod4, 83, on: Self.node4),
            Self.forward(8084, to: Self.pod6, 84, on: Self.node6, proto: .udp),
        ])
        #expect(plan.forwards.map(\.family) == [.v4, .v6, .v4, .v6, .v4, .v6])
        // IPv6 has no route_localnet (::1 cannot be forwarded): only the hairpin pair.
        #expect(plan.snat == [Self.pair(Self.pod4, Self.pod4), Self.pair(Self.localhost, Self.pod4), Self.pair(Self.pod6, Self.pod6)])
        #expect(plan.needsRouteLocalnet)
        #expect(plan.podAddresses == [Self.pod4, Self.pod6])
    }

    @Test("a dual-stack pod with IPv6-only mappings: SNAT pairs and forwards for IPv6 alone, no route_localnet",
          arguments: [PortMapping.HostAddress.allOf(.v6), .address(IPAddress("2001:db8::1")!)])
    func dualStackPodIPv6Mappings(_ hostAddress: PortMapping.HostAddress) throws {
        let plan = try HostPortPlan(mappings: [Self.mapping(8080, to: 80, on: hostAddress)], podAddresses: [Self.pod4, Self.pod6], owner: Self.owner)
        var hostIP: IPAddress?
        if case .address(let address) = hostAddress { hostIP = address }
        #expect(plan.forwards == [Self.forward(8080, to: Self.pod6, 80, on: hostIP)])
        #expect(plan.snat == [Self.pair(Self.pod6, Self.pod6)])
        #expect(!plan.needsRouteLocalnet)
        #expect(plan.podAddresses == [Self.pod6])
    }

    @Test("a dual-stack pod with IPv4-only mappings: nothing for IPv6")
    func dualStackPodIPv4Mappings() throws {
        let plan = try HostPortPlan(mappings: [Self.mapping(8080, to: 80, on: .allOf(.v4))], podAddresses: [Self.pod6, Self.pod4], owner: Self.owner)
        #expect(plan.forwards == [Self.forward(8080, to: Self.pod4, 80)])
        #expect(plan.snat == [Self.pair(Self.pod4, Self.pod4), Self.pair(Self.localhost, Self.pod4)])
        #expect(plan.needsRouteLocalnet)
    }

    @Test("an IPv6-only pod: the hairpin pair alone, no route_localnet")
    func ipv6Pod() throws {
        let plan = try HostPortPlan(mappings: [Self.mapping(8080, to: 80), Self.mapping(53, to: 53, on: .allOf(.v6), proto: .udp)],
                                    podAddresses: [Self.pod6], owner: Self.owner)
        #expect(plan.forwards == [Self.forward(8080, to: Self.pod6, 80), Self.forward(53, to: Self.pod6, 53, proto: .udp)])
        #expect(plan.snat == [Self.pair(Self.pod6, Self.pod6)])
        #expect(!plan.needsRouteLocalnet)
    }

    @Test("a pod with two addresses of one family: the hostPorts go to the first")
    func firstAddressOfFamily() throws {
        let second = IPAddress("10.245.1.2")!
        let plan = try HostPortPlan(mappings: [Self.mapping(8080, to: 80)], podAddresses: [Self.pod4, second], owner: Self.owner)
        #expect(plan.forwards == [Self.forward(8080, to: Self.pod4, 80)])
        #expect(plan.snat == [Self.pair(Self.pod4, Self.pod4), Self.pair(Self.localhost, Self.pod4)])
        #expect(plan.podAddresses == [Self.pod4])
    }

    @Test("no mappings: an empty plan, no SNAT pair, no route_localnet")
    func noMappings() throws {
        let plan = try HostPortPlan(mappings: [], podAddresses: [Self.pod4, Self.pod6], owner: Self.owner)
        #expect(plan.isEmpty)
        #expect(plan.forwards.isEmpty && plan.snat.isEmpty && plan.podAddresses.isEmpty)
        #expect(!plan.needsRouteLocalnet)
    }

    @Test("the plan follows the parsed portMappings of a config, go-cni's keys included")
    func fromConfig() throws {
        let config = try NetworkConfig.parse(Array("""
            {"cniVersion":"1.0.0","name":"kindnet","type":"podwire","runtimeConfig":{"portMappings":[
             {"HostPort":8080,"ContainerPort":80,"Protocol":"TCP","HostIP":""},
             {"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"0.0.0.0"}]}}
            """.utf8))
        let plan = try HostPortPlan(mappings: try config.requirePortMappings(), podAddresses: [Self.pod4, Self.pod6], owner: Self.owner)
        #expect(plan.forwards.map(\.description) == [
            "0.0.0.0:tcp/8080 -> 10.244.1.2:80",
            "[::]:tcp/8080 -> [fd00:10:244:1::2]:80",
            "0.0.0.0:udp/5353 -> 10.244.1.2:53",
        ])
    }

    // MARK: Refusals

    struct Unreachable: Sendable, CustomTestStringConvertible {
        var label: String
        var mappings: [PortMapping]
        var pod: [IPAddress]
        /// The port as the message names it.
        var port: String
        var details: String

        var testDescription: String { label }
    }

    static let unreachable: [Unreachable] = [
        Unreachable(label: "0.0.0.0 for an IPv6-only pod", mappings: [mapping(8080, to: 80, on: .allOf(.v4))], pod: [pod6],
                    port: "0.0.0.0:tcp/8080", details: "the pod has IPv6 only"),
        Unreachable(label: "an IPv4 hostIP for an IPv6-only pod", mappings: [mapping(53, to: 53, on: .address(node4), proto: .udp)], pod: [pod6],
                    port: "198.51.100.1:udp/53", details: "the pod has IPv6 only"),
        Unreachable(label: ":: for an IPv4-only pod", mappings: [mapping(8080, to: 80, on: .allOf(.v6))], pod: [pod4],
                    port: "tcp/8080", details: "the pod has IPv4 only"),
        Unreachable(label: "an IPv6 hostIP for an IPv4-only pod, after a good mapping",
                    mappings: [mapping(9090, to: 90), mapping(8080, to: 80, on: .address(node6))], pod: [pod4],
                    port: "tcp/8080", details: "the pod has IPv4 only"),
    ]

    @Test("a mapping that covers no family of the pod is refused with code 7, the whole plan with it", arguments: unreachable)
    func refusedFamily(_ row: Unreachable) throws {
        let error = try #require(Self.refusal(row.mappings, row.pod), "the plan was made")
        #expect(error.code == .invalidNetworkConfig)
        #expect(error.message.hasPrefix("hostPort "), "\(error)")
        #expect(error.message.contains(row.port), "\(error)")
        #expect(error.message.hasSuffix(" cannot reach the pod: its hostIP is of a family the pod has no address in"), "\(error)")
        #expect(error.details == row.details)
    }

    @Test("the refusal names the IPv4 port exactly")
    func refusalText() throws {
        let error = try #require(Self.refusal([Self.mapping(8080, to: 80, on: .allOf(.v4))], [Self.pod6]))
        #expect(error.message == "hostPort 0.0.0.0:tcp/8080 cannot reach the pod: its hostIP is of a family the pod has no address in")
    }

    @Test("one node port claimed twice through two spellings of its hostIP, to two container ports, is refused with code 7",
          arguments: [#"[{"hostPort":8080,"containerPort":80},{"hostPort":8080,"containerPort":81,"hostIP":"0.0.0.0"}]"#,
                      #"[{"hostPort":8080,"containerPort":80,"hostIP":"::"},{"hostPort":8080,"containerPort":81}]"#])
    func samePortTwoSpellings(_ list: String) {
        // "" and "0.0.0.0" spell the same key of hp4any for an IPv4 pod: the list is refused
        // before the kernel would refuse the second element (code 100, "File exists").
        do throws(CNIError) {
            let config = try NetworkConfig.parse(Array(#"{"cniVersion":"1.0.0","name":"kindnet","type":"podwire","runtimeConfig":{"portMappings":\#(list)}}"#.utf8))
            let plan = try HostPortPlan(mappings: try config.requirePortMappings(), podAddresses: [Self.pod4, Self.pod6], owner: Self.owner)
            Issue.record("planned \(plan.forwards.map(\.description))")
        } catch {
            #expect(error.code == .invalidNetworkConfig, "\(error)")
        }
    }

    // MARK: Overlaps

    static let overlapping: [(HostPortForward, HostPortForward, Bool, String)] = [
        (forward(8080, to: pod4, 80), forward(8080, to: IPAddress("10.244.1.3")!, 81), true,
         "every address on both sides, another pod and pod port"),
        (forward(8080, to: pod4, 80), forward(8080, to: pod4, 80, on: node4), true, "every address against a hostIP"),
        (forward(8080, to: pod4, 80, on: node4), forward(8080, to: pod4, 80), true, "a hostIP against every address"),
        (forward(8080, to: pod4, 80, on: node4), forward(8080, to: pod4, 90, on: node4), true, "the same hostIP"),
        (forward(8080, to: pod4, 80, on: node4), forward(8080, to: pod4, 80, on: IPAddress("198.51.100.3")!), false, "two hostIPs"),
        (forward(8080, to: pod4, 80), forward(8080, to: pod4, 80, proto: .udp), false, "TCP and UDP"),
        (forward(8080, to: pod4, 80, proto: .sctp), forward(8080, to: pod4, 80, proto: .udp), false, "SCTP and UDP"),
        (forward(8080, to: pod4, 80), forward(8081, to: pod4, 80), false, "two ports"),
        (forward(8080, to: pod4, 80), forward(8080, to: pod6, 80), false, "IPv4 and IPv6, every address"),
        (forward(8080, to: pod6, 80), forward(8080, to: pod6, 80, on: node6), true, "IPv6: every address against a hostIP"),
        (forward(8080, to: pod6, 80, on: node6), forward(8080, to: pod6, 80, on: IPAddress("2001:db8::2")!), false, "IPv6: two hostIPs"),
    ]

    @Test("overlaps: Kubernetes' rule, both ways round", arguments: overlapping.indices)
    func overlaps(_ index: Int) {
        let (a, b, expected, label) = Self.overlapping[index]
        #expect(a.overlaps(b) == expected, "\(label): \(a) / \(b)")
        #expect(b.overlaps(a) == expected, "\(label): \(b) / \(a)")
        #expect(a.overlaps(a))
    }

    // MARK: Descriptions

    @Test("a forward is named as errors and CHECK name it", arguments: [
        (forward(8080, to: pod4, 80), "0.0.0.0:tcp/8080 -> 10.244.1.2:80"),
        (forward(53, to: pod6, 5353, proto: .udp), "[::]:udp/53 -> [fd00:10:244:1::2]:5353"),
        (forward(9000, to: pod4, 9001, on: node4, proto: .sctp), "198.51.100.1:sctp/9000 -> 10.244.1.2:9001"),
        (forward(8080, to: pod6, 80, on: node6), "[2001:db8::1]:tcp/8080 -> [fd00:10:244:1::2]:80"),
    ])
    func description(_ forward: HostPortForward, _ text: String) {
        #expect(forward.description == text)
        #expect("\(forward)" == text)
    }
}
