// A JSON-aware mutator for libFuzzer. Byte mutations alone almost always break the JSON before the
// decoders see it (Foundation's parser is not instrumented, so libFuzzer gets no coverage signal
// from inside it); this one keeps documents valid and changes their shape and values: repeats list
// elements, drops and adds keys, moves subtrees around, and puts edge-case values (prefix lengths,
// mapped addresses, huge numbers, versions) where the decoders look, and repeats object members in
// the bytes (a JSONValue cannot), sometimes with canonically equivalent keys. A fifth of the time,
// and whenever the input is not JSON, libFuzzer's own byte mutations run instead.

import CNIProtocol

// libFuzzer's byte mutator; (pointer, Int, Int) -> Int passes the same way under Swift's and C's conventions.
@_silgen_name("LLVMFuzzerMutate")
func LLVMFuzzerMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int) -> Int

@_cdecl("LLVMFuzzerCustomMutator")
public func podwireFuzzMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
    var random = SplitMix64(seed: UInt64(seed))
    if random.below(5) == 0 { return LLVMFuzzerMutate(data, size, maxSize) }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard var value = try? CNIJSON.decode(JSONValue.self, from: bytes, what: "fuzz input") else {
        return LLVMFuzzerMutate(data, size, maxSize)
    }
    value = StructureMutator(document: value).mutated(&random)
    // Copying a subtree into itself nests deeper and deeper; real configs are about 6 levels deep,
    // and decoding JSONValue costs depth squared (each failed type probe builds its coding path).
    guard depth(of: value) <= 12 else { return LLVMFuzzerMutate(data, size, maxSize) }
    var output = CNIJSON.encode(value)
    // A JSONValue cannot hold a key twice; the bytes can (a quarter of the time).
    if random.below(4) == 0 { output = repeatingAMember(output, &random) }
    guard output.count <= maxSize, output != bytes else { return LLVMFuzzerMutate(data, size, maxSize) }
    output.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: output.count) }
    return output.count
}

/// Repeats one member of an object right after itself, with its own or another value, and often
/// with its key spelled differently but canonically equivalent (the Kelvin sign for "K", "A" and a
/// combining ring for "\u{C5}", U+037E for ";"; a key with none of those gets two new members whose
/// keys end in the two spellings of "\u{C5}"): where the JSON readers keep the first or the last
/// value, and where Swift sees one key and Go two.
func repeatingAMember(_ document: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
    let members = Outline(document).objects.flatMap { $0 }
    guard !members.isEmpty else { return document }
    let member = random.pick(members)
    let key = Array(document[member.keySpan])
    func value() -> [UInt8] {
        switch random.below(3) {
        case 0: CNIJSON.encode(JSONValue.string(random.pick(StructureMutator.strings)))
        case 1: CNIJSON.encode(JSONValue.number(random.pick(StructureMutator.numbers)))
        default: Array(document[member.value.span])
        }
    }
    func replacing(_ from: [UInt8], with to: [UInt8], in key: [UInt8]) -> [UInt8]? {
        guard let at = key.indices.first(where: { key[$0...].starts(with: from) }) else { return nil }
        var result = key
        result.replaceSubrange(at..<at + from.count, with: to)
        return result
    }
    let added: [[UInt8]]
    if random.below(3) == 0 {
        added = [key]
    } else if let respelled = replacing(Array("K".utf8), with: [0xE2, 0x84, 0xAA], in: key)
                ?? replacing([0xC3, 0x85], with: [0x41, 0xCC, 0x8A], in: key)
                ?? replacing(Array(";".utf8), with: [0xCD, 0xBE], in: key) {
        added = [respelled]
    } else {
        added = [Array(key.dropLast()) + [0xC3, 0x85, 0x22], Array(key.dropLast()) + [0x41, 0xCC, 0x8A, 0x22]]
    }
    var insertion: [UInt8] = []
    for key in added { insertion += Array(",".utf8) + key + Array(":".utf8) + value() }
    return Array(document[..<member.value.span.upperBound]) + insertion + Array(document[member.value.span.upperBound...])
}

func depth(of value: JSONValue) -> Int {
    switch value {
    case .array(let items): 1 + (items.map(depth).max() ?? 0)
    case .object(let object): 1 + (object.values.map(depth).max() ?? 0)
    default: 0
    }
}

struct StructureMutator {
    /// Every subtree of the document, so one part can be copied into another.
    let subtrees: [JSONValue]

    init(document: JSONValue) {
        var all: [JSONValue] = []
        func walk(_ value: JSONValue) {
            all.append(value)
            switch value {
            case .array(let items): items.forEach(walk)
            case .object(let object): object.keys.sorted().forEach { walk(object[$0]!) }
            default: break
            }
        }
        walk(document)
        subtrees = all
        self.document = document
    }

    let document: JSONValue

    func mutated(_ random: inout SplitMix64) -> JSONValue {
        var target = random.below(subtrees.count)
        return rewrite(document, &target, &random)
    }

    /// Rewrites the `target`-th node in pre-order (the numbering of `subtrees`).
    func rewrite(_ value: JSONValue, _ target: inout Int, _ random: inout SplitMix64) -> JSONValue {
        if target == 0 {
            target = -1
            return change(value, &random)
        }
        target -= 1
        switch value {
        case .array(let items):
            var result: [JSONValue] = []
            for item in items { result.append(target >= 0 ? rewrite(item, &target, &random) : item) }
            return .array(result)
        case .object(let object):
            var result = object
            for key in object.keys.sorted() where target >= 0 {
                result[key] = rewrite(object[key]!, &target, &random)
            }
            return .object(result)
        default:
            return value
        }
    }

    func change(_ value: JSONValue, _ random: inout SplitMix64) -> JSONValue {
        switch random.below(20) {
        case 0..<3: return random.pick(subtrees)
        case 3..<5: return interesting(&random)
        default: break
        }
        // Mostly keep the node's type, so the document stays one the decoders read past this point.
        switch value {
        case .array(var items):
            let choice = random.below(20)
            if items.isEmpty || choice < 3 {
                items.append(random.pick(subtrees))
            } else if choice < 8 {
                items.remove(at: random.below(items.count))
            } else {
                // Repeat an element: several addresses, ranges, routes, interfaces.
                items.insert(items[random.below(items.count)], at: random.below(items.count + 1))
            }
            return .array(items)
        case .object(var object):
            if !object.isEmpty && random.below(2) == 0 {
                object[random.pick(object.keys.sorted())] = nil
            } else {
                object[random.pick(Self.keys)] = random.below(2) == 0 ? random.pick(subtrees) : interesting(&random)
            }
            return .object(object)
        case .string(let text):
            return random.below(2) == 0 ? .string(random.pick(Self.strings)) : .string(mutateBytes(text, &random))
        case .number(let number):
            return .number(random.below(2) == 0 ? random.pick(Self.numbers)
                           : random.pick([number + 1, number - 1, -number, number * 256, number / 2, number + 0.5]))
        default:
            return interesting(&random)
        }
    }

    func mutateBytes(_ text: String, _ random: inout SplitMix64) -> String {
        var bytes = Array(text.utf8)
        let capacity = bytes.count + 16
        bytes += Array(repeating: 0, count: 16)
        let size = bytes.withUnsafeMutableBufferPointer { LLVMFuzzerMutate($0.baseAddress!, text.utf8.count, capacity) }
        return String(decoding: bytes[..<size], as: UTF8.self)
    }

    func interesting(_ random: inout SplitMix64) -> JSONValue {
        switch random.below(5) {
        case 0: return .number(random.pick(Self.numbers))
        case 1: return random.pick([.null, .bool(true), .bool(false), .array([]), .object([:]), .string("")])
        case 2: return .array([random.pick(subtrees)])
        default: return .string(random.pick(Self.strings))
        }
    }

    static let keys = [
        "cniVersion", "name", "type", "mtu", "ipMasq", "dns", "ipam", "prevResult", "ranges", "subnet",
        "rangeStart", "rangeEnd", "gateway", "routes", "dst", "gw", "advmss", "priority", "table", "scope",
        "dataDir", "runtimeConfig", "ipRanges", "ips", "args", "cni", "interfaces", "interface", "address",
        "version", "mac", "sandbox", "socketPath", "pciID", "ip4", "ip6", "ip", "nameservers", "domain",
        "search", "options", "env", "CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS",
        "CNI_PATH",
    ]

    static let numbers: [Double] = [
        0, -0.0, 1, -1, 67, 68, 1500, 65535, 65536, 2147483647, 2147483648, 4294967296, 9007199254740992,
        1e9, -1e9, 999999999, 1e15, -1e15, 1e15 - 1, 9.2e18, 9.3e18, -9.3e18, 1e300, 0.5, -0.5, 1e-300,
    ]

    static let strings = [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "1.2.0", "01.0.0", "1.0", "9999.0.0",
        "podwire", "podwire-ipam", "host-local", "kindnet", "a", "..", "-a", "a/b", "x\u{0}y", "é",
        "10.244.1.0/24", "10.244.1.2/24", "10.244.1.1", "10.244.1.255", "10.244.1.0", "0.0.0.0/0", "0.0.0.0/32",
        "255.255.255.255/32", "255.255.255.252/30", "255.255.255.254/31", "10.0.0.0/30", "10.0.0.0/31",
        "10.0.0.0/8", "1.2.3.4/33", "1.2.3.4/-1", "1.2.3.4/024", "1.2.3.4/", "256.1.1.1", "01.2.3.4",
        "::/0", "::/128", "::1", "::", "::/126", "::/127", "fd00::/64", "fd00::1", "fd00::/120",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126",
        "ffff:ffff:ffff:ffff::/64", "fd00::ffff:ffff:ffff:ffff", "fd00:0:0:0:ffff:ffff:ffff:ffff/64",
        "::ffff:10.244.1.2", "::ffff:10.244.1.0/120", "::ffff:0:0/96", "::ffff:1.2.3.4/128", "1::2::3",
        "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "fe80::1%eth0", ":1::", "::1:",
        "+1::", "12345::", "ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC", "eth0", "/run/netns/x",
        "IP=10.244.1.5", "IP=10.244.1.5,fd00::5;IgnoreUnknown=1", "IP=", "=x", ";;", "IP=a,b",
        "abcdefghijklmnop", "4", "6", "true", "false",
    ]
}
