#!/usr/bin/python3
"""A minimal CRI client: the RuntimeService calls a kubelet makes for a pod sandbox, over gRPC,
with the protobuf messages encoded and decoded here by hand (no protoc, no generated code).

Run it with Debian's /usr/bin/python3, for which python3-grpcio is installed:

    cri.py --socket /run/ctr/containerd.sock version
    cri.py --socket S run --name pod-a [--namespace default] [--uid U] [--attempt N]
           [--port HOST:CONTAINER[/tcp|udp|sctp][@HOSTIP]]... [--host-network]
           [--cgroup-parent /podwire-test-x] [--log-dir DIR] [--hostname H] [--label K=V]... [--annotation K=V]...
    cri.py --socket S status ID        # the sandbox's state, metadata, IP, netns path, CNI result
    cri.py --socket S stop ID
    cri.py --socket S remove ID
    cri.py --socket S list

Each command prints one JSON document; `run` prints {"id", "ip", "netns"} (RunPodSandbox, then
PodSandboxStatus with verbose=true for the IP and the network namespace's path). A failed call
prints the gRPC status on stderr and exits 1.

As a module: `CRIClient(socket).run_pod_sandbox(...)`, `.pod_sandbox_status(id)`, ...

Field numbers are those of the CRI API's own definition, k8s.io/cri-api pkg/apis/runtime/v1/api.proto
(package runtime.v1, as vendored in containerd), messages:
  VersionRequest {1 version}; VersionResponse {1 version, 2 runtime_name, 3 runtime_version, 4 runtime_api_version}
  PortMapping {1 protocol (enum Protocol TCP=0 UDP=1 SCTP=2), 2 container_port int32, 3 host_port int32, 4 host_ip}
  NamespaceOption {1 network, 2 pid, 3 ipc (enum NamespaceMode POD=0 CONTAINER=1 NODE=2 TARGET=3), 4 target_id}
  LinuxSandboxSecurityContext {1 namespace_options}
  LinuxPodSandboxConfig {1 cgroup_parent, 2 security_context, 3 sysctls map}
  PodSandboxMetadata {1 name, 2 uid, 3 namespace, 4 attempt uint32}
  PodSandboxConfig {1 metadata, 2 hostname, 3 log_directory, 4 dns_config, 5 port_mappings repeated,
                    6 labels map, 7 annotations map, 8 linux}
  RunPodSandboxRequest {1 config, 2 runtime_handler}; RunPodSandboxResponse {1 pod_sandbox_id}
  StopPodSandboxRequest {1 pod_sandbox_id}; RemovePodSandboxRequest {1 pod_sandbox_id} (empty responses)
  PodSandboxStatusRequest {1 pod_sandbox_id, 2 verbose}
  PodSandboxStatusResponse {1 status, 2 info map<string,string>, 3 containers_statuses, 4 timestamp}
  PodSandboxStatus {1 id, 2 metadata, 3 state (enum PodSandboxState SANDBOX_READY=0 SANDBOX_NOTREADY=1),
                    4 created_at int64, 5 network, 6 linux, 7 labels map, 8 annotations map, 9 runtime_handler}
  PodSandboxNetworkStatus {1 ip, 2 additional_ips repeated PodIP}; PodIP {1 ip}
  ListPodSandboxRequest {1 filter}; PodSandboxFilter {1 id, 2 state PodSandboxStateValue {1 state}, 3 label_selector map}
  ListPodSandboxResponse {1 items repeated PodSandbox}
  PodSandbox {1 id, 2 metadata, 3 state, 4 created_at, 5 labels map, 6 annotations map, 7 runtime_handler}
A map<K,V> field is, on the wire, a repeated message {1 key, 2 value}.
"""
import argparse
import json
import sys

SERVICE = "/runtime.v1.RuntimeService/"

PROTOCOLS = {"tcp": 0, "udp": 1, "sctp": 2}
NAMESPACE_MODES = {"POD": 0, "CONTAINER": 1, "NODE": 2, "TARGET": 3}
SANDBOX_STATES = {0: "SANDBOX_READY", 1: "SANDBOX_NOTREADY"}

# Wire types.
VARINT, I64, LEN, I32 = 0, 1, 2, 5


class DecodeError(ValueError):
    pass


# MARK: - Encoding


def encode_varint(value):
    """Base-128 varint; negative values as their 64-bit two's complement (ten bytes), as protobuf
    encodes a negative int32 or int64."""
    if value < 0:
        value += 1 << 64
    if value >= 1 << 64:
        raise ValueError(f"{value} does not fit in 64 bits")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def tag(number, wire_type):
    return encode_varint(number << 3 | wire_type)


def varint_field(number, value):
    """An integer, enum or bool field; proto3 leaves a zero value off the wire."""
    value = int(value)
    return tag(number, VARINT) + encode_varint(value) if value else b""


def bytes_field(number, data):
    return tag(number, LEN) + encode_varint(len(data)) + data


def string_field(number, text):
    """A string field; proto3 leaves an empty one off the wire."""
    return bytes_field(number, text.encode()) if text else b""


def message_field(number, encoded):
    """An embedded message: present (even when empty) unless `encoded` is None."""
    return b"" if encoded is None else bytes_field(number, encoded)


def map_field(number, mapping):
    """map<string,string>: one entry message {1 key, 2 value} per pair, in key order."""
    return b"".join(bytes_field(number, string_field(1, key) + string_field(2, value))
                    for key, value in sorted((mapping or {}).items()))


# MARK: - Decoding


def decode_varint(data, offset):
    value = shift = 0
    while True:
        if offset >= len(data):
            raise DecodeError("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than ten bytes")


def fields(data):
    """The (number, wire type, value) of every field of a message, in wire order: an int for
    VARINT, I64 and I32, bytes for LEN."""
    out = []
    offset = 0
    while offset < len(data):
        key, offset = decode_varint(data, offset)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        if wire_type == VARINT:
            value, offset = decode_varint(data, offset)
        elif wire_type == LEN:
            length, offset = decode_varint(data, offset)
            if offset + length > len(data):
                raise DecodeError(f"field {number}: {length} bytes announced, {len(data) - offset} left")
            value = bytes(data[offset:offset + length])
            offset += length
        elif wire_type in (I64, I32):
            size = 8 if wire_type == I64 else 4
            if offset + size > len(data):
                raise DecodeError(f"field {number}: truncated fixed-width value")
            value = int.from_bytes(data[offset:offset + size], "little")
            offset += size
        else:
            raise DecodeError(f"field {number}: unsupported wire type {wire_type}")
        out.append((number, wire_type, value))
    return out


class Message:
    """A decoded message, read by field number: last value wins for a singular field, every
    value in order for a repeated one. Unknown fields are kept and ignored."""

    def __init__(self, data):
        self.fields = fields(data)

    def _values(self, number, wire_type):
        values = []
        for field_number, field_type, value in self.fields:
            if field_number != number:
                continue
            if field_type != wire_type:
                raise DecodeError(f"field {number}: wire type {field_type}, expected {wire_type}")
            values.append(value)
        return values

    def string(self, number):
        values = self._values(number, LEN)
        return values[-1].decode() if values else ""

    def strings(self, number):
        return [value.decode() for value in self._values(number, LEN)]

    def uint(self, number):
        values = self._values(number, VARINT)
        return values[-1] if values else 0

    def int64(self, number):
        """int32/int64/enum: the varint as a signed 64-bit value."""
        value = self.uint(number)
        return value - (1 << 64) if value >= 1 << 63 else value

    def boolean(self, number):
        return self.uint(number) != 0

    def message(self, number):
        """The embedded message, or None when absent. Several occurrences merge (protobuf's rule
        for a singular message field): their bytes concatenated decode to the merged message."""
        values = self._values(number, LEN)
        return Message(b"".join(values)) if values else None

    def messages(self, number):
        return [Message(value) for value in self._values(number, LEN)]

    def string_map(self, number):
        mapping = {}
        for entry in self.messages(number):
            mapping[entry.string(1)] = entry.string(2)
        return mapping


# MARK: - CRI messages (runtime.v1, field numbers from api.proto: see the module docstring)


def version_request(version="v1"):
    return string_field(1, version)


def parse_version_response(data):
    message = Message(data)
    return {"version": message.string(1), "runtime_name": message.string(2),
            "runtime_version": message.string(3), "runtime_api_version": message.string(4)}


def port_mapping(container_port, host_port, protocol="tcp", host_ip=""):
    return (varint_field(1, PROTOCOLS[protocol]) + varint_field(2, container_port)
            + varint_field(3, host_port) + string_field(4, host_ip))


def pod_sandbox_metadata(name, uid, namespace, attempt=0):
    return string_field(1, name) + string_field(2, uid) + string_field(3, namespace) + varint_field(4, attempt)


def run_pod_sandbox_request(name, uid, namespace="default", attempt=0, hostname="", log_directory="",
                            port_mappings=(), labels=None, annotations=None, cgroup_parent="",
                            network="POD", runtime_handler=""):
    """RunPodSandboxRequest{config: PodSandboxConfig{...}} as a kubelet fills it for a pod:
    `port_mappings` are (container_port, host_port, protocol, host_ip) tuples; `network` is the
    NamespaceMode of linux.security_context.namespace_options.network ("POD", or "NODE" for
    hostNetwork); PID and IPC stay POD (0) as for a pod without hostPID/hostIPC."""
    namespace_options = varint_field(1, NAMESPACE_MODES[network])
    security_context = message_field(1, namespace_options)
    linux = string_field(1, cgroup_parent) + message_field(2, security_context)
    config = (message_field(1, pod_sandbox_metadata(name, uid, namespace, attempt))
              + string_field(2, hostname)
              + string_field(3, log_directory)
              + b"".join(message_field(5, port_mapping(*mapping)) for mapping in port_mappings)
              + map_field(6, labels)
              + map_field(7, annotations)
              + message_field(8, linux))
    return message_field(1, config) + string_field(2, runtime_handler)


def sandbox_id_request(sandbox_id):
    """StopPodSandboxRequest and RemovePodSandboxRequest: {1 pod_sandbox_id}."""
    return string_field(1, sandbox_id)


def parse_run_pod_sandbox_response(data):
    return Message(data).string(1)


def pod_sandbox_status_request(sandbox_id, verbose=True):
    return string_field(1, sandbox_id) + varint_field(2, verbose)


def parse_metadata(message):
    if message is None:
        return None
    return {"name": message.string(1), "uid": message.string(2), "namespace": message.string(3),
            "attempt": message.uint(4)}


def parse_pod_sandbox_status_response(data):
    """{"id", "metadata", "state", "created_at", "ip", "additional_ips", "labels", "annotations",
    "runtime_handler", "info": {key: parsed JSON (or the text when it is not JSON)}}."""
    response = Message(data)
    status = response.message(1) or Message(b"")
    network = status.message(5) or Message(b"")
    info = {}
    for key, value in response.string_map(2).items():
        try:
            info[key] = json.loads(value)
        except ValueError:
            info[key] = value
    return {
        "id": status.string(1),
        "metadata": parse_metadata(status.message(2)),
        "state": SANDBOX_STATES.get(status.int64(3), status.int64(3)),
        "created_at": status.int64(4),
        "ip": network.string(1),
        "additional_ips": [ip.string(1) for ip in network.messages(2)],
        "labels": status.string_map(7),
        "annotations": status.string_map(8),
        "runtime_handler": status.string(9),
        "info": info,
    }


def list_pod_sandbox_request(sandbox_id="", state=None, label_selector=None):
    state_value = None if state is None else varint_field(1, state)
    sandbox_filter = string_field(1, sandbox_id) + message_field(2, state_value) + map_field(3, label_selector)
    return message_field(1, sandbox_filter) if sandbox_filter else b""


def parse_list_pod_sandbox_response(data):
    return [{
        "id": item.string(1),
        "metadata": parse_metadata(item.message(2)),
        "state": SANDBOX_STATES.get(item.int64(3), item.int64(3)),
        "created_at": item.int64(4),
        "labels": item.string_map(5),
        "annotations": item.string_map(6),
        "runtime_handler": item.string(7),
    } for item in Message(data).messages(1)]


# MARK: - The client


def netns_path(status):
    """The sandbox's network namespace path, from containerd's verbose info (the runtime spec's
    network namespace, or the CRI's own record of it); "" for a host-network sandbox."""
    info = status.get("info", {}).get("info")
    if not isinstance(info, dict):
        return ""
    if info.get("netNamespacePath"):
        return info["netNamespacePath"]
    spec = info.get("runtimeSpec") or {}
    for namespace in (spec.get("linux") or {}).get("namespaces") or []:
        if namespace.get("type") == "network" and namespace.get("path"):
            return namespace["path"]
    return ""


class CRIError(Exception):
    def __init__(self, method, code, details):
        super().__init__(f"{method}: {code}: {details}")
        self.method, self.code, self.details = method, code, details


class CRIClient:
    """RuntimeService calls over a CRI socket, bytes in and bytes out through grpc's generic
    unary stubs; every call has a deadline so a hung runtime fails instead of hanging."""

    def __init__(self, socket, timeout=60.0):
        import grpc  # Debian's python3-grpcio: imported here so the codec works without it.
        self._grpc = grpc
        self.timeout = timeout
        self.channel = grpc.insecure_channel("unix://" + socket, options=[("grpc.enable_http_proxy", 0)])
        self._stubs = {}

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method, request, timeout=None):
        stub = self._stubs.get(method)
        if stub is None:
            stub = self.channel.unary_unary(SERVICE + method, request_serializer=None, response_deserializer=None)
            self._stubs[method] = stub
        try:
            return stub(request, timeout=timeout or self.timeout)
        except self._grpc.RpcError as error:
            raise CRIError(method, error.code().name, error.details()) from None

    def version(self):
        return parse_version_response(self.call("Version", version_request()))

    def run_pod_sandbox(self, name, uid=None, **config):
        request = run_pod_sandbox_request(name, uid or f"uid-{name}", **config)
        return parse_run_pod_sandbox_response(self.call("RunPodSandbox", request))

    def pod_sandbox_status(self, sandbox_id, verbose=True):
        status = parse_pod_sandbox_status_response(
            self.call("PodSandboxStatus", pod_sandbox_status_request(sandbox_id, verbose)))
        status["netns"] = netns_path(status)
        return status

    def stop_pod_sandbox(self, sandbox_id):
        self.call("StopPodSandbox", sandbox_id_request(sandbox_id))

    def remove_pod_sandbox(self, sandbox_id):
        self.call("RemovePodSandbox", sandbox_id_request(sandbox_id))

    def list_pod_sandbox(self, **sandbox_filter):
        return parse_list_pod_sandbox_response(self.call("ListPodSandbox", list_pod_sandbox_request(**sandbox_filter)))


# MARK: - Command line


def parse_port(text):
    """HOST:CONTAINER[/PROTOCOL][@HOSTIP] -> (container_port, host_port, protocol, host_ip)."""
    host_ip = ""
    if "@" in text:
        text, host_ip = text.split("@", 1)
    protocol = "tcp"
    if "/" in text:
        text, protocol = text.split("/", 1)
    if protocol not in PROTOCOLS:
        raise argparse.ArgumentTypeError(f"unknown protocol {protocol!r}")
    try:
        host, container = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"port mapping {text!r} is not HOST:CONTAINER") from None
    return container, host, protocol, host_ip


def parse_pair(text):
    key, separator, value = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def main(argv):
    parser = argparse.ArgumentParser(description="A minimal CRI RuntimeService client (runtime.v1).")
    parser.add_argument("--socket", required=True, help="the runtime's CRI socket path")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version")
    run = commands.add_parser("run", help="RunPodSandbox, then PodSandboxStatus")
    run.add_argument("--name", required=True)
    run.add_argument("--namespace", default="default")
    run.add_argument("--uid")
    run.add_argument("--attempt", type=int, default=0)
    run.add_argument("--hostname", help="default: the pod's name (none with --host-network)")
    run.add_argument("--log-dir", default="")
    run.add_argument("--cgroup-parent", default="")
    run.add_argument("--port", type=parse_port, action="append", default=[])
    run.add_argument("--label", type=parse_pair, action="append", default=[])
    run.add_argument("--annotation", type=parse_pair, action="append", default=[])
    run.add_argument("--host-network", action="store_true", help="namespace_options.network = NODE")
    for name in ("status", "stop", "remove"):
        commands.add_parser(name).add_argument("id")
    commands.add_parser("list")
    args = parser.parse_args(argv)

    try:
        with CRIClient(args.socket, timeout=args.timeout) as client:
            if args.command == "version":
                result = client.version()
            elif args.command == "run":
                hostname = args.hostname if args.hostname is not None else ("" if args.host_network else args.name)
                sandbox_id = client.run_pod_sandbox(
                    args.name, uid=args.uid, namespace=args.namespace, attempt=args.attempt, hostname=hostname,
                    log_directory=args.log_dir, port_mappings=args.port, labels=dict(args.label),
                    annotations=dict(args.annotation), cgroup_parent=args.cgroup_parent,
                    network="NODE" if args.host_network else "POD")
                status = client.pod_sandbox_status(sandbox_id)
                result = {"id": sandbox_id, "ip": status["ip"], "netns": status["netns"]}
            elif args.command == "status":
                result = client.pod_sandbox_status(args.id)
            elif args.command == "stop":
                client.stop_pod_sandbox(args.id)
                result = {"stopped": args.id}
            elif args.command == "remove":
                client.remove_pod_sandbox(args.id)
                result = {"removed": args.id}
            else:
                result = client.list_pod_sandbox()
    except CRIError as error:
        print(f"cri.py: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
