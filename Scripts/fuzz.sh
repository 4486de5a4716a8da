#!/usr/bin/env bash
# Fuzzes podwire's readers of untrusted bytes (network config, prevResult, results of every
# version, VERSION requests, CNI_* variables, the IPAM config, resolv.conf text) with libFuzzer,
# and checks podwire's own JSON reader against Foundation's (Fuzz/ParserOracle.swift).
#
#     Scripts/fuzz.sh [SECONDS]      build if needed, replay Fuzz/regressions, fuzz SECONDS (default 60)
#     Scripts/fuzz.sh FILE...        build if needed and run just these inputs (a reproducer)
#
# The target (Fuzz/ConfigResultFuzzer.swift) is compiled with swiftc straight from the module
# sources, outside SwiftPM, so Package.swift stays free of sanitizer flags. Everything it writes
# goes under .build-fuzz/: the binary, the growing corpus and any crashing input. Exits 0 when
# nothing was found, 1 on a finding (printing the reproducer path), 2 when the build fails.
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
sanitizers=${PODWIRE_FUZZ_SANITIZERS:-fuzzer,address}
# -O keeps every Swift runtime check (overflow, bounds, force unwrap, precondition) and runs
# several times faster than -Onone; lld avoids gold's "cannot export local symbol" noise with ASan.
flags=(-O -swift-version 6 -parse-as-library -sanitize="$sanitizers" -use-ld=lld)
modules=(NetAddress CNIProtocol PodIPAM)
# The clang that ships with swiftc: its sanitizer runtimes are the ones swiftc links.
toolchain_clang="$(dirname "$(readlink -f "$(command -v swiftc)")")/clang"

build() {
    local stamp_file="$work/build.stamp" stamp
    stamp=$( { swiftc --version 2>&1; echo "${flags[*]}";
               cat Sources/CLinuxShim/shim.c Sources/CLinuxShim/include/*.h \
                   Sources/NetAddress/*.swift Sources/CNIProtocol/*.swift Sources/PodIPAM/*.swift Fuzz/*.swift \
                   Tests/SeededRandom/*.swift; } | sha256sum)
    if [ -x "$bin" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    echo "== building the fuzz target ($sanitizers)"
    rm -rf "$work/modules" && mkdir -p "$work/modules/CLinuxShim"
    rm -f "$stamp_file"
    # PodIPAM may use CLinuxShim (Package.swift lists it): compile it and give it a module map.
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
    grep -E "Fatal error|fuzz invariant|ERROR: |SUMMARY: |^    #[0-9]+ .* in \\\$s" "$log" | head -n 30 \
        | { swift demangle --simplified 2>/dev/null || cat; } || true
    if [ -n "$artifact" ]; then
        echo "reproducer: $artifact"
        echo "replay with: Scripts/fuzz.sh $artifact"
    fi
}

build || { echo "fuzz.sh: the fuzz target did not build" >&2; exit 2; }

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
grep -E "^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::new_units_added" "$log" || true

# libFuzzer keeps every input that ever added coverage; when that pile gets large, keep only a
# minimal set with the same coverage, so the next run starts quickly.
if [ "$(find "$work/corpus" -type f | wc -l)" -gt 3000 ]; then
    echo "== minimizing the corpus"
    rm -rf "$work/corpus.min" && mkdir "$work/corpus.min"
    if "$bin" -merge=1 "$work/corpus.min" "$work/corpus" Fuzz/corpus >> "$log" 2>&1; then
        rm -rf "$work/corpus" && mv "$work/corpus.min" "$work/corpus"
    fi
fi
echo "fuzz.sh: no findings in ${seconds}s"
