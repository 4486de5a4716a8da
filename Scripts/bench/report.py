#!/usr/bin/env python3
"""Turns the driver's JSON into the Markdown table and the gnuplot chart the README shows."""
import json
import os
import subprocess
import sys

from readme_table import replace_between_markers


def ms(summary):
    return f"{summary['median']:.2f} ({summary['p99']:.2f})"


def main():
    results_path, out_dir, machine = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(results_path) as handle:
        results = json.load(handle)
    scenarios = results["scenarios"]
    dual_runs = f" ({scenarios['dual']['podwire']['add']['n']} for dual-stack, where the reference waits for IPv6 DAD)" if "dual" in scenarios else ""
    lines = [f"Measured {results['date']} on {machine}; {results['iterations']} runs per row{dual_runs}, podwire, the reference "
             "and the floor taking turns.",
             "Times in ms, median (p99), each plugin exec'd as a runtime does (fork/exec, env, stdin) "
             "on a node of its own (a private network namespace). Lower is better.", "",
             "| scenario | podwire | reference ptp + host-local | reference / podwire | target |",
             "|---|---|---|---|---|"]
    targets = {"0": "≥ 2×", "250": "≥ 3×", "1000": "≥ 5×", "masq": "≥ 4×", "dual": "", "nomtu": "", "nomtu1000": ""}
    for key, label in [("0", "ADD, empty node"), ("nomtu", "ADD without mtu, empty node"), ("250", "ADD, 250 pods present"), ("1000", "ADD, 1000 pods present"),
                       ("nomtu1000", "ADD without mtu, 1000 pods present"),
                       ("masq", "ADD with ipMasq, empty node"), ("dual", "ADD, dual-stack pod, empty node")]:
        if key in scenarios:
            p, r = scenarios[key]["podwire"]["add"], scenarios[key]["reference"]["add"]
            lines.append(f"| {label} | {ms(p)} | {ms(r)} | {r['median'] / p['median']:.1f}× | {targets[key]} |")
    for key, label in [("0", "DEL, empty node"), ("nomtu", "DEL without mtu, empty node"), ("250", "DEL, 250 pods present"), ("1000", "DEL, 1000 pods present"),
                       ("nomtu1000", "DEL without mtu, 1000 pods present"),
                       ("masq", "DEL with ipMasq, empty node"), ("dual", "DEL, dual-stack pod, empty node")]:
        if key in scenarios:
            p, r = scenarios[key]["podwire"]["del"], scenarios[key]["reference"]["del"]
            lines.append(f"| {label} | {ms(p)} | {ms(r)} | {r['median'] / p['median']:.1f}× | |")
    for count, walls in results.get("parallel", {}).items():
        p, r = walls["podwire"], walls["reference"]
        target = "≥ 2×" if count == "20" else ""
        lines.append(f"| {count} ADDs at once, wall time | {ms(p)} | {ms(r)} | {r['median'] / p['median']:.1f}× | {target} |")
    memory = results["peak_memory_kib"]
    lines.append(f"| peak RSS of one ADD | {memory['podwire'] / 1024:.1f} MiB | {memory['reference'] / 1024:.1f} MiB (ptp alone) | | podwire < 12 MB |")

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
    if "nomtu1000" in scenarios and "podwire-empty" in scenarios["nomtu1000"]:
        populated = scenarios["nomtu1000"]
        growth = populated["podwire"]["add"]["median"] / populated["podwire-empty"]["add"]["median"]
        lines.append(f"| the same without mtu (the default route looked up), side by side "
                     f"({populated['podwire']['add']['median']:.2f} / {populated['podwire-empty']['add']['median']:.2f} ms) "
                     f"| | {growth:.2f}× | ≤ 1.2× |")
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
