#!/usr/bin/env python3
"""podwire vs the reference ptp + host-local, side by side, inside a private network namespace.

Run by Scripts/bench.sh inside `unshare -Urnm`. Each plugin wires pods into a node of its own (a
network namespace: podwire's is the one this process starts in, the reference's and the floor's
are made here), so "1000 pods present" means 1000 of that plugin's pods on its node, and neither
plugin's routes or nftables weigh on the other. This process enters a node's namespace before it
starts that node's plugin. Every timed step rotates podwire, the reference and the kernel's floor
so that drift of the machine hits all three alike.

Writes a JSON document with every sample to --out.
"""
import argparse
import ctypes
import json
import os
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

    def enter(self):
        if _libc.setns(self.fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into node {self.name}")

PODWIRE_SUBNET = "10.244.0.0/17"
REFERENCE_SUBNET = "10.244.128.0/17"
PODWIRE_SUBNET6 = "fd00:10:244::/64"
REFERENCE_SUBNET6 = "fd00:10:244:1::/64"


def config(kind, ip_masq=False, dual_stack=False, mtu=True, cni_version="1.0.0"):
    ranges = [[{"subnet": PODWIRE_SUBNET if kind == "podwire" else REFERENCE_SUBNET}]]
    routes = [{"dst": "0.0.0.0/0"}]
    if dual_stack:
        ranges.append([{"subnet": PODWIRE_SUBNET6 if kind == "podwire" else REFERENCE_SUBNET6}])
        routes.append({"dst": "::/0"})
    if kind == "podwire":
        plugin = {"type": "podwire", "ipam": {"type": "podwire-ipam", "dataDir": "/run/bench-ipam", "ranges": ranges, "routes": routes}}
    else:
        plugin = {"type": "ptp", "ipam": {"type": "host-local", "dataDir": "/run/bench-ipam", "ranges": ranges, "routes": routes}}
    name = f"bench-{kind}" + ("-masq" if ip_masq else "") + ("-dual" if dual_stack else "") + ("" if mtu else "-nomtu")
    plugin.update({"cniVersion": cni_version, "name": name})
    if mtu:
        plugin["mtu"] = 1500
    if ip_masq:
        plugin["ipMasq"] = True
    return json.dumps(plugin).encode()


class Plugin:
    def __init__(self, kind, binary, cni_path, node):
        self.kind = kind
        self.binary = binary
        self.cni_path = cni_path
        self.node = node

    def invoke(self, command, container, netns, conf, ifname="eth0"):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": container,
               "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_PATH": self.cni_path}
        self.node.enter()
        started = time.perf_counter_ns()
        process = subprocess.Popen([self.binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        out, _ = process.communicate(conf)
        elapsed = time.perf_counter_ns() - started
        if process.returncode != 0:
            raise RuntimeError(f"{self.kind} {command} {container}: {out.decode(errors='replace')}")
        return elapsed / 1e6, out


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
    do-nothing static binary (timed as the plugins are)."""

    KEYS = ("veth_create", "veth_delete", "exec_nothing", "exec_nothing_swift", "kernel_wiring")

    def __init__(self, veth_tool, wire_tool, nothing, nothing_swift, node):
        self.veth_tool = veth_tool
        self.wire_tool = wire_tool
        self.nothing = nothing
        self.nothing_swift = nothing_swift
        self.node = node

    def sample(self, netns):
        self.node.enter()
        output = subprocess.run([self.veth_tool, netns, "1", "up"], check=True, capture_output=True).stdout.decode()
        create, delete = (int(x) / 1e6 for x in output.split())
        # For information: every kernel request of a whole ADD (wire-floor.c), the pair deleted after.
        wiring = int(subprocess.run([self.wire_tool, netns, "1"], check=True, capture_output=True).stdout) / 1e6
        return create, delete, exec_nothing(self.nothing), exec_nothing(self.nothing_swift), wiring


def timed_pairs(plugins, confs, iterations, label, prefix, floor=None):
    """ADD then DEL of a fresh test pod by each plugin, and one floor sample, rotating the order each
    iteration."""
    entrants = list(plugins) + (["floor"] if floor else [])
    add_netns([f"{prefix}-{k}-{i}" for k in entrants for i in range(iterations)])
    samples = {k: {"add": [], "del": []} for k in plugins}
    floor_samples = {key: [] for key in Floor.KEYS}
    for i in range(iterations):
        shift = i % len(entrants)
        for kind in entrants[shift:] + entrants[:shift]:
            netns = f"/run/netns/{prefix}-{kind}-{i}"
            if kind == "floor":
                for key, value in zip(Floor.KEYS, floor.sample(netns)):
                    floor_samples[key].append(value)
                continue
            container = f"{prefix}-{kind}-{i}"
            add_ms, _ = plugins[kind].invoke("ADD", container, netns, confs[kind])
            del_ms, _ = plugins[kind].invoke("DEL", container, netns, confs[kind])
            samples[kind]["add"].append(add_ms)
            samples[kind]["del"].append(del_ms)
    del_netns([f"{prefix}-{k}-{i}" for k in entrants for i in range(iterations)])
    line = ", ".join(f"{k} ADD {statistics.median(v['add']):.2f} ms DEL {statistics.median(v['del']):.2f} ms"
                     for k, v in samples.items())
    if floor:
        line += (f", floor: veth create {statistics.median(floor_samples['veth_create']):.2f} ms"
                 f" delete {statistics.median(floor_samples['veth_delete']):.2f} ms"
                 f" exec {statistics.median(floor_samples['exec_nothing']):.2f} ms")
    print(f"  {label}: {line}", flush=True)
    return samples, (floor_samples if floor else None)


def populate(plugins, confs, start, end):
    """Bring each plugin's network to `end` pods (from `start`), alternating the plugins."""
    add_netns([f"pop-{k}-{i}" for k in plugins for i in range(start, end)])
    for i in range(start, end):
        for kind, plugin in plugins.items():
            plugin.invoke("ADD", f"pop-{kind}-{i}", f"/run/netns/pop-{kind}-{i}", confs[kind])


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--podwire-dir", required=True)
    parser.add_argument("--reference-dir", default="/usr/lib/cni")
    parser.add_argument("--veth-floor", required=True)
    parser.add_argument("--wire-floor", required=True)
    parser.add_argument("--nothing", required=True)
    parser.add_argument("--nothing-swift", required=True)
    parser.add_argument("--peak-rss", required=True)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--counts", default="0,250,1000")
    parser.add_argument("--parallel", default="20,100")
    parser.add_argument("--parallel-rounds", type=int, default=3)
    parser.add_argument("--masq", action="store_true", help="also measure ipMasq (needs podwire ipMasq support)")
    parser.add_argument("--dual-stack-iterations", type=int, default=0, help="also measure dual-stack pods (0: skip)")
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

    print("floor in a tight loop (for comparison only)", flush=True)
    create, delete = veth_floor_tight_loop(args.veth_floor, args.iterations, floor_node)
    results["floor_tight_loop"] = {"veth_create": summary(create), "veth_delete": summary(delete)}
    print(f"  veth create {statistics.median(create):.2f} ms, delete {statistics.median(delete):.2f} ms", flush=True)

    def record(key, samples, floor_samples):
        entry = {k: {"add": summary(v["add"]), "del": summary(v["del"]), "add_samples": v["add"], "del_samples": v["del"]}
                 for k, v in samples.items()}
        if floor_samples:
            entry["floor"] = {k: summary(v) for k, v in floor_samples.items()}
            entry["floor_samples"] = floor_samples
        results["scenarios"][key] = entry

    # Without "mtu" podwire takes the default route link's MTU and the reference the kernel's default: a config many users write.
    no_mtu_confs = {k: config(k, mtu=False) for k in plugins}
    record("nomtu", *timed_pairs(plugins, no_mtu_confs, args.iterations, "no mtu, empty node", "nomtu"))

    if args.masq:
        # On the empty node, like the first row, so the two rows differ only by ipMasq.
        masq_confs = {k: config(k, ip_masq=True) for k in plugins}
        record("masq", *timed_pairs(plugins, masq_confs, args.iterations, "ipMasq, empty node", "masq"))

    if args.dual_stack_iterations:
        # The reference waits for IPv6 DAD inside the pod (about 1-2 s per ADD), hence fewer runs.
        dual_confs = {k: config(k, dual_stack=True) for k in plugins}
        record("dual", *timed_pairs(plugins, dual_confs, args.dual_stack_iterations, "dual-stack, empty node", "dual"))

    present = 0
    for count in [int(c) for c in args.counts.split(",")]:
        if count > present:
            print(f"populating to {count} pods per plugin", flush=True)
            populate(plugins, confs, present, count)
            present = count
        record(str(count), *timed_pairs(with_empty, confs_with_empty, args.iterations, f"{count} pods", f"t{count}", floor))

    if present:
        # Without mtu, ADD looks the default route up; a lookup that grew with the node's routes
        # (a /32 per pod) would show here, against a node kept empty in the same rotation.
        empty_no_mtu = json.loads(no_mtu_confs["podwire"])
        empty_no_mtu["name"] += "-empty"
        no_mtu_with_empty = dict(no_mtu_confs, **{"podwire-empty": json.dumps(empty_no_mtu).encode()})
        record(f"nomtu{present}", *timed_pairs(with_empty, no_mtu_with_empty, args.iterations, f"no mtu, {present} pods",
                                                f"n{present}"))

    results["parallel"] = {}
    for count in [int(c) for c in args.parallel.split(",") if c]:
        walls = parallel_adds(plugins, confs, count, args.parallel_rounds)
        results["parallel"][str(count)] = {k: summary(v) for k, v in walls.items()}

    results["peak_memory_kib"] = peak_memory(plugins, confs, args.peak_rss)
    print(f"  peak RSS of one ADD: " + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in results["peak_memory_kib"].items()), flush=True)

    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())
