#!/usr/bin/python3
"""What a kubelet waits for: RunPodSandbox and StopPodSandbox + RemovePodSandbox through containerd's
CRI, with podwire against the reference ptp + host-local, and a host-network floor.

Run by Scripts/bench-cri.sh with Debian's /usr/bin/python3 (python3-grpcio). Each entrant gets a
containerd of its own, started by Tests/Runtimes/containerd/node.sh inside a private network +
mount namespace (`unshare -nm`, tmpfs on /run and /var/lib/cni) that a holder process keeps; the
containerd's directory, and so its CRI socket, lives under --work on the normal filesystem, so this
one process talks to all of them. Nothing runs in this machine's own network namespace.

    podwire    the conflist's plugin is podwire (podwire-ipam in-process)
    reference  Debian's ptp with host-local
    floor      namespace_options.network = NODE: the same calls with no CNI at all

For each of three conflists (the plugin alone; + portmap with no hostPort asked; + portmap with one
hostPort per pod) the three containerds are started fresh, warmed up, then --pods rounds each run
one pod on every entrant, the entrants' order rotating every round; then as many rounds stop and
remove them, rotating the same way. Every sandbox's IP is checked through PodSandboxStatus (not
timed), and every node must list no sandbox at the end.

A fourth phase has podwire alone in its conflist with the `portMappings` capability (its built-in
hostPorts, no portmap) and one hostPort per pod, against the reference + portmap with one hostPort
as in the third. podwire's containerd also runs, in the same rotation and with the same conflist,
pods that ask for no hostPort (entrant podwire-no-hostport), so a hostPort's cost is measured on
one node side by side. With all its pods running, podwire's node must hold one hostPort mapping
per pod in its nftables maps (looked at through the holder's namespace, not timed), none after.

Writes every sample to --out (JSON).
"""
import argparse
import datetime
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "Tests", "Runtimes", "cri"))
import cri  # noqa: E402

NODE_SCRIPT = os.path.join(REPO, "Tests", "Runtimes", "containerd", "node.sh")
SUBNET = ipaddress.ip_network("10.244.1.0/24")
ENTRANTS = ("podwire", "reference", "floor")
PHASES = (
    # key, label, portmap after each plugin, one hostPort per pod, podwire alone with the capability
    ("alone", "the plugin alone", False, False, False),
    ("portmap", "+ portmap, no hostPort asked", True, False, False),
    ("hostport", "+ portmap, one hostPort", True, True, False),
    ("podwire-hostport", "podwire alone with `portMappings` (the reference + portmap), one hostPort", True, True, True),
)
# In the last phase, pods without a hostPort on podwire's containerd, in the same rotation.
NO_HOST_PORT = "podwire-no-hostport"

# The holder: makes the node (its /run and /var/lib/cni are tmpfs of its own), starts containerd
# there, prints node.sh's JSON, then waits until the driver closes its stdin (or dies), and cleans
# everything up: containerd, shims, pods, their cgroups, the directory.
HOLDER = r"""
set -euo pipefail
node=$1 dir=$2 bin=$3 conf=$4 pause=$5
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/netns /var/lib/cni
mount -t tmpfs -o mode=0755 tmpfs /var/lib/cni
ip link set lo up
finish() {
    bash "$node" stop "$dir" >&2 || true
    bash "$node" cleanup "$dir" >&2
}
trap finish EXIT
bash "$node" start "$dir" "$bin" "$conf" "$pause"
cat >/dev/null
"""


NETWORK = "kindnet"


def conflist(entrant, portmap, podwire_host_ports=False):
    """With podwire_host_ports, podwire's conflist is podwire alone with the `portMappings`
    capability (its built-in hostPorts); the reference's still chains portmap."""
    if entrant == "reference":
        plugin = {"type": "ptp", "mtu": 1500, "ipam": {"type": "host-local"}}
    else:
        plugin = {"type": "podwire", "mtu": 1500, "ipam": {"type": "podwire-ipam"}}
    plugin["ipam"].update({"dataDir": "/run/cni-ipam-state", "ranges": [[{"subnet": str(SUBNET)}]],
                           "routes": [{"dst": "0.0.0.0/0"}]})
    plugins = [plugin]
    if podwire_host_ports and entrant != "reference":
        plugin["capabilities"] = {"portMappings": True}
    elif portmap:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
    return {"cniVersion": "1.0.0", "name": NETWORK, "plugins": plugins}


class Node:
    """One containerd in a private network + mount namespace, and a CRI client for it."""

    def __init__(self, name, work, cni_bin, pause, document):
        self.name = name
        self.dir = os.path.join(work, name)
        conf_dir = os.path.join(work, name + "-net.d")
        os.makedirs(conf_dir)
        with open(os.path.join(conf_dir, "10-kindnet.conflist"), "w") as handle:
            json.dump(document, handle)
        self.holder = subprocess.Popen(
            ["unshare", "-nm", "--propagation", "private", "bash", "-c", HOLDER, "holder",
             NODE_SCRIPT, self.dir, cni_bin, conf_dir, pause],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.client = None
        try:
            line = self.holder.stdout.readline()
            if not line:
                raise RuntimeError(f"{name}: containerd did not start")
            started = json.loads(line)
            self.cgroup_parent = started["cgroup_parent"]
            self.client = cri.CRIClient(started["socket"], timeout=60)
            self.version = self.client.version()
        except BaseException:
            self.close()
            raise

    def host_port_mappings(self):
        """The hostPort mappings podwire holds on this node: the elements of its maps in
        `table inet podwire-<network>`, read with nft inside the holder's network namespace."""
        listed = subprocess.run(["nsenter", "-t", str(self.holder.pid), "-n", "nft", "-j", "list", "table", "inet",
                                 f"podwire-{NETWORK}"], capture_output=True)
        if listed.returncode != 0:
            return 0
        objects = json.loads(listed.stdout)["nftables"]
        return sum(len(o["map"].get("elem", [])) for o in objects if "map" in o and o["map"]["name"].startswith("hp"))

    def log_tail(self, lines=30):
        try:
            with open(os.path.join(self.dir, "containerd.log")) as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError as error:
            return f"(no log: {error})"

    def close(self):
        """Ends the holder (which stops containerd and cleans up); returns what is left on the machine."""
        if self.client is not None:
            self.client.close()
        self.holder.stdin.close()
        try:
            self.holder.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.holder.kill()
            self.holder.wait()
        left = []
        if self.holder.returncode != 0:
            left.append(f"{self.name}: the holder's cleanup exited {self.holder.returncode}")
        parent = getattr(self, "cgroup_parent", None)
        for hierarchy in ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", e) for e in os.listdir("/sys/fs/cgroup")]:
            if parent is None:
                break
            path = hierarchy + parent
            if os.path.isdir(path) and not os.path.islink(hierarchy):
                left.append(f"{self.name}: cgroup {path}")
        if os.path.exists(self.dir):
            left.append(f"{self.name}: {self.dir}")
        return left


class Entrant:
    def __init__(self, kind, node, host_port):
        self.kind = kind
        self.node = node
        self.host_port = host_port
        self.serial = 0

    def run(self):
        """RunPodSandbox of a fresh pod, timed; returns (ms, sandbox id). Pods that ask for a hostPort
        each get one of their own (no conflict)."""
        self.serial += 1
        name = f"bench-{self.kind}-{self.serial}"
        ports = [(80, 20000 + self.serial, "tcp", "")] if self.host_port else []
        request = dict(uid=str(uuid.uuid4()), namespace="default", hostname="" if self.kind == "floor" else name,
                       log_directory=os.path.join(self.node.dir, "logs", name), port_mappings=ports,
                       labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "default"},
                       cgroup_parent=self.node.cgroup_parent, network="NODE" if self.kind == "floor" else "POD")
        started = time.perf_counter_ns()
        sandbox_id = self.node.client.run_pod_sandbox(name, **request)
        elapsed = (time.perf_counter_ns() - started) / 1e6
        status = self.node.client.pod_sandbox_status(sandbox_id)
        if status["state"] != "SANDBOX_READY":
            raise RuntimeError(f"{self.kind}: {name} is {status['state']}")
        if self.kind == "floor":
            if status["ip"]:
                raise RuntimeError(f"floor: host-network sandbox {name} got an IP {status['ip']}")
        elif not status["ip"] or ipaddress.ip_address(status["ip"]) not in SUBNET:
            raise RuntimeError(f"{self.kind}: {name} got IP {status['ip']!r}, not one of {SUBNET}")
        return elapsed, sandbox_id

    def stop_remove(self, sandbox_id):
        """StopPodSandbox, then RemovePodSandbox, each timed; returns (stop ms, remove ms)."""
        started = time.perf_counter_ns()
        self.node.client.stop_pod_sandbox(sandbox_id)
        stopped = time.perf_counter_ns()
        self.node.client.remove_pod_sandbox(sandbox_id)
        removed = time.perf_counter_ns()
        return (stopped - started) / 1e6, (removed - stopped) / 1e6


def rotated(items, shift):
    shift %= len(items)
    return list(items[shift:]) + list(items[:shift])


def run_phase(key, label, portmap, host_port, podwire_host_ports, args):
    nodes = {}
    try:
        for kind in ENTRANTS:
            document = conflist("podwire" if kind == "floor" else kind, portmap, podwire_host_ports)
            nodes[kind] = Node(f"{key}-{kind}", args.work, args.cni_bin, args.pause, document)
        entrants = {kind: Entrant(kind, nodes[kind], host_port and kind != "floor") for kind in ENTRANTS}
        if podwire_host_ports:
            # Same containerd, same conflist, same rotation: a pod that asks for no hostPort.
            entrants[NO_HOST_PORT] = Entrant(NO_HOST_PORT, nodes["podwire"], False)
        kinds = list(entrants)
        # Warm-up: the first pods of a fresh containerd pay for caches (the image, the snapshotter, the
        # shim binary in the page cache) that every later pod finds ready.
        for round_index in range(args.warmup):
            for kind in rotated(kinds, round_index):
                _, sandbox_id = entrants[kind].run()
                entrants[kind].stop_remove(sandbox_id)
        samples = {kind: {"run": [], "stop": [], "remove": [], "stop_remove": []} for kind in kinds}
        sandboxes = {kind: [] for kind in kinds}
        for round_index in range(args.pods):
            for kind in rotated(kinds, round_index):
                elapsed, sandbox_id = entrants[kind].run()
                samples[kind]["run"].append(elapsed)
                sandboxes[kind].append(sandbox_id)
        if podwire_host_ports:
            check_host_ports(nodes["podwire"], args.pods)
        for round_index in range(args.pods):
            for kind in rotated(kinds, round_index):
                stop_ms, remove_ms = entrants[kind].stop_remove(sandboxes[kind][round_index])
                samples[kind]["stop"].append(stop_ms)
                samples[kind]["remove"].append(remove_ms)
                samples[kind]["stop_remove"].append(stop_ms + remove_ms)
        if podwire_host_ports:
            check_host_ports(nodes["podwire"], 0)
        for kind, node in nodes.items():
            listed = node.client.list_pod_sandbox()
            if listed:
                raise RuntimeError(f"{kind}: ListPodSandbox still lists {len(listed)} sandboxes after removing them all")
        line = ", ".join(f"{kind} run {statistics.median(s['run']):.1f} ms stop+remove {statistics.median(s['stop_remove']):.1f} ms"
                         for kind, s in samples.items())
        print(f"  {label}: {line}", flush=True)
        versions = {kind: node.version for kind, node in nodes.items()}
        return {"key": key, "label": label, "samples": samples, "runtime": versions["podwire"]}
    except Exception:
        for kind, node in nodes.items():
            print(f"--- {kind}'s containerd.log (last lines):\n{node.log_tail()}", file=sys.stderr)
        raise
    finally:
        left = []
        for node in nodes.values():
            left += node.close()
        if left:
            raise RuntimeError("left on this machine after the phase: " + "; ".join(left))


def check_host_ports(node, expected):
    """podwire's node holds one mapping per running pod that asked for a hostPort (tcp, every
    address of the pod's one family), none once they are removed."""
    found = node.host_port_mappings()
    if found != expected:
        raise RuntimeError(f"podwire: {found} hostPort map elements on its node, expected {expected}"
                           + (" (does this podwire map hostPorts?)" if found == 0 else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="a fresh directory for the containerds (sockets, state)")
    parser.add_argument("--cni-bin", required=True, help="CNI bin dir: podwire, podwire-ipam and Debian's plugins")
    parser.add_argument("--pause", required=True, help="the pause image archive (Tests/Runtimes/image.py)")
    parser.add_argument("--pods", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--machine", default="")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    phases = [run_phase(*phase, args) for phase in PHASES]
    results = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": args.machine,
        "pods": args.pods,
        "warmup": args.warmup,
        "runtime": phases[0]["runtime"],
        "phases": [{key: phase[key] for key in ("key", "label", "samples")} for phase in phases],
        "seconds": round(time.time() - started.timestamp(), 1),
    }
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
