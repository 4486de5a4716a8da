import Testing
@testable import NetAddress

private func ip(_ text: String) -> IPAddress { IPAddress(text)! }
private func net(_ text: String) -> IPNetwork { IPNetwork(text)! }

@Suite("IPNetwork parsing")
struct IPNetworkParsingTests {
    @Test func podSubnet() throws {
        let network = try #require(IPNetwork("10.244.1.0/24"))
        #expect(network.address == ip("10.244.1.0"))
        #expect(network.prefixLength == 24)
        #expect(network.family == .v4)
        #expect(network.description == "10.244.1.0/24")
        #expect(!network.hasHostBits)
        #expect(network.hostBits == 8)
    }

    @Test func keepsHostBits() throws {
        let network = try #require(IPNetwork("10.244.1.2/24"))
        #expect(network.address == ip("10.244.1.2"))
        #expect(network.description == "10.244.1.2/24")
        #expect(network.hasHostBits)
        #expect(network.masked.description == "10.244.1.0/24")
    }

    @Test(arguments: [
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("10.0.0.1/32", "10.0.0.1/32"),
        ("::/0", "::/0"),
        ("fd00:10:244::/64", "fd00:10:244::/64"),
        ("FD00:0010:0244:0000::1/128", "fd00:10:244::1/128"),
        ("::ffff:10.0.0.0/24", "10.0.0.0/24"),
    ])
    func validNetworks(text: String, description: String) throws {
        #expect(try #require(IPNetwork(text)).description == description)
    }

    @Test(arguments: [
        "10.0.0.1", "fd00::1", "10.0.0.0/33", "10.0.0.0/99", "::/129", "::/1000", "10.0.0.0/",
        "/24", "/", "", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/8 ", "10.0.0.0/8/8",
        "10.0.0.0/0x8", "10.0.0/8", "10.0.0.256/8", "01.0.0.0/8", "fe80::1%eth0/64", "garbage/8",
        "10.0.0.0/99999999999999999999",
        // Mapped addresses become IPv4, where an IPv6-sized prefix is out of range.
        "::ffff:10.0.0.0/104",
    ])
    func invalidNetworksRejected(text: String) {
        #expect(IPNetwork(text) == nil, "\(text) must not parse")
    }

    @Test func memberwiseInitChecksPrefix() {
        #expect(IPNetwork(address: ip("10.0.0.0"), prefixLength: 33) == nil)
        #expect(IPNetwork(address: ip("10.0.0.0"), prefixLength: -1) == nil)
        #expect(IPNetwork(address: ip("10.0.0.0"), prefixLength: 32) != nil)
        #expect(IPNetwork(address: ip("::"), prefixLength: 129) == nil)
        #expect(IPNetwork(address: ip("::"), prefixLength: 128) != nil)
        #expect(IPNetwork.host(ip("10.0.0.7")).description == "10.0.0.7/32")
        #expect(IPNetwork.host(ip("fd00::7")).description == "fd00::7/128")
    }
}

@Suite("IPNetwork arithmetic")
struct IPNetworkArithmeticTests {
    @Test(arguments: [
        // text, network, last, masked, hasHostBits
        ("10.244.1.7/24", "10.244.1.0", "10.244.1.255", "10.244.1.0/24", true),
        ("10.244.1.0/24", "10.244.1.0", "10.244.1.255", "10.244.1.0/24", false),
        ("10.9.0.2/30", "10.9.0.0", "10.9.0.3", "10.9.0.0/30", true),
        ("10.9.0.1/31", "10.9.0.0", "10.9.0.1", "10.9.0.0/31", true),
        ("10.0.0.1/32", "10.0.0.1", "10.0.0.1", "10.0.0.1/32", false),
        ("192.168.77.5/0", "0.0.0.0", "255.255.255.255", "0.0.0.0/0", true),
        ("0.0.0.0/0", "0.0.0.0", "255.255.255.255", "0.0.0.0/0", false),
        ("172.31.255.255/12", "172.16.0.0", "172.31.255.255", "172.16.0.0/12", true),
        ("128.0.0.1/1", "128.0.0.0", "255.255.255.255", "128.0.0.0/1", true),
        ("fd00:10:244:1::5/64", "fd00:10:244:1::", "fd00:10:244:1:ffff:ffff:ffff:ffff", "fd00:10:244:1::/64", true),
        ("fd00:10:244:1::/64", "fd00:10:244:1::", "fd00:10:244:1:ffff:ffff:ffff:ffff", "fd00:10:244:1::/64", false),
        ("fd00::3/127", "fd00::2", "fd00::3", "fd00::2/127", true),
        ("fd00::2/127", "fd00::2", "fd00::3", "fd00::2/127", false),
        ("fd00::3/128", "fd00::3", "fd00::3", "fd00::3/128", false),
        ("fd00::1/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0", true),
        ("::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0", false),
        ("fd00:1:2:3:4:5:6:7/48", "fd00:1:2::", "fd00:1:2:ffff:ffff:ffff:ffff:ffff", "fd00:1:2::/48", true),
        ("fd00:1:2:3:4:5:6:7/65", "fd00:1:2:3::", "fd00:1:2:3:7fff:ffff:ffff:ffff", "fd00:1:2:3::/65", true),
        ("fd00:1:2:3:4:5:6:7/63", "fd00:1:2:2::", "fd00:1:2:3:ffff:ffff:ffff:ffff", "fd00:1:2:2::/63", true),
        ("fd00:1:2:3:4:5:6:7/1", "8000::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "8000::/1", true),
    ])
    func bounds(text: String, network: String, last: String, masked: String, hasHostBits: Bool) {
        let subject = net(text)
        #expect(subject.networkAddress == ip(network))
        #expect(subject.lastAddress == ip(last))
        #expect(subject.masked == net(masked))
        #expect(subject.masked.description == masked)
        #expect(subject.hasHostBits == hasHostBits)
        #expect(!subject.masked.hasHostBits)
        #expect(subject.contains(subject.address))
        #expect(subject.contains(subject.networkAddress))
        #expect(subject.contains(subject.lastAddress))
        if let before = subject.networkAddress.previous { #expect(!subject.contains(before)) }
        if let after = subject.lastAddress.next { #expect(!subject.contains(after)) }
    }

    @Test func hostBitCounts() {
        #expect(net("10.0.0.0/0").hostBits == 32)
        #expect(net("10.0.0.0/32").hostBits == 0)
        #expect(net("::/0").hostBits == 128)
        #expect(net("fd00::/64").hostBits == 64)
        #expect(net("fd00::/127").hostBits == 1)
        #expect(net("fd00::/128").hostBits == 0)
    }

    @Test func containsIPv4() {
        let subnet = net("10.244.1.0/24")
        #expect(subnet.contains(ip("10.244.1.0")))
        #expect(subnet.contains(ip("10.244.1.200")))
        #expect(subnet.contains(ip("10.244.1.255")))
        #expect(!subnet.contains(ip("10.244.2.0")))
        #expect(!subnet.contains(ip("10.244.0.255")))
        #expect(subnet.contains(ip("::ffff:10.244.1.9")), "mapped text is IPv4")
        #expect(!subnet.contains(ip("::a0f4:109")), "other family never")
        #expect(net("0.0.0.0/0").contains(ip("255.255.255.255")))
        #expect(!net("0.0.0.0/0").contains(ip("::")))
        #expect(net("10.0.0.1/32").contains(ip("10.0.0.1")))
        #expect(!net("10.0.0.1/32").contains(ip("10.0.0.2")))
    }

    @Test func containsIPv6() {
        let subnet = net("fd00:10:244:1::/64")
        #expect(subnet.contains(ip("fd00:10:244:1::1")))
        #expect(subnet.contains(ip("fd00:10:244:1:ffff:ffff:ffff:ffff")))
        #expect(!subnet.contains(ip("fd00:10:244:2::")))
        #expect(!subnet.contains(ip("10.244.1.1")))
        #expect(net("::/0").contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")))
        #expect(!net("::/0").contains(ip("0.0.0.0")))
        #expect(net("fd00::2/127").contains(ip("fd00::3")))
        #expect(!net("fd00::2/127").contains(ip("fd00::4")))
        #expect(net("fd00::2/128").contains(ip("fd00::2")))
        #expect(!net("fd00::2/128").contains(ip("fd00::3")))
    }

    @Test(arguments: [
        ("10.244.0.0/16", "10.244.1.0/24", true),
        ("10.244.1.0/24", "10.244.0.0/16", true),
        ("10.244.1.0/24", "10.244.1.128/25", true),
        ("10.244.1.0/24", "10.244.2.0/24", false),
        ("10.244.1.0/25", "10.244.1.128/25", false),
        ("10.244.1.7/24", "10.244.1.200/24", true),
        ("0.0.0.0/0", "192.168.0.1/32", true),
        ("10.0.0.1/32", "10.0.0.1/32", true),
        ("10.0.0.1/32", "10.0.0.2/32", false),
        ("fd00::/64", "fd00:0:0:1::/80", false),
        ("fd00::/64", "fd00::1:0:0:0/80", true),
        ("fd00::/48", "fd00:0:0:1::/64", true),
        ("fd00::/64", "fd00:0:0:1::/64", false),
        ("::/0", "fd00::/64", true),
        ("fd00::2/127", "fd00::3/128", true),
        ("fd00::2/127", "fd00::4/127", false),
        ("0.0.0.0/0", "::/0", false),
        ("10.0.0.0/8", "::a00:0/104", false),
    ])
    func overlaps(a: String, b: String, expected: Bool) {
        #expect(net(a).overlaps(net(b)) == expected)
        #expect(net(b).overlaps(net(a)) == expected, "overlap is symmetric")
    }
}
