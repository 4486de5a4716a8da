/// Any JSON value, for the parts of a config podwire passes on without interpreting
/// (a delegated IPAM section, keys of other plugins, prevResult fields of later versions).
public enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    /// An empty object's dictionary with room for a few keys. Built by subscript rather than from
    /// a dictionary literal, whose (key, value) array is one more generic type for the runtime to
    /// build in a plugin process that writes one result and exits.
    public static func newObject() -> [String: JSONValue] { [String: JSONValue](minimumCapacity: 8) }

    public var objectValue: [String: JSONValue]? {
        if case .object(let object) = self { return object }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let array) = self { return array }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The number as an Int when it is a whole number in range.
    public var intValue: Int? {
        guard case .number(let number) = self, number.rounded() == number, abs(number) < 1e15 else { return nil }
        return Int(number)
    }
}

/// A value that can be written as JSON.
public protocol JSONRepresentable {
    var json: JSONValue { get }
}

/// A value that can be read from JSON, failing with a CNI error that says what is wrong.
public protocol JSONDecodable {
    init(json: JSONValue) throws(CNIError)
}

extension JSONValue: JSONRepresentable, JSONDecodable {
    public var json: JSONValue { self }
    public init(json: JSONValue) throws(CNIError) { self = json }
}

extension Array: JSONDecodable where Element: JSONDecodable {
    public init(json: JSONValue) throws(CNIError) {
        guard case .array(let items) = json else {
            throw CNIError(.decodingFailure, "expected a list")
        }
        var result: [Element] = []
        result.reserveCapacity(items.count)
        for item in items { result.append(try Element(json: item)) }
        self = result
    }
}

extension Array: JSONRepresentable where Element: JSONRepresentable {
    public var json: JSONValue { .array(map(\.json)) }
}

/// podwire's JSON, read and written without Foundation: compact output with sorted keys and
/// unescaped "/", and a strict reader (see JSONParser).
public enum CNIJSON {
    public static func encode(_ value: some JSONRepresentable) -> [UInt8] {
        JSONWriter.write(value.json)
    }

    /// Parses `bytes`; anything that is not one JSON document is a CNI decoding error (code 6)
    /// naming `what` was being read and where the JSON broke.
    public static func parse(_ bytes: [UInt8], what: String) throws(CNIError) -> JSONValue {
        do {
            return try JSONParser.parse(bytes)
        } catch {
            throw CNIError(.decodingFailure, "cannot decode \(what)", details: "invalid JSON at byte \(error.offset): \(error.reason)")
        }
    }

    public static func decode<T: JSONDecodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws(CNIError) -> T {
        try T(json: try parse(bytes, what: what))
    }
}


/// Field readers shared by the JSON-backed types: each names the key and what was expected, so a
/// wrong document says exactly which field to fix. A field of the wrong JSON type is a decoding
/// failure (code 6); callers reading configs re-label it as an invalid config where that fits.
enum JSONField {
    static func string(_ object: [String: JSONValue], _ key: String, in context: String) throws(CNIError) -> String? {
        switch object[key] {
        case nil, .null?: return nil
        case .string(let text)?: return text
        default: throw CNIError(.decodingFailure, "invalid \"\(context)\(key)\": expected a string")
        }
    }

    static func int(_ object: [String: JSONValue], _ key: String, in context: String) throws(CNIError) -> Int? {
        guard let value = object[key], value != .null else { return nil }
        guard let number = value.intValue else {
            throw CNIError(.decodingFailure, "invalid \"\(context)\(key)\": expected an integer")
        }
        return number
    }

    static func strings(_ object: [String: JSONValue], _ key: String, in context: String) throws(CNIError) -> [String]? {
        guard let value = object[key], value != .null else { return nil }
        guard case .array(let items) = value else {
            throw CNIError(.decodingFailure, "invalid \"\(context)\(key)\": expected a list of strings")
        }
        var result: [String] = []
        for item in items {
            guard case .string(let text) = item else {
                throw CNIError(.decodingFailure, "invalid \"\(context)\(key)\": expected a list of strings")
            }
            result.append(text)
        }
        return result
    }

    static func object(_ value: JSONValue, what: String) throws(CNIError) -> [String: JSONValue] {
        guard case .object(let object) = value else {
            throw CNIError(.decodingFailure, "invalid \(what): expected an object")
        }
        return object
    }
}
