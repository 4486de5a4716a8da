#!/usr/bin/env bash
# Regenerates Scripts/lib/podwire.order: the functions a plugin call runs and the data it writes or
# reads, which the release link (Scripts/lib/release.sh) places side by side at the start of the
# binary's text and of its data.
#
# Why: a static Swift binary is ~8 MB, and the code one ADD runs is scattered across all of it.
# Each first touch of a 64 KiB stretch of text costs a page fault that maps 16 pages, so an ADD
# took ~64 text faults. Packed together, the same code takes about half as many (the standard
# library's own .text is one section and stays as it is).
#
# The same holds for the runtime's and libc's small variables, each first touched on a page of its
# own: packed, an ADD took 17 .bss faults instead of 22.
#
# How: builds the release binaries with their symbols, runs each verb under valgrind's callgrind
# inside a private user+network+mount namespace (pods in 10.244.0.0/16, nothing on this machine's
# network), and lists every function that ran; then ADD and DEL again under lackey, which logs
# every memory access, for the variables.
#
# When: after a change to what ADD or DEL run. The release build says how many of the listed
# functions it no longer finds; a stale list only costs speed, never correctness.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --inside ]; then
    bin_dir=$2 work=$3
    mount -t tmpfs -o mode=0755 tmpfs /run
    mkdir -p /run/netns
    ip link set lo up
    ip netns add order-pod
    ip netns add order-pod6
    export CNI_IFNAME=eth0 CNI_PATH="$bin_dir" PATH
    v4='{"cniVersion":"1.1.0","name":"order","type":"podwire","mtu":1500,"ipam":{"type":"podwire-ipam","dataDir":"/run/order-ipam","ranges":[[{"subnet":"10.244.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}'
    masq='{"cniVersion":"1.1.0","name":"order-masq","type":"podwire","ipMasq":true,"ipam":{"type":"podwire-ipam","dataDir":"/run/order-ipam","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}'
    ports='{"cniVersion":"1.1.0","name":"order-ports","type":"podwire","mtu":1500,"capabilities":{"portMappings":true},"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":5353,"containerPort":53,"protocol":"udp"}]},"ipam":{"type":"podwire-ipam","dataDir":"/run/order-ipam","ranges":[[{"subnet":"10.244.3.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}'
    dual='{"cniVersion":"1.1.0","name":"order-dual","type":"podwire","ipam":{"type":"podwire-ipam","dataDir":"/run/order-ipam","ranges":[[{"subnet":"10.244.2.0/24"}],[{"subnet":"fd00:10:244:2::/64"}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}'
    n=0
    # run BINARY COMMAND CONTAINER NETNS CONFIG: one call under callgrind, as a runtime makes it.
    run() {
        n=$((n + 1))
        printf '%s' "$5" | CNI_COMMAND=$2 CNI_CONTAINERID=$3 CNI_NETNS=$4 \
            valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$(printf %02d $n).$2.out" \
            "$bin_dir/$1" >"$work/$n.result" 2>"$work/$n.log" ||
            { echo "order.sh: $1 $2 failed under valgrind:" >&2; cat "$work/$n.result" "$work/$n.log" >&2; exit 1; }
    }
    # trace COMMAND CONTAINER NETNS CONFIG: one podwire call under lackey, every memory access logged.
    trace() {
        n=$((n + 1))
        printf '%s' "$4" | CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=$3 \
            valgrind --tool=lackey --trace-mem=yes --log-file="$work/$(printf %02d $n).$1.trace" \
            "$bin_dir/podwire" >"$work/$n.result" 2>"$work/$n.log" ||
            { echo "order.sh: podwire $1 failed under valgrind:" >&2; cat "$work/$n.result" "$work/$n.log" >&2; exit 1; }
    }
    # A first ADD/DEL warms the IPAM store as a node in service has it.
    printf '%s' "$v4" | CNI_COMMAND=ADD CNI_CONTAINERID=warm CNI_NETNS=/run/netns/order-pod "$bin_dir/podwire" >/dev/null
    printf '%s' "$v4" | CNI_COMMAND=DEL CNI_CONTAINERID=warm CNI_NETNS=/run/netns/order-pod "$bin_dir/podwire" >/dev/null
    run podwire ADD pod /run/netns/order-pod "$v4"
    run podwire DEL pod /run/netns/order-pod "$v4"
    run podwire ADD pod /run/netns/order-pod "$v4"
    # CHECK compares the pod with the ADD result a runtime hands back as prevResult.
    check=$(python3 -c 'import json, sys; c = json.loads(sys.argv[1]); c["prevResult"] = json.load(open(sys.argv[2])); print(json.dumps(c))' \
        "$v4" "$work/$n.result")
    run podwire CHECK pod /run/netns/order-pod "$check"
    run podwire DEL pod /run/netns/order-pod "$v4"
    run podwire ADD masq /run/netns/order-pod "$masq"
    run podwire DEL masq /run/netns/order-pod "$masq"
    # hostPorts: the first ADD makes the table; the second is the one a node in service runs.
    printf '%s' "$ports" | CNI_COMMAND=ADD CNI_CONTAINERID=warm-ports CNI_NETNS=/run/netns/order-pod6 "$bin_dir/podwire" >/dev/null
    printf '%s' "$ports" | CNI_COMMAND=DEL CNI_CONTAINERID=warm-ports CNI_NETNS=/run/netns/order-pod6 "$bin_dir/podwire" >/dev/null
    run podwire ADD ports /run/netns/order-pod "$ports"
    run podwire DEL ports /run/netns/order-pod "$ports"
    run podwire ADD dual /run/netns/order-pod6 "$dual"
    run podwire DEL dual /run/netns/order-pod6 "$dual"
    run podwire VERSION none "" "$v4"
    run podwire STATUS none "" "$v4"
    run podwire-ipam ADD ipam /run/netns/order-pod "$v4"
    run podwire-ipam DEL ipam /run/netns/order-pod "$v4"
    trace ADD pod /run/netns/order-pod "$v4"
    trace DEL pod /run/netns/order-pod "$v4"
    exit 0
fi

source Scripts/lib/deps.sh
podwire_install_deps valgrind
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
source Scripts/lib/release.sh

echo "== release build with symbols"
bin_dir=$(PODWIRE_RELEASE_SYMBOLS=1 podwire_build_release)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== each verb once under callgrind, in a private namespace"
unshare -Urnm --propagation private bash "$0" --inside "$bin_dir" "$work"

# Every function callgrind saw; "0x..." are addresses without a symbol, "(below main)" is
# callgrind's name for what runs before main, and "'2" marks a recursion level, not a different
# function. Sorted: where a function sits inside the packed stretch does
# not matter, and a sorted list changes only where the code did.
cat "$work"/*.out |
    sed -n -E "s/^c?fn=\([0-9]+\) (.+)$/\1/p" |
    sed -E "s/'[0-9]+$//" |
    grep -v -E '^(0x[0-9a-f]+|\(below main\))$' |
    LC_ALL=C sort -u >"$work/ran"

# glibc picks memcpy, strlen and the like for the CPU at start-up, and valgrind's virtual CPU is
# not the node's: list every variant of each such function that ran.
variants='(sse2|sse42|ssse3|avx|avx2|avx512|evex)'
nm --defined-only "$bin_dir/podwire" | awk '$2 ~ /^[tT]$/ { print $3 }' >"$work/symbols"
grep -oE "^__[a-z0-9]+_$variants" "$work/ran" | sed -E "s/_$variants\$//" | sort -u |
    while read -r base; do grep -E "^${base}_$variants" "$work/symbols" || true; done | LC_ALL=C sort -u >"$work/variants"

python3 Scripts/lib/touched-data.py "$bin_dir/podwire" "$work"/*.trace | LC_ALL=C sort -u >"$work/data"

order=Scripts/lib/podwire.order
{
    echo "# Functions the plugin's calls run, then the variables ADD and DEL touch: packed first in"
    echo "# the release binary's text and data. Generated by Scripts/order.sh ($(date -u +%Y-%m-%d),"
    echo "# $(git rev-parse --short HEAD)); do not edit."
    cat "$work/ran" "$work/variants" "$work/data" | awk '!seen[$0]++'
} >"$order.tmp"
mv "$order.tmp" "$order"
echo "== $(grep -vc '^#' "$order") functions and variables in $order"
