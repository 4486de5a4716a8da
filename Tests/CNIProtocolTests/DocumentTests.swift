import Testing
@testable import CNIProtocol

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
private let supportedJSON = #"["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]"#

@Suite("VersionReport")
struct VersionReportTests {
    @Test(arguments: CNIVersion.supported)
    func echoesSupportedVersion(version: CNIVersion) {
        let report = VersionReport(requested: Array(#"{"cniVersion":"\#(version)"}"#.utf8))
        #expect(report.cniVersion == version.description)
        #expect(text(CNIJSON.encode(report)) == #"{"cniVersion":"\#(version)","supportedVersions":"# + supportedJSON + "}")
    }

    @Test(arguments: [
        #"{"cniVersion":"9.9.9"}"#, #"{"cniVersion":"1.0"}"#, #"{"cniVersion":"01.0.0"}"#, #"{"cniVersion":1}"#,
        #"{"cniVersion":null}"#, "{}", "[]", "", "not json", #"{"cniVersion":"1.0.0""#,
    ])
    func fallsBackToCurrent(request: String) {
        let report = VersionReport(requested: Array(request.utf8))
        #expect(report.cniVersion == "1.1.0")
        #expect(report.supportedVersions == ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    }

    @Test func podmanProbe() {
        // podman sends a full config with a name; only cniVersion matters.
        let report = VersionReport(requested: Array(#"{"cniVersion":"1.0.0","name":"podman","type":"podwire"}"#.utf8))
        #expect(text(CNIJSON.encode(report)) == #"{"cniVersion":"1.0.0","supportedVersions":"# + supportedJSON + "}")
    }
}

@Suite("ErrorDocument")
struct ErrorDocumentTests {
    @Test func withDetails() {
        let error = CNIError(.incompatibleVersion, "incompatible CNI versions",
                             details: "config is \"9.9.9\", plugin supports [0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0]")
        let document = ErrorDocument(error, version: .v1_0_0)
        #expect(document.code == 1)
        #expect(text(CNIJSON.encode(document))
                == #"{"cniVersion":"1.0.0","code":1,"details":"config is \"9.9.9\", plugin supports [0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0]","msg":"incompatible CNI versions"}"#)
    }

    @Test func withoutDetails() {
        let document = ErrorDocument(CNIError(.invalidEnvironment, "required env variables [CNI_NETNS] missing"), version: .v1_1_0)
        #expect(text(CNIJSON.encode(document)) == #"{"cniVersion":"1.1.0","code":4,"msg":"required env variables [CNI_NETNS] missing"}"#)
    }

    @Test func slashesAndControlCharacters() {
        let document = ErrorDocument(CNIError(.ioFailure, "cannot open /run/netns/pod1", details: "line1\nline2\t/x"), version: .v0_4_0)
        #expect(text(CNIJSON.encode(document)) == #"{"cniVersion":"0.4.0","code":5,"details":"line1\nline2\t/x","msg":"cannot open /run/netns/pod1"}"#)
    }

    @Test func pluginCodes() {
        let codes: [(CNIErrorCode, Int)] = [
            (.incompatibleVersion, 1), (.unsupportedField, 2), (.unknownContainer, 3), (.invalidEnvironment, 4),
            (.ioFailure, 5), (.decodingFailure, 6), (.invalidNetworkConfig, 7), (.tryAgainLater, 11),
            (.notAvailable, 50), (.limitedConnectivity, 51), (.kernelRefused, 100), (.delegateFailed, 101),
            (.rangeExhausted, 102), (.addressUnavailable, 103), (.checkFailed, 104),
        ]
        for (code, raw) in codes {
            #expect(code.rawValue == raw)
            #expect(code.description == String(raw))
        }
        // A delegate's 999 passes through unchanged.
        let passedOn = ErrorDocument(CNIError(CNIErrorCode(rawValue: 999), "ptp: Required prevResult missing"), version: .v1_0_0)
        #expect(text(CNIJSON.encode(passedOn)) == #"{"cniVersion":"1.0.0","code":999,"msg":"ptp: Required prevResult missing"}"#)
    }

    @Test func errorDescription() {
        #expect(CNIError(.ioFailure, "a", details: "b").description == "a: b")
        #expect(CNIError(.ioFailure, "a").description == "a")
    }
}
