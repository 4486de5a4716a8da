#!/usr/bin/env bash
# Runs every podwire test on a fresh Debian 12 machine: installs what is missing, builds with
# warnings treated as failures, runs the unit and namespace tests as root, the namespace tests
# again against the static release binary a node installs, and once more as an unprivileged user
# (where the kernel allows user namespaces).
#
# Nothing here touches this machine's network: every test that creates interfaces, routes or
# sysctls does so inside a private user+network+mount namespace it made itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib/deps.sh
podwire_install_deps

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

# The README tells people to run these directly: a clone must give them the executable bit.
for script in Scripts/demo.sh Scripts/test.sh Scripts/bench.sh Scripts/install.sh Scripts/fuzz.sh Scripts/order.sh .ci/run; do
    [ -x "$script" ] || { echo "test.sh: $script is not executable (git update-index --chmod=+x $script)" >&2; exit 1; }
done

echo "== build (warnings are failures)"
build_log=$(mktemp)
trap 'rm -f "$build_log"' EXIT
swift build --build-tests 2>&1 | tee "$build_log" | grep -E "error|warning:|Compiling|Build" || true
if grep -qE "^(/.*: )?(error|warning):" "$build_log" || ! grep -q "Build complete" "$build_log"; then
    echo "test.sh: the build printed errors or warnings (see above)" >&2
    exit 1
fi

bin_dir=$(swift build --show-bin-path)
export PODWIRE_BIN="$bin_dir/podwire"

echo "== install.sh into a scratch directory (atomic rename, no temporary file left)"
scratch=$(mktemp -d)
Scripts/install.sh --release-dir "$bin_dir" --bin-dir "$scratch/bin" --conf-dir "$scratch/net.d" >/dev/null
cmp "$bin_dir/podwire" "$scratch/bin/podwire" && cmp "$bin_dir/podwire-ipam" "$scratch/bin/podwire-ipam"
cmp conf/10-podwire.conflist "$scratch/net.d/10-podwire.conflist"
if find "$scratch" -name '.*.tmp.*' | grep -q .; then echo "install.sh left a temporary file" >&2; exit 1; fi
rm -rf "$scratch"

echo "== swift test (root)"
swift test --skip-build

echo "== fuzzing the config and result readers (20 s)"
PODWIRE_FUZZ_ORACLE=0 Scripts/fuzz.sh 20

# What a node runs is the static release binary, linked differently (lld, the hot functions packed
# first, the runtime's argv finder replaced): the namespace tests run again against it.
echo "== the release binary: static, then the namespace tests against it"
source Scripts/lib/release.sh
release_dir=$(podwire_build_release)
linkage=$(ldd "$release_dir/podwire" 2>&1 || true)
if ! grep -q "not a dynamic executable" <<<"$linkage"; then
    echo "test.sh: the release podwire is not static: $linkage" >&2
    exit 1
fi
PODWIRE_BIN="$release_dir/podwire" swift test --skip-build --filter IntegrationTests

if [ "$(id -u)" = 0 ] && setpriv --reuid=65534 --regid=65534 --clear-groups unshare -Urnm true 2>/dev/null; then
    echo "== namespace tests as an unprivileged user (uid 65534 in a user namespace of its own)"
    bundle=$(find "$bin_dir" -maxdepth 1 -name '*PackageTests.xctest' | head -n 1)
    cd /tmp
    setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
        env HOME=/tmp PODWIRE_BIN="$PODWIRE_BIN" "$bundle" --testing-library swift-testing --filter IntegrationTests
else
    echo "== unprivileged namespace tests skipped: user namespaces are not available to uid 65534 here"
fi

