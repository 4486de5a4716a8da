import CNIProtocol
import Testing
@testable import PodwireControl

@Suite("Network lists as runtimes read them")
struct NetworkListTests {
    @Test("a plugin's stdin config gets the list's name and version, and runtimeConfig only for declared capabilities")
    func pluginConfig() throws {
        let list = NetworkList(path: "/x.conflist", name: "kindnet", cniVersion: "1.0.0", plugins: [
            ["type": .string("podwire"), "capabilities": .object(["portMappings": .bool(true)])],
            ["type": .string("bandwidth")],
        ])
        let mappings = JSONValue.array([.object(["hostPort": .number(8080), "containerPort": .number(80)])])
        let first = list.pluginConfig(at: 0, capabilityArguments: ["portMappings": mappings, "bandwidth": .object([:])])
        #expect(first["name"] == .string("kindnet"))
        #expect(first["cniVersion"] == .string("1.0.0"))
        #expect(first["runtimeConfig"] == .object(["portMappings": mappings]))
        let second = list.pluginConfig(at: 1, capabilityArguments: ["portMappings": mappings])
        #expect(second["runtimeConfig"] == nil)
        #expect(list.podwireIndex == 0)
    }
}
