import Testing
@testable import CNIProtocol

/// A complete ADD invocation, as podman sends it.
private let fullAdd: [String: String] = [
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "3f1c0a8be0d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0",
    "CNI_NETNS": "/run/netns/netns-2b0f3c1e-9a7d-4e11-8c3b-5f6a7b8c9d0e",
    "CNI_IFNAME": "eth0",
    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web-0",
    "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
]

private func env(_ changes: [String: String?]) -> [String: String] {
    var variables = fullAdd
    for (key, value) in changes { variables[key] = value }
    return variables
}

/// The error `parse` throws, or nil when it succeeds.
private func parseError(_ variables: [String: String]) -> CNIError? {
    do {
        _ = try CNIEnvironment.parse(variables)
        return nil
    } catch {
        return error
    }
}

@Suite("CNIEnvironment")
struct CNIEnvironmentTests {
    @Test func fullAddParses() throws {
        let environment = try CNIEnvironment.parse(fullAdd)
        #expect(environment.command == .add)
        #expect(environment.containerID == fullAdd["CNI_CONTAINERID"])
        #expect(environment.netns == fullAdd["CNI_NETNS"])
        #expect(environment.ifname == "eth0")
        #expect(environment.path == ["/opt/cni/bin", "/usr/lib/cni"])
        #expect(environment.args.map(\.key) == ["IgnoreUnknown", "K8S_POD_NAME"])
        #expect(environment.arg("K8S_POD_NAME") == "web-0")
        #expect(environment.arg("IgnoreUnknown") == "1")
        #expect(environment.arg("IP") == nil)
    }

    @Test(arguments: CNICommand.allCases)
    func commandNames(command: CNICommand) throws {
        var variables = fullAdd
        variables["CNI_COMMAND"] = command.rawValue
        #expect(try CNIEnvironment.parse(variables).command == command)
    }

    @Test(arguments: [
        // command, variables removed, expected message
        ("ADD", ["CNI_CONTAINERID"], "required env variables [CNI_CONTAINERID] missing"),
        ("ADD", ["CNI_NETNS"], "required env variables [CNI_NETNS] missing"),
        ("ADD", ["CNI_IFNAME"], "required env variables [CNI_IFNAME] missing"),
        ("ADD", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"], "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"),
        ("ADD", ["CNI_CONTAINERID", "CNI_IFNAME"], "required env variables [CNI_CONTAINERID,CNI_IFNAME] missing"),
        ("CHECK", ["CNI_NETNS"], "required env variables [CNI_NETNS] missing"),
        ("CHECK", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"], "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"),
        ("DEL", ["CNI_CONTAINERID"], "required env variables [CNI_CONTAINERID] missing"),
        ("DEL", ["CNI_IFNAME"], "required env variables [CNI_IFNAME] missing"),
        ("DEL", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"], "required env variables [CNI_CONTAINERID,CNI_IFNAME] missing"),
    ])
    func missingVariables(command: String, removed: [String], message: String) throws {
        var variables = env(["CNI_COMMAND": command])
        for name in removed { variables[name] = nil }
        let error = try #require(parseError(variables))
        #expect(error.code == .invalidEnvironment)
        #expect(error.code.rawValue == 4)
        #expect(error.message == message)
        // An empty value counts as missing too.
        var emptied = env(["CNI_COMMAND": command])
        for name in removed { emptied[name] = "" }
        #expect(parseError(emptied) == error)
    }

    /// containerd sends CNI_NETNS="" on DEL; others leave it out.
    @Test(arguments: [false, true])
    func delWithoutNetns(presentButEmpty: Bool) throws {
        let environment = try CNIEnvironment.parse(env(["CNI_COMMAND": "DEL", "CNI_NETNS": presentButEmpty ? "" : nil]))
        #expect(environment.command == .del)
        #expect(environment.netns == "")
        #expect(environment.ifname == "eth0")
    }

    @Test(arguments: ["VERSION", "STATUS", "GC"])
    func commandsWithoutAttachment(command: String) throws {
        let environment = try CNIEnvironment.parse(["CNI_COMMAND": command])
        #expect(environment.command.rawValue == command)
        #expect(environment.containerID == "")
        #expect(environment.netns == "")
        #expect(environment.ifname == "")
        #expect(environment.path == [])
        #expect(environment.args.isEmpty)
        // With CNI_PATH, as the spec passes it for STATUS and GC.
        let withPath = try CNIEnvironment.parse(["CNI_COMMAND": command, "CNI_PATH": "/opt/cni/bin"])
        #expect(withPath.path == ["/opt/cni/bin"])
    }

    @Test func missingCommand() throws {
        let error = try #require(parseError([:]))
        #expect(error.code == .invalidEnvironment)
        #expect(error.message.contains("CNI_COMMAND"))
        #expect(parseError(["CNI_COMMAND": ""])?.code == .invalidEnvironment)
    }

    @Test(arguments: ["add", "Add", "FOO", "DELETE", " ADD", "ADD "])
    func unknownCommand(command: String) throws {
        let error = try #require(parseError(env(["CNI_COMMAND": command])))
        #expect(error.code == .invalidEnvironment)
        #expect(error.message == "unknown CNI_COMMAND: \(command)")
    }

    @Test(arguments: [
        "-abc", "_abc", ".abc", "abc/def", "../etc", "abc def", "abc:def", "abc;def", "abc\n", "ümlaut", "abc$", "a*",
    ])
    func badContainerIDs(id: String) throws {
        for command in ["ADD", "DEL", "CHECK"] {
            let error = try #require(parseError(env(["CNI_COMMAND": command, "CNI_CONTAINERID": id])), "\(command) \(id)")
            #expect(error.code == .invalidEnvironment)
            #expect(error.message.contains("CNI_CONTAINERID"))
        }
        #expect(CNIEnvironment.containerIDProblem(id) != nil)
    }

    @Test(arguments: ["a", "0", "abc-def_ghi.jkl", "A1", "9.9.9", "x--", "a..b"])
    func goodContainerIDs(id: String) throws {
        #expect(CNIEnvironment.containerIDProblem(id) == nil)
        #expect(try CNIEnvironment.parse(env(["CNI_CONTAINERID": id])).containerID == id)
    }

    @Test(arguments: [
        "0123456789abcdef", // 16 bytes
        ".", "..", "eth/0", "eth:0", "eth 0", "eth\t0", "eth0\n", "\u{7f}eth",
        "éééééééé", // 8 characters, 16 bytes
    ])
    func badInterfaceNames(name: String) throws {
        for command in ["ADD", "DEL", "CHECK"] {
            let error = try #require(parseError(env(["CNI_COMMAND": command, "CNI_IFNAME": name])), "\(command) \(name)")
            #expect(error.code == .invalidEnvironment)
            #expect(error.message.contains("CNI_IFNAME"))
        }
        #expect(CNIEnvironment.interfaceNameProblem(name) != nil)
    }

    @Test(arguments: ["eth0", "net1", "0123456789abcde", "...", ".eth", "eth.100", "veth-a_b", "ééééééé"])
    func goodInterfaceNames(name: String) throws {
        #expect(CNIEnvironment.interfaceNameProblem(name) == nil)
        #expect(try CNIEnvironment.parse(env(["CNI_IFNAME": name])).ifname == name)
    }

    @Test func relativeNetnsRejected() throws {
        let error = try #require(parseError(env(["CNI_NETNS": "run/netns/x"])))
        #expect(error.code == .invalidEnvironment)
        #expect(error.message.contains("CNI_NETNS"))
    }

    @Test(arguments: [
        ("", [String]()),
        ("IgnoreUnknown=1", ["IgnoreUnknown=1"]),
        ("IgnoreUnknown=1;IP=10.244.1.9", ["IgnoreUnknown=1", "IP=10.244.1.9"]),
        ("IP=fd00::9/64;K8S_POD_NAMESPACE=default", ["IP=fd00::9/64", "K8S_POD_NAMESPACE=default"]),
        ("A=;B=2", ["A=", "B=2"]),
        ("A=1;;B=2;", ["A=1", "B=2"]),
        ("K=a=b", ["K=a=b"]),
    ])
    func argsParsing(text: String, pairs: [String]) throws {
        let environment = try CNIEnvironment.parse(env(["CNI_ARGS": text]))
        #expect(environment.args.map { "\($0.key)=\($0.value)" } == pairs)
    }

    @Test func lastArgWins() throws {
        let environment = try CNIEnvironment.parse(env(["CNI_ARGS": "IP=10.0.0.1;IP=10.0.0.2"]))
        #expect(environment.arg("IP") == "10.0.0.2")
        #expect(environment.arg("K=a") == nil)
        #expect(try CNIEnvironment.parse(env(["CNI_ARGS": "K=a=b"])).arg("K") == "a=b")
    }

    @Test(arguments: ["IgnoreUnknown", "=1", "A=1;B", "A=1;=2"])
    func badArgs(text: String) throws {
        let error = try #require(parseError(env(["CNI_ARGS": text])))
        #expect(error.code == .invalidEnvironment)
        #expect(error.message.contains("CNI_ARGS"))
    }

    @Test func pathSplitting() throws {
        #expect(try CNIEnvironment.parse(env(["CNI_PATH": nil])).path == [])
        #expect(try CNIEnvironment.parse(env(["CNI_PATH": "/a::/b:"])).path == ["/a", "/b"])
    }

    @Test func equality() throws {
        let a = try CNIEnvironment.parse(fullAdd)
        let b = try CNIEnvironment.parse(fullAdd)
        #expect(a == b)
        #expect(a != (try CNIEnvironment.parse(env(["CNI_ARGS": "IgnoreUnknown=1"]))))
        #expect(a != (try CNIEnvironment.parse(env(["CNI_IFNAME": "net1"]))))
    }
}
