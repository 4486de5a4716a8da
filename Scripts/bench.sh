#!/usr/bin/env bash
# podwire against the reference ptp + host-local, side by side in one run, inside a private
# user + network + mount namespace (this machine's own network is never touched).
#
#   Scripts/bench.sh                 # full run (about 7 minutes on 2 cores, the CRI part included)
#   BENCH_QUICK=1 Scripts/bench.sh   # a smoke run with few iterations and pods
#
# Every configuration a user may write has a row: with and without mtu, ipMasq, dual-stack,
# hostPorts (podwire's own, against the reference ptp + portmap), hostPorts on a dual-stack pod,
# 0/250/1000 pods present and 1000 pods holding hostPorts.
#
# Writes bench-results/latest.json, latest.md (the table the README shows) and
# add-latency.png (ADD latency against the number of pods on the node), then runs
# Scripts/bench-cri.sh (what a kubelet waits for through containerd's CRI; BENCH_CRI=0 skips it),
# which writes bench-results/cri-latest.json and cri-latest.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--inside" ]; then
    source Scripts/lib/deps.sh
    podwire_install_deps gnuplot-nox
    if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    source Scripts/lib/release.sh
    echo "== release build (static)"
    release_dir=$(podwire_build_release)
    tools=$(mktemp -d)
    trap 'rm -rf "$tools"' EXIT
    # The binaries run as a node runs them: installed by install.sh, not the linker's output file.
    # How a file sits in the page cache changes every start (install.sh says why it writes in one
    # piece): the linker leaves its output in small pieces, ~0.2 ms more per start here.
    bin_dir="$tools/cni-bin"
    Scripts/install.sh --release-dir "$release_dir" --bin-dir "$bin_dir" --conf-dir "$tools/net.d" --path-dir "" >/dev/null
    mkdir -p "$tools/build"
    gcc -O2 -o "$tools/veth-floor" Scripts/bench/veth-floor.c
    gcc -O2 -o "$tools/wire-floor" Scripts/bench/wire-floor.c
    gcc -O2 -static -o "$tools/build/nothing" Scripts/bench/nothing.c
    # The static glibc link warns about dlopen/getaddrinfo; show the log only if the build fails.
    if ! swiftc -O -static-executable -Xlinker -s -module-cache-path "$tools/module-cache" \
            -o "$tools/build/nothing-swift" Scripts/bench/nothing-swift.swift 2>"$tools/swiftc.log"; then
        cat "$tools/swiftc.log" >&2
        exit 1
    fi
    cp "$tools/build/nothing" "$tools/build/nothing-swift" "$tools/"
    gcc -O2 -o "$tools/peak-rss" Scripts/bench/peak-rss.c
    gcc -O2 -o "$tools/timed-exec" Scripts/bench/timed-exec.c
    echo "== ldd of the installed binary (must name neither a Swift runtime nor libnl)"
    ldd "$bin_dir/podwire" 2>&1 | sed 's/^/    /' || true
    machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME"), Debian containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins)"
    mkdir -p bench-results
    unshare -Urnm --propagation private bash "$0" --inside "$bin_dir" "$tools" "$machine"
    # What a kubelet waits for: the same plugins under containerd's CRI (real root, each containerd
    # in a private network + mount namespace of its own). BENCH_CRI=0 leaves it out.
    if [ "${BENCH_CRI:-1}" != 0 ]; then
        Scripts/bench-cri.sh
    fi
    exit 0
fi

bin_dir=$2 tools=$3 machine=$4
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/netns
if [ -n "${BENCH_QUICK:-}" ]; then
    set -- --iterations 5 --counts 0,20 --parallel 5 --parallel-rounds 1 --dual-stack-iterations 2 \
        --hostport-pods 20 --reference-hostport-pods 20
else
    # The reference's hostPort node gets 250 pods, not 1000: portmap's ADD grows with the node's
    # iptables rules (about 60 ms on an empty node, 400 ms at 950 hostPort pods here), so 1000
    # took 4 minutes to set up, more than the rest of this bench.
    set -- --iterations "${BENCH_ITERATIONS:-100}" --counts 0,250,1000 --parallel 20,100 --parallel-rounds 3 \
        --dual-stack-iterations "${BENCH_DUAL_STACK_ITERATIONS:-20}" \
        --hostport-pods 1000 --reference-hostport-pods "${BENCH_REFERENCE_HOSTPORT_PODS:-250}"
fi
masq=(--masq)
[ "${BENCH_MASQ:-1}" = 0 ] && masq=()
python3 Scripts/bench/driver.py --podwire-dir "$bin_dir" --veth-floor "$tools/veth-floor" --wire-floor "$tools/wire-floor" --nothing "$tools/nothing" --nothing-swift "$tools/nothing-swift" \
    --peak-rss "$tools/peak-rss" --timed-exec "$tools/timed-exec" "${masq[@]}" --out bench-results/latest.json "$@"
python3 Scripts/bench/report.py bench-results/latest.json bench-results "$machine"
