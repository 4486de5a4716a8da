import CNIProtocol
import Foundation
@testable import PodIPAM
import Synchronization
import Testing

@Suite("Concurrency")
struct ConcurrencyTests {
    @Test func fortyThreadsGetFortyAddresses() throws {
        let directory = try TemporaryDirectory()
        let network = TestNetwork(dataDir: directory.path)
        let ipam = try network.ipam()
        let results = together(40) { index in
            try ipam.add(containerID: "pod-\(index)", ifname: "eth0").addresses
        }
        let addresses = try results.flatMap { try $0.get() }
        #expect(addresses.count == 40 && Set(addresses).count == 40)
        #expect(try network.addressFiles() == (2...41).map { "10.244.1.\($0)" })
        for index in 0..<40 {
            let expected = addresses[index]
            #expect(network.contents(expected) == "pod-\(index)\r\neth0")
            #expect(network.contents(".podwire/pod-\(index):eth0") == "# podwire-index v1\n\(expected)\n")
        }
    }

    @Test func concurrentAddsAndDelsStayConsistent() throws {
        let directory = try TemporaryDirectory()
        let network = TestNetwork(dataDir: directory.path, ranges: #"[[{"subnet": "10.244.1.0/27"}]]"#)
        let ipam = try network.ipam()
        // 30 addresses, 40 threads each adding and deleting its pod 5 times: never more than 30 held.
        let results = together(40) { index in
            var seen: [String] = []
            for _ in 0..<5 {
                do {
                    seen += try ipam.add(containerID: "pod-\(index)", ifname: "eth0").addresses
                } catch let error as CNIError where error.code == .rangeExhausted {
                    continue
                }
                try ipam.del(containerID: "pod-\(index)", ifname: "eth0")
            }
            return seen
        }
        for result in results { _ = try result.get() }
        #expect(try network.addressFiles().isEmpty)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: network.storePath + "/.podwire")
        #expect(leftovers == ["stamp"])
    }
}
