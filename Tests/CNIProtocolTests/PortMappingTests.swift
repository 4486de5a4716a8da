import CNIProtocol
import NetAddress
import Testing

/// `runtimeConfig.portMappings` as each runtime spells it, read into `PortMapping`s with no
/// kernel: every key and value a runtime can send, and every entry podwire must refuse.
@Suite("PortMapping")
struct PortMappingTests {
    /// The list in `text` (JSON), parsed as `NetworkConfig` would parse it.
    static func parse(_ text: String) throws(CNIError) -> [PortMapping] {
        try PortMapping.parseList(try CNIJSON.parse(Array(text.utf8), what: "test input"))
    }

    /// The error `parse` throws for `text`, or nil when it parses.
    static func refusal(_ text: String) -> CNIError? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error
        }
    }

    /// A config whose `runtimeConfig` is `runtimeConfig` (JSON text).
    static func config(runtimeConfig: String) throws(CNIError) -> NetworkConfig {
        try NetworkConfig.parse(Array(#"{"cniVersion":"1.0.0","name":"kindnet","type":"podwire","runtimeConfig":\#(runtimeConfig)}"#.utf8))
    }

    // MARK: Keys as runtimes spell them

    @Test("containerd's go-cni keys (no JSON tags: HostPort, ContainerPort, Protocol, HostIP)")
    func goCNIKeys() throws {
        let mappings = try Self.parse(#"[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]"#)
        #expect(mappings == [PortMapping(hostAddress: .all, proto: .tcp, hostPort: 8080, containerPort: 80)])
    }

    @Test("CRI-O's and podman's camelCase keys")
    func camelCaseKeys() throws {
        let mappings = try Self.parse(#"[{"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"198.51.100.2"}]"#)
        #expect(mappings == [PortMapping(hostAddress: .address(IPAddress("198.51.100.2")!), proto: .udp, hostPort: 5353, containerPort: 53)])
    }

    @Test("keys are matched without case, as Go's decoder matches them",
          arguments: [#"{"hostport":8080,"containerport":80,"protocol":"tcp","hostip":"198.51.100.2"}"#,
                      #"{"HOSTPORT":8080,"CONTAINERPORT":80,"PROTOCOL":"tcp","HOSTIP":"198.51.100.2"}"#,
                      #"{"hOsTpOrT":8080,"ContainerPORT":80,"ProtoCol":"tcp","HostIp":"198.51.100.2"}"#])
    func keysWithoutCase(_ entry: String) throws {
        #expect(try Self.parse("[\(entry)]")
                == [PortMapping(hostAddress: .address(IPAddress("198.51.100.2")!), proto: .tcp, hostPort: 8080, containerPort: 80)])
    }

    @Test("unknown keys beside the four are ignored (podman sends a range; Kubernetes may grow fields)")
    func unknownKeysIgnored() throws {
        #expect(try Self.parse(#"[{"hostPort":8080,"containerPort":80,"range":1,"name":"http"}]"#)
                == [PortMapping(proto: .tcp, hostPort: 8080, containerPort: 80)])
    }

    // MARK: Protocol

    @Test("the protocol is read without case", arguments: [
        ("tcp", PortMapping.TransportProtocol.tcp), ("TCP", .tcp), ("Tcp", .tcp),
        ("udp", .udp), ("UDP", .udp), ("sctp", .sctp), ("SCTP", .sctp),
    ])
    func protocolWithoutCase(_ text: String, _ expected: PortMapping.TransportProtocol) throws {
        let mappings = try Self.parse(#"[{"hostPort":8080,"containerPort":80,"protocol":"\#(text)"}]"#)
        #expect(mappings.map(\.proto) == [expected])
    }

    @Test("a missing, null or empty protocol is TCP, Kubernetes' default",
          arguments: ["", #","protocol":null"#, #","protocol":"""#])
    func protocolDefaultsToTCP(_ member: String) throws {
        #expect(try Self.parse(#"[{"hostPort":8080,"containerPort":80\#(member)}]"#).map(\.proto) == [.tcp])
    }

    @Test("the protocol numbers are the IP protocol numbers, both ways")
    func protocolNumbers() {
        #expect([PortMapping.TransportProtocol.tcp, .udp, .sctp].map(\.number) == [6, 17, 132])
        for proto in [PortMapping.TransportProtocol.tcp, .udp, .sctp] {
            #expect(PortMapping.TransportProtocol(number: proto.number) == proto)
        }
        #expect(PortMapping.TransportProtocol(number: 1) == nil)
    }

    // MARK: hostIP

    @Test("hostIP: absent, null or empty is every address of every family; an unspecified address is every address of its family; an address is itself",
          arguments: [
              ("", PortMapping.HostAddress.all),
              (#","hostIP":null"#, .all),
              (#","hostIP":"""#, .all),
              (#","hostIP":"0.0.0.0""#, .allOf(.v4)),
              (#","hostIP":"::""#, .allOf(.v6)),
              (#","hostIP":"198.51.100.2""#, .address(IPAddress("198.51.100.2")!)),
              (#","hostIP":"2001:db8::1""#, .address(IPAddress("2001:db8::1")!)),
          ])
    func hostIP(_ member: String, _ expected: PortMapping.HostAddress) throws {
        #expect(try Self.parse(#"[{"hostPort":8080,"containerPort":80\#(member)}]"#).map(\.hostAddress) == [expected])
    }

    @Test("which families each kind of hostIP opens the port on")
    func coverage() {
        #expect(PortMapping.HostAddress.all.covers(.v4) && PortMapping.HostAddress.all.covers(.v6))
        #expect(PortMapping.HostAddress.allOf(.v4).covers(.v4) && !PortMapping.HostAddress.allOf(.v4).covers(.v6))
        #expect(!PortMapping.HostAddress.allOf(.v6).covers(.v4) && PortMapping.HostAddress.allOf(.v6).covers(.v6))
        let v4 = PortMapping.HostAddress.address(IPAddress("198.51.100.2")!)
        let v6 = PortMapping.HostAddress.address(IPAddress("2001:db8::1")!)
        #expect(v4.covers(.v4) && !v4.covers(.v6))
        #expect(!v6.covers(.v4) && v6.covers(.v6))
    }

    @Test("a host port is named in errors as the runtime asked for it")
    func hostText() {
        #expect(PortMapping(proto: .tcp, hostPort: 8080, containerPort: 80).hostText == "tcp/8080")
        #expect(PortMapping(hostAddress: .allOf(.v4), proto: .udp, hostPort: 5353, containerPort: 53).hostText == "0.0.0.0:udp/5353")
        #expect(PortMapping(hostAddress: .address(IPAddress("198.51.100.2")!), proto: .sctp, hostPort: 9000, containerPort: 9000).hostText
                == "198.51.100.2:sctp/9000")
    }

    @Test("an IPv6 hostIP is named in brackets, as HostPortForward names it ([::]:tcp/8080, not :::tcp/8080)")
    func hostTextIPv6() {
        #expect(PortMapping(hostAddress: .allOf(.v6), proto: .tcp, hostPort: 8080, containerPort: 80).hostText == "[::]:tcp/8080")
        #expect(PortMapping(hostAddress: .address(IPAddress("2001:db8::1")!), proto: .tcp, hostPort: 8080, containerPort: 80).hostText
                == "[2001:db8::1]:tcp/8080")
    }

    // MARK: Repeats and clashes

    @Test("a repeated entry is kept once, in first place; the same port by another protocol or on another hostIP is another mapping")
    func repeatsKeptOnce() throws {
        let mappings = try Self.parse("""
            [{"hostPort":8080,"containerPort":80},
             {"hostPort":8080,"containerPort":80,"protocol":"udp"},
             {"HostPort":8080,"ContainerPort":80,"Protocol":"TCP","HostIP":""},
             {"hostPort":8080,"containerPort":80,"hostIP":"198.51.100.2"},
             {"hostPort":8080,"containerPort":80}]
            """)
        #expect(mappings == [
            PortMapping(proto: .tcp, hostPort: 8080, containerPort: 80),
            PortMapping(proto: .udp, hostPort: 8080, containerPort: 80),
            PortMapping(hostAddress: .address(IPAddress("198.51.100.2")!), proto: .tcp, hostPort: 8080, containerPort: 80),
        ])
    }

    @Test("the same host port mapped to two container ports is refused with code 7, naming the port and both container ports",
          arguments: [
              (#"[{"hostPort":8080,"containerPort":80},{"HostPort":8080,"ContainerPort":81}]"#,
               "runtimeConfig.portMappings maps host port tcp/8080 twice, to container ports 80 and 81"),
              (#"[{"hostPort":53,"containerPort":53,"protocol":"udp","hostIP":"198.51.100.2"},{"hostPort":53,"containerPort":5353,"protocol":"UDP","hostIP":"198.51.100.2"}]"#,
               "runtimeConfig.portMappings maps host port 198.51.100.2:udp/53 twice, to container ports 53 and 5353"),
              (#"[{"hostPort":8080,"containerPort":80,"hostIP":"0.0.0.0"},{"hostPort":9090,"containerPort":90},{"hostPort":8080,"containerPort":8080,"hostIP":"0.0.0.0"}]"#,
               "runtimeConfig.portMappings maps host port 0.0.0.0:tcp/8080 twice, to container ports 80 and 8080"),
          ])
    func samePortTwice(_ list: String, _ message: String) throws {
        let error = try #require(Self.refusal(list))
        #expect(error.code == .invalidNetworkConfig)
        #expect(error.message == message)
    }

    // MARK: Bad entries

    struct BadEntry: Sendable, CustomTestStringConvertible {
        var label: String
        /// The second entry of the list (the first is good), JSON text.
        var entry: String
        var message: String
        /// When given, the details must be exactly this.
        var details: String?

        var testDescription: String { label }
    }

    static let portProblem = "must be a port number from 1 to 65535"

    static let badEntries: [BadEntry] = [
        BadEntry(label: "hostPort 0", entry: #"{"hostPort":0,"containerPort":80}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "hostPort" \#(portProblem)"#,
                 details: #"the entry is {"containerPort":80,"hostPort":0}"#),
        BadEntry(label: "hostPort 65536", entry: #"{"hostPort":65536,"containerPort":80}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "hostPort" \#(portProblem)"#,
                 details: #"the entry is {"containerPort":80,"hostPort":65536}"#),
        BadEntry(label: "containerPort 0", entry: #"{"hostPort":8080,"containerPort":0}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "containerPort" \#(portProblem)"#,
                 details: #"the entry is {"containerPort":0,"hostPort":8080}"#),
        BadEntry(label: "containerPort 65536", entry: #"{"HostPort":8080,"ContainerPort":65536}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "containerPort" \#(portProblem)"#,
                 details: #"the entry is {"ContainerPort":65536,"HostPort":8080}"#),
        BadEntry(label: "hostPort 1.5", entry: #"{"hostPort":1.5,"containerPort":80}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "hostPort" \#(portProblem)"#,
                 details: #"the entry is {"containerPort":80,"hostPort":1.5}"#),
        BadEntry(label: "hostPort -80", entry: #"{"hostPort":-80,"containerPort":80}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "hostPort" \#(portProblem)"#),
        BadEntry(label: "hostPort as a string", entry: #"{"hostPort":"8080","containerPort":80}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "hostPort" \#(portProblem)"#,
                 details: #"the entry is {"containerPort":80,"hostPort":"8080"}"#),
        BadEntry(label: "containerPort as a string", entry: #"{"hostPort":8080,"containerPort":"http"}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "containerPort" \#(portProblem)"#),
        BadEntry(label: "no hostPort", entry: #"{"containerPort":80}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "hostPort" \#(portProblem)"#,
                 details: #"the entry is {"containerPort":80}"#),
        BadEntry(label: "no containerPort", entry: #"{"hostPort":8080}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "containerPort" \#(portProblem)"#),
        BadEntry(label: "null hostPort", entry: #"{"hostPort":null,"containerPort":80}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "hostPort" \#(portProblem)"#),
        BadEntry(label: "unknown protocol", entry: #"{"hostPort":8080,"containerPort":80,"protocol":"icmp"}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: unknown protocol "icmp""#,
                 details: "protocol is tcp, udp or sctp"),
        BadEntry(label: "protocol as a number", entry: #"{"hostPort":8080,"containerPort":80,"protocol":6}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "protocol" must be a string"#),
        BadEntry(label: "hostIP not an address", entry: #"{"hostPort":8080,"containerPort":80,"hostIP":"node-a"}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: hostIP "node-a" is not an IP address"#),
        BadEntry(label: "hostIP a CIDR", entry: #"{"hostPort":8080,"containerPort":80,"hostIP":"198.51.100.0/24"}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: hostIP "198.51.100.0/24" is not an IP address"#),
        BadEntry(label: "hostIP with a port", entry: #"{"hostPort":8080,"containerPort":80,"hostIP":"198.51.100.2:8080"}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: hostIP "198.51.100.2:8080" is not an IP address"#),
        BadEntry(label: "hostIP as a number", entry: #"{"hostPort":8080,"containerPort":80,"hostIP":3325256706}"#,
                 message: #"invalid runtimeConfig.portMappings entry 1: "hostIP" must be a string"#),
        BadEntry(label: "an entry that is a number", entry: "8080",
                 message: "invalid runtimeConfig.portMappings entry 1: expected an object"),
        BadEntry(label: "an entry that is a string", entry: #""8080:80/tcp""#,
                 message: "invalid runtimeConfig.portMappings entry 1: expected an object"),
        BadEntry(label: "an entry that is a list", entry: "[8080,80]",
                 message: "invalid runtimeConfig.portMappings entry 1: expected an object"),
        BadEntry(label: "an entry that is null", entry: "null",
                 message: "invalid runtimeConfig.portMappings entry 1: expected an object"),
    ]

    @Test("every bad entry is refused with code 7, naming the entry by its place in the list", arguments: badEntries)
    func badEntry(_ row: BadEntry) throws {
        let error = try #require(Self.refusal(#"[{"hostPort":9090,"containerPort":90},\#(row.entry)]"#), "the list was accepted")
        #expect(error.code == .invalidNetworkConfig)
        #expect(error.message == row.message)
        if let details = row.details { #expect(error.details == details) }
    }

    @Test("the first bad entry is the one named", arguments: [0, 2])
    func firstBadEntryNamed(_ index: Int) throws {
        var entries = Array(repeating: #"{"hostPort":9090,"containerPort":90}"#, count: 3)
        entries[index] = #"{"hostPort":0,"containerPort":90}"#
        entries.append(#"{"hostPort":8080,"containerPort":80,"protocol":"gre"}"#)
        let error = try #require(Self.refusal("[" + entries.joined(separator: ",") + "]"))
        #expect(error.message.hasPrefix("invalid runtimeConfig.portMappings entry \(index): "), "\(error)")
    }

    @Test("a portMappings that is not a list is refused with code 7",
          arguments: [#"{"hostPort":8080,"containerPort":80}"#, #""8080:80""#, "8080", "true"])
    func notAList(_ value: String) throws {
        let error = try #require(Self.refusal(value))
        #expect(error.code == .invalidNetworkConfig)
        #expect(error.message == "invalid runtimeConfig.portMappings: expected a list")
        #expect(error.details == #"e.g. [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]"#)
    }

    @Test("an empty list maps nothing")
    func emptyList() throws {
        #expect(try Self.parse("[]").isEmpty)
    }

    @Test("an entry with one field spelled twice in different case is refused, not read one way or the other at random")
    func fieldSpelledTwice() {
        // Read either way, the port would depend on the dictionary's order, which changes from
        // one process to the next: a CHECK or DEL could read another port than its ADD did.
        let list = #"[{"hostPort":8080,"HostPort":9090,"containerPort":80}]"#
        #expect(Self.refusal(list)?.code == .invalidNetworkConfig, "parsed as \(String(describing: try? Self.parse(list)))")
    }

    // MARK: In a NetworkConfig

    @Test("NetworkConfig reads runtimeConfig.portMappings; requirePortMappings hands them to ADD and CHECK")
    func inNetworkConfig() throws {
        let config = try Self.config(runtimeConfig: #"{"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}],"bandwidth":{}}"#)
        let expected = [PortMapping(proto: .tcp, hostPort: 8080, containerPort: 80)]
        #expect(config.portMappings == expected)
        #expect(try config.requirePortMappings() == expected)
    }

    @Test("no runtimeConfig, none with portMappings, or portMappings null: no hostPorts",
          arguments: [nil, "{}", #"{"portMappings":null}"#, #"{"portMappings":[]}"#])
    func noMappings(_ runtimeConfig: String?) throws {
        let config = if let runtimeConfig {
            try Self.config(runtimeConfig: runtimeConfig)
        } else {
            try NetworkConfig.parse(Array(#"{"cniVersion":"1.0.0","name":"kindnet","type":"podwire"}"#.utf8))
        }
        #expect(config.portMappings.isEmpty)
        #expect(try config.requirePortMappings().isEmpty)
    }

    @Test("a config with a bad portMappings still parses (DEL must not be refused), and requirePortMappings refuses it with code 7",
          arguments: [#"{"hostPort":8080}"#,
                      #"[{"hostPort":8080,"containerPort":80},{"hostPort":0,"containerPort":80}]"#,
                      #"[{"hostPort":8080,"containerPort":80},{"hostPort":8080,"containerPort":81}]"#])
    func badListInConfig(_ list: String) throws {
        let config = try Self.config(runtimeConfig: #"{"portMappings":\#(list)}"#)
        #expect(config.portMappings.isEmpty)
        let expected = try #require(Self.refusal(list))
        #expect(expected.code == .invalidNetworkConfig)
        #expect(throws: expected) { try config.requirePortMappings() }
    }
}
