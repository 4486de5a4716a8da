#!/usr/bin/env bash
# Runs every podwire test on a fresh Debian 12 machine: installs what is missing, builds with
# warnings treated as failures, runs the unit and namespace tests as root, fuzzes the readers of
# untrusted bytes with both JSON oracles, runs the namespace tests again against the static
# release binary a node installs, and runs them both (debug and release binary) once more as an
# unprivileged user.
#
# It counts what ran, from each Swift Testing run's own event stream, against the tests the bundle
# holds (`swift test list`): a test that was skipped, never ran, or ran without being listed fails
# the run as surely as one that failed. The last line is "N passed, N failed" over every test of
# every run and every check around them; the exit status is 0 only when N failed is 0.
#
# Nothing here touches this machine's network: every test that creates interfaces, routes or
# sysctls does so inside a private user+network+mount namespace it made itself.
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/lib/deps.sh
podwire_install_deps "${PODWIRE_RUNTIME_DEPS[@]}"

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

# Scratch space the unprivileged runs can read and write into (mktemp makes it 0700).
work=$(mktemp -d /tmp/podwire-test.XXXXXX)
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
totals="$work/totals"
: >"$totals"
# SwiftPM leaves a few empty TemporaryDirectory.* folders in $TMPDIR at every invocation: keep
# them, and everything else the runs put there, in the scratch space removed at the end.
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"

# One check that is not a Swift test (the build, the fuzzer, a static link...): one line, counted
# in the closing line like a test.
check_passed() { echo "check: $1: passed"; echo "1 0" >>"$totals"; }
check_failed() { echo "check: $1: FAILED${2:+: $2}"; echo "0 1" >>"$totals"; }

closing_line() {
    local passed failed
    passed=$(awk '{ p += $1 } END { print p + 0 }' "$totals")
    failed=$(awk '{ f += $2 } END { print f + 0 }' "$totals")
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

# The README tells people to run these directly: a clone must give them the executable bit.
for script in Scripts/demo.sh Scripts/test.sh Scripts/bench.sh Scripts/install.sh Scripts/fuzz.sh Scripts/order.sh .ci/run; do
    if [ -x "$script" ]; then
        check_passed "$script is executable"
    else
        check_failed "$script is executable" "git update-index --chmod=+x $script"
    fi
done

echo "== build (warnings are failures)"
build_log="$work/build.log"
swift build --build-tests 2>&1 | tee "$build_log" | grep -E "error|warning:|Compiling|Build" || true
if grep -qE "^(/.*: )?(error|warning):" "$build_log" || ! grep -q "Build complete" "$build_log"; then
    check_failed "swift build --build-tests" "the build printed errors or warnings (see above)"
    closing_line || true
    exit 1
fi
check_passed "swift build --build-tests without warnings"

bin_dir=$(swift build --show-bin-path)
export PODWIRE_BIN="$bin_dir/podwire"

# Every test function the bundle holds: what each run is measured against.
tests_list="$work/tests.list"
swift test list --skip-build 2>/dev/null | grep -E '^[A-Za-z_][A-Za-z0-9_]*\.' >"$tests_list" || true
if [ ! -s "$tests_list" ]; then
    check_failed "swift test list" "it listed no tests"
    closing_line || true
    exit 1
fi
echo "== the bundle holds $(wc -l <"$tests_list") tests ($(grep -c '^IntegrationTests\.' "$tests_list") namespace tests)"

echo "== install.sh into a scratch directory (atomic rename, no temporary file left)"
scratch="$work/install"
if ! Scripts/install.sh --release-dir "$bin_dir" --bin-dir "$scratch/bin" --conf-dir "$scratch/net.d" \
        --path-dir "$scratch/sbin" >/dev/null; then
    check_failed "install.sh" "it exited non-zero"
else
    for pair in "$bin_dir/podwire $scratch/bin/podwire" "$bin_dir/podwire-ipam $scratch/bin/podwire-ipam" \
        "$bin_dir/podwirectl $scratch/bin/podwirectl" "$bin_dir/podwirectl $scratch/sbin/podwirectl" \
        "conf/10-podwire.conflist $scratch/net.d/10-podwire.conflist"; do
        read -r source installed <<<"$pair"
        if cmp "$source" "$installed"; then
            check_passed "install.sh installed $(basename "$installed") unchanged"
        else
            check_failed "install.sh installed $(basename "$installed") unchanged"
        fi
    done
    if find "$scratch" -name '.*.tmp.*' | grep -q .; then
        check_failed "install.sh leaves no temporary file" "$(find "$scratch" -name '.*.tmp.*')"
    else
        check_passed "install.sh leaves no temporary file"
    fi
fi

# run_tests LABEL FILTER SKIP COMMAND...: runs one Swift Testing run writing its event stream, then
# counts it against the tests the list holds that FILTER selects (empty: all) and SKIP does not
# (the same regular expressions the runner is given). The runner's output goes to the console as
# it comes; its exit status must agree with the count.
report_script="$PWD/Scripts/lib/test-report.py"
run_tests() {
    local label=$1 filter=$2 skip=$3 events status=0
    shift 3
    events="$work/events-${label//[^a-z0-9]/-}"
    mkdir -p "$events" && chmod 0777 "$events"
    echo "== $label"
    "$@" --event-stream-output-path "$events/stream.jsonl" --event-stream-version 0 || status=$?
    local report=(python3 "$report_script" --label "$label" --list "$tests_list"
        --events "$events/stream.jsonl" --totals "$totals")
    if [ -n "$filter" ]; then report+=(--filter "$filter"); fi
    if [ -n "$skip" ]; then report+=(--skip "$skip"); fi
    if ! "${report[@]}"; then
        return 0 # counted and listed by the report
    fi
    if [ "$status" -ne 0 ]; then
        check_failed "$label" "every test passed, yet the runner exited $status"
    fi
}

# The CRI client's protobuf encoding against bytes worked out by hand (-B: no __pycache__ in the tree).
if /usr/bin/python3 -B Tests/Runtimes/cri/test_cri.py; then
    check_passed "the CRI client's wire format (Tests/Runtimes/cri/test_cri.py)"
else
    check_failed "the CRI client's wire format (Tests/Runtimes/cri/test_cri.py)"
fi

run_tests "swift test (root)" "" "" swift test --skip-build

echo "== fuzzing the config and result readers (30 s, both JSON oracles)"
if Scripts/fuzz.sh 30; then
    check_passed "fuzzing for 30 s found nothing"
else
    check_failed "fuzzing for 30 s" "see the finding above"
fi

# What a node runs is the static release binary, linked differently (lld, the hot functions packed
# first, the runtime's argv finder replaced): the namespace tests run again against it.
echo "== the release binary: static, then the namespace tests against it"
source Scripts/lib/release.sh
release_dir=""
if release_dir=$(podwire_build_release); then
    check_passed "release build"
    linkage=$(ldd "$release_dir/podwire" 2>&1 || true)
    if grep -q "not a dynamic executable" <<<"$linkage"; then
        check_passed "the release podwire is static"
    else
        check_failed "the release podwire is static" "$linkage"
    fi
    PODWIRE_BIN="$release_dir/podwire" run_tests "namespace and runtime tests, release binary (root)" "IntegrationTests" "" \
        swift test --skip-build --filter IntegrationTests
else
    check_failed "release build"
fi

# As an unprivileged user (uid 65534 in a user namespace of its own), against both binaries. A
# machine where that user cannot make a user namespace fails here, with the reason: the tests
# must be shown to need no privilege. The real runtimes (containerd, podman, libcni under real
# root) are the exception: they ran as root above.
runtime_suites='IntegrationTests\.Runtime'

bundle=$(find "$bin_dir" -maxdepth 1 -name '*PackageTests.xctest' | head -n 1)
unprivileged=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all)
if [ "$(id -u)" != 0 ]; then
    check_failed "unprivileged namespace tests" "test.sh runs them as uid 65534 and must itself run as root"
elif [ -z "$bundle" ]; then
    check_failed "unprivileged namespace tests" "no *PackageTests.xctest in $bin_dir"
elif ! probe=$("${unprivileged[@]}" unshare -Urnm true 2>&1); then
    check_failed "unprivileged namespace tests" \
        "uid 65534 cannot make a user namespace here (unshare -Urnm: ${probe:-no message}); see kernel.unprivileged_userns_clone and AppArmor's userns restrictions"
else
    for binary in "$PODWIRE_BIN" ${release_dir:+"$release_dir/podwire"}; do
        kind=debug
        [ "$binary" = "$PODWIRE_BIN" ] || kind=release
        (cd /tmp && run_tests "namespace tests, $kind binary (uid 65534)" "IntegrationTests" "$runtime_suites" \
            "${unprivileged[@]}" env HOME=/tmp TMPDIR=/tmp PODWIRE_BIN="$binary" "$bundle" --testing-library swift-testing \
            --filter IntegrationTests --skip "$runtime_suites")
    done
fi

echo "== all runs"
closing_line
