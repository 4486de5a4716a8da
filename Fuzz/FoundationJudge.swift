// The second judge of podwire's JSON reader: Foundation's JSONDecoder, an implementation that
// shares no code with podwire's or Go's. Where Foundation and Go differ, Go is the reference (see
// GoJudge.swift); Foundation's own leniencies and strictnesses are excused only where they apply
// (`foundationVerdict`), each found by this judge first:
// - a repeated key: Foundation keeps the first value and never reads the later ones (so invalid
//   text or escapes there go unnoticed); podwire and Go keep the last. The values under a repeated
//   key are not compared, everything else is; a refusal is excused only inside a value Foundation
//   discards. (Fuzz/regressions/oracle-repeated-key-keeps-last, -invalid-utf8-in-repeated-key,
//   -invalid-escape-in-repeated-key, -invalid-number-in-equivalent-repeated-key.)
// - another encoding: Foundation reads a document as UTF-16 or UTF-32 when NUL bytes among its
//   first four say so (RFC 4627's detection; "2\0" is the number 2 in UTF-16LE), and skips a byte
//   order mark; podwire and Go read UTF-8 only (RFC 8259). Excused when podwire, reading the text
//   Foundation decoded, reads Foundation's value. (oracle-nul-after-number, oracle-utf16-detected)
// - a trailing comma: Foundation accepts "[1,]". Excused when podwire, reading the document
//   without its trailing commas, reads Foundation's value. (oracle-trailing-comma)
// - a number too small for a Double ("1e-400", Go reads 0) or a zero with a positive exponent
//   ("0e5"): Foundation refuses the document. Excused when Foundation, reading the document with
//   just those numbers written as 0, reads podwire's value. (oracle-number-underflows-to-zero,
//   oracle-zero-with-exponent)
// - podwire's refusal of canonically equivalent keys (see JSONParser) happens at a later key that
//   Foundation counts as a repeat of the first, and is excused like the first exemption.
// Foundation's depth limit is podwire's (512), so nesting needs no exemption. Its decoder costs
// about depth cubed here (each failed type probe builds its coding path: 0.8 ms at depth 64, 190 ms
// at 512 for nested objects), so documents nested deeper than 64 are judged by Go alone.

import CNIProtocol
import Foundation

/// Foundation's reading of a document as a JSONValue.
struct FoundationJSON: Decodable {
    var value: JSONValue

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        // Containers first: a failed probe costs a coding path, and deep documents are containers.
        if container.decodeNil() {
            value = .null
        } else if let items = try? container.decode([FoundationJSON].self) {
            value = .array(items.map(\.value))
        } else if let object = try? container.decode([String: FoundationJSON].self) {
            value = .object(object.mapValues(\.value))
        } else if let flag = try? container.decode(Bool.self) {
            value = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            value = .number(number)
        } else {
            value = .string(try container.decode(String.self))
        }
    }

    static func read(_ bytes: [UInt8]) -> Result<JSONValue, any Error> {
        Result { try JSONDecoder().decode(FoundationJSON.self, from: Data(bytes)).value }
    }
}

/// The deepest nesting Foundation judges (see above).
let foundationDepthLimit = 64

/// Whether podwire and Foundation disagree about `bytes` in a way none of the exemptions above
/// excuses: nil when they agree, otherwise what differs. `foundation` and `reread` read repaired
/// documents (the self-checks substitute readings; the fuzz target passes the real readers).
func foundationVerdict(_ bytes: [UInt8], podwire: PodwireReading, foundation: Result<JSONValue, any Error>,
                       rereadFoundation: ([UInt8]) -> Result<JSONValue, any Error> = FoundationJSON.read,
                       reread: ([UInt8]) -> PodwireReading = PodwireReading.init) -> String? {
    switch (podwire, foundation) {
    case (.value(let ours), .success(let theirs)):
        // The outline (for repeated keys) only when the values differ: most documents have none.
        guard difference(ours, theirs, outline: nil) != nil, let found = difference(ours, theirs, outline: Outline(bytes)) else {
            return nil
        }
        return "podwire and Foundation read different values at \(found)"
    case (.value(let ours), .failure(let error)):
        let zeroed = zeroingUnderflows(bytes)
        guard zeroed != bytes else { return "podwire accepts what Foundation refuses (\(error)): \(ours)" }
        switch rereadFoundation(zeroed) {
        case .success(let theirs):
            guard let found = difference(ours, theirs, outline: Outline(zeroed)) else { return nil }
            return "with underflowing numbers written as 0, Foundation reads a different value at \(found)"
        case .failure(let again):
            return "podwire accepts what Foundation refuses, even with underflowing numbers written as 0 (\(again)): \(ours)"
        }
    case (.refused(let offset, let reason), .success(let theirs)):
        if discards(bytes, offset, reason) { return nil }
        // Read the document as Foundation did: in the encoding it detected, trailing commas ignored.
        let repaired = removingTrailingCommas(foundationText(bytes) ?? bytes)
        guard repaired != bytes else {
            return "podwire refuses what Foundation accepts (at byte \(offset): \(reason)): Foundation read \(theirs)"
        }
        switch reread(repaired) {
        case .value(let ours):
            guard let found = difference(ours, theirs, outline: Outline(repaired)) else { return nil }
            return "reading the text Foundation decoded, without trailing commas, podwire reads a different value at \(found)"
        case .refused(let offset2, let reason2):
            if discards(repaired, offset2, reason2) { return nil }
            return "podwire refuses what Foundation accepts (at byte \(offset): \(reason); in the text Foundation "
                + "decoded, without trailing commas, at byte \(offset2): \(reason2)): Foundation read \(theirs)"
        }
    case (.refused, .failure):
        return nil
    }
}

/// Whether podwire's refusal at `offset` lies where Foundation does not look: inside the value of
/// a repeated key that it discards (every occurrence but the first; a malformed number there is
/// refused just after its last character, where a digit was missing), or, for podwire's refusal
/// of canonically equivalent keys, at such a key.
func discards(_ bytes: [UInt8], _ offset: Int, _ reason: String) -> Bool {
    for members in Outline(bytes).objects {
        var seen = Set<String>()
        for member in members where !seen.insert(member.key).inserted {
            if member.value.span.contains(offset) { return true }
            if member.value.span.upperBound == offset && reason.hasPrefix("invalid number") { return true }
            if reason == RefusalReason.equivalentKeys && member.keySpan.lowerBound == offset { return true }
        }
    }
    return false
}

/// The UTF-8 text Foundation's JSONDecoder reads when it does not read `bytes` as UTF-8 as they
/// are: its byte order marks and RFC 4627's pattern of NULs in the first four bytes, as
/// swift-foundation's JSONDecoder.withUTF8Representation has them (FE FF 00 00 is its mark for
/// UTF-32LE), transcoded with Foundation's own String(bytes:encoding:). nil for plain UTF-8.
func foundationText(_ bytes: [UInt8]) -> [UInt8]? {
    func at(_ index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }
    let encoding: String.Encoding
    var mark = 0
    switch (at(0), at(1), at(2), at(3)) {
    case (0, 0, 0xFE, 0xFF): encoding = .utf32BigEndian; mark = 4
    case (0xFE, 0xFF, 0, 0): encoding = .utf32LittleEndian; mark = 4
    case (0xFE, 0xFF, _, _): encoding = .utf16BigEndian; mark = 2
    case (0xFF, 0xFE, _, _): encoding = .utf16LittleEndian; mark = 2
    case (0xEF, 0xBB, 0xBF, _): return Array(bytes.dropFirst(3))
    case (0, 0, 0, .some(let byte)) where byte != 0: encoding = .utf32BigEndian
    case (0, .some(let first), 0, .some(let second)) where first != 0 && second != 0: encoding = .utf16BigEndian
    case (.some(let byte), 0, 0, 0) where byte != 0: encoding = .utf32LittleEndian
    case (.some(let first), 0, .some(let second), 0) where first != 0 && second != 0: encoding = .utf16LittleEndian
    case (0, .some(let byte), nil, nil) where byte != 0: encoding = .utf16BigEndian
    case (.some(let byte), 0, nil, nil) where byte != 0: encoding = .utf16LittleEndian
    default: return nil
    }
    return String(bytes: bytes.dropFirst(mark), encoding: encoding).map { Array($0.utf8) }
}
