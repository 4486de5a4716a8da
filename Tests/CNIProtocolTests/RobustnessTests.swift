import Testing
@testable import CNIProtocol
import SeededRandom

private let seedDocuments: [String] = [
    #"{"cniVersion":"1.1.0","name":"podnet","type":"podwire","mtu":1450,"ipMasq":"true","dns":{"nameservers":["10.96.0.10"]},"ipam":{"type":"podwire-ipam","ranges":[[{"subnet":"10.244.1.0/24"}]]},"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.244.1.5/24","interface":0}]}}"#,
    #"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","mtu":1450,"sandbox":"/run/netns/x"}],"ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":0},{"address":"fd00:10:244:1::5/64","gateway":"fd00:10:244:1::1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.244.1.1","mtu":1400,"table":254,"scope":0},{"dst":"::/0"}],"dns":{"nameservers":["10.96.0.10"],"search":["svc"]}}"#,
    #"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.1.2/24","gateway":"10.1.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.1.1"}]}"#,
    #"{"cniVersion":"0.2.0","ip4":{"ip":"10.9.0.2/30","gateway":"10.9.0.1","routes":[{"dst":"0.0.0.0/0"}]},"ip6":{"ip":"fd00:9::2/64","gateway":"fd00:9::1"},"dns":{}}"#,
]

/// Bytes that make near-JSON more often than uniformly random bytes would.
private let alphabet = Array(#"{}[]:,"\ 0123456789.-+eE/abcdefnrtuxyz:tru fals nul"#.utf8) + [0, 0x7f, 0xc3, 0xa9, 0xff, 0x80, 0x0a]

/// Runs every entry point that reads untrusted bytes. Throwing is fine; a crash fails the whole run.
/// Errors must carry one of the codes those readers document.
private func exercise(_ input: [UInt8]) {
    do {
        _ = try NetworkConfig.parse(input)
    } catch {
        #expect([1, 6, 7].contains(error.code.rawValue), "NetworkConfig.parse gave code \(error.code)")
    }
    for version in [CNIVersion.v0_2_0, .v1_1_0] {
        do {
            let result = try CNIResult.decode(input, defaultVersion: version)
            // Whatever decodes must also encode to every version (or refuse, for 0.1.0/0.2.0 without IPs).
            for target in CNIVersion.supported {
                do {
                    let encoded = try result.encoded(as: target)
                    _ = try CNIResult.decode(encoded, defaultVersion: target)
                } catch {
                    #expect(error.code == .incompatibleVersion && target < .v0_3_0, "re-encoding gave \(error)")
                }
            }
        } catch {
            #expect([1, 6, 7].contains(error.code.rawValue), "CNIResult.decode gave code \(error.code)")
        }
    }
    _ = VersionReport(requested: input)
}

@Suite("Robustness")
struct RobustnessTests {
    @Test func randomBytes() {
        var random = SplitMix64(seed: 0x00C0_FFEE)
        for _ in 0..<1500 {
            let length = random.below(48)
            exercise((0..<length).map { _ in alphabet[random.below(alphabet.count)] })
        }
        for _ in 0..<300 {
            exercise((0..<random.below(32)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        }
    }

    @Test(arguments: seedDocuments.indices)
    func everyTruncation(index: Int) {
        let document = Array(seedDocuments[index].utf8)
        for length in 0...document.count {
            exercise(Array(document[..<length]))
        }
    }

    @Test(arguments: seedDocuments.indices)
    func mutations(index: Int) {
        var random = SplitMix64(seed: UInt64(index + 1) * 7919)
        let document = Array(seedDocuments[index].utf8)
        for _ in 0..<250 {
            var mutated = document
            for _ in 0..<(1 + random.below(3)) {
                let position = random.below(mutated.count)
                switch random.below(4) {
                case 0: mutated[position] = alphabet[random.below(alphabet.count)]
                case 1: mutated.insert(alphabet[random.below(alphabet.count)], at: position)
                case 2: mutated.remove(at: position)
                default: mutated[position] = UInt8(truncatingIfNeeded: random.next())
                }
                if mutated.isEmpty { break }
            }
            exercise(mutated)
        }
    }

    /// The JSON reader refuses more than 512 levels; up to that, nesting only costs time.
    @Test func deepNesting() {
        for depth in [64, 200, 513, 5_000] {
            let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            exercise(Array(#"{"cniVersion":"1.0.0","name":"n","type":"t","x":"#.utf8) + Array(nested.utf8) + Array("}".utf8))
            exercise(Array(nested.utf8))
        }
    }

    @Test func extremeNumbers() {
        for number in ["1e308", "-1e308", "1e400", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "0.0000001", "-0"] {
            exercise(Array(#"{"cniVersion":"1.1.0","name":"n","type":"t","mtu":\#(number)}"#.utf8))
            exercise(Array(#"{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24","interface":\#(number)}],"routes":[{"dst":"0.0.0.0/0","mtu":\#(number),"table":\#(number)}]}"#.utf8))
        }
    }
}
