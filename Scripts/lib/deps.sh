# shellcheck shell=bash
# Installs, with apt-get, the Debian 12 packages podwire's build, tests and demo need, and only
# those that are missing. Quiet when everything is already there; idempotent. Source it, then:
#
#     podwire_install_deps              # the packages below
#     podwire_install_deps tcpdump      # ... plus any extra ones a caller needs
#
# Safe under `set -euo pipefail`. Returns non-zero (with apt's log on stderr) if an install fails,
# or if something is missing and this is not root.

PODWIRE_DEPS=(
    libnl-3-dev libnl-route-3-dev libmnl-dev pkgconf   # build: libnl headers and pkg-config
    iproute2 iputils-ping util-linux procps            # ip, ping, unshare/nsenter, sysctl/pgrep
    tshark                                             # packet captures in the demo
    containernetworking-plugins                        # host-local and friends in /usr/lib/cni
    iptables                                           # portmap's nat rules in the chaining tests
    nftables                                           # nft, to read back ipMasq's table in the tests
    strace                                             # kill-before-every-write crash tests, the no-exec trace
    conntrack                                          # conntrack -I / -L in the ctnetlink kernel tests
    e2fsprogs                                          # chattr, for the store tests of immutable files
    python3 gcc                                        # the benchmark driver and its floor probes
    python3-prometheus-client                          # the call-log test parses podwirectl stats --prometheus with it
)

# What the real-runtime tests drive podwire with (Scripts/test.sh installs these too): containerd's
# CRI with runc, podman, and libcni through a Go client, with a pause image and a busybox image
# built locally, and a CRI client in Python over Debian's grpcio.
PODWIRE_RUNTIME_DEPS=(
    containerd runc podman busybox-static              # the runtimes, and busybox for podman's image
    libc6-dev                                          # libc.a for the static pause binary (gcc only recommends it)
    golang-go golang-github-appc-cni-dev               # libcni 1.1.2 in GOPATH mode, for the Go client
    python3-grpcio                                     # the CRI client (hand-encoded protobuf over gRPC)
)

# True if the Debian package is installed (not merely known or half-configured).
podwire_package_installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [ "$status" = "install ok installed" ]
}

# shellcheck disable=SC2120 # the extra packages are optional
podwire_install_deps() {
    local missing=() package
    for package in "${PODWIRE_DEPS[@]}" "$@"; do
        podwire_package_installed "$package" || missing+=("$package")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    if [ "$(id -u)" != 0 ]; then
        echo "podwire: missing packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
        return 1
    fi
    echo "podwire: installing ${missing[*]}" >&2
    local log
    log=$(mktemp)
    # tshark's postinst asks whether non-root users may capture; answer it up front (no setuid dumpcap).
    if printf '%s\n' "${missing[@]}" | grep -qx -e tshark -e wireshark-common; then
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    fi
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}" >>"$log" 2>&1; then
        rm -f "$log"
        return 0
    fi
    echo "podwire: apt-get failed installing ${missing[*]}:" >&2
    tail -n 30 "$log" >&2
    rm -f "$log"
    return 1
}
