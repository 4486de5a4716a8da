// Differential check of podwire's own JSON reader (CNIProtocol's JSONParser) against Foundation's
// JSONDecoder, an independent implementation: both must accept and refuse the same documents and
// read the same values. The differences podwire chose on purpose are listed in `intendedDifference`.

import CNIProtocol
import Foundation

/// Foundation's reading of a document as a JSONValue.
struct FoundationJSON: Decodable {
    var value: JSONValue

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            value = .null
        } else if let flag = try? container.decode(Bool.self) {
            value = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            value = .number(number)
        } else if let text = try? container.decode(String.self) {
            value = .string(text)
        } else if let items = try? container.decode([FoundationJSON].self) {
            value = .array(items.map(\.value))
        } else {
            value = .object(try container.decode([String: FoundationJSON].self).mapValues(\.value))
        }
    }
}

func fuzzParserAgainstFoundation(_ bytes: [UInt8]) {
    // Foundation's decoder costs depth squared (see StructureMutator); deep documents are the
    // depth limit's business, checked by the unit tests.
    guard nesting(bytes) <= 64 else { return }
    let ours: Result<JSONValue, CNIError> = Result { () throws(CNIError) in try CNIJSON.parse(bytes, what: "fuzz input") }
    let theirs = Result { try JSONDecoder().decode(FoundationJSON.self, from: Data(bytes)).value }
    switch (ours, theirs) {
    case (.success(let a), .success(let b)):
        // A repeated key keeps its last value in podwire, as in Go; Foundation keeps the first.
        if a != b && !hasRepeatedKeys(bytes) { finding("the JSON readers disagree: podwire read \(a), Foundation \(b)") }
    case (.success(let a), .failure(let error)):
        if !intendedDifference(podwireAccepts: true, bytes) {
            finding("podwire accepts what Foundation refuses (\(error)): \(a)")
        }
    case (.failure(let error), .success(let b)):
        if !intendedDifference(podwireAccepts: false, bytes, reason: error.details ?? "") {
            finding("podwire refuses what Foundation accepts (\(error.details ?? error.message)): \(b)")
        }
    case (.failure, .failure):
        break
    }
}

/// The deepest bracket nesting, ignoring brackets inside strings.
func nesting(_ bytes: [UInt8]) -> Int {
    var depth = 0, deepest = 0, inString = false, escaped = false
    for byte in bytes {
        if inString {
            if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
            continue
        }
        switch byte {
        case UInt8(ascii: "\""): inString = true
        case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1; deepest = max(deepest, depth)
        case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
        default: break
        }
    }
    return deepest
}

/// Where podwire is stricter than Foundation on purpose (Go's encoding/json, what runtimes use, is
/// the reference); each entry was a fuzz finding that turned out to be Foundation's leniency.
func intendedDifference(podwireAccepts: Bool, _ bytes: [UInt8], reason: String = "") -> Bool {
    if podwireAccepts {
        // A number too small for a Double ("1e-400") reads as 0, as Go's strconv.ParseFloat has it;
        // Foundation refuses the document. Foundation also refuses "0e5", which RFC 8259 allows
        // (an int of "0" followed by an exponent) and Go reads as 0.
        return numberTokens(bytes).contains { token in
            (Double(token) == 0 && token.prefix { $0 != "e" && $0 != "E" }.contains { ("1"..."9").contains($0) })
                || token.drop { $0 == "-" }.hasPrefix("0e") || token.drop { $0 == "-" }.hasPrefix("0E")
        }
    }
    // RFC 8259 text is UTF-8: podwire refuses invalid UTF-8 and unpaired surrogate escapes, where
    // Go substitutes U+FFFD and Foundation never looks at values it skips (a repeated key's).
    if reason.contains("invalid UTF-8") || reason.contains("unpaired surrogate") { return true }
    // Foundation does not look inside the values of a repeated key that it discards (all but the first).
    if hasRepeatedKeys(bytes) { return true }
    // Foundation stops reading at a NUL byte ("2\u{0}" is the number 2); Go refuses it.
    if bytes.contains(0) { return true }
    // Foundation takes a trailing comma ("[1,]"); Go refuses it.
    if hasTrailingComma(bytes) { return true }
    return false
}

/// Whether a "," outside strings is followed, after whitespace, by "]" or "}".
func hasTrailingComma(_ bytes: [UInt8]) -> Bool {
    var inString = false, escaped = false, afterComma = false
    for byte in bytes {
        if inString {
            if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
            continue
        }
        switch byte {
        case 0x20, 0x09, 0x0a, 0x0d: continue
        case UInt8(ascii: "]"), UInt8(ascii: "}"): if afterComma { return true }
        case UInt8(ascii: "\""): inString = true
        default: break
        }
        afterComma = byte == UInt8(ascii: ",")
    }
    return false
}

/// The number tokens outside strings.
func numberTokens(_ bytes: [UInt8]) -> [String] {
    var tokens: [String] = [], current: [UInt8] = [], inString = false, escaped = false
    for byte in bytes + [0x20] {
        if inString {
            if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
            continue
        }
        if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || Array("+-.eE".utf8).contains(byte) {
            current.append(byte)
            continue
        }
        if !current.isEmpty { tokens.append(String(decoding: current, as: UTF8.self)); current = [] }
        if byte == UInt8(ascii: "\"") { inString = true }
    }
    return tokens
}

/// Whether an object in the document names a key twice (compared as Swift strings, as both
/// readers' dictionaries do, so "K" and the Kelvin sign "\u{212A}" are the same key).
func hasRepeatedKeys(_ bytes: [UInt8]) -> Bool {
    var containers: [Set<String>?] = [] // nil for an array
    var expectingKey = false
    var index = 0
    while index < bytes.count {
        switch bytes[index] {
        case UInt8(ascii: "{"): containers.append([]); expectingKey = true
        case UInt8(ascii: "["): containers.append(nil); expectingKey = false
        case UInt8(ascii: "}"), UInt8(ascii: "]"): _ = containers.popLast(); expectingKey = false
        case UInt8(ascii: ","): expectingKey = containers.last.map { $0 != nil } ?? false
        case UInt8(ascii: "\""):
            let start = index
            index += 1
            var escaped = false
            while index < bytes.count {
                if escaped { escaped = false } else if bytes[index] == UInt8(ascii: "\\") { escaped = true } else if bytes[index] == UInt8(ascii: "\"") { break }
                index += 1
            }
            if expectingKey, index < bytes.count, var keys = containers.last ?? nil,
               case .string(let key)? = try? CNIJSON.parse(Array(bytes[start...index]), what: "key") {
                if keys.contains(key) { return true }
                keys.insert(key)
                containers[containers.count - 1] = keys
            }
            expectingKey = false
        default: break
        }
        index += 1
    }
    return false
}
