#!/usr/bin/env python3
"""Two podwire builds side by side in one rotation: the same configurations as bench.sh's rows,
each ADD and DEL timed as a runtime makes it, the two builds taking turns on nodes of their own
(private network namespaces made by the caller, Scripts/bench-ab.sh). What a redesign must show
is that it did not slow a pod down; the machine drifts between runs by more than that, so only
a comparison inside one run says it."""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
from driver import Node, Plugin, add_netns, config, del_netns, plain_entrants, populate  # noqa: E402


def conf_for(build, **options):
    """podwire's bench config, on a subnet and in a store of the build's own."""
    conf = json.loads(config("podwire", **options))
    conf["name"] += f"-{build}"
    ranges = conf["ipam"]["ranges"]
    ranges[0][0]["subnet"] = "10.244.0.0/17" if build == "before" else "10.244.128.0/17"
    if len(ranges) > 1:
        ranges[1][0]["subnet"] = "fd00:10:244::/64" if build == "before" else "fd00:10:244:1::/64"
    return json.dumps(conf).encode()


def rotate(plugins, confs, iterations, prefix):
    builds = list(plugins)
    names = [f"{prefix}-{b}-{i}" for b in builds for i in range(iterations)]
    add_netns(names)
    samples = {b: {"add": [], "del": []} for b in builds}
    for i in range(iterations):
        order = builds if i % 2 == 0 else list(reversed(builds))
        for build in order:
            container = f"{prefix}-{build}-{i}"
            add_ms, _ = plugins[build].invoke("ADD", container, f"/run/netns/{container}", confs[build])
            del_ms, _ = plugins[build].invoke("DEL", container, f"/run/netns/{container}", confs[build])
            samples[build]["add"].append(add_ms)
            samples[build]["del"].append(del_ms)
    del_netns(names)
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="directory holding the first build's podwire and podwire-ipam")
    parser.add_argument("--after", required=True)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--pods", type=int, default=1000, help="pods on each build's node for the last rows")
    args = parser.parse_args()

    os.system("ip link set lo up")
    nodes = {"before": Node.create("node-before"), "after": Node.create("node-after")}
    plugins = {b: Plugin(b, os.path.join(d, "podwire"), d, nodes[b]) for b, d in (("before", args.before), ("after", args.after))}
    rows = [
        ("ADD, DEL, empty node", {}, args.iterations),
        ("without mtu, empty node", {"mtu": False}, args.iterations),
        ("ipMasq, empty node", {"ip_masq": True}, args.iterations),
        ("dual-stack, empty node", {"dual_stack": True}, max(10, args.iterations // 10)),
    ]
    results = []

    def measure(label, options, iterations, prefix):
        confs = {b: conf_for(b, **options) for b in plugins}
        samples = rotate(plugins, confs, iterations, prefix)
        line = {"row": label}
        for verb in ("add", "del"):
            before = statistics.median(samples["before"][verb])
            after = statistics.median(samples["after"][verb])
            line[verb] = (before, after, after / before)
        results.append(line)
        print(f"  {label}: ADD {line['add'][0]:.2f} -> {line['add'][1]:.2f} ms ({line['add'][2]:.3f}), "
              f"DEL {line['del'][0]:.2f} -> {line['del'][1]:.2f} ms ({line['del'][2]:.3f})", flush=True)

    for index, (label, options, iterations) in enumerate(rows):
        measure(label, options, iterations, f"ab{index}")
    confs = {b: conf_for(b) for b in plugins}
    populate(plain_entrants(plugins, confs), {b: (0, args.pods) for b in plugins})
    measure(f"{args.pods} pods present", {}, args.iterations, "abpods")

    print()
    print("| configuration | ADD before | ADD after | after / before | DEL before | DEL after | after / before |")
    print("|---|---|---|---|---|---|---|")
    for line in results:
        a, d = line["add"], line["del"]
        print(f"| {line['row']} | {a[0]:.2f} | {a[1]:.2f} | {a[2]:.3f} | {d[0]:.2f} | {d[1]:.2f} | {d[2]:.3f} |")


if __name__ == "__main__":
    main()
