#!/usr/bin/env bash
# Two builds of podwire side by side in one run: REV (a commit, built in a worktree of its own)
# against the working tree, ADD and DEL medians per configuration, inside a private user +
# network + mount namespace (this machine's own network is never touched).
#
#   Scripts/bench-ab.sh REV [--iterations 200] [--pods 1000]
#
# For a change that must not slow a pod down: bench.sh's ratios against the reference drift
# with the machine between runs by more than a few percent; turns taken in one run do not.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --inside ]; then
    shift
    mount -t tmpfs -o mode=0755 tmpfs /run
    mkdir -p /run/netns
    exec python3 Scripts/bench/ab.py "$@"
fi

rev=${1:?usage: Scripts/bench-ab.sh REV [--iterations N] [--pods N]}
shift
source Scripts/lib/deps.sh
podwire_install_deps
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
source Scripts/lib/release.sh
work=$(mktemp -d)
trap 'git worktree remove --force "$work/before-tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

echo "== release build of $rev"
git worktree add --detach "$work/before-tree" "$rev" >/dev/null
before_release=$(cd "$work/before-tree" && podwire_build_release)
echo "== release build of the working tree"
after_release=$(podwire_build_release)
# Installed as a node installs them (install.sh writes each binary in one piece).
Scripts/install.sh --release-dir "$before_release" --bin-dir "$work/before" --conf-dir "$work/net.d" --path-dir "" >/dev/null
Scripts/install.sh --release-dir "$after_release" --bin-dir "$work/after" --conf-dir "$work/net.d" --path-dir "" >/dev/null
echo "== $rev (before) against the working tree (after)"
unshare -Urnm --propagation private bash "$0" --inside --before "$work/before" --after "$work/after" "$@"
