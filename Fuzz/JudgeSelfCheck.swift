// Checks of the judges' own logic, run once when the fuzz target starts (LLVMFuzzerInitialize):
// each exemption must excuse the construct it names, and must not excuse a difference elsewhere
// in the same document. Readings podwire never gives (it has no such bug today) are made up here,
// so that a judge that excuses too much fails before any fuzzing. A broken check stops the target
// with "fuzz invariant broken: judge self-check", which Scripts/fuzz.sh reports like a finding.

import CNIProtocol

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private struct Failure: Error {}

private func check(_ condition: Bool, _ what: String) {
    if !condition { finding("judge self-check: \(what)") }
}

/// Go's rendering of a value, as the co-process would answer.
private func go(_ value: JSONValue) -> GoAnswer { .accepted(goRendering(value)) }

func checkTheJudges() {
    let real = PodwireReading.init
    func podwire(_ text: String) -> PodwireReading { PodwireReading(bytes(text)) }

    // The helpers.
    check(removingTrailingCommas(bytes(#"["a,]", [1 , ] ,{"b":2,}, ]"#)) == bytes(#"["a,]", [1  ] ,{"b":2} ]"#), "removingTrailingCommas")
    check(foundationText([0x32, 0x00]) == [0x32] && foundationText([0x00, 0x00, 0x00, 0x5B, 0x00, 0x00, 0x00, 0x5D]) == bytes("[]")
          && foundationText([0xEF, 0xBB, 0xBF, 0x31]) == bytes("1") && foundationText(bytes("[1]")) == nil
          && foundationText([0x5B, 0x31, 0x5D, 0x00]) == nil, "foundationText")
    check(zeroingUnderflows(bytes(#"[1e-400,-2.5E-999,0e5,-0E+1,0.0e-400,1e-300,"1e-400",0,10e-2]"#))
          == bytes(#"[0,-0,0,-0,0.0e-400,1e-300,"1e-400",0,10e-2]"#), "zeroingUnderflows")
    check(goReplacingInvalidText([0x22, 0xBA, 0x41, 0xE2, 0x82, 0x22, 0x5B, 0xBA])
          == [0x22, 0xEF, 0xBF, 0xBD, 0x41, 0xEF, 0xBF, 0xBD, 0xEF, 0xBF, 0xBD, 0x22, 0x5B, 0xBA], "goReplacingInvalidText: bytes")
    check(goReplacingInvalidText(bytes(#"["\ud800","\udc00\u0041","\ud83d\ude00","\ud800\ud800\udc00","\\ud800"]"#))
          == bytes(#"["\ufffd","\ufffd\u0041","\ud83d\ude00","\ufffd\ud800\udc00","\\ud800"]"#), "goReplacingInvalidText: escapes")
    check(nesting(bytes(#"[{"[[[":[]}]"#)) == 3 && openBrackets(bytes("[[{]"), before: 2) == 2, "nesting")
    check(Outline(bytes(#"{"a":1,"b":{"a":2},"a":[3]}"#)).repeatedKeys == ["a"], "Outline.repeatedKeys")

    // Foundation: a repeated key excuses its own values, nothing else.
    let repeated = #"{"a":1,"a":2,"b":3}"#
    check(foundationVerdict(bytes(repeated), podwire: podwire(repeated), foundation: .success(["a": 1, "b": 3])) == nil,
          "Foundation: the repeated key's first value")
    check(foundationVerdict(bytes(repeated), podwire: .value(["a": 2, "b": 4]), foundation: .success(["a": 1, "b": 3])) != nil,
          "Foundation: a repeated key hid a difference elsewhere")
    check(foundationVerdict(bytes(repeated), podwire: .value(["a": 2]), foundation: .success(["a": 1, "b": 3])) != nil,
          "Foundation: a repeated key hid a missing key")
    let discarded = #"{"a":1,"b":"x","a":"y"}"#
    check(foundationVerdict(bytes(discarded), podwire: .refused(offset: 21, reason: "invalid escape"),
                            foundation: .success(["a": 1, "b": "x"])) == nil,
          "Foundation: a refusal inside a discarded value")
    check(foundationVerdict(bytes(discarded), podwire: .refused(offset: 13, reason: "invalid escape"),
                            foundation: .success(["a": 1, "b": "x"])) != nil,
          "Foundation: a repeated key hid a refusal elsewhere")
    let number = #"{"a":1,"a":2.,"b":3.}"#
    check(foundationVerdict(bytes(number), podwire: podwire(number), foundation: .success(["a": 1, "b": 3])) == nil,
          "Foundation: a malformed number in a discarded value")
    check(foundationVerdict(bytes(number), podwire: .refused(offset: 20, reason: "invalid number: no digits after '.'"),
                            foundation: .success(["a": 1, "b": 3])) != nil,
          "Foundation: a repeated key hid a malformed number elsewhere")
    check(foundationVerdict(bytes(number), podwire: .refused(offset: 13, reason: "expected ',' or '}' in an object"),
                            foundation: .success(["a": 1, "b": 3])) != nil,
          "Foundation: a refusal after a discarded value")
    // Another encoding: only the text Foundation decoded.
    let utf16: [UInt8] = [0x5B, 0x00, 0x31, 0x00, 0x5D, 0x00] // [1] in UTF-16LE
    check(foundationVerdict(utf16, podwire: real(utf16), foundation: .success([1])) == nil, "Foundation: UTF-16")
    check(foundationVerdict(utf16, podwire: real(utf16), foundation: .success([2])) != nil,
          "Foundation: UTF-16 hid a different value")
    check(foundationVerdict([0x5B, 0x31, 0x5D, 0x00], podwire: real([0x5B, 0x31, 0x5D, 0x00]), foundation: .success([1])) != nil,
          "Foundation: a NUL that is no encoding's")
    // Trailing comma: only the comma.
    check(foundationVerdict(bytes("[1,[2,],]"), podwire: podwire("[1,[2,],]"), foundation: .success([1, [2]])) == nil,
          "Foundation: trailing commas")
    check(foundationVerdict(bytes("[1,[2,],]"), podwire: podwire("[1,[2,],]"), foundation: .success([1, [3]])) != nil,
          "Foundation: a trailing comma hid a different value")
    check(foundationVerdict(bytes("[1,[2,],x]"), podwire: podwire("[1,[2,],x]"), foundation: .success([1, [2], "x"]),
                            reread: { _ in .value([1, [2], "x"]) }) == nil,
          "Foundation: the repaired document is read again")
    check(foundationVerdict(bytes("[1,[2,],x]"), podwire: podwire("[1,[2,],x]"), foundation: .success([1, [2], "x"])) != nil,
          "Foundation: a trailing comma hid a refusal elsewhere")
    // Underflow: only the numbers written as 0.
    let underflow = "[1e-400,0e5,5]"
    check(foundationVerdict(bytes(underflow), podwire: podwire(underflow), foundation: .failure(Failure())) == nil,
          "Foundation: underflowing numbers")
    check(foundationVerdict(bytes(underflow), podwire: .value([0, 0, 6]), foundation: .failure(Failure())) != nil,
          "Foundation: an underflow hid a different value")
    check(foundationVerdict(bytes("[1,2]"), podwire: podwire("[1,2]"), foundation: .failure(Failure())) != nil,
          "Foundation: a refusal without an underflow")
    // Canonically equivalent keys: the later key is one Foundation discards.
    let kelvin = "{\"K\":1,\"\u{212A}\":2}"
    check(foundationVerdict(bytes(kelvin), podwire: .refused(offset: 7, reason: RefusalReason.equivalentKeys),
                            foundation: .success(["K": 1])) == nil,
          "Foundation: equivalent keys")
    check(foundationVerdict(bytes(kelvin), podwire: .refused(offset: 1, reason: RefusalReason.equivalentKeys),
                            foundation: .success(["K": 1])) != nil,
          "Foundation: an equivalent-key refusal at the first key")

    // Go: values compare exactly, -0 included.
    check(goVerdict(bytes("[-0]"), podwire: podwire("[-0]"), go: go([.number(-0.0)])) == nil, "Go: -0")
    check(goVerdict(bytes("[-0]"), podwire: .value([0]), go: go([.number(-0.0)])) != nil, "Go: -0 against 0")
    check(goVerdict(bytes("[1]"), podwire: podwire("[1]"), go: .refused("no")) != nil, "Go: podwire accepts more")
    // Invalid text: only where Go replaces it.
    let invalid: [UInt8] = [0x5B, 0x22, 0xBA, 0x22, 0x2C, 0x22, 0x5C, 0x75, 0x64, 0x38, 0x30, 0x30, 0x22, 0x5D] // ["\xba","\ud800"]
    check(goVerdict(invalid, podwire: real(invalid), go: go(["\u{FFFD}", "\u{FFFD}"])) == nil, "Go: invalid text")
    check(goVerdict(invalid, podwire: real(invalid), go: go(["\u{FFFD}", "x"])) != nil, "Go: invalid text hid a different value")
    let invalidThenBad: [UInt8] = [0x5B, 0x22, 0xBA, 0x22, 0x2C, 0x78, 0x5D] // ["\xba",x]
    check(goVerdict(invalidThenBad, podwire: real(invalidThenBad), go: go(["\u{FFFD}", "x"])) != nil,
          "Go: invalid text hid a refusal elsewhere")
    // Depth: only podwire's own limit.
    let deep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
    var deepValue: JSONValue = []
    for _ in 0..<512 { deepValue = [deepValue] }
    check(goVerdict(bytes(deep), podwire: podwire(deep), go: go(deepValue)) == nil, "Go: podwire's depth limit")
    check(goVerdict(bytes(deep), podwire: .refused(offset: 511, reason: RefusalReason.depth), go: go(deepValue)) != nil,
          "Go: a depth refusal below the limit")
    check(goVerdict(bytes("[[1]]"), podwire: .refused(offset: 1, reason: RefusalReason.depth), go: go([[1]])) != nil,
          "Go: a depth refusal of a shallow document")
    // Equivalent keys: only a later key equivalent to an earlier one with different bytes.
    check(goVerdict(bytes(kelvin), podwire: .refused(offset: 7, reason: RefusalReason.equivalentKeys),
                    go: .accepted(Array("{s1:Kd3ff0000000000000s3:\u{212A}d4000000000000000}".utf8))) == nil,
          "Go: equivalent keys")
    let sameKey = #"{"K":1,"K":2}"#
    check(goVerdict(bytes(sameKey), podwire: .refused(offset: 7, reason: RefusalReason.equivalentKeys),
                    go: go(["K": 2])) != nil,
          "Go: an equivalent-key refusal of a plain repeated key")
}

extension JSONValue: @retroactive ExpressibleByArrayLiteral, @retroactive ExpressibleByDictionaryLiteral,
    @retroactive ExpressibleByIntegerLiteral, @retroactive ExpressibleByStringLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(Dictionary(elements) { $1 }) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(stringLiteral value: String) { self = .string(value) }
}
