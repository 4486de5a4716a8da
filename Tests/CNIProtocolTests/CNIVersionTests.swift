import Testing
@testable import CNIProtocol

@Suite("CNIVersion")
struct CNIVersionTests {
    @Test(arguments: ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "0.0.0", "2.10.300", "9.9.9"])
    func parsesAndPrints(text: String) throws {
        let version = try #require(CNIVersion(text))
        #expect(version.description == text)
    }

    @Test func components() throws {
        let version = try #require(CNIVersion("0.3.1"))
        #expect(version.major == 0 && version.minor == 3 && version.patch == 1)
        #expect(version == .v0_3_1)
        #expect(CNIVersion(1, 1, 0) == .v1_1_0)
    }

    @Test(arguments: [
        "", "1", "1.0", "1.0.0.0", "1..0", ".1.0", "1.0.", "v1.0.0", "1.0.0-rc1", "1.0.0 ", " 1.0.0",
        "a.b.c", "-1.0.0", "+1.0.0", "1.-1.0", "1.0.x", "12345.0.0", "99999999999999999999.0.0",
        // The spec compares version strings exactly: "01.0.0" is not "1.0.0".
        "01.0.0", "1.00.0", "0.3.01", "00.1.0",
    ])
    func rejectsMalformed(text: String) {
        #expect(CNIVersion(text) == nil, "\(text) must not parse")
    }

    @Test func ordering() throws {
        let texts = ["1.1.0", "0.1.0", "0.3.1", "1.0.0", "0.2.0", "0.4.0", "0.3.0"]
        let sorted = texts.compactMap(CNIVersion.init).sorted()
        #expect(sorted.map(\.description) == ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        #expect(CNIVersion(0, 10, 0) > CNIVersion(0, 9, 9), "numeric, not lexical")
        #expect(CNIVersion(1, 0, 0) > CNIVersion(0, 99, 99))
        #expect(CNIVersion(0, 3, 10) > CNIVersion(0, 3, 9))
    }

    @Test func supportedList() {
        #expect(CNIVersion.supported.map(\.description) == ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        #expect(CNIVersion.supported == CNIVersion.supported.sorted(), "oldest first")
        #expect(CNIVersion.current == .v1_1_0)
        #expect(CNIVersion.implied == .v0_1_0)
        for version in CNIVersion.supported { #expect(version.isSupported) }
        #expect(!CNIVersion(0, 5, 0).isSupported)
        #expect(!CNIVersion(1, 2, 0).isSupported)
        #expect(!CNIVersion(9, 9, 9).isSupported)
        #expect(!CNIVersion(0, 3, 2).isSupported)
    }

    @Test(arguments: [
        ("0.1.0", false, false), ("0.2.0", false, false), ("0.3.0", false, false), ("0.3.1", false, false),
        ("0.4.0", true, false), ("1.0.0", true, false), ("1.1.0", true, true), ("1.2.0", true, true),
    ])
    func gating(text: String, check: Bool, statusAndGC: Bool) throws {
        let version = try #require(CNIVersion(text))
        #expect(version.allowsCheck == check)
        #expect(version.allowsStatusAndGC == statusAndGC)
    }
}
