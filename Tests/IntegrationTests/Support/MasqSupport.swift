import Foundation
import Testing

// Helpers for the masquerade suite: an "outside" network joined to the node, readers for the
// network's nftables table, and packet counters placed where the packets arrive.

enum Masq {
    static let table = "podwire-kindnet"
    static let nodeOutside = "198.51.100.1"
    static let outside = "198.51.100.2"
    static let nodeOutside6 = "2001:db8::1"
    static let outside6 = "2001:db8::2"

    /// The seed network at 1.1.0 (1.0.0 for Debian's host-local, which refuses 1.1.0) with ipMasq.
    static func config(for plugin: PluginUnderTest, ipMasq: Bool = true) -> NetworkConfig {
        NetworkConfig.kindnet(for: plugin, version: plugin.ipamType == "host-local" ? "1.0.0" : "1.1.0")
            .setting("ipMasq", ipMasq)
    }

    /// podwire with an IPAM it must exec: podwire-ipam under another name (`delegated-ipam`, a
    /// symlink that `linkDelegate` puts on the node's CNI_PATH), so DEL and GC cannot read the
    /// store in-process and must find the pod's addresses as they would with any other IPAM.
    static var delegated: PluginUnderTest {
        let podwire = PluginUnderTest.podwire
        return PluginUnderTest(label: "podwire+delegated podwire-ipam", type: "podwire", ipamType: "delegated-ipam",
                               binary: podwire.binary, missingReason: podwire.missingReason,
                               cniPath: "\(delegateDirectory):\(podwire.cniPath)", isReference: false)
    }

    static let delegateDirectory = "/run/cni-delegate"

    /// The variants a suite runs: podwire-ipam in-process, and an exec'd IPAM.
    static var storeVariants: [PluginUnderTest] { VersionCase.builtInOnly + [delegated] }
}

extension TestNode {
    /// Puts `delegated-ipam` (podwire-ipam) on the node's CNI_PATH for `Masq.delegated`.
    func linkDelegate() throws {
        let ipam = try #require(PodwireBinary.locateIPAM().path, "podwire-ipam not built")
        try shell("mkdir -p \(Masq.delegateDirectory) && ln -sf '\(ipam)' \(Masq.delegateDirectory)/delegated-ipam")
    }

    /// A TCP connection from the "outside" namespace to `address:port`, answered by a listener on
    /// port 80 in the pod's network namespace (`netns`, by default the node's pod of that name;
    /// perl-base, Essential on Debian; the client is bash's /dev/tcp). Returns what the listener
    /// said: "hello from <pod> to <the client address it saw>". The timeouts only keep a broken
    /// path from leaving processes behind.
    func connectThroughHostPort(pod: String, netns: String? = nil, address: String, port: Int) throws -> CommandResult {
        let ready = "/run/\(pod)-listening"
        let listener = #"""
            my $s = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => 80, Listen => 1, ReuseAddr => 1)
                or die "listen: $!";
            open(my $ready, ">", $ARGV[0]) or die "ready file: $!";
            close $ready;
            my $c = $s->accept or die "accept: $!";
            print $c "hello from $ARGV[1] to ", $c->peerhost, "\n";
            close $c;
            """#
        let script = """
            rm -f \(ready)
            timeout 20 nsenter --net=\(netns ?? netnsPath(pod)) perl -MIO::Socket::INET -e "$0" \(ready) \(pod) &
            listener=$!
            tries=0
            while [ ! -e \(ready) ]; do
                tries=$((tries + 1)); [ "$tries" -lt 200 ] || { echo "the listener never started" >&2; kill "$listener"; exit 1; }
                kill -0 "$listener" 2>/dev/null || { echo "the listener died" >&2; exit 1; }
                sleep 0.05
            done
            timeout 10 nsenter --net=\(netnsPath("outside")) bash -c 'exec 3<>/dev/tcp/\(address)/\(port) && head -n1 <&3'
            status=$?
            kill "$listener" 2>/dev/null
            wait "$listener"
            rm -f \(ready)
            exit $status
            """
        return try run(["bash", "-c", script, listener], timeout: 40)
    }

    /// The "outside" of the cluster: a namespace joined to the node by a veth, node 198.51.100.1
    /// and outside 198.51.100.2 (2001:db8::1 / ::2), the node's default routes through it. The
    /// outside has no route to the pods: a pod's packet gets an answer only if it was masqueraded
    /// (unless `routeBack`).
    func addOutside(routeBack: Bool = false) throws {
        try shell("""
            ip netns add outside
            ip link add out0 type veth peer name eth0 netns outside
            ip addr add \(Masq.nodeOutside)/24 dev out0
            ip addr add \(Masq.nodeOutside6)/64 dev out0 nodad
            ip link set out0 up
            ip route add default via \(Masq.outside)
            ip -n outside addr add \(Masq.outside)/24 dev eth0
            ip -n outside addr add \(Masq.outside6)/64 dev eth0 nodad
            ip -n outside link set eth0 up
            ip -n outside link set lo up
            """)
        // The node's first neighbour solicitation for the outside goes unanswered (the answer
        // comes a second later, on the retry): give the node the outside's MAC from the start.
        try shell("""
            ip -6 route add default via \(Masq.outside6) dev out0
            mac=$(ip -n outside -o link show eth0 | awk '{ for (i = 1; i < NF; i++) if ($i == "link/ether") print $(i + 1) }')
            ip -6 neigh replace \(Masq.outside6) lladdr "$mac" dev out0 nud permanent
            """)
        if routeBack {
            try shell("ip -n outside route add 10.244.0.0/16 via \(Masq.nodeOutside)")
        }
        try counters(inPod: "outside")
    }

    /// A table in `pod` (a pod or "outside") counting the ICMP echo requests that arrive, by
    /// source address: `nft` then says who the sender looked like on the wire.
    func counters(inPod pod: String) throws {
        try check(["nft", "add table inet count; add chain inet count input { type filter hook input priority 0; };"
                   + " add set inet count senders4 { type ipv4_addr; flags dynamic; counter; };"
                   + " add set inet count senders6 { type ipv6_addr; flags dynamic; counter; };"
                   + " add rule inet count input icmp type echo-request add @senders4 { ip saddr };"
                   + " add rule inet count input icmpv6 type echo-request add @senders6 { ip6 saddr }"], inPod: pod)
    }

    /// The source addresses echo requests reached `pod` from, with how many each.
    func echoSenders(inPod pod: String) throws -> [String: Int] {
        var senders: [String: Int] = [:]
        for set in ["senders4", "senders6"] {
            for element in try nftSetElements(table: "count", set: set, inPod: pod) {
                senders[element.value] = element.packets
            }
        }
        return senders
    }

    /// `nft -j list set inet <table> <set>` elements: value text ("10.244.1.2", "10.244.0.0/16",
    /// "a-b"), comment, and counter packets (0 without a counter).
    func nftSetElements(table: String = Masq.table, set: String, inPod pod: String? = nil) throws
        -> [(value: String, comment: String?, packets: Int)] {
        let text = try check(["nft", "-j", "list", "set", "inet", table, set], inPod: pod)
        let root = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
        let items = (root["nftables"] as? [[String: Any]]) ?? []
        let setObject = try #require(items.compactMap { $0["set"] as? [String: Any] }.first, "\(text)")
        return ((setObject["elem"] as? [Any]) ?? []).map { item in
            var value: Any = item, comment: String?, packets = 0
            if let wrapped = (item as? [String: Any])?["elem"] as? [String: Any] {
                value = wrapped["val"] ?? ""
                comment = wrapped["comment"] as? String
                packets = ((wrapped["counter"] as? [String: Any])?["packets"] as? Int) ?? 0
            }
            return (Self.nftValue(value), comment, packets)
        }
    }

    private static func nftValue(_ value: Any) -> String {
        if let text = value as? String { return text }
        if let prefix = (value as? [String: Any])?["prefix"] as? [String: Any] {
            return "\(prefix["addr"] ?? "")/\(prefix["len"] ?? "")"
        }
        if let range = (value as? [String: Any])?["range"] as? [Any], range.count == 2 {
            return "\(nftValue(range[0]))-\(nftValue(range[1]))"
        }
        return String(describing: value)
    }

    /// The masq set's elements as "address comment".
    func masqMembers(_ set: String = "masq4") throws -> [String] {
        try nftSetElements(set: set).map { $0.value + ($0.comment.map { " \($0)" } ?? "") }.sorted()
    }

    /// The kernel's handles of the chain's rules (`nft -a`): new handles mean rewritten rules.
    func masqRuleHandles() throws -> [String] {
        try check(["nft", "-a", "list", "chain", "inet", Masq.table, "postrouting"])
            .split(separator: "\n").filter { $0.contains("masquerade") }
            .compactMap { line in line.range(of: "# handle ").map { String(line[$0.upperBound...]) } }
    }

    /// Whether the node has the network's table at all.
    func hasMasqTable() throws -> Bool {
        try check(["nft", "list", "tables"]).contains("table inet \(Masq.table)")
    }

    /// The rule lines of the table's postrouting chain, as `nft list` prints them.
    func masqRules() throws -> [String] {
        try check(["nft", "list", "chain", "inet", Masq.table, "postrouting"])
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasSuffix("masquerade") }
    }
}

extension CNIRunner {
    /// Starts ADDs of `pods` (namespaces already made) all at once inside the node, and returns
    /// each one's exit status: the runtime's view of a burst of pods scheduled together.
    func addConcurrently(_ pods: [String]) throws -> [String: Int32] {
        let binary = try plugin.requireBinary()
        let configPath = "/run/masq-net.json"
        let write = try node.run(["sh", "-c", "cat > \(configPath)"], stdin: config.data)
        try #require(write.succeeded, "\(write)")
        let script = """
            rm -f /run/masq-pids
            for pod in \(pods.joined(separator: " ")); do
                CNI_COMMAND=ADD CNI_CONTAINERID=$pod CNI_NETNS=/run/netns/$pod CNI_IFNAME=eth0 CNI_PATH='\(plugin.cniPath)' \\
                    '\(binary)' < \(configPath) > /run/masq-out.$pod 2>&1 &
                echo "$! $pod" >> /run/masq-pids
            done
            while read -r pid pod; do
                wait "$pid"; echo "$pod $?"
            done < /run/masq-pids
            """
        let output = try node.check(["bash", "-c", script])
        var statuses: [String: Int32] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { statuses[String(parts[0])] = Int32(parts[1]) }
        }
        return statuses
    }

    /// DEL as containerd sends it once the sandbox is gone: no CNI_NETNS value.
    func delWithoutNetns(pod: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> CNIResponse {
        try exec("DEL", containerID: pod, netns: "", ifname: "eth0", sourceLocation: sourceLocation)
    }
}
