#!/usr/bin/python3
"""Turns cri_bench.py's JSON into the Markdown table (bench-results/cri-latest.md) and prints
podwire's share above the host-network floor."""
import json
import math
import os
import statistics
import sys

from readme_table import replace_between_markers


def percentile(samples, fraction):
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary(samples):
    return {"median": statistics.median(samples), "p90": percentile(samples, 0.9), "n": len(samples)}


def cell(samples):
    s = summary(samples)
    return f"{s['median']:.1f} ({s['p90']:.1f})"


def main():
    results_path, out_dir = sys.argv[1], sys.argv[2]
    with open(results_path) as handle:
        results = json.load(handle)
    runtime = results["runtime"]
    lines = [
        f"Measured {results['date']} on {results['machine']}; {runtime['runtime_name']} {runtime['runtime_version']} "
        f"(CRI {runtime['runtime_api_version']}). {results['pods']} pods per row after {results['warmup']} warm-up pods, "
        "podwire, the reference and the floor taking turns, each on a containerd of its own (a private network "
        "namespace); the pods of a row all present on the node before they are stopped and removed.",
        "",
        "Times in ms, median (p90), as the kubelet's CRI client waits for them (gRPC over containerd's socket). "
        "The host-network floor is the same call for a sandbox with `namespace_options.network = NODE`: "
        "containerd, runc and the pause container without CNI. Lower is better.",
        "",
        "| conflist | call | podwire | reference ptp + host-local | host-network floor | podwire above the floor | reference above the floor |",
        "|---|---|---|---|---|---|---|",
    ]
    shares = []
    for phase in results["phases"]:
        samples = phase["samples"]
        for call, label in (("run", "RunPodSandbox"), ("stop_remove", "StopPodSandbox + RemovePodSandbox")):
            podwire, reference, floor = (statistics.median(samples[k][call]) for k in ("podwire", "reference", "floor"))
            above, reference_above = podwire - floor, reference - floor
            lines.append(f"| {phase['label']} | {label} | {cell(samples['podwire'][call])} | {cell(samples['reference'][call])} "
                         f"| {cell(samples['floor'][call])} | {above:.1f} ({above / podwire:.0%} of the call) "
                         f"| {reference_above:.1f} ({reference_above / reference:.0%}) |")
            shares.append(f"{phase['label']}, {label}: podwire {podwire:.1f} ms = floor {floor:.1f} ms + {above:.1f} ms "
                          f"({above / podwire:.0%} of what the kubelet waits for); the reference adds {reference_above:.1f} ms")
    lines += ["", "StopPodSandbox and RemovePodSandbox separately, median ms:", "",
              "| conflist | podwire stop / remove | reference stop / remove | floor stop / remove |", "|---|---|---|---|"]
    for phase in results["phases"]:
        samples = phase["samples"]
        row = [f"{statistics.median(samples[k]['stop']):.1f} / {statistics.median(samples[k]['remove']):.1f}"
               for k in ("podwire", "reference", "floor")]
        lines.append(f"| {phase['label']} | " + " | ".join(row) + " |")
    for phase in results["phases"]:
        samples = phase["samples"]
        if "podwire-no-hostport" not in samples:
            continue
        # The same containerd and conflist (podwire alone with `portMappings`), in the same rotation.
        lines += ["", "podwire's own hostPorts, side by side on one containerd with one conflist (podwire alone with "
                      "the `portMappings` capability): pods with one hostPort against pods that ask for none, "
                      "median (p90) ms:", "",
                  "| call | with a hostPort | without | with / without | target |", "|---|---|---|---|---|"]
        held = []
        for call, label in (("run", "RunPodSandbox"), ("stop_remove", "StopPodSandbox + RemovePodSandbox")):
            with_hp, without = (statistics.median(samples[k][call]) for k in ("podwire", "podwire-no-hostport"))
            value = with_hp / without
            lines.append(f"| {label} | {cell(samples['podwire'][call])} | {cell(samples['podwire-no-hostport'][call])} "
                         f"| {value:.2f}× | ≤ 1.1× |")
            held.append(f"{label} with a hostPort / without {value:.3f}× ({'holds' if value <= 1.1 else 'misses'})")
        reference = statistics.median(samples["reference"]["run"])
        lines += ["", "hostPort target (≤ 1.1×): " + "; ".join(held) + f". In the same rotation the reference + portmap "
                  f"took {reference:.1f} ms per RunPodSandbox and "
                  f"{statistics.median(samples['reference']['stop_remove']):.1f} ms per Stop + Remove with its hostPort."]
    markdown = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "cri-latest.md"), "w") as handle:
        handle.write(markdown)
    # The README shows the latest table between its markers.
    replace_between_markers("bench-cri", markdown)
    print(markdown)
    print("podwire's share above the host-network floor:")
    for line in shares:
        print("  " + line)


if __name__ == "__main__":
    main()
