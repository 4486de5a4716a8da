#!/usr/bin/env bash
# Fuzzes podwire's readers of untrusted bytes (network config, prevResult, results of every
# version, VERSION requests, CNI_* variables, the IPAM config, resolv.conf text) with libFuzzer,
# and judges podwire's own JSON reader on every input against two others: Go's encoding/json
# (what runtimes read CNI configs with; Fuzz/gojudge, a co-process of the target) and Foundation's
# JSONDecoder (Fuzz/FoundationJudge.swift). See Fuzz/README.md.
#
#     Scripts/fuzz.sh [SECONDS]      build if needed, replay Fuzz/regressions, fuzz SECONDS (default 60)
#     Scripts/fuzz.sh FILE...        build if needed and run just these inputs (a reproducer)
#
# The target (Fuzz/ConfigResultFuzzer.swift) is compiled with swiftc straight from the module
# sources, outside SwiftPM, so Package.swift stays free of sanitizer flags; the Go judge is built
# with Debian's golang-go (installed if missing) in GOPATH mode, standard library only. Everything
# either writes goes under .build-fuzz/: the binaries, Go's cache, the growing corpus and any
# crashing input. Exits 0 when nothing was found, 1 on a finding (printing the reproducer path)
# or any other failure of libFuzzer (the corpus merge included), 2 when the build fails.
#
# PODWIRE_FUZZ_SANITIZERS overrides the sanitizers (default "fuzzer,address"). Swift's own checks
# (overflow, bounds, unwrap) trap either way; ASan adds checks on unsafe-pointer and C code.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v swiftc >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swiftc ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

# PODWIRE_FUZZ_WORK (default .build-fuzz) lets two configurations run side by side.
work=${PODWIRE_FUZZ_WORK:-.build-fuzz}
bin="$work/podwire-fuzz"
# The target starts the Go judge from its own directory (Fuzz/GoJudge.swift).
go_judge="$work/podwire-gojudge"
sanitizers=${PODWIRE_FUZZ_SANITIZERS:-fuzzer,address}
# -O keeps every Swift runtime check (overflow, bounds, force unwrap, precondition) and runs
# several times faster than -Onone; lld avoids gold's "cannot export local symbol" noise with ASan.
flags=(-O -swift-version 6 -parse-as-library -sanitize="$sanitizers" -use-ld=lld)
modules=(NetAddress CNIProtocol LinuxSystem PodIPAM)
# The clang that ships with swiftc: its sanitizer runtimes are the ones swiftc links.
toolchain_clang="$(dirname "$(readlink -f "$(command -v swiftc)")")/clang"

build() {
    local stamp_file="$work/build.stamp" stamp
    stamp=$( { swiftc --version 2>&1; echo "${flags[*]}";
               cat Sources/CLinuxShim/shim.c Sources/CLinuxShim/include/*.h \
                   Sources/NetAddress/*.swift Sources/CNIProtocol/*.swift Sources/LinuxSystem/*.swift Sources/PodIPAM/*.swift Fuzz/*.swift \
                   Tests/SeededRandom/*.swift; } | sha256sum)
    if [ -x "$bin" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    echo "== building the fuzz target ($sanitizers)"
    rm -rf "$work/modules" && mkdir -p "$work/modules/CLinuxShim"
    rm -f "$stamp_file"
    # LinuxSystem and PodIPAM use CLinuxShim (Package.swift lists it): compile it and give it a module map.
    "$toolchain_clang" -O1 -D_GNU_SOURCE -fsanitize="${sanitizers/fuzzer/fuzzer-no-link}" -I Sources/CLinuxShim/include \
        -c Sources/CLinuxShim/shim.c -o "$work/modules/CLinuxShim.o" || return 2
    printf 'module CLinuxShim {\n    header "%s"\n    export *\n}\n' "$PWD/Sources/CLinuxShim/include/CLinuxShim.h" \
        > "$work/modules/CLinuxShim/module.modulemap"
    local module objects=("$work/modules/CLinuxShim.o")
    for module in "${modules[@]}"; do
        # Whole-module, one object per module: the same module boundaries as the SwiftPM build.
        swiftc "${flags[@]}" -wmo -module-name "$module" -I "$work/modules" -I "$work/modules/CLinuxShim" \
            -Xcc -D_GNU_SOURCE -emit-module -emit-module-path "$work/modules/$module.swiftmodule" \
            -c Sources/"$module"/*.swift -o "$work/modules/$module.o" || return 2
        objects+=("$work/modules/$module.o")
    done
    swiftc "${flags[@]}" -module-name PodwireFuzz -I "$work/modules" -I "$work/modules/CLinuxShim" \
        Fuzz/*.swift Tests/SeededRandom/*.swift "${objects[@]}" -o "$bin" || return 2
    echo "$stamp" > "$stamp_file"
}

# What a finding looks like in libFuzzer's log: print the part that matters and where the input is.
report_finding() {
    local log=$1 artifact
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "--- fuzz finding (full log: $log)"
    # awk rather than grep | head: no match and a long log are not errors; the reproducer must print.
    awk '/Fatal error|fuzz invariant|ERROR: |SUMMARY: |^    #[0-9]+ .* in \$s|^gojudge|^panic:/ && n++ < 30' "$log" \
        | { swift demangle --simplified 2>/dev/null || cat; }
    if [ -n "$artifact" ]; then
        echo "reproducer: $artifact"
        echo "replay with: Scripts/fuzz.sh $artifact"
    fi
}

# The Go judge: Debian's golang-go, GOPATH mode (there is no module proxy to reach), standard
# library only; Go's cache and GOPATH live in the work directory, nothing goes to $HOME.
build_go_judge() {
    local stamp_file="$work/gojudge.stamp" stamp
    if ! command -v go >/dev/null 2>&1; then
        # shellcheck source=Scripts/lib/deps.sh
        source Scripts/lib/deps.sh
        podwire_install_deps golang-go || return 2
    fi
    stamp=$( { go version; cat Fuzz/gojudge/*.go; } | sha256sum)
    if [ -x "$go_judge" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    echo "== building the Go judge ($(go version))"
    rm -f "$stamp_file"
    mkdir -p "$work/go/cache" "$work/go/path"
    GO111MODULE=off GOENV=off GOFLAGS= GOCACHE="$(realpath "$work/go/cache")" GOPATH="$(realpath "$work/go/path")" \
        go build -o "$go_judge" ./Fuzz/gojudge || return 2
    echo "$stamp" > "$stamp_file"
}

mkdir -p "$work"
build || { echo "fuzz.sh: the fuzz target did not build" >&2; exit 2; }
build_go_judge || { echo "fuzz.sh: the Go judge did not build" >&2; exit 2; }

# Swift's own crash handler hangs for minutes symbolicating inside libFuzzer's signal handler;
# libFuzzer's and ASan's reports are enough. Leaks are not findings: a plugin lives for one request.
export SWIFT_BACKTRACE=enable=no
# A small quarantine keeps ASan from holding ~1 GB of freed memory on a machine shared with others.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:quarantine_size_mb=16:malloc_context_size=5}

mkdir -p "$work/corpus" "$work/artifacts" "$work/logs"
log="$work/logs/fuzz-$(date +%Y%m%d-%H%M%S).log"

if [ $# -gt 0 ] && ! [[ $1 =~ ^[0-9]+$ ]]; then
    if "$bin" -runs=1 -timeout=10 "$@" > "$log" 2>&1; then
        echo "fuzz.sh: $# input(s) ran cleanly"
        exit 0
    fi
    report_finding "$log"
    exit 1
fi
seconds=${1:-60}

# Every past finding first: each must now run cleanly (and within the timeout: one input there once
# took 11 s).
regressions=(Fuzz/regressions/*)
if [ -e "${regressions[0]}" ]; then
    if ! "$bin" -runs=1 -timeout=10 "${regressions[@]}" > "$log" 2>&1; then
        echo "fuzz.sh: a past finding crashes again" >&2
        report_finding "$log"
        exit 1
    fi
    echo "== ${#regressions[@]} regression input(s) ran cleanly"
fi

echo "== fuzzing for ${seconds}s (corpus: $work/corpus, seeds: Fuzz/corpus; log: $log)"
# New inputs go to the first corpus directory, so the committed seeds stay as they are.
status=0
"$bin" -max_total_time="$seconds" -timeout=10 -max_len=8192 -dict=Fuzz/cni.dict \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 -print_pcs=0 \
    "$work/corpus" Fuzz/corpus > "$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    report_finding "$log"
    exit 1
fi
if ! grep -E "^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::new_units_added" "$log"; then
    echo "fuzz.sh: libFuzzer exited 0 without its final statistics (log: $log)" >&2
    exit 1
fi

# libFuzzer keeps every input that ever added coverage; when that pile gets large, keep only a
# minimal set with the same coverage, so the next run starts quickly. The merge runs every input
# again, judges included: libFuzzer's merge survives a crashing input (it restarts its worker and
# goes on, exiting 0), so a crash, timeout or out-of-memory there is found in its log instead.
if [ "$(find "$work/corpus" -type f | wc -l)" -gt 3000 ]; then
    echo "== minimizing the corpus"
    merge_log="$work/logs/merge-$(date +%Y%m%d-%H%M%S).log"
    rm -rf "$work/corpus.min" && mkdir "$work/corpus.min"
    status=0
    "$bin" -merge=1 -timeout=10 -artifact_prefix="$work/artifacts/" \
        "$work/corpus.min" "$work/corpus" Fuzz/corpus > "$merge_log" 2>&1 || status=$?
    if [ "$status" -ne 0 ] || grep -qE "^==[0-9]+== ?ERROR: |ERROR: libFuzzer|Test unit written to|fuzz invariant|Fatal error" "$merge_log"; then
        echo "fuzz.sh: the corpus merge failed (exit $status)" >&2
        report_finding "$merge_log"
        exit 1
    fi
    rm -rf "$work/corpus" && mv "$work/corpus.min" "$work/corpus"
fi
echo "fuzz.sh: no findings in ${seconds}s"
