import Testing
import CNIProtocol
import SeededRandom

/// Integers of up to 15 digits are summed by the parser itself; everything else goes through
/// strtod. Both must read a number exactly as strtod does.
@Suite("JSON numbers")
struct JSONNumberTests {
    private func number(_ text: String) throws -> Double? {
        guard case .number(let value) = try CNIJSON.parse(Array("[\(text)]".utf8), what: "input").arrayValue?.first else { return nil }
        return value
    }

    @Test(arguments: ["0", "-0", "7", "-7", "1500", "65535", "999999999999999", "-999999999999999",
                      "1000000000000000", "9007199254740993", "123456789012345678901234567890",
                      "1.5", "-0.25", "1e3", "1E-3", "12.0", "0.1"])
    func readsAsStrtodDoes(text: String) throws {
        let value = try #require(try number(text))
        let expected = try #require(Double(text))
        #expect(value == expected && value.sign == expected.sign, "\(text): \(value) against \(expected)")
    }

    @Test func randomIntegersOfEveryLength() throws {
        var random = SplitMix64(seed: 0x6a73_6f6e)
        for digits in 1...18 {
            for _ in 0..<200 {
                var text = random.below(2) == 0 ? "-" : ""
                text += String(1 + random.below(9))
                for _ in 1..<digits { text += String(random.below(10)) }
                #expect(try number(text) == Double(text), "\(text)")
            }
        }
    }

    @Test(arguments: ["01", "-", "--1", "1.", "1e", "+1", ".5"])
    func refusesWhatJSONDoesNotAllow(text: String) {
        #expect(throws: CNIError.self, "\(text)") { try number(text) }
    }
}
