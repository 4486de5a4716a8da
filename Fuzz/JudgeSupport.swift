// What both judges (GoJudge.swift, FoundationJudge.swift) need: podwire's reading of a document, a
// tolerant outline of a document's structure to find the constructs an exemption names (repeated
// keys, the key at an offset), structural comparison, and the "repairs" that undo exactly one
// known difference so that everything else in the document must still agree.

import CNIProtocol

/// podwire's reading of a document: the value, or where and why its reader refused it.
enum PodwireReading {
    case value(JSONValue)
    case refused(offset: Int, reason: String)

    init(_ bytes: [UInt8]) {
        do {
            self = .value(try CNIJSON.parse(bytes, what: "fuzz input"))
        } catch {
            // CNIJSON.parse reports JSONParser.Failure as "invalid JSON at byte OFFSET: REASON".
            let details = error.details ?? ""
            let prefix = "invalid JSON at byte "
            guard details.hasPrefix(prefix), let colon = details.firstIndex(of: ":"),
                  let offset = Int(details[details.index(details.startIndex, offsetBy: prefix.count)..<colon]) else {
                finding("podwire's JSON error does not say where the JSON broke: \(error)")
            }
            self = .refused(offset: offset, reason: String(details[details.index(colon, offsetBy: 2)...]))
        }
    }
}

/// JSONParser's reasons that an exemption names (Sources/CNIProtocol/JSONParser.swift).
enum RefusalReason {
    static let depth = "nested deeper than 512 levels"
    static let equivalentKeys = "a key canonically equivalent to an earlier, different key"
}

// MARK: - Tokens

/// A lexical token of a document that may not be valid JSON: a string (its quotes included; to the
/// end of the input when unterminated), a word (a run of anything but whitespace, strings and the
/// structural characters: numbers, literals, garbage), or one structural character.
struct Token {
    enum Kind: Equatable { case string, word, structural(UInt8) }
    var kind: Kind
    var span: Range<Int>
}

func tokens(_ bytes: [UInt8]) -> [Token] {
    var result: [Token] = []
    var index = 0
    while index < bytes.count {
        let byte = bytes[index]
        switch byte {
        case 0x20, 0x09, 0x0a, 0x0d:
            index += 1
        case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: ":"), UInt8(ascii: ","):
            result.append(Token(kind: .structural(byte), span: index..<index + 1))
            index += 1
        case UInt8(ascii: "\""):
            let start = index
            index += 1
            while index < bytes.count && bytes[index] != UInt8(ascii: "\"") {
                index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
            }
            index = min(index + 1, bytes.count)
            result.append(Token(kind: .string, span: start..<index))
        default:
            let start = index
            wordLoop: while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0a, 0x0d, UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"),
                     UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "\""):
                    break wordLoop
                default:
                    index += 1
                }
            }
            result.append(Token(kind: .word, span: start..<index))
        }
    }
    return result
}

/// The deepest bracket nesting, ignoring brackets inside strings (for every input: no tokens).
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

/// How many brackets are open just before `offset`.
func openBrackets(_ bytes: [UInt8], before offset: Int) -> Int {
    var depth = 0
    for token in tokens(bytes) where token.span.lowerBound < offset {
        switch token.kind {
        case .structural(UInt8(ascii: "[")), .structural(UInt8(ascii: "{")): depth += 1
        case .structural(UInt8(ascii: "]")), .structural(UInt8(ascii: "}")): depth -= 1
        default: break
        }
    }
    return depth
}

// MARK: - Outline

/// A document's structure with byte spans, read tolerantly (it is used on documents one reader
/// refused): each object's members in order, repeated keys kept, keys decoded as podwire decodes
/// them (the raw bytes when podwire cannot). Only for finding constructs, never for judging.
struct Outline {
    enum Kind {
        case scalar
        case array([Outline])
        case object([Member])
    }

    struct Member {
        var key: String
        var keySpan: Range<Int>
        var value: Outline
    }

    var kind: Kind
    /// From the first byte of the value to the byte after its last (its closing bracket included).
    var span: Range<Int>

    init(kind: Kind, span: Range<Int>) {
        self.kind = kind
        self.span = span
    }

    init(_ bytes: [UInt8]) {
        var reader = OutlineReader(bytes: bytes, tokens: tokens(bytes))
        self = reader.value(depth: 0)
    }

    var members: [Member] {
        if case .object(let members) = kind { return members }
        return []
    }

    /// Keys named more than once in this object, compared as Swift strings (Foundation's and
    /// podwire's dictionaries compare them so).
    var repeatedKeys: Set<String> {
        var seen = Set<String>(), repeated = Set<String>()
        for member in members where !seen.insert(member.key).inserted { repeated.insert(member.key) }
        return repeated
    }

    /// Every object in the document, this one included, as its members.
    var objects: [[Member]] {
        switch kind {
        case .scalar: []
        case .array(let items): items.flatMap(\.objects)
        case .object(let members): [members] + members.flatMap(\.value.objects)
        }
    }
}

private struct OutlineReader {
    let bytes: [UInt8]
    let tokens: [Token]
    var position = 0

    func at(_ character: Character) -> Bool {
        position < tokens.count && tokens[position].kind == .structural(character.asciiValue!)
    }

    /// Where the value just read ends.
    var end: Int { position > 0 ? tokens[position - 1].span.upperBound : 0 }

    /// Values deeper than this are outlined as one opaque scalar (the recursion stays shallow).
    static let deepest = 1024

    mutating func value(depth: Int) -> Outline {
        guard position < tokens.count else { return Outline(kind: .scalar, span: bytes.count..<bytes.count) }
        let token = tokens[position]
        position += 1
        switch token.kind {
        case .structural(UInt8(ascii: "[")) where depth < Self.deepest:
            var items: [Outline] = []
            while position < tokens.count && !at("]") {
                if at(",") { position += 1; continue }
                if at("}") || at(":") { break }
                items.append(value(depth: depth + 1))
            }
            if at("]") { position += 1 }
            return Outline(kind: .array(items), span: token.span.lowerBound..<end)
        case .structural(UInt8(ascii: "{")) where depth < Self.deepest:
            var members: [Outline.Member] = []
            while position < tokens.count && !at("}") {
                if at(",") { position += 1; continue }
                guard tokens[position].kind == .string else { break }
                let keySpan = tokens[position].span
                position += 1
                if at(":") { position += 1 }
                let raw = Array(bytes[keySpan])
                let key: String
                if case .string(let decoded)? = try? CNIJSON.parse(raw, what: "key") {
                    key = decoded
                } else {
                    key = String(decoding: raw.dropFirst().dropLast(), as: UTF8.self)
                }
                members.append(Outline.Member(key: key, keySpan: keySpan, value: value(depth: depth + 1)))
            }
            if at("}") { position += 1 }
            return Outline(kind: .object(members), span: token.span.lowerBound..<end)
        default:
            return Outline(kind: .scalar, span: token.span)
        }
    }
}

// MARK: - Comparison

/// Where two readings differ (a path into the document and what differs), or nil when they agree.
/// Numbers compare as IEEE-754 bit patterns (so 0 and -0 differ), strings and keys byte for byte.
/// Values under a key repeated in that object (per `outline`) are not compared: Foundation keeps a
/// repeated key's first value, podwire and Go its last. The key itself must still be in both.
func difference(_ ours: JSONValue, _ theirs: JSONValue, outline: Outline?, path: String = "$") -> String? {
    switch (ours, theirs) {
    case (.null, .null):
        return nil
    case (.bool(let a), .bool(let b)):
        return a == b ? nil : "\(path): \(a) against \(b)"
    case (.number(let a), .number(let b)):
        return a.bitPattern == b.bitPattern ? nil : "\(path): \(a) against \(b)"
    case (.string(let a), .string(let b)):
        return a.utf8.elementsEqual(b.utf8) ? nil : "\(path): \(Array(a.utf8)) against \(Array(b.utf8))"
    case (.array(let a), .array(let b)):
        guard a.count == b.count else { return "\(path): \(a.count) items against \(b.count)" }
        var outlines: [Outline]? = nil
        if case .array(let items)? = outline?.kind, items.count == a.count { outlines = items }
        for index in a.indices {
            if let found = difference(a[index], b[index], outline: outlines?[index], path: "\(path)[\(index)]") { return found }
        }
        return nil
    case (.object(let a), .object(let b)):
        guard a.count == b.count else { return "\(path): keys \(a.keys.sorted()) against \(b.keys.sorted())" }
        let repeated = outline?.repeatedKeys ?? []
        for (key, value) in a {
            guard let position = b.index(forKey: key), b.keys[position].utf8.elementsEqual(key.utf8) else {
                return "\(path): key \(Array(key.utf8)) only in the first reading"
            }
            if repeated.contains(key) { continue }
            let member = outline?.members.last { $0.key == key }
            if let found = difference(value, b.values[position], outline: member?.value, path: "\(path)[\(Array(key.utf8))]") { return found }
        }
        return nil
    default:
        return "\(path): \(ours) against \(theirs)"
    }
}

// MARK: - Repairs

/// The document without its trailing commas: each "," outside strings that is followed, after
/// whitespace, by "]" or "}".
func removingTrailingCommas(_ bytes: [UInt8]) -> [UInt8] {
    let all = tokens(bytes)
    var drop = Set<Int>()
    for (position, token) in all.enumerated() where token.kind == .structural(UInt8(ascii: ","))
        && position + 1 < all.count
        && (all[position + 1].kind == .structural(UInt8(ascii: "]")) || all[position + 1].kind == .structural(UInt8(ascii: "}"))) {
        drop.insert(token.span.lowerBound)
    }
    return bytes.indices.filter { !drop.contains($0) }.map { bytes[$0] }
}

/// The document with each number that podwire reads as zero but Foundation refuses written as a
/// plain "0" (or "-0"): numbers too small for a Double ("1e-400", which Go's strconv.ParseFloat
/// also reads as 0) and a zero with an exponent ("0e5", which RFC 8259 allows). The values do not
/// change, so a repaired document must read exactly as podwire read the original.
func zeroingUnderflows(_ bytes: [UInt8]) -> [UInt8] {
    var output: [UInt8] = []
    var copied = 0
    for token in tokens(bytes) where token.kind == .word {
        let word = bytes[token.span]
        let negative = word.first == UInt8(ascii: "-")
        let unsigned = word.dropFirst(negative ? 1 : 0)
        guard let first = unsigned.first, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
              let value = Double(String(decoding: word, as: UTF8.self)), value == 0 else { continue }
        let mantissa = unsigned.prefix { $0 != UInt8(ascii: "e") && $0 != UInt8(ascii: "E") }
        let underflows = mantissa.contains { (UInt8(ascii: "1")...UInt8(ascii: "9")).contains($0) }
        let zeroWithExponent = unsigned.count > 1 && first == UInt8(ascii: "0")
            && (unsigned.dropFirst().first == UInt8(ascii: "e") || unsigned.dropFirst().first == UInt8(ascii: "E"))
        guard underflows || zeroWithExponent else { continue }
        output += bytes[copied..<token.span.lowerBound]
        output += Array((negative ? "-0" : "0").utf8)
        copied = token.span.upperBound
    }
    return output + bytes[copied...]
}

/// The document with its strings as Go's encoding/json reads them (decode.go, unquote): each byte
/// that does not begin a valid UTF-8 sequence becomes U+FFFD, and each \u escape of a surrogate
/// that is not a high one followed by a \u escape of a low one becomes \ufffd (the escape after it
/// is then read on its own).
func goReplacingInvalidText(_ bytes: [UInt8]) -> [UInt8] {
    var output: [UInt8] = []
    output.reserveCapacity(bytes.count)
    var copied = 0
    for token in tokens(bytes) where token.kind == .string {
        output += bytes[copied..<token.span.lowerBound]
        copied = token.span.upperBound
        var index = token.span.lowerBound
        let end = token.span.upperBound
        while index < end {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") && index + 1 < end && bytes[index + 1] == UInt8(ascii: "u"),
               let unit = hex4(bytes, index + 2, end), (0xD800...0xDFFF).contains(unit) {
                if unit <= 0xDBFF, index + 11 < end, bytes[index + 6] == UInt8(ascii: "\\"), bytes[index + 7] == UInt8(ascii: "u"),
                   let low = hex4(bytes, index + 8, end), (0xDC00...0xDFFF).contains(low) {
                    output += bytes[index..<index + 12]
                    index += 12
                } else {
                    output += Array(#"\ufffd"#.utf8)
                    index += 6
                }
            } else if byte == UInt8(ascii: "\\") {
                output += bytes[index..<min(index + 2, end)]
                index += 2
            } else if byte < 0x80 {
                output.append(byte)
                index += 1
            } else {
                let length = utf8SequenceLength(bytes, index, end)
                if length == 0 {
                    output += [0xEF, 0xBF, 0xBD]
                    index += 1
                } else {
                    output += bytes[index..<index + length]
                    index += length
                }
            }
        }
    }
    return output + bytes[copied...]
}

private func hex4(_ bytes: [UInt8], _ start: Int, _ end: Int) -> UInt16? {
    guard start + 4 <= end else { return nil }
    var value: UInt16 = 0
    for byte in bytes[start..<start + 4] {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): value = value << 4 | UInt16(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): value = value << 4 | UInt16(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): value = value << 4 | UInt16(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }
    return value
}

/// The length of the valid UTF-8 sequence at `index` (Unicode's table 3-7, as Go's utf8.DecodeRune
/// reads it), or 0 when the byte there does not begin one.
func utf8SequenceLength(_ bytes: [UInt8], _ index: Int, _ end: Int) -> Int {
    func continuation(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> Bool {
        index + offset < end && range.contains(bytes[index + offset])
    }
    switch bytes[index] {
    case 0xC2...0xDF: return continuation(1) ? 2 : 0
    case 0xE0: return continuation(1, 0xA0...0xBF) && continuation(2) ? 3 : 0
    case 0xE1...0xEC, 0xEE...0xEF: return continuation(1) && continuation(2) ? 3 : 0
    case 0xED: return continuation(1, 0x80...0x9F) && continuation(2) ? 3 : 0
    case 0xF0: return continuation(1, 0x90...0xBF) && continuation(2) && continuation(3) ? 4 : 0
    case 0xF1...0xF3: return continuation(1) && continuation(2) && continuation(3) ? 4 : 0
    case 0xF4: return continuation(1, 0x80...0x8F) && continuation(2) && continuation(3) ? 4 : 0
    default: return 0
    }
}
