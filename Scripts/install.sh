#!/usr/bin/env bash
# Installs podwire on a node: the static release binaries (the plugins and podwirectl) into the
# CNI bin directory, podwirectl on the operator's PATH (a symlink in --path-dir), and the conflist
# into the CNI config directory. Every file is written under a temporary name in its final
# directory and renamed into place, so a runtime exec'ing plugins or reading configs meanwhile
# sees either the old file or the new one, never half of one.
#
#   Scripts/install.sh [--bin-dir /opt/cni/bin] [--conf-dir /etc/cni/net.d] [--path-dir /usr/local/sbin]
#                      [--conflist conf/10-podwire.conflist] [--release-dir DIR]
#
# --release-dir takes binaries built earlier (by Scripts/lib/release.sh) instead of building.
# --path-dir '' leaves PATH alone.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=/opt/cni/bin
conf_dir=/etc/cni/net.d
conflist=conf/10-podwire.conflist
path_dir=/usr/local/sbin
release_dir=
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir=$2; shift 2 ;;
        --conf-dir) conf_dir=$2; shift 2 ;;
        --conflist) conflist=$2; shift 2 ;;
        --path-dir) path_dir=$2; shift 2 ;;
        --release-dir) release_dir=$2; shift 2 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if [ -z "$release_dir" ]; then
    source Scripts/lib/deps.sh
    podwire_install_deps
    if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    source Scripts/lib/release.sh
    release_dir=$(podwire_build_release)
fi

# A conflist that does not parse would make the runtime skip the network: refuse it here.
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$conflist"

# install_atomically SOURCE DESTINATION MODE: copy to a hidden temporary name beside the
# destination (same filesystem, so rename is atomic), flush it to disk, then rename over.
# Runtimes skip hidden files: libcni reads only *.conf, *.conflist and *.json, and execs
# plugins by their exact type name.
#
# The copy is one write of the whole file (dd with a block larger than it), not cp's pieces:
# a filesystem with large folios (ext4 and xfs on current kernels) then caches the binary in
# 2 MiB folios, which the kernel maps a PMD at a time when podwire starts (see
# Scripts/lib/release.sh). On this machine that took an ADD from about 96 page faults to 67.
install_atomically() {
    local source=$1 destination=$2 mode=$3
    local directory temporary
    directory=$(dirname "$destination")
    mkdir -p "$directory"
    temporary="$directory/.$(basename "$destination").tmp.$$"
    # Expanded now: the function's locals are gone when an EXIT trap runs.
    trap "rm -f '$temporary'" EXIT
    dd if="$source" of="$temporary" bs=64M status=none
    chmod "$mode" "$temporary"
    sync "$temporary"
    mv -f -T "$temporary" "$destination"
    trap - EXIT
    echo "installed $destination"
}

install_atomically "$release_dir/podwire" "$bin_dir/podwire" 0755
install_atomically "$release_dir/podwire-ipam" "$bin_dir/podwire-ipam" 0755
if [ ! -f "$release_dir/podwirectl" ]; then
    # A build from before podwirectl existed (Scripts/bench-ab.sh installs old revisions too).
    echo "install.sh: no podwirectl in $release_dir: the plugins only" >&2
    path_dir=
else
    install_atomically "$release_dir/podwirectl" "$bin_dir/podwirectl" 0755
fi
if [ -n "$path_dir" ]; then
    # A symlink renamed into place: the operator's podwirectl is always the one beside the plugins.
    mkdir -p "$path_dir"
    ln -sfn "$(cd "$bin_dir" && pwd)/podwirectl" "$path_dir/.podwirectl.tmp.$$"
    mv -f -T "$path_dir/.podwirectl.tmp.$$" "$path_dir/podwirectl"
    echo "installed $path_dir/podwirectl -> $bin_dir/podwirectl"
fi
install_atomically "$conflist" "$conf_dir/$(basename "$conflist")" 0644
