#!/usr/bin/python3
"""Golden bytes for cri.py's protobuf encoder and decoder (python3 -m unittest, or run this file).

The expected bytes are written out by hand from the wire format (tag = field << 3 | wire type;
varints little-endian base 128; LEN fields prefixed by their length) and the field numbers of
the CRI's api.proto, independently of the code under test. The suite RuntimeContainerdTests then
checks the same encoder against containerd itself (metadata, labels, annotations and
port_mappings read back through PodSandboxStatus).
"""
import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cri  # noqa: E402


def hexbytes(text):
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


class WireFormat(unittest.TestCase):
    def test_varints(self):
        # The protocol buffers documentation's own example: 150 is 96 01.
        self.assertEqual(cri.encode_varint(150), hexbytes("96 01"))
        self.assertEqual(cri.encode_varint(0), hexbytes("00"))
        self.assertEqual(cri.encode_varint(127), hexbytes("7f"))
        self.assertEqual(cri.encode_varint(128), hexbytes("80 01"))
        # A negative int32 travels as its 64-bit two's complement: ten bytes.
        self.assertEqual(cri.encode_varint(-1), hexbytes("ff ff ff ff ff ff ff ff ff 01"))
        for value in (0, 1, 150, 8080, 2**31 - 1, 2**63, 2**64 - 1):
            self.assertEqual(cri.decode_varint(cri.encode_varint(value), 0), (value, len(cri.encode_varint(value))))

    def test_fields(self):
        self.assertEqual(cri.varint_field(1, 150), hexbytes("08 96 01"))
        self.assertEqual(cri.string_field(2, "testing"), hexbytes("12 07") + b"testing")
        # proto3 leaves zero values off the wire; an empty embedded message is still present.
        self.assertEqual(cri.varint_field(3, 0), b"")
        self.assertEqual(cri.string_field(3, ""), b"")
        self.assertEqual(cri.message_field(4, b""), hexbytes("22 00"))
        self.assertEqual(cri.varint_field(2, True), hexbytes("10 01"))


class Requests(unittest.TestCase):
    def test_version(self):
        # VersionRequest {1 version "v1"}
        self.assertEqual(cri.version_request(), hexbytes("0a 02 76 31"))

    def test_sandbox_id_requests(self):
        self.assertEqual(cri.sandbox_id_request("abc"), hexbytes("0a 03 61 62 63"))
        # PodSandboxStatusRequest {1 pod_sandbox_id, 2 verbose true}
        self.assertEqual(cri.pod_sandbox_status_request("abc"), hexbytes("0a 03 61 62 63 10 01"))

    def test_list_request(self):
        self.assertEqual(cri.list_pod_sandbox_request(), b"")
        # ListPodSandboxRequest {1 filter: PodSandboxFilter {1 id "x", 2 state {1 state 0... }}}:
        # SANDBOX_READY is 0, so the PodSandboxStateValue is present but empty.
        self.assertEqual(cri.list_pod_sandbox_request(sandbox_id="x", state=0), hexbytes("0a 05 0a 01 78 12 00"))

    def test_run_pod_sandbox(self):
        request = cri.run_pod_sandbox_request(
            "a", "u", namespace="n", port_mappings=[(80, 8080, "tcp", "")], labels={"k": "v"},
            cgroup_parent="/p", network="NODE")
        metadata = "0a 09  0a 01 61  12 01 75  1a 01 6e"          # PodSandboxConfig.metadata (1)
        port = "2a 05  10 50  18 90 3f"                           # port_mappings (5): container 80, host 8080, TCP=0 omitted
        label = "32 06  0a 01 6b  12 01 76"                       # labels (6): entry {1 "k", 2 "v"}
        linux = "42 0a  0a 02 2f 70  12 04 0a 02 08 02"           # linux (8): cgroup_parent "/p", security_context.namespace_options.network NODE=2
        expected = hexbytes("0a 26 " + metadata + port + label + linux)  # RunPodSandboxRequest.config (1), 38 bytes
        self.assertEqual(request, expected)

    def test_run_pod_sandbox_pod_network(self):
        # network POD (0) leaves an empty NamespaceOption; hostname and log_directory are fields 2 and 3.
        request = cri.run_pod_sandbox_request("a", "u", namespace="", hostname="h", log_directory="/l")
        expected = hexbytes("0a 15  0a 06 0a 01 61 12 01 75  12 01 68  1a 02 2f 6c  42 04 12 02 0a 00")
        self.assertEqual(request, expected)


class Responses(unittest.TestCase):
    def test_version_response(self):
        data = hexbytes("0a 05") + b"0.1.0" + hexbytes("12 0a") + b"containerd" + hexbytes("22 02") + b"v1"
        self.assertEqual(cri.parse_version_response(data),
                         {"version": "0.1.0", "runtime_name": "containerd", "runtime_version": "", "runtime_api_version": "v1"})

    def test_status_response(self):
        status = "0a 11  0a 01 78  18 01  2a 0a 0a 08" + b"10.0.0.1".hex()     # id "x", NOTREADY, network.ip
        info = "12 11  0a 04" + b"info".hex() + "12 09" + b'{"pid":1}'.hex()  # info {"info": "{\"pid\":1}"}
        unknown = "fd 06 01 02 03 04"                                          # field 111, fixed32: skipped
        parsed = cri.parse_pod_sandbox_status_response(hexbytes(status + info + unknown))
        self.assertEqual(parsed["id"], "x")
        self.assertEqual(parsed["state"], "SANDBOX_NOTREADY")
        self.assertEqual(parsed["ip"], "10.0.0.1")
        self.assertEqual(parsed["info"], {"info": {"pid": 1}})
        self.assertIsNone(parsed["metadata"])
        self.assertEqual(cri.netns_path(parsed), "")

    def test_netns_path(self):
        self.assertEqual(cri.netns_path({"info": {"info": {"netNamespacePath": "/var/run/netns/cni-1"}}}), "/var/run/netns/cni-1")
        spec = {"linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"}]}}
        self.assertEqual(cri.netns_path({"info": {"info": {"runtimeSpec": spec}}}), "/run/netns/x")

    def test_list_response(self):
        first = "0a 01 61  12 05 0a 03 70 2d 61  18 00  20 2a"   # id "a", metadata {name "p-a"}, READY, created_at 42
        second = "0a 01 62  18 01"                              # id "b", NOTREADY
        data = hexbytes("0a 0e " + first + " 0a 05 " + second)
        items = cri.parse_list_pod_sandbox_response(data)
        self.assertEqual([item["id"] for item in items], ["a", "b"])
        self.assertEqual(items[0]["metadata"], {"name": "p-a", "uid": "", "namespace": "", "attempt": 0})
        self.assertEqual(items[0]["created_at"], 42)
        self.assertEqual([item["state"] for item in items], ["SANDBOX_READY", "SANDBOX_NOTREADY"])

    def test_round_trip_through_the_decoder(self):
        request = cri.run_pod_sandbox_request("pod", "uid-1", namespace="ns", attempt=3, labels={"a": "1", "b": "2"},
                                              annotations={"x": "y"}, port_mappings=[(53, 5353, "udp", "127.0.0.1")])
        config = cri.Message(request).message(1)
        self.assertEqual(cri.parse_metadata(config.message(1)), {"name": "pod", "uid": "uid-1", "namespace": "ns", "attempt": 3})
        self.assertEqual(config.string_map(6), {"a": "1", "b": "2"})
        self.assertEqual(config.string_map(7), {"x": "y"})
        port = config.messages(5)[0]
        self.assertEqual((port.int64(1), port.int64(2), port.int64(3), port.string(4)), (1, 53, 5353, "127.0.0.1"))

    def test_malformed(self):
        with self.assertRaises(cri.DecodeError):
            cri.fields(hexbytes("0a 05 61"))          # LEN field longer than the data
        with self.assertRaises(cri.DecodeError):
            cri.fields(hexbytes("08 96"))             # varint cut short
        with self.assertRaises(cri.DecodeError):
            cri.Message(hexbytes("08 01")).string(1)  # field 1 is a varint, read as a string
        with self.assertRaises(cri.DecodeError):
            cri.fields(hexbytes("0b"))                # wire type 3 (groups) is not used by the CRI


if __name__ == "__main__":
    unittest.main()
