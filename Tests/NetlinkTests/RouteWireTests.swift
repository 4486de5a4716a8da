import Testing
@testable import Netlink
import NetAddress

// podwire's rtnetlink requests, built by libnl-route-3 as RouteSocket sends them, byte for byte
// against what `ip` sends for the same command.
//
// The captures below are what ip (iproute2 6.1.0, Debian 12) sent, recorded with
//
//     unshare -Urn sh -c '... strace -f -e trace=sendmsg,sendto -e write=all -xx -s 65536 ip <command>'
//
// in private user and network namespaces (nothing of the machine's own network was touched):
//
//  - the pod's side, after `ip link add eth0 type veth peer name peer0` in a fresh namespace,
//    which makes eth0 index 3 (its peer, created first, is 2);
//  - the host's side in another fresh namespace, after `ip link add vethabcdef type veth peer
//    name peer1`: vethabcdef is index 3 there too;
//  - the veth pair from the pod's namespace, its peer born in the namespace of a process
//    (`unshare -n sleep 30 &`, pid 479).
//
// Each command succeeded. The hex is the request alone: the RTM_GETLINK ip sends first to turn a
// name into an index, and the empty RTM_NEWLINK with which `ip link` probes the kernel, are left
// out. Where ip's attribute order follows its arguments, the arguments are in the order libnl
// writes the attributes (`src` before `via`, say).
//
// What podwire legitimately sends differently is applied to ip's messages in the
// `asPodwireSends` functions, each difference with the reason it does not matter to the kernel;
// everything else must be the same bytes.

@Suite struct RouteWireTests {
    /// eth0 in the pod's namespace, vethabcdef in the host's.
    static let podIndex: Int32 = 3, hostIndex: Int32 = 3

    // MARK: What ip sent

    /// `ip addr add 10.244.0.5/24 brd + dev eth0 noprefixroute`
    static let ipPodAddress4 = hexBytes("""
        3800000014000506bb45166b000000000218000003000000080002000af400050800080000020000080001000af40005
            080004000af400ff
        """)
    /// `ip -6 addr add fd00:10:244::5/64 dev eth0 nodad noprefixroute`
    static let ipPodAddress6 = hexBytes("""
        4800000014000506bb45166b000000000a4000000300000014000200fd00001002440000000000000000000508000800
            0202000014000100fd000010024400000000000000000005
        """)
    /// `ip addr add 10.244.0.1/32 dev vethabcdef`
    static let ipHostAddress4 = hexBytes("""
        2800000014000506bb45166b000000000220000003000000080002000af40001080001000af40001
        """)
    /// `ip -6 addr add fd00:10:244::1/128 dev vethabcdef nodad`
    static let ipHostAddress6 = hexBytes("""
        4000000014000506bb45166b000000000a8002000300000014000200fd00001002440000000000000000000114000100
            fd000010024400000000000000000001
        """)

    /// `ip route add 10.244.0.1/32 src 10.244.0.5 dev eth0 scope link`
    static let ipGatewayRoute4 = hexBytes("""
        3400000018000506bb45166b0000000002200000fe03fd0100000000080001000af40001080007000af4000508000400
            03000000
        """)
    /// `ip route prepend 0.0.0.0/0 via 10.244.0.1 dev eth0` (`prepend` is NLM_F_CREATE alone, as
    /// RouteAddMode.create; `0.0.0.0/0` rather than `default`, which ip sends without RTA_DST: the
    /// kernel takes either, with dst_len 0, as the same default route)
    static let ipDefaultRoute4 = hexBytes("""
        3400000018000504bb45166b0000000002000000fe030001000000000800010000000000080005000af4000108000400
            03000000
        """)
    /// `ip route prepend 10.96.0.0/12 table 100 metric 100 via 10.244.0.1 dev eth0`
    static let ipTableMetricRoute4 = hexBytes("""
        3c00000018000504bb45166b00000000020c00006403000100000000080001000a600000080006006400000008000500
            0af400010800040003000000
        """)
    /// `ip route add 10.244.0.0/24 src 10.244.0.5 via 10.244.0.1 dev eth0`
    static let ipSubnetRoute4 = hexBytes("""
        3c00000018000506bb45166b0000000002180000fe03000100000000080001000af40000080007000af4000508000500
            0af400010800040003000000
        """)
    /// `ip route replace 10.244.0.5/32 dev vethabcdef scope host`
    static let ipHostRoute4 = hexBytes("""
        2c00000018000505bb45166b0000000002200000fe03fe0100000000080001000af400050800040003000000
        """)
    /// `ip -6 route add fd00:10:244::1/128 src fd00:10:244::5 dev eth0 scope link`
    static let ipGatewayRoute6 = hexBytes("""
        4c00000018000506bb45166b000000000a800000fe03fd010000000014000100fd000010024400000000000000000001
            14000700fd0000100244000000000000000000050800040003000000
        """)
    /// `ip -6 route prepend ::/0 via fd00:10:244::1 dev eth0`
    static let ipDefaultRoute6 = hexBytes("""
        4c00000018000504bb45166b000000000a000000fe030001000000001400010000000000000000000000000000000000
            14000500fd0000100244000000000000000000010800040003000000
        """)
    /// `ip -6 route add fd00:10:244::/64 src fd00:10:244::5 via fd00:10:244::1 dev eth0`
    static let ipSubnetRoute6 = hexBytes("""
        6000000018000506bb45166b000000000a400000fe0300010000000014000100fd000010024400000000000000000000
            14000700fd00001002440000000000000000000514000500fd0000100244000000000000000000010800040003000000
        """)
    /// `ip -6 route replace fd00:10:244::5/128 dev vethabcdef scope host`
    static let ipHostRoute6 = hexBytes("""
        3800000018000505bb45166b000000000a800000fe03fe010000000014000100fd000010024400000000000000000005
            0800040003000000
        """)

    /// `ip link set dev eth0 up`
    static let ipPodLinkUp = hexBytes("""
        2000000010000500bb45166b0000000000000000030000000100000001000000
        """)
    /// `ip link set dev vethabcdef alias "podwire test 0123456789abcdef eth0" up`
    static let ipHostLinkUp = hexBytes("""
        4800000010000500bb45166b000000000000000003000000010000000100000026001400706f64776972652074657374
            203031323334353637383961626364656620657468300000
        """)

    /// `ip -echo link add eth1 address 02:50:00:00:00:01 mtu 1450 numtxqueues 1 numrxqueues 1
    ///  type veth peer name vethabcdef address 02:50:00:00:00:02 mtu 1450 numtxqueues 1 numrxqueues 1 netns 479`
    static let ipVethPair = hexBytes("""
        b000000010000d06bc45166b00000000000000000000000000000000000000000a000100025000000001000008000400
            aa05000008001f0001000000080020000100000009000300657468310000000060001200080001007665746854000200
            50000100000000000000000000000000000000000a000100025000000002000008000400aa05000008001f0001000000
            080020000100000008001300df0100000f000300766574686162636465660000
        """)

    // MARK: Helpers

    static func ip(_ capture: [UInt8]) -> [WireMessage] { WireMessage.decodeAll(capture, layout: .rtnetlink) }

    /// A request libnl built, as RouteSocket sends it: `transact` (inside `batch`, and for the
    /// veth pair) and `nl_send_sync` (otherwise) both add NLM_F_REQUEST and NLM_F_ACK, as ip does.
    static func podwire(_ request: OpaquePointer) -> [WireMessage] {
        WireMessage.decodeAll(RouteSocket.requestBytes(freeing: request), layout: .rtnetlink).map {
            var message = $0
            message.flags |= RTNL.request | RTNL.ack
            return message
        }
    }

    @Test func capturesDecodeLosslessly() {
        let captures = [Self.ipPodAddress4, Self.ipPodAddress6, Self.ipHostAddress4, Self.ipHostAddress6,
                        Self.ipGatewayRoute4, Self.ipDefaultRoute4, Self.ipTableMetricRoute4, Self.ipSubnetRoute4, Self.ipHostRoute4,
                        Self.ipGatewayRoute6, Self.ipDefaultRoute6, Self.ipSubnetRoute6, Self.ipHostRoute6,
                        Self.ipPodLinkUp, Self.ipHostLinkUp, Self.ipVethPair]
        for (index, capture) in captures.enumerated() {
            expectRoundTrip(capture, layout: .rtnetlink, "capture \(index)")
            #expect(Self.ip(capture).count == 1, "capture \(index) is one message")
        }
    }

    // MARK: Addresses

    /// ip's RTM_NEWADDR as libnl builds the same request. IFA_FLAGS, the flags that do not fit
    /// ifaddrmsg's 8 bits (here IFA_F_NOPREFIXROUTE), is sent by both, only:
    ///  - ORDER: ip puts it right after IFA_LOCAL, libnl last; the kernel parses the attributes
    ///    into a table by type (nlmsg_parse), so order is moot;
    ///  - ip then leaves ifa_flags 0, libnl puts the flags' low 8 bits there too (IFA_F_NODAD for
    ///    the pod's IPv6 address). With IFA_FLAGS present the kernel ignores ifa_flags (IPv4's
    ///    rtm_to_ifaddr, IPv6's inet6_rtm_newaddr: IFA_FLAGS if present, else ifa_flags).
    func asPodwireSends(address messages: [WireMessage]) -> [WireMessage] {
        messages.map { original in
            var message = original
            if let flags = message.attribute(IFA.flags)?.payload {
                message.reorder([IFA.local, IFA.address, IFA.broadcast, IFA.flags])
                message.familyHeader[2] = flags[0]
            }
            return message
        }
    }

    @Test func podAddress4() throws {
        let request = try RouteSocket.addAddressRequest(IPNetwork("10.244.0.5/24")!, linkIndex: Self.podIndex,
                                                        noDAD: false, noPrefixRoute: true)
        expectSameWire(Self.podwire(request), asPodwireSends(address: Self.ip(Self.ipPodAddress4)), "pod's IPv4 address")
    }

    @Test func podAddress6() throws {
        let request = try RouteSocket.addAddressRequest(IPNetwork("fd00:10:244::5/64")!, linkIndex: Self.podIndex,
                                                        noDAD: true, noPrefixRoute: true)
        expectSameWire(Self.podwire(request), asPodwireSends(address: Self.ip(Self.ipPodAddress6)), "pod's IPv6 address")
    }

    @Test func hostGatewayAddress4() throws {
        let request = try RouteSocket.addAddressRequest(.host(IPAddress("10.244.0.1")!), linkIndex: Self.hostIndex,
                                                        noDAD: false, noPrefixRoute: false)
        expectSameWire(Self.podwire(request), asPodwireSends(address: Self.ip(Self.ipHostAddress4)), "host's IPv4 gateway address")
    }

    @Test func hostGatewayAddress6() throws {
        let request = try RouteSocket.addAddressRequest(.host(IPAddress("fd00:10:244::1")!), linkIndex: Self.hostIndex,
                                                        noDAD: true, noPrefixRoute: false)
        expectSameWire(Self.podwire(request), asPodwireSends(address: Self.ip(Self.ipHostAddress6)), "host's IPv6 gateway address")
    }

    // MARK: Routes

    /// ip's RTM_NEWROUTE as libnl builds the same request: libnl also writes the table as
    /// RTA_TABLE, first, with the value ip writes in rtm_table (ip sends RTA_TABLE only for
    /// tables above 255). The kernel takes RTA_TABLE over rtm_table when present: the same table.
    func asPodwireSends(route messages: [WireMessage]) -> [WireMessage] {
        messages.map { original in
            var message = original
            message.insert(.hostU32(RTA.table, UInt32(message.familyHeader[4])), at: 0)
            return message
        }
    }

    func expectRoute(_ spec: RouteSpec, _ mode: RouteSocket.RouteAddMode, _ capture: [UInt8], _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) throws {
        let request = try RouteSocket.addRouteRequest(spec, mode: mode)
        expectSameWire(Self.podwire(request), asPodwireSends(route: Self.ip(capture)), what, sourceLocation: sourceLocation)
    }

    @Test func podRoutes4() throws {
        let pod = IPAddress("10.244.0.5")!, gateway = IPAddress("10.244.0.1")!
        try expectRoute(RouteSpec(destination: .host(gateway), linkIndex: Self.podIndex, source: pod, scope: .link), .exclusive,
                        Self.ipGatewayRoute4, "the gateway's /32, scope link")
        try expectRoute(RouteSpec(destination: IPNetwork("0.0.0.0/0")!, gateway: gateway, linkIndex: Self.podIndex), .create,
                        Self.ipDefaultRoute4, "an IPAM default route")
        try expectRoute(RouteSpec(destination: IPNetwork("10.96.0.0/12")!, gateway: gateway, linkIndex: Self.podIndex,
                                  priority: 100, table: 100), .create,
                        Self.ipTableMetricRoute4, "an IPAM route with a metric and a table")
        try expectRoute(RouteSpec(destination: IPNetwork("10.244.0.0/24")!, gateway: gateway, linkIndex: Self.podIndex, source: pod),
                        .exclusive, Self.ipSubnetRoute4, "the subnet via the gateway")
    }

    @Test func podRoutes6() throws {
        let pod = IPAddress("fd00:10:244::5")!, gateway = IPAddress("fd00:10:244::1")!
        try expectRoute(RouteSpec(destination: .host(gateway), linkIndex: Self.podIndex, source: pod, scope: .link), .exclusive,
                        Self.ipGatewayRoute6, "the gateway's /128, scope link")
        try expectRoute(RouteSpec(destination: IPNetwork("::/0")!, gateway: gateway, linkIndex: Self.podIndex), .create,
                        Self.ipDefaultRoute6, "an IPAM default route")
        try expectRoute(RouteSpec(destination: IPNetwork("fd00:10:244::/64")!, gateway: gateway, linkIndex: Self.podIndex, source: pod),
                        .exclusive, Self.ipSubnetRoute6, "the subnet via the gateway")
    }

    @Test func hostRoutes() throws {
        try expectRoute(RouteSpec(destination: .host(IPAddress("10.244.0.5")!), linkIndex: Self.hostIndex, scope: .host), .replace,
                        Self.ipHostRoute4, "the host's route to the pod's IPv4 address")
        try expectRoute(RouteSpec(destination: .host(IPAddress("fd00:10:244::5")!), linkIndex: Self.hostIndex, scope: .host), .replace,
                        Self.ipHostRoute6, "the host's route to the pod's IPv6 address")
    }

    // MARK: Links

    @Test func podLinkUp() throws {
        let request = try RouteSocket.setUpRequest(linkIndex: Self.podIndex, alias: nil, ipv4Forwarding: false)
        expectSameWire(Self.podwire(request), Self.ip(Self.ipPodLinkUp), "pod's end up")
    }

    /// DIFFERENCE: libnl sends the alias NUL-terminated (NLA_PUT_STRING), ip without the NUL. The
    /// kernel keeps the attribute's bytes (dev_set_alias) and every reader stops at the NUL (the
    /// IFLA_IFALIAS podwire reads back, /sys/class/net/<dev>/ifalias), so the alias reads the
    /// same; but the NUL counts against IFALIASZ (256), which HostVeth.maxAliasLength (254) allows for.
    @Test func hostLinkUpWithAlias() throws {
        let alias = "podwire test 0123456789abcdef eth0"
        let request = try RouteSocket.setUpRequest(linkIndex: Self.hostIndex, alias: alias, ipv4Forwarding: false)
        var ip = Self.ip(Self.ipHostLinkUp)
        ip[0].update(IFLA.ifalias) { $0.value = .bytes($0.payload! + [0]) }
        expectSameWire(Self.podwire(request), ip, "host's end labelled and up")
    }

    /// No ip command sets a link's IPv4 devconf (only sysctl does, through /proc/sys), so the
    /// reference here is written from linux/if_link.h: the same request plus
    /// IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { IPV4_DEVCONF_FORWARDING: 1 } } }, each nest
    /// flagged NLA_F_NESTED as libnl flags its nests, the value a host-order u32.
    @Test func hostLinkUpWithForwarding() throws {
        let alias = "podwire test 0123456789abcdef eth0"
        let request = try RouteSocket.setUpRequest(linkIndex: Self.hostIndex, alias: alias, ipv4Forwarding: true)
        var reference = Self.podwire(try RouteSocket.setUpRequest(linkIndex: Self.hostIndex, alias: alias, ipv4Forwarding: false))
        let forwarding = WireAttribute.hostU32(IPV4_DEVCONF.forwarding, 1)
        let inetConf = WireAttribute(rawType: NLA.nested | IFLA.inetConf, value: .nested(header: [], [forwarding]))
        let inet = WireAttribute(rawType: NLA.nested | AF.inet, value: .nested(header: [], [inetConf]))
        reference[0].attributes.append(WireAttribute(rawType: NLA.nested | IFLA.afSpec, value: .nested(header: [], [inet])))
        expectSameWire(Self.podwire(request), reference, "host's end up with IPv4 forwarding on")
    }

    /// ip's veth creation as libnl builds it:
    ///  - ORDER: ip writes IFLA_IFNAME after the other attributes of each end, libnl before the
    ///    queue counts; the kernel parses attributes into a table by type, so order is moot;
    ///  - libnl flags its nests (IFLA_LINKINFO, IFLA_INFO_DATA, VETH_INFO_PEER) NLA_F_NESTED, ip
    ///    does not; rtnetlink accepts both (the flag is masked off when parsing);
    ///  - libnl sends IFLA_INFO_KIND NUL-terminated ("veth\0"), ip without the NUL; the kernel
    ///    copies the kind with nla_strscpy, which stops at either end: the same "veth".
    /// NLM_F_ECHO is in both (ip's -echo).
    @Test func vethPair() throws {
        let request = try RouteSocket.addVethPairRequest(name: "eth1", mac: [0x02, 0x50, 0, 0, 0, 0x01], peerName: "vethabcdef",
                                                         peerMAC: [0x02, 0x50, 0, 0, 0, 0x02], peerNamespacePID: 479, mtu: 1450)
        var ip = Self.ip(Self.ipVethPair)
        ip[0].reorder([IFLA.address, IFLA.mtu, IFLA.ifname, IFLA.numTxQueues, IFLA.numRxQueues, IFLA.linkinfo])
        ip[0].reorder(at: [IFLA.linkinfo, IFLA_INFO.data, VETH_INFO.peer],
                      [IFLA.address, IFLA.mtu, IFLA.ifname, IFLA.numTxQueues, IFLA.numRxQueues, IFLA.netNSPID])
        ip[0].update(IFLA.linkinfo) { $0.rawType |= NLA.nested }
        ip[0].update(IFLA_INFO.data, at: [IFLA.linkinfo]) { $0.rawType |= NLA.nested }
        ip[0].update(VETH_INFO.peer, at: [IFLA.linkinfo, IFLA_INFO.data]) { $0.rawType |= NLA.nested }
        ip[0].update(IFLA_INFO.kind, at: [IFLA.linkinfo]) { $0.value = .bytes($0.payload! + [0]) }
        expectSameWire(Self.podwire(request), ip, "veth pair")
    }
}

// MARK: rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h, linux/if_link.h, linux/veth.h)

enum RTNL {
    static let request: UInt16 = 0x1, ack: UInt16 = 0x4
    static let newLink: UInt16 = 16, newAddress: UInt16 = 20, newRoute: UInt16 = 24
}

enum IFA {
    static let address: UInt16 = 1, local: UInt16 = 2, broadcast: UInt16 = 4, flags: UInt16 = 8
}

enum RTA {
    static let table: UInt16 = 15
}

enum IFLA {
    static let address: UInt16 = 1, ifname: UInt16 = 3, mtu: UInt16 = 4, linkinfo: UInt16 = 18, netNSPID: UInt16 = 19
    static let ifalias: UInt16 = 20, afSpec: UInt16 = 26, numTxQueues: UInt16 = 31, numRxQueues: UInt16 = 32
    static let inetConf: UInt16 = 1
}

enum IFLA_INFO {
    static let kind: UInt16 = 1, data: UInt16 = 2
}

enum VETH_INFO {
    static let peer: UInt16 = 1
}

enum AF {
    static let inet: UInt16 = 2
}

enum IPV4_DEVCONF {
    static let forwarding: UInt16 = 1
}

extension WireMessage.Layout {
    /// ifinfomsg, ifaddrmsg or rtmsg; nests known by their place (ip does not flag them
    /// NLA_F_NESTED, libnl does), VETH_INFO_PEER's children after the peer's ifinfomsg.
    static let rtnetlink = WireMessage.Layout(
        familyHeaderSize: { type in
            switch type {
            case RTNL.newLink: 16
            case RTNL.newAddress: 8
            case RTNL.newRoute: 12
            default: 0
            }
        },
        nestedHeaderSize: { type, path, _ in
            guard type == RTNL.newLink else { return nil }
            switch path {
            case [IFLA.linkinfo], [IFLA.linkinfo, IFLA_INFO.data], [IFLA.afSpec], [IFLA.afSpec, AF.inet],
                 [IFLA.afSpec, AF.inet, IFLA.inetConf]: return 0
            case [IFLA.linkinfo, IFLA_INFO.data, VETH_INFO.peer]: return 16
            default: return nil
            }
        })
}
