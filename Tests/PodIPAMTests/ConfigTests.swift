import CNIProtocol
import Foundation
import NetAddress
@testable import PodIPAM
import Testing

@Suite("IPAM config")
struct ConfigTests {
    func parse(_ ipam: String, extra: String = "", version: String = "1.0.0", command: CNICommand = .add,
               args: [(key: String, value: String)] = []) throws -> IPAMConfig {
        let text = #"{"cniVersion": "\#(version)", "name": "n", "type": "bridge", "ipam": {"type": "podwire-ipam"\#(ipam)}\#(extra)}"#
        return try IPAMConfig.parse(try NetworkConfig.parse(Array(text.utf8)),
                                    environment: CNIEnvironment(command: command, args: args))
    }

    @Test func ipv4Defaults() throws {
        let config = try parse(#", "ranges": [[{"subnet": "10.244.1.0/24"}]]"#)
        let range = try #require(config.rangeSets.first?.first)
        #expect(range.subnet == net("10.244.1.0/24"))
        #expect(range.gateway == ip("10.244.1.1"))
        #expect(range.rangeStart == ip("10.244.1.1"))
        #expect(range.rangeEnd == ip("10.244.1.254"))
        #expect(range.firstIssuable == ip("10.244.1.2"))
        #expect(range.capacity == 253)
        #expect(range.description == "10.244.1.2-10.244.1.254")
        #expect(config.dataDir == "/var/lib/cni/networks")
        #expect(config.routes.isEmpty && config.requested.isEmpty && config.dns == nil)
    }

    @Test func ipv6Defaults() throws {
        let config = try parse(#", "ranges": [[{"subnet": "fd00:10:244:1::/64"}]]"#)
        let range = try #require(config.rangeSets.first?.first)
        #expect(range.gateway == ip("fd00:10:244:1::1"))
        #expect(range.rangeStart == ip("fd00:10:244:1::1"))
        #expect(range.rangeEnd == ip("fd00:10:244:1:ffff:ffff:ffff:ffff"))
        #expect(range.capacity == UInt64.max - 1)  // ::1 through the last address, less the gateway
    }

    @Test func explicitValuesAreKept() throws {
        let config = try parse(#", "ranges": [[{"subnet": "10.244.1.0/24", "rangeStart": "10.244.1.10", "rangeEnd": "10.244.1.20", "gateway": "10.244.1.254"}]]"#)
        let range = try #require(config.rangeSets.first?.first)
        #expect(range.rangeStart == ip("10.244.1.10"))
        #expect(range.rangeEnd == ip("10.244.1.20"))
        #expect(range.gateway == ip("10.244.1.254"))
        #expect(range.capacity == 11)
    }

    @Test func rangeSetOrder() throws {
        // runtimeConfig.ipRanges first, then the legacy top-level range, then ipam.ranges.
        let config = try parse(#", "subnet": "10.1.0.0/16", "gateway": "10.1.0.254", "ranges": [[{"subnet": "10.2.0.0/16"}], [{"subnet": "fd00::/64"}]]"#,
                               extra: #", "runtimeConfig": {"ipRanges": [[{"subnet": "10.3.0.0/16"}]]}"#)
        #expect(config.rangeSets.map { $0.map(\.subnet.description) } == [["10.3.0.0/16"], ["10.1.0.0/16"], ["10.2.0.0/16"], ["fd00::/64"]])
        #expect(config.rangeSets[1][0].gateway == ip("10.1.0.254"))
    }

    @Test func routesDataDirAndRequestedAddresses() throws {
        let config = try parse(
            #", "dataDir": "/run/ipam", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.96.0.0/12", "gw": "10.244.1.1"}], "ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00::/64"}]]"#,
            extra: #", "args": {"cni": {"ips": ["fd00::9", "10.244.1.9"]}}, "runtimeConfig": {"ips": ["10.244.1.7/24"]}"#,
            args: [("IgnoreUnknown", "1"), ("IP", "10.244.1.9/24, fd00::8")])
        #expect(config.dataDir == "/run/ipam")
        #expect(config.routes == [CNIRoute(dst: net("0.0.0.0/0")), CNIRoute(dst: net("10.96.0.0/12"), gw: ip("10.244.1.1"))])
        // CNI_ARGS first, then args.cni.ips, then runtimeConfig.ips; repeats dropped.
        #expect(config.requested == [ip("10.244.1.9"), ip("fd00::8"), ip("fd00::9"), ip("10.244.1.7")])
    }

    @Test func requestedAddressesAreOnlyReadForAdd() throws {
        let config = try parse(#", "resolvConf": "/nonexistent/resolv.conf", "ranges": [[{"subnet": "10.244.1.0/24"}]]"#,
                               command: .del, args: [("IP", "garbage")])
        #expect(config.requested.isEmpty && config.dns == nil)
    }

    @Test func badRequestedAddresses() throws {
        let ranges = #", "ranges": [[{"subnet": "10.244.1.0/24"}]]"#
        let fromArgs = try #require(cniError { _ = try parse(ranges, args: [("IP", "10.244.1.300")]) })
        #expect(fromArgs.code == .invalidEnvironment)
        #expect(fromArgs.message.contains("10.244.1.300") && fromArgs.message.contains("CNI_ARGS"))
        let fromConfig = try #require(cniError { _ = try parse(ranges, extra: #", "runtimeConfig": {"ips": ["nope"]}"#) })
        #expect(fromConfig.code == .invalidNetworkConfig)
        #expect(fromConfig.message.contains("runtimeConfig.ips"))
    }

    @Test func resolvConf() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/resolv.conf"
        try """
        # generated
        nameserver 10.96.0.10
        nameserver fd00::10
        ; comment
        search default.svc.cluster.local svc.cluster.local
        domain cluster.local
        options ndots:5 edns0
        sortlist 10.0.0.0
        nameserver
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try parse(#", "resolvConf": "\#(path)", "ranges": [[{"subnet": "10.244.1.0/24"}]]"#)
        #expect(config.dns == CNIDNS(nameservers: ["10.96.0.10", "fd00::10"], domain: "cluster.local",
                                     search: ["default.svc.cluster.local", "svc.cluster.local"], options: ["ndots:5", "edns0"]))

        let missing = try #require(cniError { _ = try parse(#", "resolvConf": "\#(directory.path)/none", "ranges": [[{"subnet": "10.244.1.0/24"}]]"#) })
        #expect(missing.code == .invalidNetworkConfig)
        #expect(missing.message.contains("\(directory.path)/none") && missing.message.contains("No such file"))
    }

    @Test(arguments: [
        (#""#, "no IP ranges"),
        (#", "ranges": []"#, "no IP ranges"),
        (#", "ranges": [[]]"#, "has no ranges"),
        (#", "ranges": {"subnet": "10.0.0.0/24"}"#, "expected a list of range sets"),
        (#", "ranges": [[{"gateway": "10.0.0.1"}]]"#, "missing \"subnet\""),
        (#", "ranges": [[{"subnet": "10.0.0.0"}]]"#, "invalid subnet \"10.0.0.0\""),
        (#", "ranges": [[{"subnet": "10.0.0.0/33"}]]"#, "invalid subnet \"10.0.0.0/33\""),
        (#", "ranges": [[{"subnet": 42}]]"#, "invalid subnet 42"),
        (#", "ranges": [[{"subnet": "10.244.1.5/24"}]]"#, "has host bits set; did you mean 10.244.1.0/24?"),
        (#", "ranges": [[{"subnet": "10.0.0.0/31"}]]"#, "10.0.0.0/31 is too small"),
        (#", "ranges": [[{"subnet": "10.0.0.1/32"}]]"#, "10.0.0.1/32 is too small"),
        (#", "ranges": [[{"subnet": "fd00::/127"}]]"#, "fd00::/127 is too small"),
        (#", "ranges": [[{"subnet": "fd00::1/128"}]]"#, "fd00::1/128 is too small"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5"}]]"#, "rangeStart 10.0.1.5 is outside subnet 10.0.0.0/24"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.1.5"}]]"#, "rangeEnd 10.0.1.5 is outside subnet 10.0.0.0/24"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.9.0.1"}]]"#, "gateway 10.9.0.1 is outside subnet 10.0.0.0/24"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24", "gateway": "fd00::1"}]]"#, "not the same address family"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.8"}]]"#, "rangeStart 10.0.0.9 is after rangeEnd 10.0.0.8"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "bogus"}]]"#, "invalid rangeStart \"bogus\""),
        (#", "ranges": [[{"subnet": "10.0.0.0/30", "rangeStart": "10.0.0.1", "rangeEnd": "10.0.0.1"}]]"#, "has no address to hand out"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]"#, "mixes IPv4 and IPv6"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]]"#, "overlap"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/16"}]]"#, "range set 0 (ipam.ranges[0]) overlaps range set 1 (ipam.ranges[1])"),
        (#", "subnet": "10.0.0.0/24", "ranges": [[{"subnet": "10.0.0.0/24"}]]"#, "range set 0 (ipam.subnet) overlaps range set 1 (ipam.ranges[0])"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"dst": "nope"}]"#, "invalid ipam.routes"),
        (#", "ranges": [[{"subnet": "10.0.0.0/24"}]], "dataDir": 5"#, "invalid ipam.dataDir"),
    ])
    func invalidConfigs(ipam: String, message: String) throws {
        let error = try #require(cniError { _ = try parse(ipam) })
        #expect(error.code == .invalidNetworkConfig)
        #expect(error.message.contains(message), "\(error.message)")
    }

    @Test func errorsNameTheRangeSet() throws {
        let error = try #require(cniError {
            _ = try parse(#", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24", "rangeEnd": "10.2.0.1"}]]"#)
        })
        #expect(error.message == "invalid range set 1 (ipam.ranges[1]): rangeEnd 10.2.0.1 is outside subnet 10.1.0.0/24")
    }

    @Test func oldVersionsGetOneAddressPerFamily() throws {
        let ranges = #", "ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]"#
        let error = try #require(cniError { _ = try parse(ranges, version: "0.2.0") })
        #expect(error.message.contains("more than one address per family"))
        #expect(try parse(ranges, version: "0.3.1").rangeSets.count == 2)
    }

    @Test func missingIPAMSection() throws {
        let text = #"{"cniVersion": "1.0.0", "name": "n", "type": "bridge"}"#
        let error = try #require(cniError {
            _ = try IPAMConfig.parse(try NetworkConfig.parse(Array(text.utf8)), environment: CNIEnvironment(command: .add))
        })
        #expect(error.code == .invalidNetworkConfig && error.message.contains("ipam"))
    }

    // MARK: CNI_ARGS keys (host-local's rule: unknown keys fail unless IgnoreUnknown)

    @Test(arguments: [
        [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0"), ("IP", "10.244.1.9")],
        [("IgnoreUnknown", "true"), ("K8S_POD_NAME", "web-0")],
        [("IgnoreUnknown", "TRUE"), ("ip", "10.244.1.9")],
        [("IP", "10.244.1.9")],
        [("IgnoreUnknown", "0"), ("IP", "10.244.1.9")],
        [],
    ])
    func acceptedArgKeys(args: [(String, String)]) throws {
        let ranges = #", "ranges": [[{"subnet": "10.244.1.0/24"}]]"#
        let config = try parse(ranges, args: args.map { (key: $0.0, value: $0.1) })
        #expect(config.requested == (args.contains { $0.0 == "IP" } ? [ip("10.244.1.9")] : []))
    }

    @Test(arguments: [
        ([("K8S_POD_NAME", "web-0")], "unknown CNI_ARGS key K8S_POD_NAME"),
        ([("ip", "10.244.1.9")], "unknown CNI_ARGS key ip"),
        ([("IgnoreUnknown", "0"), ("K8S_POD_NAME", "a"), ("FOO", "1"), ("K8S_POD_NAME", "b")], "unknown CNI_ARGS keys K8S_POD_NAME, FOO"),
        ([("IgnoreUnknown", "yes"), ("IP", "10.244.1.9")], "invalid IgnoreUnknown \"yes\""),
        ([("IgnoreUnknown", ""), ("IP", "10.244.1.9")], "invalid IgnoreUnknown \"\""),
    ])
    func refusedArgKeys(args: [(String, String)], message: String) throws {
        let ranges = #", "ranges": [[{"subnet": "10.244.1.0/24"}]]"#
        let error = try #require(cniError { _ = try parse(ranges, args: args.map { (key: $0.0, value: $0.1) }) })
        #expect(error.code == .invalidEnvironment)
        #expect(error.message.hasPrefix(message), "\(error)")
    }

    @Test func argKeysMatterOnlyToAdd() throws {
        // A DEL must release the pod's address whatever the runtime put in CNI_ARGS.
        let ranges = #", "ranges": [[{"subnet": "10.244.1.0/24"}]]"#
        for command in [CNICommand.del, .check] {
            #expect(try parse(ranges, command: command, args: [("K8S_POD_NAME", "web-0")]).rangeSets.count == 1)
        }
    }
}
