#!/usr/bin/env bash
# What a kubelet waits for: RunPodSandbox and StopPodSandbox + RemovePodSandbox through containerd's
# CRI, podwire (the static release binary, installed as install.sh installs it) against the
# reference ptp + host-local, for the plugin alone, + portmap with no hostPort, and + portmap with
# one hostPort; podwire alone with the portMappings capability (its own hostPorts) and one hostPort
# per pod, against pods without one on the same containerd (and the reference + portmap); and a
# host-network floor (the same calls with no CNI at all).
#
#   Scripts/bench-cri.sh                 # 32 pods per row (about 2 minutes on 2 cores)
#   BENCH_QUICK=1 Scripts/bench-cri.sh   # a smoke run with 5 pods per row
#
# Needs real root: each containerd runs in a private network + mount namespace of its own
# (Tests/Runtimes/containerd/node.sh), never in this machine's network. Its state and socket live
# in a temporary directory, removed at the end with every pod, shim and cgroup.
# Writes bench-results/cri-latest.json and cri-latest.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "bench-cri.sh: containerd needs real root" >&2
    exit 1
fi
source Scripts/lib/deps.sh
podwire_install_deps containerd runc python3-grpcio libc6-dev
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
source Scripts/lib/release.sh
echo "== release build (static)"
release_dir=$(podwire_build_release)

work=$(mktemp -d /tmp/podwire-bench-cri.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The binaries run as a node runs them: installed by install.sh (see bench.sh), then linked into
# one CNI bin dir with Debian's plugins (ptp, host-local, portmap, and loopback, which the CRI execs).
Scripts/install.sh --release-dir "$release_dir" --bin-dir "$work/podwire-bin" --conf-dir "$work/install-net.d" --path-dir "" >/dev/null
bash Tests/Runtimes/containerd/node.sh cni-bin "$work/cni-bin" "$work/podwire-bin"
gcc -static -O2 -s -Wall -Werror -o "$work/pause" Tests/Runtimes/pause/pause.c
/usr/bin/python3 Tests/Runtimes/image.py --binary "$work/pause" --tag localhost/podwire-pause:1 --out "$work/pause.tar" >/dev/null

machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME"), containerd $(dpkg-query -W -f='${Version}' containerd), runc $(dpkg-query -W -f='${Version}' runc), Debian containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins)"
pods=${BENCH_PODS:-32}
warmup=3
if [ -n "${BENCH_QUICK:-}" ]; then
    pods=5
    warmup=1
fi
mkdir -p bench-results "$work/nodes"
echo "== containerd CRI: $pods pods per row"
/usr/bin/python3 Scripts/bench/cri_bench.py --work "$work/nodes" --cni-bin "$work/cni-bin" --pause "$work/pause.tar" \
    --pods "$pods" --warmup "$warmup" --machine "$machine" --out bench-results/cri-latest.json
/usr/bin/python3 Scripts/bench/cri_report.py bench-results/cri-latest.json bench-results
