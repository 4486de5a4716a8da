#!/usr/bin/env python3
"""podwire vs the reference ptp + host-local, side by side, inside a private network namespace.

Run by Scripts/bench.sh inside `unshare -Urnm`. Each plugin wires pods into a node of its own (a
network namespace: podwire's is the one this process starts in, the reference's and the floor's
are made here), so "1000 pods present" means 1000 of that plugin's pods on its node, and neither
plugin's routes or nftables weigh on the other. This process enters a node's namespace before it
starts that node's plugin. Every timed step rotates podwire, the reference and the kernel's floor
so that drift of the machine hits all three alike.

hostPorts (the `portMappings` capability) join the same rotations: podwire alone with
`runtimeConfig.portMappings` in its stdin config, against the reference ptp + host-local followed
by Debian's portmap as a conflist chains it (portmap's ADD gets ptp's result as prevResult; DEL
runs portmap first, then ptp), the two execs of one pod summed as one step. Both run on nodes of
their own (node-podwire-hp, node-reference-hp): empty for the empty-node rows, then filled with
pods that each hold hostPorts for the populated row. On podwire's hostPort node, the same network
is also ADDed without hostPorts in the same rotation, so "with hostPorts / without" compares the
same node state.

Writes a JSON document with every sample to --out.
"""
import argparse
import ctypes
import json
import os
import socket
import statistics
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class Node:
    """A network namespace that plays one node; `enter()` moves this (single-threaded) process into it,
    so the processes it starts next run on that node."""

    def __init__(self, name, path):
        self.name = name
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.next_host_port = HOST_PORT_BASE

    def take_host_ports(self, count):
        """`count` host ports no pod on this node holds yet (each pod gets ports of its own: no conflict)."""
        ports = list(range(self.next_host_port, self.next_host_port + count))
        self.next_host_port += count
        if self.next_host_port > 65536:
            raise RuntimeError(f"node {self.name}: out of host ports")
        return ports

    @classmethod
    def current(cls, name):
        return cls(name, "/proc/self/ns/net")

    @classmethod
    def create(cls, name):
        subprocess.run(["ip", "netns", "add", name], check=True)
        node = cls(name, f"/run/netns/{name}")
        node.enter()
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        node.add_uplink()
        return node

    def add_uplink(self):
        """What every real node has: a NIC with the default route (a veth whose peer stays on the
        node; 198.51.100.0/24 is a documentation range), so that an ADD without `mtu`, which
        takes the default route's MTU, has one to find."""
        self.enter()
        batch = ("link add uplink type veth peer name uplink-peer\nlink set uplink up\nlink set uplink-peer up\n"
                 "addr add 198.51.100.2/24 dev uplink\nroute add default via 198.51.100.1 dev uplink\n")
        subprocess.run(["ip", "-batch", "-"], input=batch.encode(), check=True)

    def track_connections(self, count=100):
        """What every node in service has: connections its conntrack tracks (UDP flows through
        the uplink, an hour to live). In a namespace tracking none, the kernel's conntrack flush
        (and a plugin's check) returns at once, which a real node never allows: both walk the
        kernel's whole conntrack table there."""
        self.enter()
        for i in range(count):
            subprocess.run(["conntrack", "-I", "-p", "udp", "-s", "198.51.100.50", "-d", "198.51.100.2",
                            "--sport", str(30000 + i), "--dport", "9999", "-t", "3600"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def enter(self):
        if _libc.setns(self.fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into node {self.name}")

HOST_PORT_BASE = 20000
PODWIRE_SUBNET = "10.244.0.0/17"
REFERENCE_SUBNET = "10.244.128.0/17"
PODWIRE_SUBNET6 = "fd00:10:244::/64"
REFERENCE_SUBNET6 = "fd00:10:244:1::/64"


def config(kind, ip_masq=False, dual_stack=False, mtu=True, cni_version="1.0.0", host_ports=False):
    return json.dumps(config_dict(kind, ip_masq, dual_stack, mtu, cni_version, host_ports)).encode()


def config_dict(kind, ip_masq=False, dual_stack=False, mtu=True, cni_version="1.0.0", host_ports=False):
    """The plugin's config as a user writes it. With host_ports the network is one of its own
    (`-hp`), and podwire's entry declares the `portMappings` capability (the runtime's mappings are
    added per pod, see HostPortEntrant); ptp's does not, portmap follows it in the list."""
    ranges = [[{"subnet": PODWIRE_SUBNET if kind == "podwire" else REFERENCE_SUBNET}]]
    routes = [{"dst": "0.0.0.0/0"}]
    if dual_stack:
        ranges.append([{"subnet": PODWIRE_SUBNET6 if kind == "podwire" else REFERENCE_SUBNET6}])
        routes.append({"dst": "::/0"})
    if kind == "podwire":
        plugin = {"type": "podwire", "ipam": {"type": "podwire-ipam", "dataDir": "/run/bench-ipam", "ranges": ranges, "routes": routes}}
    else:
        plugin = {"type": "ptp", "ipam": {"type": "host-local", "dataDir": "/run/bench-ipam", "ranges": ranges, "routes": routes}}
    name = (f"bench-{kind}" + ("-masq" if ip_masq else "") + ("-dual" if dual_stack else "") + ("" if mtu else "-nomtu")
            + ("-hp" if host_ports else ""))
    plugin.update({"cniVersion": cni_version, "name": name})
    if mtu:
        plugin["mtu"] = 1500
    if ip_masq:
        plugin["ipMasq"] = True
    if host_ports and kind == "podwire":
        plugin["capabilities"] = {"portMappings": True}
    return plugin


class Plugin:
    def __init__(self, kind, binary, cni_path, node):
        self.kind = kind
        self.binary = binary
        self.cni_path = cni_path
        self.node = node

    def invoke(self, command, container, netns, conf, ifname="eth0", peak_rss=None, launcher=None):
        """One exec, timed; returns (ms, stdout). With peak_rss (the C wrapper) the exec runs under
        it instead and its peak RSS (KiB) is left in self.peak_kib. With launcher (timed-exec.c)
        the time is the launcher's, spawn to reaped exit, without Python's own overhead."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": container,
               "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_PATH": self.cni_path}
        self.node.enter()
        wrapper = peak_rss or launcher
        argv = [wrapper, self.binary] if wrapper else [self.binary]
        started = time.perf_counter_ns()
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE if wrapper else None, env=env)
        out, err = process.communicate(conf)
        elapsed = time.perf_counter_ns() - started
        if process.returncode != 0:
            raise RuntimeError(f"{self.kind} {command} {container}: {out.decode(errors='replace')}")
        if peak_rss:
            line = [l for l in err.decode().splitlines() if l.startswith("peak_rss_kib=")][-1]
            self.peak_kib = int(line.split("=")[1])
        if launcher:
            line = [l for l in err.decode().splitlines() if l.startswith("timed_exec_ns=")][-1]
            elapsed = int(line.split("=")[1])
        return elapsed / 1e6, out


class Entrant:
    """One column of a rotation: a plugin exec'd with one config, ADD then DEL of each test pod
    (in every `every`th iteration of the rotation only, for the slowest)."""

    every = 1

    def __init__(self, plugin, conf, launcher=None):
        self.plugin = plugin
        self.node = plugin.node
        self.conf = conf
        self.launcher = launcher

    def add(self, container, netns):
        return self.plugin.invoke("ADD", container, netns, self.conf, launcher=self.launcher)[0]

    def delete(self, container, netns):
        return self.plugin.invoke("DEL", container, netns, self.conf, launcher=self.launcher)[0]

    def parts(self):
        return None


def plain_entrants(plugins, confs):
    return {kind: Entrant(plugin, confs[kind]) for kind, plugin in plugins.items()}


def port_mappings(ports, protocols=("tcp", "udp")):
    """Two hostPorts, as libcni passes a pod's mappings: by default one tcp, one udp, on every address of the node."""
    return [{"hostPort": ports[0], "containerPort": 80, "protocol": protocols[0], "hostIP": ""},
            {"hostPort": ports[1], "containerPort": 53, "protocol": protocols[1], "hostIP": ""}]


class HostPortEntrant:
    """A pod with two hostPorts, each pod with ports of its own on the node. podwire alone gets the
    mappings as libcni injects them (`runtimeConfig.portMappings` in its stdin config, ADD and DEL
    alike). The reference is ptp followed by portmap as a conflist runs them: portmap's ADD gets the
    network's name, the capability, the same runtimeConfig and ptp's result as prevResult; DEL runs
    portmap first (prevResult: the chain's result), then ptp. The two execs are summed as one step
    (each timed as Plugin.invoke times it); ptp's and portmap's shares are kept apart as well."""

    def __init__(self, plugin, conf, portmap=None, every=1, protocols=("tcp", "udp"), seen=False):
        self.protocols = protocols
        # With seen, a client sends to each UDP port before its pod's ADD (untimed): a pod that
        # comes back on its port while clients keep sending. podwire's ADD then asks the kernel to
        # forget the flow, one walk of its conntrack table; a port nothing was sent to costs none.
        self.seen = seen
        self.plugin = plugin
        self.node = plugin.node
        self.conf = conf  # a dict (config_dict)
        self.portmap = portmap
        self.every = every
        self.pods = {}  # container -> (mappings, the chain's ADD result)
        self.split = {"add": {"plugin": [], "portmap": []}, "del": {"plugin": [], "portmap": []}}

    def add(self, container, netns, peak_rss=None):
        """ADD of a pod with two hostPorts of its own; with peak_rss, podwire's or portmap's exec runs
        under the C wrapper (see peak_memory)."""
        mappings = port_mappings(self.node.take_host_ports(2), self.protocols)
        if self.seen:
            self.node.enter()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                for mapping in mappings:
                    if mapping["protocol"] == "udp":
                        client.sendto(b"hello", ("198.51.100.2", mapping["hostPort"]))
        if self.portmap is None:
            conf = json.dumps(dict(self.conf, runtimeConfig={"portMappings": mappings})).encode()
            elapsed, _ = self.plugin.invoke("ADD", container, netns, conf, peak_rss=peak_rss)
            self.pods[container] = (mappings, None)
            return elapsed
        plugin_ms, out = self.plugin.invoke("ADD", container, netns, json.dumps(self.conf).encode())
        portmap_conf = self.portmap_conf(mappings, json.loads(out))
        portmap_ms, out = self.portmap.invoke("ADD", container, netns, portmap_conf, peak_rss=peak_rss)
        self.pods[container] = (mappings, json.loads(out))
        self.split["add"]["plugin"].append(plugin_ms)
        self.split["add"]["portmap"].append(portmap_ms)
        return plugin_ms + portmap_ms

    def delete(self, container, netns):
        mappings, result = self.pods.pop(container)
        if self.portmap is None:
            conf = json.dumps(dict(self.conf, runtimeConfig={"portMappings": mappings})).encode()
            return self.plugin.invoke("DEL", container, netns, conf)[0]
        portmap_ms, _ = self.portmap.invoke("DEL", container, netns, self.portmap_conf(mappings, result))
        plugin_ms, _ = self.plugin.invoke("DEL", container, netns, json.dumps(self.conf).encode())
        self.split["del"]["plugin"].append(plugin_ms)
        self.split["del"]["portmap"].append(portmap_ms)
        return plugin_ms + portmap_ms

    def portmap_conf(self, mappings, prev_result):
        return json.dumps({"cniVersion": self.conf["cniVersion"], "name": self.conf["name"], "type": "portmap",
                           "capabilities": {"portMappings": True}, "runtimeConfig": {"portMappings": mappings},
                           "prevResult": prev_result}).encode()

    def parts(self):
        """ptp's and portmap's shares of the summed samples (the reference only), then forgets them."""
        if self.portmap is None:
            return None
        split = self.split
        self.split = {"add": {"plugin": [], "portmap": []}, "del": {"plugin": [], "portmap": []}}
        return {verb: {part: summary(v) for part, v in parts.items() if v} for verb, parts in split.items()}


def installed_mappings(entrant):
    """How many hostPort mappings the entrant's node holds in the kernel: for podwire the elements of
    its network's hostPort maps (hp4, hp4any, hp6, hp6any in `table inet podwire-<network>`), for
    the reference portmap's DNAT rules (iptables and ip6tables). Not timed."""
    entrant.node.enter()
    if entrant.portmap is None:
        listed = subprocess.run(["nft", "-j", "list", "table", "inet", f"podwire-{entrant.conf['name']}"],
                                capture_output=True)
        if listed.returncode != 0:
            return 0
        objects = json.loads(listed.stdout)["nftables"]
        return sum(len(o["map"].get("elem", [])) for o in objects if "map" in o and o["map"]["name"].startswith("hp"))
    rules = 0
    for save in ("iptables-save", "ip6tables-save"):
        dump = subprocess.run([save, "-t", "nat"], capture_output=True, check=True).stdout.decode()
        rules += sum(1 for line in dump.splitlines() if line.startswith("-A CNI-DN-") and "-j DNAT" in line)
    return rules


def check_mappings(kind, entrant, expected):
    found = installed_mappings(entrant)
    if found != expected:
        what = "map elements" if entrant.portmap is None else "DNAT rules"
        raise RuntimeError(f"{kind}: {found} hostPort {what} on node {entrant.node.name}, expected {expected}"
                           + (" (does this podwire map hostPorts?)" if found == 0 and entrant.portmap is None else ""))


def add_netns(names):
    if not names:
        return
    batch = "".join(f"netns add {n}\n" for n in names)
    subprocess.run(["ip", "-batch", "-"], input=batch.encode(), check=True)


def del_netns(names):
    if not names:
        return
    batch = "".join(f"netns del {n}\n" for n in names)
    subprocess.run(["ip", "-batch", "-"], input=batch.encode(), check=True)


def summary(samples):
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"median": statistics.median(ordered), "p99": p99, "min": ordered[0], "max": ordered[-1], "n": len(ordered)}


class Floor:
    """The kernel's own cost of a pod's veth and the cost of starting a process, measured in the same
    rotation as the plugins: a bare pair created with its peer in a pod namespace and the peer
    brought up, then deleted (veth-floor, timed around its netlink requests only), and the exec of a
    do-nothing static binary (timed as the plugins are).

    With `populated` (a node full of pods whose host veths all hold the gateway 10.244.0.1, as
    podwire's does), the kernel's requests of a whole ADD are timed there too, beside the empty
    floor node: how much the kernel itself grows with the pods present, whoever sends the requests."""

    KEYS = ("veth_create", "veth_delete", "exec_nothing", "exec_nothing_swift", "kernel_wiring")
    # Far from the addresses podwire's IPAM hands out on that node (10.244.0.0/17, from the start).
    POPULATED_POD_ADDRESS = "10.244.127.254"

    def __init__(self, veth_tool, wire_tool, nothing, nothing_swift, node):
        self.veth_tool = veth_tool
        self.wire_tool = wire_tool
        self.nothing = nothing
        self.nothing_swift = nothing_swift
        self.node = node
        self.populated = None

    def keys(self):
        return self.KEYS + (("kernel_wiring_populated",) if self.populated else ())

    def wiring(self, netns, *address):
        """Every kernel request of a whole ADD (wire-floor.c), the pair deleted after (the namespace is
        left as it was: it can be used again)."""
        return int(subprocess.run([self.wire_tool, netns, "1", *address], check=True, capture_output=True).stdout) / 1e6

    def sample(self, netns):
        self.node.enter()
        output = subprocess.run([self.veth_tool, netns, "1", "up"], check=True, capture_output=True).stdout.decode()
        create, delete = (int(x) / 1e6 for x in output.split())
        values = [create, delete, exec_nothing(self.nothing), exec_nothing(self.nothing_swift), self.wiring(netns)]
        if self.populated:
            self.populated.enter()
            values.append(self.wiring(netns, self.POPULATED_POD_ADDRESS))
        return values


def timed_pairs(entrants, iterations, label, prefix, floor=None, checks=None):
    """ADD then DEL of a fresh test pod by each entrant, and one floor sample, rotating the order each
    iteration. `checks` maps an entrant to the hostPort mappings its first test pod must have
    installed (looked at once, between that ADD and its DEL, not timed)."""
    checks = dict(checks or {})
    kinds = list(entrants) + (["floor"] if floor else [])

    def takes_part(kind, i):
        return kind == "floor" or i % entrants[kind].every == 0

    names = [f"{prefix}-{k}-{i}" for k in kinds for i in range(iterations) if takes_part(k, i)]
    add_netns(names)
    samples = {k: {"add": [], "del": []} for k in entrants}
    floor_samples = {key: [] for key in (floor.keys() if floor else ())}
    for i in range(iterations):
        shift = i % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            if not takes_part(kind, i):
                continue
            netns = f"/run/netns/{prefix}-{kind}-{i}"
            if kind == "floor":
                for key, value in zip(floor.keys(), floor.sample(netns)):
                    floor_samples[key].append(value)
                continue
            container = f"{prefix}-{kind}-{i}"
            add_ms = entrants[kind].add(container, netns)
            if kind in checks:
                check_mappings(kind, entrants[kind], checks.pop(kind))
            del_ms = entrants[kind].delete(container, netns)
            samples[kind]["add"].append(add_ms)
            samples[kind]["del"].append(del_ms)
    del_netns(names)
    line = ", ".join(f"{k} ADD {statistics.median(v['add']):.2f} ms DEL {statistics.median(v['del']):.2f} ms"
                     for k, v in samples.items())
    if floor:
        line += (f", floor: veth create {statistics.median(floor_samples['veth_create']):.2f} ms"
                 f" delete {statistics.median(floor_samples['veth_delete']):.2f} ms"
                 f" exec {statistics.median(floor_samples['exec_nothing']):.2f} ms")
    print(f"  {label}: {line}", flush=True)
    parts = {k: split for k, e in entrants.items() if (split := e.parts())}
    return samples, (floor_samples if floor else None), parts


def populate(entrants, targets, prefix="pop"):
    """Bring each entrant's node from targets[kind][0] to targets[kind][1] pods, the entrants taking
    turns pod by pod; returns each entrant's ADD times (ms) and the wall time (s) of its share."""
    names = [f"{prefix}-{k}-{i}" for k, (start, end) in targets.items() for i in range(start, end)]
    add_netns(names)
    times = {k: [] for k in targets}
    walls = {k: 0.0 for k in targets}
    for i in range(min(start for start, _ in targets.values()), max(end for _, end in targets.values())):
        for kind, (start, end) in targets.items():
            if start <= i < end:
                started = time.perf_counter()
                times[kind].append(entrants[kind].add(f"{prefix}-{kind}-{i}", f"/run/netns/{prefix}-{kind}-{i}"))
                walls[kind] += time.perf_counter() - started
    return times, walls


def parallel_adds(plugins, confs, count, rounds):
    """`count` ADDs started at once; wall time until the last one finished, addresses distinct."""
    results = {k: [] for k in plugins}
    for r in range(rounds):
        for kind in (list(plugins) if r % 2 == 0 else list(reversed(list(plugins)))):
            plugin = plugins[kind]
            names = [f"par{count}-{kind}-{r}-{i}" for i in range(count)]
            add_netns(names)
            env_base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0",
                        "CNI_PATH": plugin.cni_path}
            plugin.node.enter()
            started = time.perf_counter_ns()
            processes = []
            for name in names:
                env = dict(env_base, CNI_CONTAINERID=name, CNI_NETNS=f"/run/netns/{name}")
                processes.append(subprocess.Popen([plugin.binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env))
            for process in processes:
                process.stdin.write(confs[kind])
                process.stdin.close()
            outputs = [process.stdout.read() for process in processes]
            codes = [process.wait() for process in processes]
            wall = (time.perf_counter_ns() - started) / 1e6
            if any(codes):
                raise RuntimeError(f"{kind}: parallel ADD failed: {[o for o, c in zip(outputs, codes) if c][:1]}")
            addresses = [json.loads(o)["ips"][0]["address"] for o in outputs]
            if len(set(addresses)) != count:
                raise RuntimeError(f"{kind}: parallel ADD handed out duplicate addresses")
            results[kind].append(wall)
            for name in names:
                plugin.invoke("DEL", name, f"/run/netns/{name}", confs[kind])
            del_netns(names)
    print(f"  {count} ADDs at once: " + ", ".join(f"{k} {statistics.median(v):.1f} ms" for k, v in results.items()), flush=True)
    return results


CALL_LOG = "/run/bench-calllog/calls.jsonl"


def call_log_rows(podwire, launcher, iterations):
    """podwire with its call log on and off, side by side on an empty node of their own, both
    timed by the lean launcher; then `podwirectl stats` on that log, against the bench's own
    percentiles of the same calls."""
    node = Node.create("node-podwire-calllog")
    plugin = Plugin("podwire-calllog", podwire.binary, podwire.cni_path, node)
    plain = config_dict("podwire")
    logged = dict(plain, callLog=CALL_LOG)
    entrants = {"podwire-calllog": Entrant(plugin, json.dumps(logged).encode(), launcher=launcher),
                "podwire-no-calllog": Entrant(plugin, json.dumps(plain).encode(), launcher=launcher)}
    samples, _, _ = timed_pairs(entrants, iterations, "call log on and off, empty node (timed-exec)", "cl")
    node.enter()
    ctl = os.path.join(os.path.dirname(podwire.binary), "podwirectl")
    stats = subprocess.run([ctl, "stats", "--log", CALL_LOG, "--json"], check=True, capture_output=True).stdout
    lines = sum(1 for _ in open(CALL_LOG))
    return {"samples": samples, "stats": json.loads(stats), "lines": lines,
            "bench": {kind: {verb: percentiles(values) for verb, values in verbs.items()} for kind, verbs in samples.items()}}


def percentiles(values):
    """p50, p90, p99 and max as podwirectl stats computes them (linear between closest ranks)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": statistics.median(values), "p90": cuts[89], "p99": cuts[98], "max": max(values), "count": len(values)}


def exec_nothing(nothing):
    """One exec of the do-nothing binary, timed and fed exactly as a plugin is."""
    started = time.perf_counter_ns()
    process = subprocess.Popen([nothing], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={"CNI_COMMAND": "ADD"})
    process.communicate(b"{}")
    return (time.perf_counter_ns() - started) / 1e6


def veth_floor_tight_loop(tool, iterations, node):
    """The bare pair created and deleted back to back in one process, for comparison: the kernel's
    delete varies with what else the machine has been doing (RCU grace periods), so the floor the
    targets use is the one sampled in the plugins' rotation."""
    node.enter()
    add_netns(["floor-loop"])
    output = subprocess.run([tool, "/run/netns/floor-loop", str(iterations), "up"], check=True, capture_output=True).stdout.decode()
    del_netns(["floor-loop"])
    pairs = [tuple(int(x) / 1e6 for x in line.split()) for line in output.splitlines() if line.strip()]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def peak_memory(plugins, confs, peak_rss):
    """Peak RSS of one ADD of each plugin (KiB), measured by a small C parent with wait4: a Python
    parent would report its own size, since the child is a copy of it until exec."""
    result = {}
    for kind, plugin in plugins.items():
        add_netns([f"mem-{kind}"])
        plugin.node.enter()
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": f"mem-{kind}",
               "CNI_NETNS": f"/run/netns/mem-{kind}", "CNI_IFNAME": "eth0", "CNI_PATH": plugin.cni_path}
        done = subprocess.run([peak_rss, plugin.binary], input=confs[kind], env=env, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"{kind}: ADD for the memory probe failed: {done.stdout!r}")
        line = [l for l in done.stderr.decode().splitlines() if l.startswith("peak_rss_kib=")][-1]
        # ptp's figure is its own; the host-local it execs is a separate process of similar size.
        result[kind] = int(line.split("=")[1])
        plugin.invoke("DEL", f"mem-{kind}", f"/run/netns/mem-{kind}", confs[kind])
        del_netns([f"mem-{kind}"])
    return result


def peak_memory_host_ports(entrants, peak_rss):
    """Peak RSS (KiB) of the exec that maps a pod's two hostPorts: podwire's ADD, and portmap's ADD
    in the reference's chain (ptp before it, not measured: see peak_memory for ptp)."""
    result = {}
    for kind, entrant in entrants.items():
        add_netns([f"mem-{kind}"])
        entrant.add(f"mem-{kind}", f"/run/netns/mem-{kind}", peak_rss=peak_rss)
        result[kind] = (entrant.portmap or entrant.plugin).peak_kib
        entrant.delete(f"mem-{kind}", f"/run/netns/mem-{kind}")
        del_netns([f"mem-{kind}"])
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--podwire-dir", required=True)
    parser.add_argument("--reference-dir", default="/usr/lib/cni")
    parser.add_argument("--veth-floor", required=True)
    parser.add_argument("--wire-floor", required=True)
    parser.add_argument("--nothing", required=True)
    parser.add_argument("--nothing-swift", required=True)
    parser.add_argument("--peak-rss", required=True)
    parser.add_argument("--timed-exec", required=True, help="the lean launcher (timed-exec.c) for the call-log rows")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--counts", default="0,250,1000")
    parser.add_argument("--parallel", default="20,100")
    parser.add_argument("--parallel-rounds", type=int, default=3)
    parser.add_argument("--masq", action="store_true", help="also measure ipMasq (needs podwire ipMasq support)")
    parser.add_argument("--dual-stack-iterations", type=int, default=0, help="also measure dual-stack pods (0: skip)")
    parser.add_argument("--hostport-pods", type=int, default=1000,
                        help="podwire's hostPort node is filled with this many pods, each holding two hostPorts, "
                             "for the last row of --counts (0: no hostPort rows)")
    parser.add_argument("--reference-hostport-pods", type=int, default=250,
                        help="the same for the reference (portmap's ADD grows with the node's iptables rules, "
                             "so 1000 takes minutes to set up)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    podwire_node = Node.current("node-podwire")
    podwire_node.add_uplink()
    reference_node = Node.create("node-reference")
    floor_node = Node.create("node-floor")
    plugins = {
        "podwire": Plugin("podwire", os.path.join(args.podwire_dir, "podwire"), args.podwire_dir + ":" + args.reference_dir,
                          podwire_node),
        "reference": Plugin("reference", os.path.join(args.reference_dir, "ptp"), args.reference_dir, reference_node),
    }
    floor = Floor(args.veth_floor, args.wire_floor, args.nothing, args.nothing_swift, floor_node)
    confs = {k: config(k) for k in plugins}
    # podwire once more on a node that stays empty, in the same rotation as the populated nodes:
    # "ADD with 1000 pods against ADD on an empty node" then compares runs taken side by side,
    # not minutes apart (the machine drifts by more than the difference being measured).
    with_empty = dict(plugins, **{"podwire-empty": Plugin("podwire-empty", plugins["podwire"].binary,
                                                          plugins["podwire"].cni_path, Node.create("node-podwire-empty"))})
    empty_conf = json.loads(confs["podwire"])
    empty_conf["name"] += "-empty"  # a store of its own, empty too
    confs_with_empty = dict(confs, **{"podwire-empty": json.dumps(empty_conf).encode()})
    results = {"iterations": args.iterations, "scenarios": {}, "date": time.strftime("%Y-%m-%d")}

    # hostPorts: podwire and the reference each on a node of their own, empty until the last row of
    # --counts fills them with pods that hold hostPorts. On podwire's, the same network (the same
    # config file, capability declared) also ADDs pods that ask for no hostPort, side by side.
    host_ports = args.hostport_pods > 0
    if host_ports:
        hp_podwire_node = Node.create("node-podwire-hp")
        hp_podwire_node.track_connections()
        hp_podwire = Plugin("podwire-hostports", plugins["podwire"].binary, plugins["podwire"].cni_path, hp_podwire_node)
        hp_reference_node = Node.create("node-reference-hp")
        hp_reference_node.track_connections()
        hp_reference = Plugin("reference-hostports", plugins["reference"].binary, args.reference_dir, hp_reference_node)
        portmap = Plugin("portmap", os.path.join(args.reference_dir, "portmap"), args.reference_dir, hp_reference_node)

    def host_port_entrants(dual_stack=False, ip_masq=False, reference_every=1):
        """reference_every > 1 keeps the reference + portmap to every so many iterations of a rotation
        where one of its steps takes a fifth of a second or more (ptp waiting for DAD, ptp's and
        portmap's iptables with ipMasq or hundreds of pods' rules), to keep the whole bench within
        minutes."""
        podwire_conf = config_dict("podwire", dual_stack=dual_stack, ip_masq=ip_masq, host_ports=True)
        reference_conf = config_dict("reference", dual_stack=dual_stack, ip_masq=ip_masq, host_ports=True)
        return {"podwire-hostports": HostPortEntrant(hp_podwire, podwire_conf),
                "podwire-no-hostports": Entrant(hp_podwire, json.dumps(podwire_conf).encode()),
                "reference-hostports": HostPortEntrant(hp_reference, reference_conf, portmap, every=reference_every)}

    def host_port_checks(dual_stack, present=(0, 0)):
        """The mappings the node holds right after one more pod's ADD: two per pod and family."""
        per_pod = 4 if dual_stack else 2
        return {"podwire-hostports": per_pod * (present[0] + 1), "reference-hostports": per_pod * (present[1] + 1)}

    if host_ports:
        # Each hostPort table podwire's rows use is made once, untimed, and left to age. A new
        # table's seen sets are young for the node's UDP conntrack timeout (30 s by default): every
        # ADD then forgets the flows to its UDP ports, one walk of the conntrack table, as on a node
        # in its first half-minute of hostPorts (the rows where a client sent to the port before
        # show what that costs).
        warm = [(hp_podwire, config_dict("podwire", ip_masq=True, host_ports=True)),
                (hp_podwire, config_dict("podwire", dual_stack=True, host_ports=True)),
                (hp_podwire, config_dict("podwire", host_ports=True))]
        empty_hp = config_dict("podwire", host_ports=True)
        empty_hp["name"] += "-empty"
        warm.append((with_empty["podwire-empty"], empty_hp))
        names = [f"warm-{i}" for i in range(len(warm))]
        add_netns(names)
        for name, (plugin, conf) in zip(names, warm):
            entrant = HostPortEntrant(plugin, conf)
            entrant.add(name, f"/run/netns/{name}")
            entrant.delete(name, f"/run/netns/{name}")
        del_netns(names)
        hp_podwire_node.enter()
        with open("/proc/sys/net/netfilter/nf_conntrack_udp_timeout") as timeout:
            youth = int(timeout.read().strip())
        print(f"hostPort tables made; letting their seen sets age {youth + 1} s", flush=True)
        time.sleep(youth + 1)

    print("floor in a tight loop (for comparison only)", flush=True)
    create, delete = veth_floor_tight_loop(args.veth_floor, args.iterations, floor_node)
    results["floor_tight_loop"] = {"veth_create": summary(create), "veth_delete": summary(delete)}
    print(f"  veth create {statistics.median(create):.2f} ms, delete {statistics.median(delete):.2f} ms", flush=True)

    def record(key, samples, floor_samples, parts, hostport_pods=None):
        entry = {k: {"add": summary(v["add"]), "del": summary(v["del"]), "add_samples": v["add"], "del_samples": v["del"]}
                 for k, v in samples.items()}
        for kind, split in parts.items():
            entry[kind]["parts"] = split
        if floor_samples:
            entry["floor"] = {k: summary(v) for k, v in floor_samples.items()}
            entry["floor_samples"] = floor_samples
        if hostport_pods:
            entry["hostport_pods"] = hostport_pods
        results["scenarios"][key] = entry

    # Without "mtu" podwire takes the default route link's MTU and the reference the kernel's default: a config many users write.
    no_mtu_confs = {k: config(k, mtu=False) for k in plugins}
    record("nomtu", *timed_pairs(plain_entrants(plugins, no_mtu_confs), args.iterations, "no mtu, empty node", "nomtu"))

    if args.masq:
        # On the empty node, like the first row, so the two rows differ only by ipMasq. ipMasq with
        # hostPorts is the node config podwire ships (conf/10-podwire.conflist).
        masq_confs = {k: config(k, ip_masq=True) for k in plugins}
        entrants = plain_entrants(plugins, masq_confs)
        checks = None
        if host_ports:
            entrants.update(host_port_entrants(ip_masq=True, reference_every=2))
            checks = host_port_checks(dual_stack=False)
        record("masq", *timed_pairs(entrants, args.iterations, "ipMasq, empty node", "masq", checks=checks))

    if args.dual_stack_iterations:
        # The reference waits for IPv6 DAD inside the pod (about 1-2 s per ADD), hence fewer runs.
        # With hostPorts on every address, a dual-stack pod is mapped in both families.
        dual_confs = {k: config(k, dual_stack=True) for k in plugins}
        entrants = plain_entrants(plugins, dual_confs)
        checks = None
        if host_ports:
            entrants.update(host_port_entrants(dual_stack=True, reference_every=2))
            checks = host_port_checks(dual_stack=True)
        record("dual", *timed_pairs(entrants, args.dual_stack_iterations, "dual-stack, empty node", "dual", checks=checks))
        # The dual-stack row runs few turns (the reference waits for DAD) and minutes apart from
        # the IPv4 one: podwire's two ADDs side by side in a rotation of their own, on its node.
        pair = {"podwire-dual": Entrant(plugins["podwire"], dual_confs["podwire"]),
                "podwire-v4": Entrant(plugins["podwire"], confs["podwire"])}
        record("dualpair", *timed_pairs(pair, args.iterations, "podwire dual-stack and IPv4, side by side", "dp"))

    counts = [int(c) for c in args.counts.split(",")]
    present = 0
    for count in counts:
        if count > present:
            print(f"populating to {count} pods per plugin", flush=True)
            populate(plain_entrants(plugins, confs), {k: (present, count) for k in plugins})
            present = count
        entrants = plain_entrants(with_empty, confs_with_empty)
        checks, hostport_pods, label = None, None, f"{count} pods"
        if host_ports and count == 0:
            # The hostPort nodes are still empty: the empty-node rows. Besides tcp + udp, two TCP
            # hostPorts: a UDP one makes ADD and DEL walk the kernel's conntrack table (the node
            # tracks connections, as every node in service does), a TCP one does not.
            entrants.update(host_port_entrants())
            entrants["podwire-hostports-tcp"] = HostPortEntrant(hp_podwire, config_dict("podwire", host_ports=True),
                                                                protocols=("tcp", "tcp"))
            entrants["podwire-hostports-seen"] = HostPortEntrant(hp_podwire, config_dict("podwire", host_ports=True), seen=True)
            checks = host_port_checks(dual_stack=False)
            checks["podwire-hostports-tcp"] = 2
            checks["podwire-hostports-seen"] = 2
        elif host_ports and count == counts[-1]:
            filled = {"podwire-hostports": args.hostport_pods, "reference-hostports": args.reference_hostport_pods}
            print(f"populating the hostPort nodes: {filled['podwire-hostports']} podwire pods, "
                  f"{filled['reference-hostports']} reference pods, two hostPorts each", flush=True)
            times, walls = populate(host_port_entrants(), {k: (0, n) for k, n in filled.items()}, prefix="hpop")
            results["hostport_setup"] = {k: {"pods": filled[k], "seconds": round(walls[k], 2), "add_ms": times[k]}
                                         for k in filled}
            print("  " + ", ".join(f"{k}: {walls[k]:.1f} s for {filled[k]} pods" for k in filled), flush=True)
            for kind, entrant in host_port_entrants().items():
                if kind in filled:
                    check_mappings(kind, entrant, 2 * filled[kind])
            entrants.update(host_port_entrants(reference_every=2))
            # And hostPorts on the node kept empty, so the growth with hostPort pods is side by side too.
            empty_hp = config_dict("podwire", host_ports=True)
            empty_hp["name"] += "-empty"  # a store and a table of its own, empty but for the test pod
            entrants["podwire-empty-hostports"] = HostPortEntrant(with_empty["podwire-empty"], empty_hp)
            entrants["podwire-hostports-tcp"] = HostPortEntrant(hp_podwire, config_dict("podwire", host_ports=True),
                                                                protocols=("tcp", "tcp"))
            entrants["podwire-hostports-seen"] = HostPortEntrant(hp_podwire, config_dict("podwire", host_ports=True), seen=True)
            checks = host_port_checks(False, (filled["podwire-hostports"], filled["reference-hostports"]))
            checks["podwire-empty-hostports"] = 2
            checks["podwire-hostports-tcp"] = 2 * filled["podwire-hostports"] + 2
            checks["podwire-hostports-seen"] = 2 * filled["podwire-hostports"] + 2
            hostport_pods = dict(filled, **{"podwire-no-hostports": filled["podwire-hostports"]})
            label += f", hostPort nodes at {filled['podwire-hostports']} (podwire) and {filled['reference-hostports']} (reference) pods"
        # The kernel's own requests of an ADD, next to the pods present as well as on the empty floor node.
        floor.populated = podwire_node if count else None
        record(str(count), *timed_pairs(entrants, args.iterations, label, f"t{count}", floor, checks=checks),
               hostport_pods=hostport_pods)

    if present:
        # Without mtu, ADD looks the default route up; a lookup that grew with the node's routes
        # (a /32 per pod) would show here, against a node kept empty in the same rotation.
        empty_no_mtu = json.loads(no_mtu_confs["podwire"])
        empty_no_mtu["name"] += "-empty"
        no_mtu_with_empty = dict(no_mtu_confs, **{"podwire-empty": json.dumps(empty_no_mtu).encode()})
        record(f"nomtu{present}", *timed_pairs(plain_entrants(with_empty, no_mtu_with_empty), args.iterations,
                                                f"no mtu, {present} pods", f"n{present}"))

    results["calllog"] = call_log_rows(plugins["podwire"], args.timed_exec, args.iterations)

    results["parallel"] = {}
    for count in [int(c) for c in args.parallel.split(",") if c]:
        walls = parallel_adds(plugins, confs, count, args.parallel_rounds)
        results["parallel"][str(count)] = {k: summary(v) for k, v in walls.items()}

    results["peak_memory_kib"] = peak_memory(plugins, confs, args.peak_rss)
    print(f"  peak RSS of one ADD: " + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in results["peak_memory_kib"].items()), flush=True)
    if host_ports:
        hp = host_port_entrants()
        del hp["podwire-no-hostports"]
        results["peak_memory_hostports_kib"] = peak_memory_host_ports(hp, args.peak_rss)
        print(f"  peak RSS of one ADD with 2 hostPorts: " + ", ".join(
            f"{k} {v / 1024:.1f} MiB" for k, v in results["peak_memory_hostports_kib"].items()), flush=True)

    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())
