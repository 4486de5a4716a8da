#!/usr/bin/env python3
"""Turns the driver's JSON into the Markdown table and the gnuplot chart the README shows."""
import json
import os
import statistics
import subprocess
import sys

from readme_table import replace_between_markers


def ms(summary):
    return f"{summary['median']:.2f} ({summary['p99']:.2f})"


def ratio(a, b):
    return a["median"] / b["median"]


def verdict(value, target, at_most):
    holds = value <= target if at_most else value >= target
    # Three decimals: 1.204 must not print as a 1.20 that "misses" 1.2.
    return f"{value:.3f}× ({'≤' if at_most else '≥'} {target:g}×: {'holds' if holds else 'misses'})"


def ends(add_ms, share=0.1):
    """The median ADD of the first and of the last tenth of the pods set up, as text."""
    n = max(1, int(len(add_ms) * share))
    return (f"{statistics.median(add_ms[:n]):.1f} ms over the first {n} pods, "
            f"{statistics.median(add_ms[-n:]):.1f} ms over the last {n}")


HOST_PORT_SCENARIOS = [
    # (scenario, row label; the populated row's label is filled in with its pod counts)
    ("0", "{verb} with 2 hostPorts (tcp + udp), empty node"),
    ("masq", "{verb} with ipMasq and 2 hostPorts, empty node (the node config podwire ships)"),
    ("dual", "{verb}, dual-stack pod with 2 hostPorts (mapped in IPv4 and IPv6), empty node"),
    ("populated", "{verb} with 2 hostPorts, {podwire_pods} hostPort pods present"),
]


def populated_host_port_scenario(scenarios):
    """The scenario whose rotation had the hostPort nodes filled (the last row of --counts)."""
    for key, entry in scenarios.items():
        if "hostport_pods" in entry:
            return key, entry
    return None, None


def host_port_labels(scenarios, reference_note=False):
    """(scenario key, label template) for the hostPort rows present, with the populated row's counts
    (and with reference_note, the reference's own count where it differs)."""
    rows = []
    for key, label in HOST_PORT_SCENARIOS:
        if key == "populated":
            key, entry = populated_host_port_scenario(scenarios)
            if key is None:
                continue
            counts = entry["hostport_pods"]
            podwire_pods, reference_pods = counts["podwire-hostports"], counts["reference-hostports"]
            label = label.replace("{podwire_pods}", str(podwire_pods))
            if reference_note and reference_pods != podwire_pods:
                label += f" (the reference at {reference_pods} hostPort pods: {podwire_pods} take minutes to set up, below)"
        if key in scenarios and "podwire-hostports" in scenarios[key]:
            rows.append((key, label))
    return rows


def host_port_table_rows(scenarios):
    """The hostPort rows of the main table: podwire alone against ptp + host-local + portmap."""
    rows = []
    for verb in ("add", "del"):
        for key, label in host_port_labels(scenarios, reference_note=True):
            p, r = scenarios[key]["podwire-hostports"][verb], scenarios[key]["reference-hostports"][verb]
            target = "≥ 5×" if key == "0" else ""
            rows.append((verb, f"| {label.format(verb=verb.upper())} | {ms(p)} | {ms(r)} | {ratio(r, p):.1f}× | {target} |"))
    return rows


def host_port_side_by_side(results):
    """podwire with hostPorts against podwire without, sampled in the same rotation; the reference's
    split between ptp and portmap; the targets."""
    scenarios = results["scenarios"]
    labels = host_port_labels(scenarios)
    if not labels:
        return []
    lines = ["", "hostPorts: podwire with 2 hostPorts per pod against podwire without, sampled in the same rotation "
                 "(on podwire's hostPort node the same network, one config file with the `portMappings` capability, "
                 "also ADDs pods that ask for no hostPort):", "",
             "| podwire, side by side | with | without | with / without | target |", "|---|---|---|---|---|"]
    targets_held = []
    for key, label in labels:
        entry = scenarios[key]
        for verb in ("add", "del"):
            with_hp = entry["podwire-hostports"][verb]
            name = verb.upper()
            if key == "0":
                without = entry["podwire-no-hostports"][verb]
                row = (f"{name}, empty node: 2 hostPorts (tcp + udp) / no hostPort asked, same network and node "
                       f"(ADD: no flow reached the UDP port before, no conntrack walk; DEL: the kernel walks its "
                       f"conntrack table once)")
            elif key == "dual":
                without = entry["podwire-no-hostports"][verb]
                row = f"{name}, dual-stack pod, empty node: 2 hostPorts (mapped in both families) / no hostPort asked"
            elif key == "masq":
                without = entry["podwire-no-hostports"][verb]
                row = f"{name} with ipMasq, empty node: 2 hostPorts / no hostPort asked"
            else:
                without = entry["podwire-no-hostports"][verb]
                pods = entry["hostport_pods"]["podwire-hostports"]
                row = (f"{name} with 2 hostPorts (tcp + udp), {pods} hostPort pods present / no hostPort asked, same network "
                       f"and node (ADD: a UDP port no flow reached before; DEL: one conntrack walk)")
            value = ratio(with_hp, without)
            populated = key not in ("0", "masq", "dual")
            target = key == "0" or (populated and verb == "add")
            lines.append(f"| {row} | {ms(with_hp)} | {ms(without)} | {value:.2f}× | {'≤ 1.2×' if target else ''} |")
            if target and key == "0":
                targets_held.append(f"podwire {name} with / without hostPorts {verdict(value, 1.2, True)}")
            elif target:
                targets_held.append(f"podwire {name} with 2 hostPorts / without, at {pods} hostPort pods "
                                    f"{verdict(value, 1.2, True)}")
        if key == "0" and "podwire-hostports-tcp" in entry:
            for verb in ("add", "del"):
                tcp, without = entry["podwire-hostports-tcp"][verb], entry["podwire-no-hostports"][verb]
                value = ratio(tcp, without)
                lines.append(f"| {verb.upper()}, empty node: 2 TCP hostPorts / no hostPort asked, same network and node "
                             f"| {ms(tcp)} | {ms(without)} | {value:.2f}× | ≤ 1.2× |")
                targets_held.append(f"podwire {verb.upper()} with 2 TCP hostPorts / without {verdict(value, 1.2, True)}")
        if "podwire-hostports-seen" in entry:
            seen, without = entry["podwire-hostports-seen"]["add"], entry["podwire-no-hostports"]["add"]
            where = "empty node" if key == "0" else f"{entry['hostport_pods']['podwire-hostports']} hostPort pods present"
            lines.append(f"| for information: ADD, {where}: 2 hostPorts (tcp + udp), a client sent to the UDP port "
                         f"before (the kernel walks its conntrack table once to forget the flow) / no hostPort asked "
                         f"| {ms(seen)} | {ms(without)} | {ratio(seen, without):.2f}× | |")
        if key == "0":
            for verb in ("add", "del"):
                capable, plain = entry["podwire-no-hostports"][verb], entry["podwire"][verb]
                lines.append(f"| for information: {verb.upper()}, empty node: no hostPort asked with the capability declared / "
                             f"the config without it (the \"{verb.upper()}, empty node\" row, on a node of its own) "
                             f"| {ms(capable)} | {ms(plain)} | {ratio(capable, plain):.2f}× | |")
        if key not in ("0", "masq", "dual") and "podwire-hostports-tcp" in entry:
            pods = entry["hostport_pods"]["podwire-hostports"]
            for verb in ("add", "del"):
                tcp, without = entry["podwire-hostports-tcp"][verb], entry["podwire-no-hostports"][verb]
                value = ratio(tcp, without)
                lines.append(f"| {verb.upper()} with 2 TCP hostPorts, {pods} hostPort pods present / no hostPort asked, same network "
                             f"and node | {ms(tcp)} | {ms(without)} | {value:.2f}× | {'≤ 1.2×' if verb == 'add' else ''} |")
                if verb == "add":
                    targets_held.append(f"podwire ADD with 2 TCP hostPorts / without, at {pods} hostPort pods "
                                        f"{verdict(value, 1.2, True)}")
            # Both growths at once: the pods present (the kernel's, see the floor) and the hostPorts.
            tcp, plain = entry["podwire-hostports-tcp"]["add"], entry["podwire-empty"]["add"]
            lines.append(f"| for information: ADD with 2 TCP hostPorts, {pods} hostPort pods present / a plain ADD on an "
                         f"empty node | {ms(tcp)} | {ms(plain)} | {ratio(tcp, plain):.2f}× | |")
        if key not in ("0", "masq", "dual"):
            pods = entry["hostport_pods"]["podwire-hostports"]
            plain, empty = entry["podwire-no-hostports"]["add"], entry["podwire-empty"]["add"]
            lines.append(f"| for information: ADD with no hostPort asked, {pods} hostPort pods present / a plain ADD on an "
                         f"empty node | {ms(plain)} | {ms(empty)} | {ratio(plain, empty):.2f}× | |")
            if "podwire-empty-hostports" in entry:
                first = entry["podwire-empty-hostports"]["add"]
                lines.append(f"| for information: ADD with 2 hostPorts, {pods} hostPort pods present / the same on an "
                             f"empty node that tracks no connection (no conntrack walk), side by side | {ms(entry['podwire-hostports']['add'])} | {ms(first)} "
                             f"| {ratio(entry['podwire-hostports']['add'], first):.2f}× | |")
            elif "0" in scenarios and "podwire-hostports" in scenarios["0"]:
                first = scenarios["0"]["podwire-hostports"]["add"]
                lines.append(f"| for information: ADD with 2 hostPorts, {pods} hostPort pods present / the same on an "
                             f"empty node (measured minutes earlier) | {ms(entry['podwire-hostports']['add'])} | {ms(first)} "
                             f"| {ratio(entry['podwire-hostports']['add'], first):.2f}× | |")

    splits = []
    for key, label in labels:
        parts = scenarios[key]["reference-hostports"].get("parts")
        if parts:
            splits.append(f"{label.format(verb='').strip(' ,')}: ADD ptp {parts['add']['plugin']['median']:.1f} + portmap "
                          f"{parts['add']['portmap']['median']:.1f} ms, DEL portmap {parts['del']['portmap']['median']:.1f} + "
                          f"ptp {parts['del']['plugin']['median']:.1f} ms")
    if splits:
        lines += ["", "The reference's hostPort steps, its two execs apart (medians): " + "; ".join(splits) + "."]
    setup = results.get("hostport_setup")
    if setup:
        text = "Filling the hostPort nodes (the pods' ADDs one after another, taking turns; netns made beforehand): " + ", ".join(
            f"{'podwire' if kind.startswith('podwire') else 'the reference (ptp + portmap)'} {entry['pods']} pods in "
            f"{entry['seconds']:.1f} s, its ADD {ends(entry['add_ms'])}" for kind, entry in setup.items())
        podwire_pods, reference_pods = (setup[k]["pods"] for k in ("podwire-hostports", "reference-hostports"))
        if reference_pods < podwire_pods:
            text += (f". portmap's ADD grows with the iptables rules of the hostPort pods present, so the reference's node "
                     f"holds {reference_pods} of them, not {podwire_pods} (see Scripts/bench.sh)")
        lines += ["", text + "."]

    held = []
    if "0" in scenarios and "reference-hostports" in scenarios["0"]:
        zero = scenarios["0"]
        for verb in ("add", "del"):
            held.append(f"{verb.upper()} with 2 hostPorts, reference / podwire "
                        f"{verdict(ratio(zero['reference-hostports'][verb], zero['podwire-hostports'][verb]), 5, False)}")
    held += targets_held
    lines += ["", "hostPort targets: " + "; ".join(held) + ". RunPodSandbox and Stop + Remove with a hostPort against "
              "without one (≤ 1.1×): in the CRI part."]
    return lines


def call_log_rows(results):
    """The call log on against off (ADD ≤ 1.05×), and `podwirectl stats` on that log against the
    bench's own percentiles of the same calls (within 10%)."""
    log = results.get("calllog")
    if not log:
        return []
    bench, stats = log["bench"], log["stats"]["commands"]
    on, off = bench["podwire-calllog"], bench["podwire-no-calllog"]
    lines = ["", "The call log (`\"callLog\"` in the config): podwire with it on and off, side by side on an empty node of "
                 "their own, each exec timed by a lean C launcher (Scripts/bench/timed-exec.c: spawn to reaped exit, "
                 "without the 0.1-0.2 ms of Python's own spawning and waiting that the rows above include); then "
                 f"`podwirectl stats` on the {log['lines']} lines it wrote:", "",
             "| call | log on | log off | on / off | target |", "|---|---|---|---|---|"]
    held = []
    for verb in ("add", "del"):
        ratio_value = on[verb]["p50"] / off[verb]["p50"]
        target = "≤ 1.05×" if verb == "add" else ""
        lines.append(f"| {verb.upper()}, median ms | {on[verb]['p50']:.2f} | {off[verb]['p50']:.2f} | {ratio_value:.3f}× | {target} |")
        if verb == "add":
            held.append(f"ADD with the call log / without {verdict(ratio_value, 1.05, True)}")
    lines += ["", "| call | percentile | podwirectl stats (the log) | the bench (the same calls) | stats / bench | target |",
              "|---|---|---|---|---|---|"]
    for verb in ("add", "del"):
        logged = stats.get(verb.upper(), {}).get("ms") or {}
        slowest = stats.get(verb.upper(), {}).get("slowestPhase") or {}
        for key in ("p50", "p90", "p99", "max"):
            if key not in logged:
                continue
            value = logged[key] / on[verb][key]
            target = "within 10%" if key != "max" else ""
            lines.append(f"| {verb.upper()} | {key} | {logged[key]:.2f} | {on[verb][key]:.2f} | {value:.3f} | {target} |")
            if key != "max":
                held.append(f"stats {verb.upper()} {key} / bench {value:.3f} ({'holds' if abs(value - 1) <= 0.10 else 'misses'})")
        if slowest:
            lines.append(f"| {verb.upper()} | slowest phase (p50) | {slowest.get('name')} {slowest.get('p50', 0):.2f} | | | |")
    lines += ["", "Call log targets: " + "; ".join(held) + "."]
    return lines


def main():
    results_path, out_dir, machine = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(results_path) as handle:
        results = json.load(handle)
    scenarios = results["scenarios"]
    dual_runs = f" ({scenarios['dual']['podwire']['add']['n']} for dual-stack, where the reference waits for IPv6 DAD)" if "dual" in scenarios else ""
    row_names = {"masq": "ipMasq", "dual": "dual-stack"}
    sparse = [f"{entry['reference-hostports']['add']['n']} in the {row_names.get(key, 'populated')} row"
              for key, entry in scenarios.items()
              if "reference-hostports" in entry and entry["reference-hostports"]["add"]["n"] < entry["podwire-hostports"]["add"]["n"]]
    if sparse:
        sparse_runs = (" The reference + portmap takes every other turn in the hostPort rows where its steps are slowest ("
                       + ", ".join(sparse) + ").")
    else:
        sparse_runs = ""
    lines = [f"Measured {results['date']} on {machine}; {results['iterations']} runs per row{dual_runs}, podwire, the reference "
             f"and the floor taking turns.{sparse_runs}",
             "Times in ms, median (p99), each plugin exec'd as a runtime does (fork/exec, env, stdin) "
             "on a node of its own (a private network namespace). Lower is better.", "",
             "| scenario | podwire | reference ptp + host-local (+ portmap for hostPorts) | reference / podwire | target |",
             "|---|---|---|---|---|"]
    targets = {"0": "≥ 2×", "250": "≥ 3×", "1000": "≥ 5×", "masq": "≥ 4×", "dual": "", "nomtu": "", "nomtu1000": ""}
    for key, label in [("0", "ADD, empty node"), ("nomtu", "ADD without mtu, empty node"), ("250", "ADD, 250 pods present"), ("1000", "ADD, 1000 pods present"),
                       ("nomtu1000", "ADD without mtu, 1000 pods present"),
                       ("masq", "ADD with ipMasq, empty node"), ("dual", "ADD, dual-stack pod, empty node")]:
        if key in scenarios:
            p, r = scenarios[key]["podwire"]["add"], scenarios[key]["reference"]["add"]
            lines.append(f"| {label} | {ms(p)} | {ms(r)} | {r['median'] / p['median']:.1f}× | {targets[key]} |")
    host_port_rows = host_port_table_rows(scenarios)
    lines += [row for verb, row in host_port_rows if verb == "add"]
    for key, label in [("0", "DEL, empty node"), ("nomtu", "DEL without mtu, empty node"), ("250", "DEL, 250 pods present"), ("1000", "DEL, 1000 pods present"),
                       ("nomtu1000", "DEL without mtu, 1000 pods present"),
                       ("masq", "DEL with ipMasq, empty node"), ("dual", "DEL, dual-stack pod, empty node")]:
        if key in scenarios:
            p, r = scenarios[key]["podwire"]["del"], scenarios[key]["reference"]["del"]
            lines.append(f"| {label} | {ms(p)} | {ms(r)} | {r['median'] / p['median']:.1f}× | |")
    lines += [row for verb, row in host_port_rows if verb == "del"]
    for count, walls in results.get("parallel", {}).items():
        p, r = walls["podwire"], walls["reference"]
        target = "≥ 2×" if count == "20" else ""
        lines.append(f"| {count} ADDs at once, wall time | {ms(p)} | {ms(r)} | {r['median'] / p['median']:.1f}× | {target} |")
    memory = results["peak_memory_kib"]
    lines.append(f"| peak RSS of one ADD | {memory['podwire'] / 1024:.1f} MiB | {memory['reference'] / 1024:.1f} MiB (ptp alone) | | podwire < 12 MB |")
    memory = results.get("peak_memory_hostports_kib")
    if memory:
        lines.append(f"| peak RSS of one ADD with 2 hostPorts, hostPort nodes filled | {memory['podwire-hostports'] / 1024:.1f} MiB "
                     f"| {memory['reference-hostports'] / 1024:.1f} MiB (portmap alone) | | podwire < 12 MB |")

    empty = scenarios["0"]
    floor = {k: v["median"] for k, v in empty["floor"].items()}
    add_floor = floor["exec_nothing"] + floor["veth_create"]
    del_floor = floor["veth_delete"]
    lines += ["", "The floor, sampled in the same rotation on an empty node of its own:", "",
              "| floor | ms (median) | podwire / floor | target |", "|---|---|---|---|",
              f"| exec of a do-nothing static C binary | {floor['exec_nothing']:.2f} | | |",
              f"| kernel: create a veth pair with the peer born in another netns, and bring the peer up (two RTM_NEWLINK) | {floor['veth_create']:.2f} | | |",
              f"| ADD floor = the two above | {add_floor:.2f} | {empty['podwire']['add']['median'] / add_floor:.2f}× | ≤ 1.5× |",
              f"| DEL floor = kernel: delete that bare veth pair (one RTM_DELLINK) | {del_floor:.2f} | {empty['podwire']['del']['median'] / del_floor:.2f}× | ≤ 1.15× |"]
    if "kernel_wiring" in floor:
        wired = floor["exec_nothing"] + floor["kernel_wiring"]
        lines += [f"| for information: kernel: every request of a whole ADD, pod side and node side, from C (wire-floor.c) | {floor['kernel_wiring']:.2f} | | |",
                  f"| for information: a do-nothing C exec plus that | {wired:.2f} | {empty['podwire']['add']['median'] / wired:.2f}× | |"]
    if "exec_nothing_swift" in floor:
        swift_floor = floor["exec_nothing_swift"] + floor["veth_create"]
        lines += [f"| for information: exec of the same do-nothing binary in static Swift, built like podwire | {floor['exec_nothing_swift']:.2f} | | |",
                  f"| for information: ADD floor with the Swift binary | {swift_floor:.2f} | {empty['podwire']['add']['median'] / swift_floor:.2f}× | |"]
    if "1000" in scenarios:
        populated = scenarios["1000"]
        if "podwire-empty" in populated:
            # Both sampled in the same rotation: podwire's node with 1000 pods, and a node kept empty.
            growth = populated["podwire"]["add"]["median"] / populated["podwire-empty"]["add"]["median"]
            lines.append(f"| podwire ADD with 1000 pods / ADD on an empty node, side by side "
                         f"({populated['podwire']['add']['median']:.2f} / {populated['podwire-empty']['add']['median']:.2f} ms) "
                         f"| | {growth:.2f}× | ≤ 1.2× |")
        growth = populated["podwire"]["add"]["median"] / empty["podwire"]["add"]["median"]
        lines.append(f"| the same, against the empty-node row above (measured minutes earlier) | | {growth:.2f}× | |")
        kernel = populated.get("floor", {})
        if "kernel_wiring_populated" in kernel:
            # What the kernel alone adds next to 1000 pods, sent from C: the part of podwire's growth
            # no plugin of this layout can avoid.
            full, bare = kernel["kernel_wiring_populated"]["median"], kernel["kernel_wiring"]["median"]
            lines.append(f"| for information: kernel: every request of a whole ADD from C (wire-floor.c), next to podwire's "
                         f"1000 pods / on an empty node, side by side ({full:.2f} / {bare:.2f} ms, {full - bare:+.2f} ms) "
                         f"| | {full / bare:.2f}× | |")
            if "podwire-empty" in populated:
                grown = populated["podwire"]["add"]["median"] - populated["podwire-empty"]["add"]["median"]
                lines.append(f"| for information: podwire's ADD next to 1000 pods less on an empty node, against the same "
                             f"for the kernel's requests alone | | {grown:+.2f} / {full - bare:+.2f} ms | |")
    if "nomtu1000" in scenarios and "podwire-empty" in scenarios["nomtu1000"]:
        populated = scenarios["nomtu1000"]
        growth = populated["podwire"]["add"]["median"] / populated["podwire-empty"]["add"]["median"]
        lines.append(f"| the same without mtu (the default route looked up), side by side "
                     f"({populated['podwire']['add']['median']:.2f} / {populated['podwire-empty']['add']['median']:.2f} ms) "
                     f"| | {growth:.2f}× | ≤ 1.2× |")
    if "dualpair" in scenarios:
        pair = scenarios["dualpair"]
        dual, v4 = pair["podwire-dual"]["add"]["median"], pair["podwire-v4"]["add"]["median"]
        lines.append(f"| podwire dual-stack ADD / IPv4 ADD, side by side ({dual:.2f} / {v4:.2f} ms) | | {dual / v4:.2f}× | ≤ 1.2× |")
    lines += host_port_side_by_side(results)
    lines += call_log_rows(results)
    tight = results.get("floor_tight_loop")
    if tight:
        lines += ["", f"For comparison, the same bare pair created and deleted back to back in one process: create "
                      f"{tight['veth_create']['median']:.2f} ms, delete {tight['veth_delete']['median']:.2f} ms. The kernel's delete "
                      "waits for RCU grace periods, so its time depends on what the machine did just before; "
                      "the targets use the floor sampled between the plugins' runs."]
    markdown = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "latest.md"), "w") as handle:
        handle.write(markdown)

    counts = [c for c in ("0", "250", "1000") if c in scenarios]
    data_path = os.path.join(out_dir, "add-latency.dat")
    with open(data_path, "w") as handle:
        handle.write("# pods podwire_median podwire_p99 reference_median reference_p99\n")
        for c in counts:
            p, r = scenarios[c]["podwire"]["add"], scenarios[c]["reference"]["add"]
            handle.write(f"{c} {p['median']:.3f} {p['p99']:.3f} {r['median']:.3f} {r['p99']:.3f}\n")
    script = f"""
set terminal pngcairo size 800,480 font ",11"
set output "{os.path.join(out_dir, 'add-latency.png')}"
set title "CNI ADD latency against pods already on the node ({results['date']})"
set xlabel "pods already on the node"
set ylabel "ADD latency, ms (median; bars to p99)"
set key top left
set grid ytics
set yrange [0:*]
set xrange [-50:1050]
plot "{data_path}" using 1:4:4:5 with yerrorlines lw 2 title "reference ptp + host-local", \\
     "{data_path}" using 1:2:2:3 with yerrorlines lw 2 title "podwire"
"""
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    os.remove(data_path)
    # The README shows the latest table between its markers.
    replace_between_markers("bench", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
