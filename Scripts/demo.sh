#!/usr/bin/env bash
# podwire demo: replays "Inside Pod-to-Pod Networking: Intra-Node Traffic in Kindnet" with podwire
# in place of Kindnet's ptp plugin. Two pods on one node get 10.244.1.2 and 10.244.1.3 from
# 10.244.1.0/24; then, section by section like the article: their IPs and the node's /32 host
# routes, a tshark capture of ARP and ICMP on pod B's host veth, each pod's routes and neighbours,
# `ip route get` on the node, a capture inside pod B showing no SNAT, and finally DEL cleaning up.
# Every expected fact is checked; the last line is "demo: N checks passed, M failed".
#
# Run as root on Debian 12:   bash Scripts/demo.sh
#   PODWIRE_BIN=/path/to/podwire   use that binary instead of building with `swift build`
#   DEMO_IPAM=host-local           delegate IPAM to Debian's host-local instead of podwire-ipam
#
# Nothing here touches this machine's network: the script re-runs itself inside a private
# user+network+mount namespace ("the node", with a tmpfs on /run) and creates the pods' network
# namespaces there. Leaving it (the script ending) destroys all of it.
set -euo pipefail

self=$(readlink -f "${BASH_SOURCE[0]}")
scripts=$(dirname "$self")
root=$(dirname "$scripts")
# shellcheck source=SCRIPTDIR/lib/deps.sh
source "$scripts/lib/deps.sh"
# shellcheck source=SCRIPTDIR/lib/checks.sh
source "$scripts/lib/checks.sh"

heading() { printf '\n=== %s\n\n' "$*"; }
# show PROMPT TEXT COMMAND...: prints "PROMPT$ TEXT" (what a reader would type there), then runs
# COMMAND with its output indented.
show() {
    local prompt=$1 text=$2
    shift 2
    printf '%s$ %s\n' "$prompt" "$text"
    "$@" >"$work/show" 2>&1 && show_rc=0 || show_rc=$?
    if [ -s "$work/show" ]; then sed 's/^/    /' "$work/show"; else echo "    (nothing)"; fi
    echo
}
show_rc=0

# ---------------------------------------------------------------------------------------------
# Outside: dependencies, build, then into the private namespace.
# ---------------------------------------------------------------------------------------------
if [ "${1:-}" != "--inside" ]; then
    podwire_install_deps
    if [ -z "${PODWIRE_BIN:-}" ]; then
        if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
            export PATH="/opt/swift/usr/bin:$PATH"
        fi
        echo "== swift build"
        build_log=$(mktemp)
        if ! (cd "$root" && swift build >"$build_log" 2>&1); then
            cat "$build_log" >&2
            rm -f "$build_log"
            echo "demo.sh: swift build failed" >&2
            exit 1
        fi
        tail -n 1 "$build_log"
        rm -f "$build_log"
        PODWIRE_BIN="$(cd "$root" && swift build --show-bin-path)/podwire"
    fi
    if [ ! -x "$PODWIRE_BIN" ]; then
        echo "demo.sh: no podwire binary at $PODWIRE_BIN" >&2
        exit 1
    fi
    PODWIRE_BIN=$(readlink -f "$PODWIRE_BIN")
    export PODWIRE_BIN
    exec unshare -Urnm --propagation private "$BASH" "$self" --inside
fi

# ---------------------------------------------------------------------------------------------
# Inside the private namespace: this is the node.
# ---------------------------------------------------------------------------------------------
mount -t tmpfs -o mode=0755 tmpfs /run
work=$(mktemp -d)
capture_pid=
cleanup() {
    if [ -n "$capture_pid" ]; then kill "$capture_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

ip link set lo up
ip netns add pod-a
ip netns add pod-b
# What a runtime's loopback plugin does for every pod.
ip netns exec pod-a ip link set lo up
ip netns exec pod-b ip link set lo up

ipam_type=${DEMO_IPAM:-podwire-ipam}
ipam_dir=/run/cni-ipam-state
plugin=$(printf '"type":"podwire","mtu":1500,"callLog":"/run/podwire/calls.jsonl","ipam":{"type":"%s","dataDir":"%s","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}' \
    "$ipam_type" "$ipam_dir")
config='{"cniVersion":"1.0.0","name":"kindnet",'"$plugin"'}'
# The same network as a node's conflist holds it, for podwirectl.
mkdir -p "$work/net.d"
printf '{"cniVersion":"1.0.0","name":"kindnet","plugins":[{%s}]}\n' "$plugin" >"$work/net.d/10-podwire.conflist"
podwirectl="$(dirname "$PODWIRE_BIN")/podwirectl"
export NETCONFPATH="$work/net.d"
# Container IDs like a runtime's: 64 hex digits.
id_a=$(printf 'pod-a' | sha256sum | cut -c1-64)
id_b=$(printf 'pod-b' | sha256sum | cut -c1-64)

# cni COMMAND CONTAINERID NETNS: runs podwire as a runtime does; stdout to $work/out, rc returned.
cni() {
    local rc=0
    env CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="$3" CNI_IFNAME=eth0 \
        CNI_PATH="$(dirname "$PODWIRE_BIN"):/usr/lib/cni" \
        "$PODWIRE_BIN" <<<"$config" >"$work/out" 2>"$work/err" || rc=$?
    return "$rc"
}
pretty() {
    if command -v python3 >/dev/null 2>&1 && python3 -m json.tool "$1" >/dev/null 2>&1; then
        python3 -m json.tool "$1"
    else
        cat "$1"
    fi
}
# json_first KEY FILE [ERE]: the first string value of KEY (matching ERE) in a JSON document.
json_first() { { grep -o "\"$1\": *\"[^\"]*\"" "$2" | grep -E "${3:-.}" | head -n 1 | sed 's/.*: *"\(.*\)"/\1/'; } || true; }
# link_mac [ip netns exec NS] ip -o link show dev IF: the link's MAC, or nothing.
link_mac() { { "$@" 2>/dev/null | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; } || true; }

# capture_start NAME COMMAND...: runs a tshark command in the background until it is capturing.
# tshark says "Capturing on" a few milliseconds before packets really reach it, so it is given
# half a second more (a reader switching to a second terminal takes longer).
capture_start() {
    local name=$1 _
    shift
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
    capture_pid=$!
    for _ in $(seq 1 200); do
        if grep -q "Capturing on" "$work/$name.err" 2>/dev/null; then
            sleep 0.5
            return 0
        fi
        kill -0 "$capture_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "demo: tshark did not start capturing:" >&2
    cat "$work/$name.err" >&2
    return 1
}
# capture_wait NAME ERE SECONDS: waits until a captured line matches (or the time is up). Packets
# reach tshark in batches (libpcap's ring is read every 250 ms or so) and whatever it has not read
# when it is stopped is lost, so stop it only once the last packet expected has been printed.
capture_wait() {
    local _
    for _ in $(seq 1 $(($3 * 20))); do
        grep -Eq -- "$2" "$work/$1.out" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
# capture_stop NAME: stops tshark and prints its packet lines (its stdout; stderr is noise).
capture_stop() {
    kill -INT "$capture_pid" 2>/dev/null || true
    wait "$capture_pid" 2>/dev/null || true
    capture_pid=
    sed 's/^ *//; s/^/    /' "$work/$1.out"
    echo
}

echo "Replaying \"Inside Pod-to-Pod Networking: Intra-Node Traffic in Kindnet\" with podwire in place of ptp"
echo "  plugin: $PODWIRE_BIN"
echo "  ipam:   $ipam_type (dataDir $ipam_dir)"
echo "  node:   a private network namespace; pods pod-a and pod-b are network namespaces in it"

# ---------------------------------------------------------------------------------------------
heading "The setup: same-node pod pairs, IPs and routes"

declare -A pod_ip pod_veth
for pod in pod-a pod-b; do
    if [ "$pod" = pod-a ]; then id=$id_a; else id=$id_b; fi
    printf 'runtime$ CNI_COMMAND=ADD CNI_CONTAINERID=%s... CNI_NETNS=/run/netns/%s CNI_IFNAME=eth0 podwire < kindnet.conf\n' \
        "${id:0:12}" "$pod"
    pod_ip[$pod]=
    pod_veth[$pod]=
    if cni ADD "$id" "/run/netns/$pod"; then
        pretty "$work/out" | sed 's/^/    /'
        check_pass "ADD $pod exits 0"
        pod_ip[$pod]=$(json_first address "$work/out" '10\.244\.1\.' | cut -d/ -f1)
        pod_veth[$pod]=$(json_first name "$work/out" '"veth')
        # The MACs the result reports are the ones tshark will show: they must be the real ones.
        macs=$({ grep -o '"mac": *"[^"]*"' "$work/out" | sed 's/.*: *"\(.*\)"/\1/' | tr '\n' ' '; } || true)
        real_host=$(link_mac ip -o link show dev "${pod_veth[$pod]:-none}")
        real_pod=$(link_mac ip netns exec "$pod" ip -o link show dev eth0)
        check_equal "the result's MACs are $pod's real ones (host veth, eth0)" "$real_host $real_pod " "$macs"
    else
        cat "$work/out" "$work/err" | sed 's/^/    /'
        check_fail "ADD $pod exits 0"
    fi
    echo
done
ip_a=${pod_ip[pod-a]:-}
ip_b=${pod_ip[pod-b]:-}
veth_a=${pod_veth[pod-a]:-}
veth_b=${pod_veth[pod-b]:-}

echo "the pods (like kubectl get pods -o wide):"
printf '    %-8s %-14s %-14s %s\n' NAME IP NODE HOST-VETH
printf '    %-8s %-14s %-14s %s\n' pod-a "${ip_a:--}" node "${veth_a:--}" pod-b "${ip_b:--}" node "${veth_b:--}"
echo
check_equal "pod A got 10.244.1.2 and pod B 10.244.1.3" "10.244.1.2 10.244.1.3" "$ip_a $ip_b"
if [ -z "$veth_a" ] || [ -z "$veth_b" ]; then
    echo "demo: ADD did not report the host veths; nothing more to show" >&2
    podwire_checks_summary demo
    exit 1
fi

show node "ip route | grep 10.244.1" bash -c "ip route | grep 10.244.1"
check_equal "the node has a /32 host route to each pod via its veth" \
    "$(printf '10.244.1.2 dev %s scope host\n10.244.1.3 dev %s scope host' "$veth_a" "$veth_b")" \
    "$(ip route | grep 10.244.1 || true)"
echo "Traffic for 10.244.1.3 leaves through $veth_b, the host end of pod B's eth0."

# ---------------------------------------------------------------------------------------------
heading "Capture ARP and ICMP traffic from pod A to pod B"

show pod-a "ip neigh flush all" ip netns exec pod-a ip neigh flush all
printf 'node$ tshark -i %s -f "icmp or arp"     (in the background)\n\n' "$veth_b"
capture_start host tshark -n -l -i "$veth_b" -f "icmp or arp" || check_fail "tshark captures on $veth_b"
show pod-a "ping -c1 10.244.1.3" ip netns exec pod-a ping -c1 -W2 10.244.1.3
if [ "$show_rc" = 0 ]; then check_pass "pod A pings pod B"; else check_fail "pod A pings pod B"; fi
# Pod B learnt the gateway's MAC from the node's ARP request (a STALE entry); it confirms it with
# its own ARP request once the kernel's delay_first_probe_time (5 s) has passed.
echo "(waiting up to 8 s for pod B to confirm its gateway's MAC with its own ARP request)"
capture_wait host 'Who has 10\.244\.1\.1\? Tell 10\.244\.1\.3' 8 || capture_wait host 'Echo \(ping\) reply' 1 || true
echo "node$ tshark output:"
capture_stop host
host_capture=$(cat "$work/host.out")
check_match "the node's veth ARPs for pod B: Who has 10.244.1.3? Tell 10.244.1.1" \
    'ARP .*Who has 10\.244\.1\.3\? Tell 10\.244\.1\.1' "$host_capture"
check_match "pod B answers: 10.244.1.3 is at ..." 'ARP .*10\.244\.1\.3 is at' "$host_capture"
check_match "the echo request reaches pod B's veth from 10.244.1.2" \
    '10\.244\.1\.2 (→|->) 10\.244\.1\.3 +ICMP .*Echo \(ping\) request' "$host_capture"
check_match "the request arrives with ttl=63: the node routed it (L3, one hop)" \
    '10\.244\.1\.2 (→|->) 10\.244\.1\.3 +ICMP .*Echo \(ping\) request .*ttl=63' "$host_capture"
check_match "the echo reply goes back from 10.244.1.3" \
    '10\.244\.1\.3 (→|->) 10\.244\.1\.2 +ICMP .*Echo \(ping\) reply' "$host_capture"
check_match "pod B ARPs for its gateway: Who has 10.244.1.1? Tell 10.244.1.3" \
    'ARP .*Who has 10\.244\.1\.1\? Tell 10\.244\.1\.3' "$host_capture"
check_no_match "nobody ARPs for a pod from a pod (only the gateway is ever resolved)" \
    'Who has 10\.244\.1\.[23]\? Tell 10\.244\.1\.[23]' "$host_capture"

# ---------------------------------------------------------------------------------------------
heading "Inspect routing and neighbour tables inside each pod"

for pod in pod-a pod-b; do
    ip=${pod_ip[$pod]}
    show "$pod" "ip route" ip netns exec "$pod" ip route
    check_equal "$pod routes everything through its gateway 10.244.1.1" \
        "$(printf 'default via 10.244.1.1 dev eth0\n10.244.1.0/24 via 10.244.1.1 dev eth0 src %s\n10.244.1.1 dev eth0 scope link src %s' "$ip" "$ip")" \
        "$(ip netns exec "$pod" ip route)"
    show "$pod" "ip neigh" ip netns exec "$pod" ip neigh
    neigh=$(ip netns exec "$pod" ip neigh)
    check_match "$pod has learnt its gateway's MAC" '^10\.244\.1\.1 dev eth0 lladdr ' "$neigh"
    check_no_match "$pod knows no other neighbour" '^(10\.244\.1\.([02-9]|[1-9][0-9]+)|[0-9a-f]*:)' "$neigh"
    echo
done
echo "Each pod only ever talks to 10.244.1.1; neither has an entry for the other."

# ---------------------------------------------------------------------------------------------
heading "Trace host routing decisions with ip route get"

show node "ip route get 10.244.1.3" ip route get 10.244.1.3
check_match "the node sends 10.244.1.3 out of $veth_b with source 10.244.1.1" \
    "^10\.244\.1\.3 dev $veth_b src 10\.244\.1\.1( |$)" "$(ip route get 10.244.1.3)"
show node "ip -br addr show type veth" ip -br addr show type veth
check_equal "both host veths carry the gateway 10.244.1.1/32" \
    "$(printf '10.244.1.1/32\n10.244.1.1/32')" \
    "$(for veth in "$veth_a" "$veth_b"; do ip -o -4 addr show dev "$veth" | awk '{print $4}'; done)"

# ---------------------------------------------------------------------------------------------
heading "Prove SNAT does not apply to direct pod-to-pod traffic"

if command -v iptables >/dev/null 2>&1; then
    echo 'node$ iptables -t nat -L -n -v | grep MASQUERADE'
    if nat=$(iptables -t nat -L -n -v 2>&1); then
        printf '%s\n' "$nat" | grep MASQUERADE | sed 's/^/    /' || echo "    (no MASQUERADE rule)"
    else
        printf '%s\n' "$nat" | sed 's/^/    (iptables: /; s/$/)/'
    fi
    echo
fi
echo "podwire installs no NAT rules (and this node runs no masquerade agent);"
echo "a capture inside pod B shows the source address exactly as pod A sent it."
echo
printf 'pod-b$ tshark -i eth0     (in the background)\n\n'
capture_start podb ip netns exec pod-b tshark -n -l -i eth0 || check_fail "tshark captures on pod B's eth0"
show pod-a "ping -c1 10.244.1.3" ip netns exec pod-a ping -c1 -W2 10.244.1.3
if [ "$show_rc" = 0 ]; then check_pass "pod A pings pod B again"; else check_fail "pod A pings pod B again"; fi
capture_wait podb 'Echo \(ping\) reply' 3 || true
echo "pod-b$ tshark output:"
capture_stop podb
podb_capture=$(cat "$work/podb.out")
check_match "pod B sees the request from pod A's own address 10.244.1.2 (no SNAT)" \
    '10\.244\.1\.2 (→|->) 10\.244\.1\.3 +ICMP .*Echo \(ping\) request' "$podb_capture"
check_match "pod B replies to 10.244.1.2" '10\.244\.1\.3 (→|->) 10\.244\.1\.2 +ICMP .*Echo \(ping\) reply' "$podb_capture"

# ---------------------------------------------------------------------------------------------
heading "The operator's view: podwirectl ls, a leak found and fixed by doctor, stats"

# A third pod whose host veth someone deletes behind podwire's back: its address is leaked (no
# runtime DEL will come for a veth that is gone... or it comes, and the address still is).
ip netns add pod-c
id_c=$(printf 'pod-c' | sha256sum | cut -c1-64)
if cni ADD "$id_c" /run/netns/pod-c; then check_pass "ADD pod-c exits 0"; else check_fail "ADD pod-c exits 0" "$(cat "$work/out" "$work/err")"; fi
show node "podwirectl ls" "$podwirectl" ls
check_match "ls lists the three pods" "10\.244\.1\.4 +${id_c:0:12} +eth0 +veth" "$(cat "$work/show")"
veth_c=$(ip route | awk '$1 == "10.244.1.4" { print $3 }')
show node "ip link del $veth_c     (someone else's mistake)" ip link del "$veth_c"
show node "podwirectl doctor" "$podwirectl" doctor
check_equal "doctor exits 1 when it finds a problem" 1 "$show_rc"
check_match "doctor names the leaked address and the gone veth" "^ *leaked-address 10\.244\.1\.4: allocation ${id_c}/eth0: .*$veth_c is gone" "$(cat "$work/show")"
show node "podwirectl doctor --fix" "$podwirectl" doctor --fix
check_equal "doctor --fix exits 0" 0 "$show_rc"
show node "podwirectl doctor" "$podwirectl" doctor
check_equal "doctor exits 0 afterwards" 0 "$show_rc"
check_equal "10.244.1.4 is free again" "" "$(ls "$ipam_dir/kindnet/10.244.1.4" 2>/dev/null)"
show node "podwirectl stats" "$podwirectl" stats
check_match "stats counts the ADDs" "^ *ADD +3 " "$(cat "$work/show")"
ip netns delete pod-c

# ---------------------------------------------------------------------------------------------
heading "Tear down: DEL both pods"

show node "ls -A $ipam_dir/kindnet" ls -A "$ipam_dir/kindnet"
check_equal "the IPAM store records 10.244.1.2 for pod A and 10.244.1.3 for pod B" \
    "$(printf '%s\r\neth0 %s\r\neth0' "$id_a" "$id_b")" \
    "$(cat "$ipam_dir/kindnet/10.244.1.2" 2>/dev/null; echo -n ' '; cat "$ipam_dir/kindnet/10.244.1.3" 2>/dev/null)"

printf 'runtime$ CNI_COMMAND=DEL CNI_CONTAINERID=%s... CNI_NETNS=/run/netns/pod-a podwire < kindnet.conf\n' "${id_a:0:12}"
if cni DEL "$id_a" /run/netns/pod-a; then check_pass "DEL pod-a exits 0"; else check_fail "DEL pod-a exits 0" "$(cat "$work/out" "$work/err")"; fi
printf 'runtime$ CNI_COMMAND=DEL CNI_CONTAINERID=%s... CNI_NETNS= podwire < kindnet.conf     (empty netns, as containerd sends)\n' "${id_b:0:12}"
if cni DEL "$id_b" ""; then check_pass "DEL pod-b with an empty CNI_NETNS exits 0"; else check_fail "DEL pod-b with an empty CNI_NETNS exits 0" "$(cat "$work/out" "$work/err")"; fi
printf 'runtime$ CNI_COMMAND=DEL CNI_CONTAINERID=%s... CNI_NETNS= podwire < kindnet.conf     (again)\n' "${id_b:0:12}"
if cni DEL "$id_b" ""; then check_pass "a second DEL of pod-b exits 0 (idempotent)"; else check_fail "a second DEL of pod-b exits 0 (idempotent)" "$(cat "$work/out" "$work/err")"; fi
echo

show node "ip -br link show type veth" ip -br link show type veth
check_equal "no veth is left on the node" "" "$(ip -o link show type veth)"
show pod-b "ip -br link" ip netns exec pod-b ip -br link
check_no_match "pod B's eth0 is gone too" '^eth0' "$(ip netns exec pod-b ip -br link)"
show node "ip route | grep 10.244.1" bash -c "ip route | grep 10.244.1 || true"
check_equal "no 10.244.1.x host route is left" "" "$(ip route | grep 10.244.1 || true)"
show node "ls -lAR $ipam_dir/kindnet" ls -lAR "$ipam_dir/kindnet"
# Left over would be: a file named after a pod address (host-local's and podwire's record), or
# any file naming or holding either container ID (podwire's .podwire/ index).
leftover=$(
    find "$ipam_dir/kindnet" -type f 2>/dev/null | while read -r file; do
        name=${file##*/}
        if [[ $name =~ ^10\.244\.1\.[0-9]+$ || $name == *"$id_a"* || $name == *"$id_b"* ]] ||
            grep -qs -e "$id_a" -e "$id_b" "$file"; then
            echo "${file#"$ipam_dir/kindnet/"}"
        fi
    done
)
check_equal "no address is still allocated in $ipam_dir/kindnet" "" "$leftover"
ip netns delete pod-a
ip netns delete pod-b

echo
podwire_checks_summary demo
