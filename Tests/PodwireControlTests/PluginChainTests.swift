import CNIProtocol
import Testing
@testable import PodwireControl

/// Plays plugins from a script of answers, recording every call: the chain logic without processes.
private final class ScriptedPlugins: PluginInvoker {
    var calls: [PluginCall] = []
    /// The answer of `type` to `command`: stdout, or a failure.
    let answer: (PluginCall) -> Result<[UInt8], CNIError>

    init(answer: @escaping (PluginCall) -> Result<[UInt8], CNIError>) {
        self.answer = answer
    }

    func invoke(_ call: PluginCall) throws(PluginFailure) -> [UInt8] {
        calls.append(call)
        switch answer(call) {
        case .success(let output): return output
        case .failure(let error): throw PluginFailure(call, error: error)
        }
    }

    var summary: [String] { calls.map { "\($0.type) \($0.command.rawValue)" } }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func list(_ types: [String], version: String = "1.0.0") -> NetworkList {
    NetworkList(path: "/etc/cni/net.d/10-test.conflist", name: "kindnet", cniVersion: version,
                plugins: types.map { ["type": .string($0)] })
}

private let attachment = AttachmentParameters(containerID: "pod-a", netns: "/run/netns/pod-a", ifname: "eth0")

/// Each plugin's ADD result names it, so the prevResult each one got shows who answered before.
private func resultOf(_ type: String) -> [UInt8] {
    bytes(#"{"cniVersion":"1.0.0","interfaces":[{"name":"\#(type)"}]}"#)
}

@Suite("The plugin chain as libcni runs it")
struct PluginChainTests {
    @Test("ADD runs in order, DEL in reverse, CHECK in order")
    func order() {
        #expect(PluginChain.order(.add, count: 3) == [0, 1, 2])
        #expect(PluginChain.order(.check, count: 3) == [0, 1, 2])
        #expect(PluginChain.order(.del, count: 3) == [2, 1, 0])
        #expect(PluginChain.order(.del, count: 1) == [0])
    }

    @Test("ADD hands each plugin the previous one's result and returns the last one's output")
    func addPassesPrevResult() throws {
        let plugins = ScriptedPlugins { .success(resultOf($0.type)) }
        let chain = PluginChain(list: list(["podwire", "bandwidth", "tuning"]), invoker: plugins)
        let added = try chain.add(attachment, capabilityArguments: ["portMappings": .array([])])
        #expect(plugins.summary == ["podwire ADD", "bandwidth ADD", "tuning ADD"])
        #expect(added.output == resultOf("tuning"))
        #expect(plugins.calls[0].config["prevResult"] == nil)
        #expect(plugins.calls[1].config["prevResult"] == (try CNIJSON.parse(resultOf("podwire"), what: "x")))
        #expect(plugins.calls[2].config["prevResult"] == (try CNIJSON.parse(resultOf("bandwidth"), what: "x")))
        for call in plugins.calls {
            #expect(call.config["name"] == .string("kindnet"))
            #expect(call.config["cniVersion"] == .string("1.0.0"))
            #expect(call.attachment == attachment)
        }
    }

    @Test("a failing ADD undoes the plugins already added, in reverse, with the last result")
    func addFailureUndoes() throws {
        let plugins = ScriptedPlugins { call in
            if call.type == "tuning" && call.command == .add {
                return .failure(CNIError(.invalidNetworkConfig, "bad sysctl", details: "net.foo"))
            }
            return .success(call.command == .add ? resultOf(call.type) : [])
        }
        let chain = PluginChain(list: list(["podwire", "bandwidth", "tuning", "never"]), invoker: plugins)
        let failure = try #require(throws: PluginChain.AddFailure.self) {
            try chain.add(attachment)
        }
        #expect(plugins.summary == ["podwire ADD", "bandwidth ADD", "tuning ADD", "bandwidth DEL", "podwire DEL"])
        #expect(failure.failure.description == "tuning ADD failed: CNI error 7: bad sysctl (net.foo)")
        #expect(failure.undone == ["bandwidth", "podwire"])
        #expect(failure.undoFailures.isEmpty)
        let last = try CNIJSON.parse(resultOf("bandwidth"), what: "x")
        #expect(plugins.calls[3].config["prevResult"] == last)
        #expect(plugins.calls[4].config["prevResult"] == last)
    }

    @Test("a plugin that exits 0 without a result fails the ADD, and is undone itself")
    func addWithoutResult() throws {
        let plugins = ScriptedPlugins { call in .success(call.type == "quiet" && call.command == .add ? bytes("  \n") : resultOf(call.type)) }
        let chain = PluginChain(list: list(["podwire", "quiet"]), invoker: plugins)
        let failure = try #require(throws: PluginChain.AddFailure.self) { try chain.add(attachment) }
        #expect(failure.failure.description == "quiet ADD failed: exited 0 but printed nothing instead of a result")
        #expect(failure.undone == ["quiet", "podwire"])
    }

    @Test("a failing undo is reported next to the ADD's failure")
    func undoFailure() throws {
        let plugins = ScriptedPlugins { call in
            switch (call.type, call.command) {
            case ("second", .add): .failure(CNIError(.kernelRefused, "no"))
            case ("first", .del): .failure(CNIError(.ioFailure, "store gone"))
            default: .success(resultOf(call.type))
            }
        }
        let failure = try #require(throws: PluginChain.AddFailure.self) {
            try PluginChain(list: list(["first", "second"]), invoker: plugins).add(attachment)
        }
        #expect(failure.failure.description == "second ADD failed: CNI error 100: no")
        #expect(failure.undoFailures.map(\.description) == ["first DEL failed: CNI error 5: store gone"])
    }

    @Test("DEL runs every plugin in reverse even past a failure; prevResult only from 0.4.0 on")
    func del() throws {
        let prev = try CNIJSON.parse(resultOf("podwire"), what: "x")
        let plugins = ScriptedPlugins { call in call.type == "b" ? .failure(CNIError(.ioFailure, "b broke")) : .success([]) }
        let failures = PluginChain(list: list(["a", "b", "c"]), invoker: plugins).del(attachment, prevResult: prev)
        #expect(plugins.summary == ["c DEL", "b DEL", "a DEL"])
        #expect(failures.map(\.description) == ["b DEL failed: CNI error 5: b broke"])
        #expect(plugins.calls.allSatisfy { $0.config["prevResult"] == prev })

        let old = ScriptedPlugins { _ in .success([]) }
        #expect(PluginChain(list: list(["a"], version: "0.3.1"), invoker: old).del(attachment, prevResult: prev).isEmpty)
        #expect(old.calls[0].config["prevResult"] == nil)
    }

    @Test("CHECK asks every plugin in order with the cached result and reports each failure")
    func check() throws {
        let prev = try CNIJSON.parse(resultOf("podwire"), what: "x")
        let plugins = ScriptedPlugins { call in .failure(CNIError(.checkFailed, "\(call.type) differs")) }
        let failures = PluginChain(list: list(["a", "b"]), invoker: plugins)
            .check(attachment, capabilityArguments: [:], prevResult: prev)
        #expect(plugins.summary == ["a CHECK", "b CHECK"])
        #expect(failures.map(\.description) == ["a CHECK failed: CNI error 104: a differs", "b CHECK failed: CNI error 104: b differs"])
        #expect(plugins.calls.allSatisfy { $0.config["prevResult"] == prev })
    }

    @Test("STATUS goes to 1.1.0 plugins as 1.1.0 after VERSION; older plugins are skipped with the reason")
    func status() {
        let plugins = ScriptedPlugins { call in
            switch (call.type, call.command) {
            case (_, .version) where call.type == "old":
                .success(bytes(#"{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}"#))
            case (_, .version):
                .success(bytes(#"{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}"#))
            case ("sick", .status): .failure(CNIError(.notAvailable, "range exhausted"))
            default: .success([])
            }
        }
        let reports = PluginChain(list: list(["podwire", "old", "sick"], version: "1.0.0"), invoker: plugins).status()
        #expect(plugins.summary == ["podwire VERSION", "podwire STATUS", "old VERSION", "sick VERSION", "sick STATUS"])
        #expect(reports.map(\.outcome) == [
            .ok,
            .skipped("supports CNI up to 1.0.0; STATUS needs 1.1.0"),
            .failed(PluginFailure(plugins.calls[4], error: CNIError(.notAvailable, "range exhausted"))),
        ])
        #expect(plugins.calls[0].config == ["cniVersion": .string("1.1.0")])
        #expect(plugins.calls[1].config["cniVersion"] == .string("1.1.0"))
        #expect(plugins.calls[1].config["name"] == .string("kindnet"))
        #expect(plugins.calls[1].attachment == nil)
        #expect(plugins.calls[1].protocolVariables(searchPath: "/opt/cni/bin") == ["CNI_COMMAND=STATUS", "CNI_PATH=/opt/cni/bin"])
    }

    @Test("GC lists the kept attachments in cni.dev/valid-attachments")
    func gc() {
        let plugins = ScriptedPlugins { call in
            call.command == .version ? .success(bytes(#"{"supportedVersions":["1.1.0"]}"#)) : .success([])
        }
        let reports = PluginChain(list: list(["podwire"], version: "1.1.0"), invoker: plugins)
            .gc(keeping: [.init(containerID: "pod-a", ifname: "eth0")])
        #expect(reports.map(\.outcome) == [.ok])
        #expect(plugins.calls[1].command == .gc)
        #expect(plugins.calls[1].config["cni.dev/valid-attachments"]
                == .array([.object(["containerID": .string("pod-a"), "ifname": .string("eth0")])]))
        let nothing = ScriptedPlugins { _ in .success(bytes(#"{"supportedVersions":["1.1.0"]}"#)) }
        _ = PluginChain(list: list(["podwire"]), invoker: nothing).gc(keeping: [])
        #expect(nothing.calls[1].config["cni.dev/valid-attachments"] == .array([]))
    }

    @Test("a VERSION answer that is no such document is the plugin's failure")
    func badVersionAnswer() {
        let plugins = ScriptedPlugins { _ in .success(bytes("hello\n")) }
        let reports = PluginChain(list: list(["odd"]), invoker: plugins).status()
        guard case .failed(let failure) = reports.first?.outcome else {
            Issue.record("expected a failure: \(reports)")
            return
        }
        #expect(failure.description == #"odd VERSION failed: printed hello instead of {"supportedVersions": [...]}"#)
    }

    @Test("the CNI_* variables: the attachment's for ADD, CHECK and DEL, CNI_ARGS only when given")
    func variables() {
        var call = PluginCall(command: .add, type: "podwire", index: 0, config: [:], attachment: attachment)
        #expect(call.protocolVariables(searchPath: "/a:/b") == [
            "CNI_COMMAND=ADD", "CNI_CONTAINERID=pod-a", "CNI_NETNS=/run/netns/pod-a", "CNI_IFNAME=eth0", "CNI_PATH=/a:/b",
        ])
        call.attachment?.arguments = [CNIArgument(key: "IgnoreUnknown", value: "1"), CNIArgument(key: "IP", value: "10.244.1.9")]
        #expect(call.protocolVariables(searchPath: "/a").contains("CNI_ARGS=IgnoreUnknown=1;IP=10.244.1.9"))
        call.attachment?.arguments = []
        #expect(!call.protocolVariables(searchPath: "/a").contains { $0.hasPrefix("CNI_ARGS=") })
    }
}

extension PluginChainTests {
    @Suite("Attachments as podwirectl names them")
    struct Attachments {
        @Test("the default container ID is podwirectl- and the FNV-1a hash of the namespace's path")
        func defaultContainerID() throws {
            // FNV-1a 64 of "" and of "a", the algorithm's published test values.
            #expect(AttachmentParameters.defaultContainerID(netns: "") == "podwirectl-cbf29ce484222325")
            #expect(AttachmentParameters.defaultContainerID(netns: "a") == "podwirectl-af63dc4c8601ec8c")
            let id = AttachmentParameters.defaultContainerID(netns: "/run/netns/pod-a")
            #expect(id == AttachmentParameters.defaultContainerID(netns: "/run/netns/pod-a"))
            #expect(id != AttachmentParameters.defaultContainerID(netns: "/run/netns/pod-b"))
            #expect(id.count == "podwirectl-".count + 16)
            #expect(CNIEnvironment.containerIDProblem(id) == nil)

            let resolved = try AttachmentParameters.resolve(netns: "pod-a", containerID: nil, ifname: nil, arguments: nil)
            #expect(resolved == AttachmentParameters(containerID: id, netns: "/run/netns/pod-a", ifname: "eth0", arguments: nil))
        }

        @Test("NETNS: a path as given, a bare name under /run/netns, a relative path from the working directory")
        func namespacePath() throws {
            #expect(try AttachmentParameters.namespacePath("pod-a") == "/run/netns/pod-a")
            #expect(try AttachmentParameters.namespacePath("/proc/42/ns/net") == "/proc/42/ns/net")
            #expect(try AttachmentParameters.namespacePath("ns/pod", workingDirectory: "/srv") == "/srv/ns/pod")
            #expect(try AttachmentParameters.namespacePath("./pod", workingDirectory: "/srv") == "/srv/pod")
            #expect(try AttachmentParameters.namespacePath("./pod", workingDirectory: "/") == "/pod")
            for bad in ["", ".", ".."] {
                #expect(throws: ControlError.self) { try AttachmentParameters.namespacePath(bad) }
            }
        }

        @Test("an invalid --id, --ifname or --args is a usage error")
        func invalidParameters() {
            for (id, ifname, args) in [("-bad", "eth0", ""), ("ok", "much-too-long-name", ""), ("ok", "eth0", "novalue")] {
                #expect(throws: ControlError.self) {
                    _ = try AttachmentParameters.resolve(netns: "pod-a", containerID: id, ifname: ifname, arguments: args)
                }
            }
        }

        @Test("--keep takes ID/IFNAME and nothing else")
        func keep() throws {
            #expect(try KeptAttachment.parse("pod-a/eth0") == .init(containerID: "pod-a", ifname: "eth0"))
            for bad in ["pod-a", "pod-a/", "/eth0", "a/b/c", "-x/eth0", "pod-a/eth 0", ""] {
                let error = try #require(throws: ControlError.self) { try KeptAttachment.parse(bad) }
                #expect(error.exitCode == 2, "\(bad)")
            }
            #expect(try KeptAttachment.parseList(["a/eth0", "b/eth0", "a/eth0"]).map(\.containerID) == ["a", "b"])
        }

        @Test("CNI_ARGS pairs split on ; and the first =, and join back")
        func cniArguments() throws {
            let pairs = try CNIArgument.parseList("IgnoreUnknown=1;IP=10.244.1.9;K8S_POD_NAME=a=b;")
            #expect(pairs == [CNIArgument(key: "IgnoreUnknown", value: "1"), CNIArgument(key: "IP", value: "10.244.1.9"),
                              CNIArgument(key: "K8S_POD_NAME", value: "a=b")])
            #expect(CNIArgument.text(pairs) == "IgnoreUnknown=1;IP=10.244.1.9;K8S_POD_NAME=a=b")
            #expect(throws: ControlError.self) { try CNIArgument.parseList("=1") }
        }

        @Test("--cap-args must be a JSON object")
        func capabilityArguments() throws {
            #expect(try CapabilityArguments.parse(nil) == [:])
            #expect(try CapabilityArguments.parse(#"{"portMappings":[{"hostPort":8080,"containerPort":80}]}"#)["portMappings"]?.arrayValue?.count == 1)
            for bad in ["{", "[1]", "\"x\"", ""] {
                let error = try #require(throws: ControlError.self) { try CapabilityArguments.parse(bad) }
                #expect(error.exitCode == 2)
            }
        }

        @Test("disableCheck and disableGC are read from the list's own bytes")
        func listFlags() throws {
            let source = try NetworkList.parse(bytes(#"{"name":"n","disableCheck":true,"disableGC":"true","plugins":[{"type":"podwire"}]}"#), path: "n.conflist")
            #expect(source.disableCheck && source.disableGC)
            let plain = try NetworkList.parse(bytes(#"{"name":"n","plugins":[{"type":"podwire"}]}"#), path: "n.conflist")
            #expect(!plain.disableCheck && !plain.disableGC)
        }
    }
}

extension PluginChainTests {
    @Suite("libcni's result cache")
    struct CacheDocument {
        @Test("base64 as Go writes []byte, every padding length, and back")
        func base64() {
            for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                                     ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")] {
                #expect(CNICacheBase64.encode(bytes(plain)) == encoded)
                #expect(CNICacheBase64.decode(encoded) == bytes(plain))
            }
            let all = (0...255).map(UInt8.init)
            #expect(CNICacheBase64.decode(CNICacheBase64.encode(all)) == all)
            for bad in ["Zg=", "Z===", "Zm9v!A==", "=Zm9"] { #expect(CNICacheBase64.decode(bad) == nil, "\(bad)") }
        }

        @Test("an entry is written as libcni's cniCacheV1 document, omitting what is empty")
        func document() throws {
            let result = try CNIJSON.parse(resultOf("eth0"), what: "x")
            let entry = CNICacheEntry(containerID: "pod-a", ifname: "eth0", networkName: "kindnet", netns: "/run/netns/pod-a",
                                      config: bytes(#"{"a":1}"#), cniArguments: [CNIArgument(key: "IP", value: "10.244.1.9")],
                                      capabilityArguments: ["portMappings": .array([])], result: result)
            #expect(entry.fileName == "kindnet-pod-a-eth0")
            #expect(String(decoding: CNIJSON.encode(entry.json), as: UTF8.self) == """
                {"capabilityArgs":{"portMappings":[]},"cniArgs":[["IP","10.244.1.9"]],"config":"eyJhIjoxfQ==",\
                "containerId":"pod-a","ifName":"eth0","kind":"cniCacheV1","netns":"/run/netns/pod-a","networkName":"kindnet",\
                "result":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}]}}
                """)
            #expect(try CNICacheEntry(json: entry.json) == entry)

            let bare = CNICacheEntry(containerID: "b", ifname: "eth0", networkName: "n", result: nil)
            #expect(String(decoding: CNIJSON.encode(bare.json), as: UTF8.self)
                    == #"{"config":"","containerId":"b","ifName":"eth0","kind":"cniCacheV1","networkName":"n"}"#)
        }

        @Test("a libcni runtime's entry reads, and so does a pre-0.8 bare result; other documents do not")
        func reading() throws {
            // As containerd's libcni writes it (Go's field order, no netns).
            let runtime = try CNIJSON.parse(bytes("""
                {"kind":"cniCacheV1","containerId":"abc123","config":"e30=","ifName":"eth0","networkName":"kindnet",\
                "cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","web"]],"capabilityArgs":{"io.kubernetes.cri.pod-annotations":{}},\
                "result":{"cniVersion":"1.0.0","ips":[{"address":"10.244.1.2/24"}]}}
                """), what: "x")
            let entry = try CNICacheEntry(json: runtime)
            #expect(entry.containerID == "abc123" && entry.ifname == "eth0" && entry.networkName == "kindnet")
            #expect(entry.netns == nil)
            #expect(entry.config == bytes("{}"))
            #expect(entry.cniArguments.map(\.key) == ["IgnoreUnknown", "K8S_POD_NAME"])
            #expect(entry.result?["ips"] != nil)

            let legacy = try CNIJSON.parse(resultOf("eth0"), what: "x")
            let old = try CNICacheEntry(json: legacy, legacy: ("kindnet", "abc", "eth0"))
            #expect(old.result == legacy && old.containerID == "abc")
            #expect(throws: CNIError.self) { try CNICacheEntry(json: legacy) }
            #expect(throws: CNIError.self) { try CNICacheEntry(json: .object(["kind": .string("cniCacheV2")])) }
            #expect(throws: CNIError.self) {
                try CNICacheEntry(json: .object(["kind": .string("cniCacheV1"), "containerId": .string("a"), "ifName": .string("eth0")]))
            }
        }

        @Test("the cached result becomes prevResult in the list's version, as libcni converts it")
        func prevResult() throws {
            let cached = try CNIJSON.parse(bytes("""
                {"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mtu":1500,"sandbox":"/run/netns/a"}],\
                "ips":[{"address":"10.244.1.2/24","gateway":"10.244.1.1","interface":0}],"extra":"kept as is"}
                """), what: "x")
            let entry = CNICacheEntry(containerID: "a", ifname: "eth0", networkName: "n", result: cached)
            #expect(try entry.prevResult(as: "1.1.0") == cached)
            let older = try #require(try entry.prevResult(as: "0.4.0"))
            #expect(older["cniVersion"] == .string("0.4.0"))
            #expect(older["interfaces"] == .array([.object(["name": .string("eth0"), "sandbox": .string("/run/netns/a")])]))
            #expect(older["ips"]?.arrayValue?.first?["version"] == .string("4"))
            #expect(try CNICacheEntry(containerID: "a", ifname: "eth0", networkName: "n", result: nil).prevResult(as: "1.0.0") == nil)
            #expect(throws: CNIError.self) { try entry.prevResult(as: "9.9.9") }
        }
    }
}

extension PluginChainTests {
    /// The exec of plugins, with programs every machine has standing in for plugins: `cat` answers
    /// with its stdin, `false` fails without a word. No network, no files written.
    @Suite("Plugins run as processes")
    struct Processes {
        private let invoker = ExecPluginInvoker(searchPath: "/nonexistent:/usr/bin:/bin")

        @Test("the config goes to stdin and stdout comes back, past the size of a pipe's buffer")
        func roundTrip() throws {
            let big = String(repeating: "x", count: 1 << 20)
            let call = PluginCall(command: .add, type: "cat", index: 0, config: ["cniVersion": .string("1.0.0"), "big": .string(big)],
                                  attachment: attachment)
            #expect(try invoker.invoke(call) == call.stdin)
        }

        @Test("a plugin that fails without an error document is named with its exit status")
        func exitStatus() throws {
            let call = PluginCall(command: .del, type: "false", index: 0, config: [:], attachment: attachment)
            let failure = try #require(throws: PluginFailure.self) { try invoker.invoke(call) }
            #expect(failure.description == "false DEL failed: exited with status 1 without an error document")
        }

        @Test("a plugin not on CNI_PATH is exit 2, naming CNI_PATH")
        func notFound() throws {
            let error = try #require(throws: ControlError.self) { try invoker.executable(for: "no-such-plugin") }
            #expect(error.exitCode == 2)
            #expect(error.message.contains("CNI_PATH=/nonexistent:/usr/bin:/bin"))
            #expect(throws: ControlError.self) { try invoker.executable(for: "../bin/cat") }
            #expect(try invoker.executable(for: "cat") == "/usr/bin/cat")
        }

        @Test("an error document on stdout is read as the plugin's CNI error")
        func errorDocument() {
            let error = PluginFailure.errorDocument(bytes(#"{"cniVersion":"1.0.0","code":103,"msg":"taken","details":"10.244.1.2"}"#))
            #expect(error == CNIError(CNIErrorCode(rawValue: 103), "taken", details: "10.244.1.2"))
            #expect(PluginFailure.errorDocument(bytes("oops")) == nil)
            #expect(PluginFailure.excerpt(bytes("first\nlast line\n\n")) == "last line")
        }

        @Test("the plugin's environment: podwirectl's own, the protocol's variables replaced")
        func environment() {
            let call = PluginCall(command: .version, type: "podwire", index: 0, config: [:])
            let variables = ExecPluginInvoker.environment(for: call, searchPath: "/opt/cni/bin")
            #expect(variables.filter { $0.hasPrefix("CNI_") } == ["CNI_COMMAND=VERSION", "CNI_PATH=/opt/cni/bin"])
        }
    }
}
