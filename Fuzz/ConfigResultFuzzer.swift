// libFuzzer target for every reader of untrusted bytes in CNIProtocol and PodIPAM's config parser.
// Built by Scripts/fuzz.sh with swiftc (not part of Package.swift), so the main build stays as it is.
//
// A finding is any crash or runtime trap, and also any broken invariant below: a CNI error with a
// code the README's table does not allow there, an accepted config or IPAM section that breaks its
// own rules, a result that does not survive re-encoding, or podwire's JSON reader disagreeing with
// Go's encoding/json or Foundation's JSONDecoder beyond the exemptions each judge documents
// (GoJudge.swift, FoundationJudge.swift). Those call `finding`, which traps so that libFuzzer records
// the input like any other crash. StructureMutator.swift keeps most mutated inputs valid JSON.

import CNIProtocol
import NetAddress
import PodIPAM
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerInitialize")
public func podwireFuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?,
                                  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    checkTheJudges()
    _ = goJudge // started here, so that a missing Go judge stops the run before any input
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func podwireFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    // The Go judge reads the input on the other core while podwire's readers run here.
    goJudge.send(bytes)
    fuzzNetworkConfig(bytes)
    fuzzResult(bytes)
    fuzzVersionReport(bytes)
    fuzzJSONValue(bytes)
    fuzzResolvConf(bytes)
    judgeTheJSONReader(bytes, go: goJudge.receive())
    return 0
}

/// Both judges on every input, always: Go's encoding/json (GoJudge.swift), and Foundation's
/// JSONDecoder (FoundationJudge.swift) up to the depth its cost allows.
func judgeTheJSONReader(_ bytes: [UInt8], go: GoAnswer) {
    let podwire = PodwireReading(bytes)
    if let problem = goVerdict(bytes, podwire: podwire, go: go) {
        finding("Go's encoding/json: \(problem)")
    }
    if nesting(bytes) <= foundationDepthLimit,
       let problem = foundationVerdict(bytes, podwire: podwire, foundation: FoundationJSON.read(bytes)) {
        finding("Foundation's JSONDecoder: \(problem)")
    }
}

func finding(_ message: String) -> Never {
    fatalError("fuzz invariant broken: \(message)")
}

func expectCode(_ error: CNIError, in allowed: Set<Int>, _ what: String) {
    if !allowed.contains(error.code.rawValue) {
        finding("\(what) threw code \(error.code) (allowed: \(allowed.sorted())): \(error)")
    }
}

// MARK: - Network config, prevResult, CNI_* environment, IPAM config

func fuzzNetworkConfig(_ bytes: [UInt8]) {
    let config: NetworkConfig
    do {
        config = try NetworkConfig.parse(bytes)
    } catch {
        expectCode(error, in: [1, 6, 7], "NetworkConfig.parse")
        return
    }
    if let mtu = config.mtu, !(68...65535).contains(mtu) { finding("accepted mtu \(mtu)") }
    if let problem = NetworkConfig.networkNameProblem(config.name) { finding("accepted name \(config.name): \(problem)") }
    if !config.cniVersion.isSupported { finding("accepted version \(config.cniVersion)") }

    // The plugin reads prevResult this way (CHECK, chained DEL).
    if let previous = config.prevResult, previous != .null {
        do {
            let result = try CNIResult.decode(previous, defaultVersion: config.cniVersion)
            checkReencoding(result)
        } catch {
            expectCode(error, in: [1, 6, 7], "CNIResult.decode(prevResult)")
        }
    }

    // An "env" object lets the fuzzer drive CNIEnvironment.parse (CNI_ARGS "IP=" reaches IPAMConfig).
    var environment = CNIEnvironment(command: .add, containerID: "fuzz", netns: "/run/netns/fuzz", ifname: "eth0")
    if let envObject = config.json["env"]?.objectValue {
        var variables: [String: String] = [:]
        for (key, value) in envObject { if let text = value.stringValue { variables[key] = text } }
        do {
            environment = try CNIEnvironment.parse(variables)
        } catch {
            expectCode(error, in: [4], "CNIEnvironment.parse")
        }
    }

    // ADD reads resolvConf from disk: drop that key so the fuzzer never opens a file it names.
    var withoutFiles = config
    if case .object(var ipam)? = withoutFiles.json["ipam"] {
        ipam["resolvConf"] = nil
        withoutFiles.json["ipam"] = .object(ipam)
    }
    environment.command = .add
    fuzzIPAMConfig(withoutFiles, environment, allowed: [4, 7])
    environment.command = .del
    fuzzIPAMConfig(withoutFiles, environment, allowed: [7])
}

func fuzzIPAMConfig(_ network: NetworkConfig, _ environment: CNIEnvironment, allowed: Set<Int>) {
    let ipam: IPAMConfig
    do {
        ipam = try IPAMConfig.parse(network, environment: environment)
    } catch {
        expectCode(error, in: allowed, "IPAMConfig.parse(\(environment.command))")
        return
    }
    if ipam.rangeSets.isEmpty { finding("IPAM config without range sets") }
    for set in ipam.rangeSets {
        guard let first = set.first else { finding("empty range set accepted") }
        for range in set {
            if range.family != first.family { finding("mixed families in one set: \(set)") }
            if range.rangeStart > range.rangeEnd { finding("rangeStart after rangeEnd: \(range)") }
            if !range.subnet.contains(range.rangeStart) || !range.subnet.contains(range.rangeEnd)
                || !range.subnet.contains(range.gateway) {
                finding("range outside its subnet: \(range)")
            }
            guard let firstIssuable = range.firstIssuable, let lastIssuable = range.lastIssuable else {
                finding("range with nothing to hand out accepted: \(range)")
            }
            if firstIssuable > lastIssuable || range.isReserved(firstIssuable) || range.isReserved(lastIssuable) {
                finding("issuable bounds wrong: \(range)")
            }
            if range.capacity == 0 { finding("zero capacity accepted: \(range)") }
            _ = range.description
        }
    }
    if Set(ipam.requested).count != ipam.requested.count { finding("repeated requested addresses: \(ipam.requested)") }
}

// MARK: - Results in every version

func fuzzResult(_ bytes: [UInt8]) {
    // Most defaults read a document the same way; re-encoding each distinct result once keeps the
    // per-input work (and so libFuzzer's hit counts) in proportion to the document's size.
    var results = Set<CNIResult>()
    for version in CNIVersion.supported {
        do {
            results.insert(try CNIResult.decode(bytes, defaultVersion: version))
        } catch {
            expectCode(error, in: [1, 6, 7], "CNIResult.decode(defaultVersion: \(version))")
        }
    }
    results.forEach(checkReencoding)
}

/// Every decoded result encodes to every version (0.1.0/0.2.0 may refuse one without addresses,
/// with code 1), the encoding reads back, and encoding what was read back gives the same bytes.
func checkReencoding(_ result: CNIResult) {
    // The current version holds every field of the working form: nothing may be lost or changed
    // (an all-empty dns section is not written, which is the same as none).
    do {
        var expected = result
        expected.dns = result.dns.flatMap { $0.isSet ? $0 : nil }
        let reread = try CNIResult.decode(try result.encoded(as: .current), defaultVersion: .current)
        if reread != expected { finding("\(CNIVersion.current) round trip changed \(expected) into \(reread)") }
    } catch {
        finding("\(CNIVersion.current) round trip threw \(error) for \(result)")
    }
    for target in CNIVersion.supported {
        let encoded: [UInt8]
        do {
            encoded = try result.encoded(as: target)
        } catch {
            if error.code != .incompatibleVersion || target >= .v0_3_0 || !result.ips.isEmpty {
                finding("encoded(as: \(target)) threw \(error) for \(result)")
            }
            continue
        }
        let reread: CNIResult
        do {
            reread = try CNIResult.decode(encoded, defaultVersion: .v0_1_0)
        } catch {
            finding("podwire cannot read its own \(target) result \(String(decoding: encoded, as: UTF8.self)): \(error)")
        }
        do {
            let again = try reread.encoded(as: target)
            if again != encoded {
                finding("\(target) encoding is not stable: \(String(decoding: encoded, as: UTF8.self)) then \(String(decoding: again, as: UTF8.self))")
            }
        } catch {
            finding("re-encoding \(target) threw \(error)")
        }
    }
}

// MARK: - VERSION, JSONValue, resolv.conf

func fuzzVersionReport(_ bytes: [UInt8]) {
    let report = VersionReport(requested: bytes)
    guard let version = CNIVersion(report.cniVersion), version.isSupported else {
        finding("VERSION answered in \(report.cniVersion)")
    }
    _ = CNIJSON.encode(report)
}

/// Keys podwire does not interpret are passed on as JSONValue: what it writes must read back the same.
func fuzzJSONValue(_ bytes: [UInt8]) {
    guard let value = try? CNIJSON.decode(JSONValue.self, from: bytes, what: "fuzz input") else { return }
    let encoded = CNIJSON.encode(value)
    do {
        let reread = try CNIJSON.decode(JSONValue.self, from: encoded, what: "re-encoded fuzz input")
        if reread != value { finding("JSONValue round trip changed \(value) into \(reread)") }
    } catch {
        finding("JSONValue wrote unreadable JSON \(String(decoding: encoded, as: UTF8.self)): \(error)")
    }
}

func fuzzResolvConf(_ bytes: [UInt8]) {
    let dns = IPAMConfig.parseResolvConf(String(decoding: bytes, as: UTF8.self))
    _ = CNIJSON.encode(dns)
}
