import Foundation
import Testing

/// Bad input through the real binary, one table row per input a runtime or an administrator could
/// get wrong. Every row must be refused with exit status 1 and exactly one CNI error object on
/// stdout, with the code the README's error table gives and a message naming the problem, and
/// must leave the node exactly as it found it: no veth, no address, no route, no address file,
/// no index entry, nothing written outside the store.
@Suite("Bad input: refused with the right code, nothing left behind", .serialized,
       .needs(.namespaces))
struct BadInputTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var label: String
        var code: Int
        /// Each must appear in the error's msg or details.
        var mentions: [String]
        /// Changes to pod-a's ADD environment; nil removes the variable.
        var environment: [String: String?] = [:]
        /// The config on stdin; the Kindnet network when nil.
        var config: String? = nil
        /// A shell script run in the node before the snapshot (files to point CNI_NETNS at, mounts).
        var prepare: String? = nil
        /// Raw stdin bytes, for what a Swift String cannot hold (invalid UTF-8); wins over `config`.
        var stdinBytes: [UInt8]? = nil

        var testDescription: String { label }
    }

    static let kindnet = InputNetwork.kindnet()

    /// Runs one row on a fresh node holding pod-a; returns the node for extra checks.
    @discardableResult
    func refuse(_ row: Row, sourceLocation: SourceLocation = #_sourceLocation) throws -> TestNode {
        let node = try TestNode()
        try node.addPod("pod-a")
        try node.shell("mkdir -p \(InputNetwork.outside) && printf precious > \(InputNetwork.outside)/precious")
        if let prepare = row.prepare { try node.shell(prepare) }
        let before = try node.leftovers(pods: ["pod-a"])
        var invocation = RawInvocation.add(config: row.config ?? Self.kindnet).with(row.environment)
        if let bytes = row.stdinBytes { invocation.stdin = Data(bytes) }
        let response = try invocation.run(on: node, sourceLocation: sourceLocation)
        try expectRefused(response, code: row.code, mentions: row.mentions, node: node, before: before, pods: ["pod-a"],
                          sourceLocation: sourceLocation)
        #expect(try node.readFile("\(InputNetwork.outside)/precious") == "precious", sourceLocation: sourceLocation)
        return node
    }

    /// Without this, a broken base invocation would make every row "pass" for the wrong reason, and
    /// a snapshot blind to what an ADD leaves would make "nothing left behind" vacuous.
    @Test("the unaltered invocation succeeds, and the snapshot sees everything it leaves")
    func baseInvocationSucceeds() throws {
        let node = try TestNode()
        try node.addPod("pod-a")
        let before = try node.leftovers(pods: ["pod-a"])
        #expect(before.nodeLinks == ["lo"] && before.storeFiles.isEmpty && before.pods["pod-a"] == ["lo"], "\(before)")
        let response = try RawInvocation.add(config: Self.kindnet).run(on: node)
        let result = try CNIRunner(node: node, plugin: InputNetwork.podwire).expectAddSucceeded(response)
        #expect(result.ips?.map(\.address) == ["10.244.1.2/24"])
        #expect(try node.readFile("\(InputNetwork.store)/10.244.1.2") == "pod-a\r\neth0")

        let after = try node.leftovers(pods: ["pod-a"])
        let veth = try #require(result.interfaces?.first?.name)
        #expect(after.nodeLinks == ["lo", veth])
        #expect(after.nodeAddresses.contains("\(veth) 10.244.1.1/32"))
        #expect(after.nodeRoutes.contains("10.244.1.2 dev \(veth) scope host"))
        #expect(after.pods["pod-a"]?.contains("eth0 10.244.1.2/24") == true, "\(after)")
        #expect(after.pods["pod-a"]?.contains("default via 10.244.1.1 dev eth0") == true, "\(after)")
        #expect(after.storeFiles == ["networks/kindnet/.podwire/pod-a:eth0 (f)", "networks/kindnet/10.244.1.2 (f)"])
    }

    // MARK: CNI_* variables

    static let environmentRows: [Row] = [
        Row(label: "CNI_COMMAND empty", code: 4, mentions: ["CNI_COMMAND"], environment: ["CNI_COMMAND": ""]),
        Row(label: "CNI_COMMAND unknown", code: 4, mentions: ["unknown CNI_COMMAND: ATTACH"], environment: ["CNI_COMMAND": "ATTACH"]),
        Row(label: "CNI_COMMAND lower case", code: 4, mentions: ["unknown CNI_COMMAND: add"], environment: ["CNI_COMMAND": "add"]),
        Row(label: "CNI_CONTAINERID missing", code: 4, mentions: ["[CNI_CONTAINERID] missing"], environment: ["CNI_CONTAINERID": nil]),
        Row(label: "CNI_NETNS missing", code: 4, mentions: ["[CNI_NETNS] missing"], environment: ["CNI_NETNS": nil]),
        Row(label: "CNI_IFNAME missing", code: 4, mentions: ["[CNI_IFNAME] missing"], environment: ["CNI_IFNAME": nil]),
        Row(label: "all three missing, listed together", code: 4, mentions: ["[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"],
            environment: ["CNI_CONTAINERID": nil, "CNI_NETNS": nil, "CNI_IFNAME": nil]),
        Row(label: "CNI_CONTAINERID empty", code: 4, mentions: ["[CNI_CONTAINERID] missing"], environment: ["CNI_CONTAINERID": ""]),
        Row(label: "container ID with a slash", code: 4, mentions: ["invalid CNI_CONTAINERID \"../pod-a\""],
            environment: ["CNI_CONTAINERID": "../pod-a"]),
        Row(label: "container ID with a space", code: 4, mentions: ["invalid CNI_CONTAINERID \"pod a\""],
            environment: ["CNI_CONTAINERID": "pod a"]),
        Row(label: "container ID with a colon", code: 4, mentions: ["invalid CNI_CONTAINERID \"pod:a\""],
            environment: ["CNI_CONTAINERID": "pod:a"]),
        Row(label: "container ID starting with a dash", code: 4, mentions: ["invalid CNI_CONTAINERID \"-pod\"", "must start with a letter or digit"],
            environment: ["CNI_CONTAINERID": "-pod"]),
        Row(label: "container ID with a newline", code: 4, mentions: ["invalid CNI_CONTAINERID"],
            environment: ["CNI_CONTAINERID": "pod\na"]),
        Row(label: "ifname of 16 bytes", code: 4, mentions: ["invalid CNI_IFNAME \"eth0123456789abc\"", "longer than 15 bytes"],
            environment: ["CNI_IFNAME": "eth0123456789abc"]),
        Row(label: "ifname with a slash", code: 4, mentions: ["invalid CNI_IFNAME \"eth/0\""], environment: ["CNI_IFNAME": "eth/0"]),
        Row(label: "ifname with a colon", code: 4, mentions: ["invalid CNI_IFNAME \"eth0:1\""], environment: ["CNI_IFNAME": "eth0:1"]),
        Row(label: "ifname with a space", code: 4, mentions: ["invalid CNI_IFNAME \"eth 0\""], environment: ["CNI_IFNAME": "eth 0"]),
        Row(label: "ifname with a tab", code: 4, mentions: ["invalid CNI_IFNAME"], environment: ["CNI_IFNAME": "eth\t0"]),
        Row(label: "ifname .", code: 4, mentions: ["invalid CNI_IFNAME \".\"", "reserved name"], environment: ["CNI_IFNAME": "."]),
        Row(label: "ifname ..", code: 4, mentions: ["invalid CNI_IFNAME \"..\"", "reserved name"], environment: ["CNI_IFNAME": ".."]),
        Row(label: "CNI_NETNS relative", code: 4, mentions: ["invalid CNI_NETNS \"run/netns/pod-a\"", "not an absolute path"],
            environment: ["CNI_NETNS": "run/netns/pod-a"]),
        Row(label: "CNI_NETNS a regular file", code: 4, mentions: ["CNI_NETNS /run/plain-file is not a usable network namespace"],
            environment: ["CNI_NETNS": "/run/plain-file"], prepare: "touch /run/plain-file"),
        Row(label: "CNI_NETNS a directory", code: 4, mentions: ["CNI_NETNS /run/netns is not a usable network namespace"],
            environment: ["CNI_NETNS": "/run/netns"]),
        Row(label: "CNI_NETNS missing path", code: 3, mentions: ["network namespace /run/netns/gone does not exist"],
            environment: ["CNI_NETNS": "/run/netns/gone"]),
        Row(label: "CNI_ARGS pair without =", code: 4, mentions: ["invalid CNI_ARGS pair \"K8S_POD_NAME\""],
            environment: ["CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME"]),
        Row(label: "CNI_ARGS unknown key without IgnoreUnknown", code: 4, mentions: ["unknown CNI_ARGS key K8S_POD_NAME", "IgnoreUnknown=1"],
            environment: ["CNI_ARGS": "K8S_POD_NAME=web-0"]),
        Row(label: "CNI_ARGS IP not an address", code: 4, mentions: ["invalid IP \"10.244.1.300\" in CNI_ARGS"],
            environment: ["CNI_ARGS": "IgnoreUnknown=1;IP=10.244.1.300"]),
    ]

    @Test("a bad CNI_* variable is refused", arguments: environmentRows)
    func environment(_ row: Row) throws {
        try refuse(row)
    }

    /// The Go skel's behaviour, kept: with no CNI_COMMAND at all the binary was run by hand, so it
    /// says what it is on stderr and exits 0, with stdout empty (no runtime reads it as a result).
    @Test("no CNI_COMMAND at all: the about text on stderr, nothing on stdout, nothing done")
    func noCommand() throws {
        let node = try TestNode()
        try node.addPod("pod-a")
        let before = try node.leftovers(pods: ["pod-a"])
        let response = try RawInvocation.add(config: Self.kindnet).with(["CNI_COMMAND": nil]).run(on: node)
        #expect(response.status == 0, "\(response)")
        #expect(response.stdout.isEmpty, "\(response)")
        #expect(response.stderr.contains("CNI protocol versions supported"), "\(response)")
        #expect(try node.leftovers(pods: ["pod-a"]) == before)
    }

    // MARK: stdin

    static let documentRows: [Row] = [
        Row(label: "empty stdin", code: 6, mentions: ["cannot decode the network configuration"], config: ""),
        Row(label: "not JSON", code: 6, mentions: ["cannot decode the network configuration"], config: "name: kindnet\n"),
        Row(label: "truncated JSON", code: 6, mentions: ["cannot decode"], config: String(kindnet.dropLast(3))),
        Row(label: "two documents", code: 6, mentions: ["cannot decode"], config: kindnet + kindnet),
        Row(label: "a JSON list", code: 6, mentions: ["not a JSON object"], config: "[" + kindnet + "]"),
        Row(label: "a JSON string", code: 6, mentions: ["not a JSON object"], config: #""kindnet""#),
        Row(label: "nested 100000 deep", code: 6, mentions: ["cannot decode"],
            config: String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)),
        Row(label: "invalid UTF-8", code: 6, mentions: ["cannot decode"],
            stdinBytes: Array(InputNetwork.kindnet(name: "kind~net").utf8).map { $0 == UInt8(ascii: "~") ? 0xFF : $0 }),
    ]

    @Test("stdin that is not one JSON object is refused", arguments: documentRows)
    func document(_ row: Row) throws {
        try refuse(row)
    }

    // MARK: Network config

    static func ranges(_ range: String) -> String { InputNetwork.kindnet(ranges: "[[\(range)]]") }

    static let configRows: [Row] = [
        Row(label: "cniVersion podwire does not speak", code: 1, mentions: ["incompatible CNI versions", "9.9.9"],
            config: kindnet.replacingOccurrences(of: #""cniVersion":"1.0.0""#, with: #""cniVersion":"9.9.9""#)),
        Row(label: "missing name", code: 7, mentions: ["missing \"name\""],
            config: kindnet.replacingOccurrences(of: #""name":"kindnet","#, with: "")),
        Row(label: "empty name", code: 7, mentions: ["\"name\""], config: InputNetwork.kindnet(name: "")),
        Row(label: "name not a string", code: 7, mentions: ["\"name\""],
            config: kindnet.replacingOccurrences(of: #""name":"kindnet""#, with: #""name":7"#)),
        Row(label: "name ../x escapes dataDir", code: 7, mentions: ["invalid network name \"../x\""],
            config: InputNetwork.kindnet(name: "../x")),
        Row(label: "name ../../x escapes /run", code: 7, mentions: ["invalid network name \"../../x\""],
            config: InputNetwork.kindnet(name: "../../x")),
        Row(label: "name a/b", code: 7, mentions: ["invalid network name \"a/b\""], config: InputNetwork.kindnet(name: "a/b")),
        Row(label: "name ..", code: 7, mentions: ["invalid network name \"..\""], config: InputNetwork.kindnet(name: "..")),
        Row(label: "name with NUL (\\u0000)", code: 7, mentions: ["invalid network name"],
            config: InputNetwork.kindnet(name: #"kind\u0000net"#)),
        Row(label: "missing type", code: 7, mentions: ["missing \"type\""],
            config: kindnet.replacingOccurrences(of: #""type":"podwire","#, with: "")),
        Row(label: "mtu out of range", code: 7, mentions: ["invalid mtu 10"],
            config: kindnet.replacingOccurrences(of: #""mtu":1500"#, with: #""mtu":10"#)),
        Row(label: "mtu not a number", code: 7, mentions: ["\"mtu\""],
            config: kindnet.replacingOccurrences(of: #""mtu":1500"#, with: #""mtu":"1500""#)),
        Row(label: "no ipam section", code: 7, mentions: ["ipam"],
            config: #"{"cniVersion":"1.0.0","name":"kindnet","type":"podwire"}"#),
        Row(label: "ipam not an object", code: 7, mentions: ["ipam"],
            config: #"{"cniVersion":"1.0.0","name":"kindnet","type":"podwire","ipam":"podwire-ipam"}"#),
        Row(label: "ipam without type", code: 7, mentions: ["missing \"ipam.type\""],
            config: #"{"cniVersion":"1.0.0","name":"kindnet","type":"podwire","ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]]}}"#),
        Row(label: "no ranges", code: 7, mentions: ["no IP ranges"], config: InputNetwork.kindnet(ranges: "[]")),
        Row(label: "ranges not a list", code: 7, mentions: ["invalid ipam.ranges"], config: InputNetwork.kindnet(ranges: #""10.244.1.0/24""#)),
        Row(label: "an empty range set", code: 7, mentions: ["range set 0", "has no ranges"], config: InputNetwork.kindnet(ranges: "[[]]")),
        Row(label: "missing subnet", code: 7, mentions: ["missing \"subnet\""], config: ranges(#"{"rangeStart":"10.244.1.10"}"#)),
        Row(label: "subnet not CIDR", code: 7, mentions: ["invalid subnet \"banana\""], config: ranges(#"{"subnet":"banana"}"#)),
        Row(label: "subnet without prefix", code: 7, mentions: ["invalid subnet \"10.244.1.0\""], config: ranges(#"{"subnet":"10.244.1.0"}"#)),
        Row(label: "subnet prefix too long", code: 7, mentions: ["invalid subnet \"10.244.1.0/33\""], config: ranges(#"{"subnet":"10.244.1.0/33"}"#)),
        Row(label: "subnet not a string", code: 7, mentions: ["invalid subnet 24"], config: ranges(#"{"subnet":24}"#)),
        Row(label: "subnet with host bits", code: 7, mentions: ["10.244.1.5/24 has host bits set", "10.244.1.0/24"],
            config: ranges(#"{"subnet":"10.244.1.5/24"}"#)),
        Row(label: "subnet /31", code: 7, mentions: ["10.244.1.0/31 is too small"], config: ranges(#"{"subnet":"10.244.1.0/31"}"#)),
        Row(label: "subnet /32", code: 7, mentions: ["10.244.1.0/32 is too small"], config: ranges(#"{"subnet":"10.244.1.0/32"}"#)),
        Row(label: "subnet /127", code: 7, mentions: ["fd00:10:244:1::/127 is too small"], config: ranges(#"{"subnet":"fd00:10:244:1::/127"}"#)),
        Row(label: "rangeStart outside the subnet", code: 7, mentions: ["rangeStart 10.244.2.10 is outside subnet 10.244.1.0/24"],
            config: ranges(#"{"subnet":"10.244.1.0/24","rangeStart":"10.244.2.10"}"#)),
        Row(label: "rangeEnd outside the subnet", code: 7, mentions: ["rangeEnd 10.244.2.10 is outside subnet 10.244.1.0/24"],
            config: ranges(#"{"subnet":"10.244.1.0/24","rangeEnd":"10.244.2.10"}"#)),
        Row(label: "gateway outside the subnet", code: 7, mentions: ["gateway 10.244.2.1 is outside subnet 10.244.1.0/24"],
            config: ranges(#"{"subnet":"10.244.1.0/24","gateway":"10.244.2.1"}"#)),
        Row(label: "rangeStart after rangeEnd", code: 7, mentions: ["rangeStart 10.244.1.20 is after rangeEnd 10.244.1.10"],
            config: ranges(#"{"subnet":"10.244.1.0/24","rangeStart":"10.244.1.20","rangeEnd":"10.244.1.10"}"#)),
        Row(label: "a range of only the gateway", code: 7, mentions: ["has no address to hand out"],
            config: ranges(#"{"subnet":"10.244.1.0/24","rangeStart":"10.244.1.1","rangeEnd":"10.244.1.1"}"#)),
        Row(label: "rangeStart not an address", code: 7, mentions: ["invalid rangeStart \"10.244.1\""],
            config: ranges(#"{"subnet":"10.244.1.0/24","rangeStart":"10.244.1"}"#)),
        Row(label: "rangeStart of the other family", code: 7, mentions: ["rangeStart fd00::5 is not the same address family"],
            config: ranges(#"{"subnet":"10.244.1.0/24","rangeStart":"fd00::5"}"#)),
        Row(label: "IPv4 and IPv6 in one set", code: 7, mentions: ["mixes IPv4 and IPv6"],
            config: InputNetwork.kindnet(ranges: "[[\(#"{"subnet":"10.244.1.0/24"},{"subnet":"fd00:10:244:1::/64"}"#)]]")),
        Row(label: "overlapping ranges in one set", code: 7, mentions: ["overlap"],
            config: ranges(#"{"subnet":"10.244.1.0/24"},{"subnet":"10.244.1.0/25"}"#)),
        Row(label: "overlapping range sets", code: 7, mentions: ["range set 0", "overlaps range set 1"],
            config: InputNetwork.kindnet(ranges: #"[[{"subnet":"10.244.1.0/24"}],[{"subnet":"10.244.1.128/25"}]]"#)),
        Row(label: "routes not a list", code: 7, mentions: ["invalid ipam.routes"],
            config: InputNetwork.kindnet(routes: #""0.0.0.0/0""#)),
        Row(label: "route dst not CIDR", code: 7, mentions: ["invalid ipam.routes"],
            config: InputNetwork.kindnet(routes: #"[{"dst":"default"}]"#)),
        Row(label: "dataDir not a string", code: 7, mentions: ["invalid ipam.dataDir"],
            config: kindnet.replacingOccurrences(of: #""dataDir":"\#(InputNetwork.dataDir)""#, with: #""dataDir":5"#)),
        Row(label: "args.cni.ips not addresses", code: 7, mentions: ["invalid address \"banana\" in args.cni.ips"],
            config: InputNetwork.kindnet(extra: #","args":{"cni":{"ips":["banana"]}}"#)),
        Row(label: "runtimeConfig.ipRanges not a list", code: 7, mentions: ["invalid runtimeConfig.ipRanges"],
            config: InputNetwork.kindnet(extra: #","runtimeConfig":{"ipRanges":{"subnet":"10.244.2.0/24"}}"#)),
        Row(label: "an IPAM plugin not on CNI_PATH", code: 7, mentions: ["failed to find plugin \"no-such-ipam\""],
            config: kindnet.replacingOccurrences(of: #""type":"podwire-ipam""#, with: #""type":"no-such-ipam""#)),
        Row(label: "CNI_PATH missing with a delegated IPAM", code: 4, mentions: ["[CNI_PATH] missing", "host-local"],
            environment: ["CNI_PATH": nil],
            config: kindnet.replacingOccurrences(of: #""type":"podwire-ipam""#, with: #""type":"host-local""#)),
        Row(label: "an IPAM type that is a path", code: 7, mentions: ["invalid plugin type \"../../bin/sh\""],
            config: kindnet.replacingOccurrences(of: #""type":"podwire-ipam""#, with: #""type":"../../bin/sh""#)),
    ]

    @Test("an invalid network config is refused", arguments: configRows)
    func config(_ row: Row) throws {
        try refuse(row)
    }

    // MARK: Unwritable store

    @Test("a dataDir on a read-only mount: code 5 naming the path")
    func readOnlyDataDir() throws {
        try refuse(Row(label: "read-only", code: 5, mentions: ["/run/ro/networks", "Read-only file system"],
                       config: InputNetwork.kindnet(dataDir: "/run/ro/networks"),
                       prepare: "mkdir /run/ro && mount -t tmpfs -o ro tmpfs /run/ro"))
    }

    @Test("a store made read-only after the first pod: code 5 naming the address file, pod-b not wired")
    func storeTurnedReadOnly() throws {
        let node = try TestNode()
        let config = InputNetwork.kindnet(dataDir: "/run/ro/networks")
        try node.shell("mkdir /run/ro && mount -t tmpfs tmpfs /run/ro")
        let cni = CNIRunner(node: node, plugin: InputNetwork.podwire)
        for pod in ["pod-a", "pod-b"] { try node.addPod(pod) }
        try cni.expectAddSucceeded(try RawInvocation.add(pod: "pod-a", config: config).run(on: node))
        // A bind remount: it changes only this mount, which an unprivileged user namespace may do.
        try node.shell("mount -o remount,bind,ro /run/ro")

        let before = try node.leftovers(pods: ["pod-a", "pod-b"])
        let response = try RawInvocation.add(pod: "pod-b", config: config).run(on: node)
        try expectRefused(response, code: 5, mentions: ["/run/ro/networks/kindnet/10.244.1.3", "Read-only file system"],
                          node: node, before: before, pods: ["pod-a", "pod-b"])
        #expect(try node.filesBelow("/run/ro/networks/kindnet").contains("10.244.1.2 (f)"))
        #expect(try node.ping(from: "pod-a", to: "10.244.1.1").succeeded, "pod-a must be untouched")
    }

    // MARK: Damaged or hostile store

    enum StoreOutcome: Sendable {
        /// ADD fails with this code and message; nothing is left behind.
        case refused(code: Int, mentions: [String])
        /// ADD succeeds with this address; what was planted stays as it was.
        case allocates(String)
    }

    struct StoreRow: Sendable, CustomTestStringConvertible {
        var label: String
        /// Shell run after pod-z took 10.244.1.2 (so last_reserved_ip.0 is 10.244.1.2); `$S` is the store.
        var plant: String
        var outcome: StoreOutcome
        var args: String? = nil

        var testDescription: String { label }
    }

    static let target = "\(InputNetwork.outside)/precious"

    static let storeRows: [StoreRow] = [
        StoreRow(label: "address file a symlink to a file outside", plant: "ln -s \(target) $S/10.244.1.3",
                 outcome: .allocates("10.244.1.4")),
        StoreRow(label: "address file a dangling symlink", plant: "ln -s \(InputNetwork.outside)/created $S/10.244.1.3",
                 outcome: .allocates("10.244.1.4")),
        StoreRow(label: "requested address behind a symlink", plant: "ln -s \(target) $S/10.244.1.50",
                 outcome: .refused(code: 103, mentions: ["10.244.1.50 is already allocated to an unrecognised record"]),
                 args: "IP=10.244.1.50"),
        StoreRow(label: "network directory a symlink",
                 plant: "mv $S \(InputNetwork.outside)/moved && ln -s \(InputNetwork.outside)/moved $S",
                 outcome: .refused(code: 5, mentions: ["refusing to follow the symbolic link \(InputNetwork.store)"])),
        StoreRow(label: "last_reserved_ip.0 a symlink", plant: "rm $S/last_reserved_ip.0 && ln -s \(target) $S/last_reserved_ip.0",
                 outcome: .refused(code: 5, mentions: ["refusing to follow the symbolic link \(InputNetwork.store)/last_reserved_ip.0"])),
        StoreRow(label: "last_reserved_ip.0 a symlink, address requested",
                 plant: "rm $S/last_reserved_ip.0 && ln -s \(target) $S/last_reserved_ip.0",
                 outcome: .refused(code: 5, mentions: ["refusing to follow the symbolic link \(InputNetwork.store)/last_reserved_ip.0"]),
                 args: "IP=10.244.1.50"),
        StoreRow(label: "lock a symlink", plant: "rm $S/lock && ln -s \(target) $S/lock",
                 outcome: .refused(code: 5, mentions: ["refusing to follow the symbolic link \(InputNetwork.store)/lock"])),
        StoreRow(label: "index directory a symlink",
                 plant: "mv $S/.podwire \(InputNetwork.outside)/index && ln -s \(InputNetwork.outside)/index $S/.podwire",
                 outcome: .refused(code: 5, mentions: ["refusing to follow the symbolic link \(InputNetwork.store)/.podwire"])),
        StoreRow(label: "index stamp a symlink", plant: "rm $S/.podwire/stamp && ln -s \(target) $S/.podwire/stamp",
                 outcome: .refused(code: 5, mentions: ["refusing to follow the symbolic link \(InputNetwork.store)/.podwire/stamp"])),
        StoreRow(label: "the pod's index entry a symlink", plant: "ln -s \(target) $S/.podwire/pod-a:eth0",
                 outcome: .refused(code: 5, mentions: ["refusing to follow the symbolic link \(InputNetwork.store)/.podwire/pod-a:eth0"])),
        StoreRow(label: "garbage in an address file", plant: #"printf '\000\001garbage\r\n\r\n' > $S/10.244.1.3"#,
                 outcome: .allocates("10.244.1.4")),
        StoreRow(label: "an empty address file", plant: ": > $S/10.244.1.3", outcome: .allocates("10.244.1.4")),
        StoreRow(label: "a directory named like an address", plant: "mkdir $S/10.244.1.3", outcome: .allocates("10.244.1.4")),
        StoreRow(label: "garbage in last_reserved_ip.0", plant: #"printf '\377not an address\n' > $S/last_reserved_ip.0"#,
                 outcome: .allocates("10.244.1.3")),
        StoreRow(label: "a megabyte in last_reserved_ip.0", plant: "head -c 1048576 /dev/zero | tr '\\000' 9 > $S/last_reserved_ip.0",
                 outcome: .allocates("10.244.1.3")),
        StoreRow(label: "last_reserved_ip.0 outside the range", plant: "printf 10.244.9.9 > $S/last_reserved_ip.0",
                 outcome: .allocates("10.244.1.3")),
        StoreRow(label: "last_reserved_ip.0 further on (host-local's cursor)", plant: "printf '10.244.1.200\n' > $S/last_reserved_ip.0",
                 outcome: .allocates("10.244.1.201")),
        StoreRow(label: "garbage in the index stamp", plant: "printf 'podwire-stamp-v1 1 2 3.4\n' > $S/.podwire/stamp",
                 outcome: .allocates("10.244.1.3")),
        StoreRow(label: "garbage in the pod's index entry", plant: #"printf 'garbage\n10.244.1.77\n\377\n' > $S/.podwire/pod-a:eth0"#,
                 outcome: .allocates("10.244.1.3")),
        StoreRow(label: "an index entry claiming pod-z's address for pod-a",
                 plant: #"printf '# podwire-index v1\n10.244.1.2\n' > $S/.podwire/pod-a:eth0"#,
                 outcome: .allocates("10.244.1.3")),
    ]

    @Test("a damaged or hostile store: refused clearly or allocated around, never followed",
          arguments: storeRows)
    func store(_ row: StoreRow) throws {
        let node = try TestNode()
        let cni = CNIRunner(node: node, plugin: InputNetwork.podwire)
        try node.shell("mkdir -p \(InputNetwork.outside) && printf precious > \(Self.target)")
        for pod in ["pod-z", "pod-a"] { try node.addPod(pod) }
        let seeded = try cni.expectAddSucceeded(try RawInvocation.add(pod: "pod-z", config: Self.kindnet).run(on: node))
        try #require(seeded.ips?.map(\.address) == ["10.244.1.2/24"])

        try node.shell("S=\(InputNetwork.store); \(row.plant)")
        let planted = try node.check(["ls", "-la", InputNetwork.store, "\(InputNetwork.store)/.podwire", InputNetwork.outside])
        let pods = ["pod-z", "pod-a"]
        let before = try node.leftovers(pods: pods)
        let response = try RawInvocation.add(pod: "pod-a", args: row.args, config: Self.kindnet).run(on: node)

        switch row.outcome {
        case .refused(let code, let mentions):
            try expectRefused(response, code: code, mentions: mentions, node: node, before: before, pods: pods)
        case .allocates(let address):
            let result = try cni.expectAddSucceeded(response)
            #expect(result.ips?.map(\.address) == ["\(address)/24"], "\(response)")
            #expect(try node.addresses(of: "eth0", inPod: "pod-a").map(\.cidr) == ["\(address)/24"])
            #expect(try node.readFile("\(InputNetwork.store)/\(address)") == "pod-a\r\neth0")
            let veth = try #require(result.interfaces?.first?.name)
            #expect(try node.routes().contains { $0.dst == address && $0.dev == veth })
            // DEL releases pod-a's address only: the planted entries are someone else's.
            cni.expectDelSucceeded(try cni.exec("DEL", containerID: "pod-a", netns: node.netnsPath("pod-a"), ifname: "eth0",
                                                stdin: Data(Self.kindnet.utf8)))
            #expect(try !node.fileExists("\(InputNetwork.store)/\(address)"))
        }
        // Whatever happened, nothing was written through a link, and pod-z kept its address.
        #expect(try node.readFile(Self.target) == "precious")
        #expect(try !node.fileExists("\(InputNetwork.outside)/created"))
        let after = try node.check(["ls", "-la", InputNetwork.store, "\(InputNetwork.store)/.podwire", InputNetwork.outside])
        let plantedLines = planted.split(separator: "\n").filter { $0.contains(" -> ") }
        for line in plantedLines {
            #expect(after.contains(line.split(separator: " ").suffix(3).joined(separator: " ")), "symlink \(line) changed:\n\(after)")
        }
        let podZRecord = try node.readFile("\(InputNetwork.store)/10.244.1.2")
            ?? node.readFile("\(InputNetwork.outside)/moved/10.244.1.2")
        #expect(podZRecord == "pod-z\r\neth0")
        #expect(try node.ping(from: "pod-z", to: "10.244.1.1").succeeded)
    }
}
