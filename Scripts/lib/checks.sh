# shellcheck shell=bash
# Tiny expectation helpers for shell demos and tests: each check prints one "ok" or "FAIL" line,
# and podwire_checks_summary prints "<label>: N checks passed, M failed" and fails if any failed.
#
#     check "pod A can ping pod B" ip netns exec pod-a ping -c1 -W2 10.244.1.3
#     check_equal "pod A's routes" "$expected" "$(ip netns exec pod-a ip route)"
#     check_match "the capture shows the echo request" '10\.244\.1\.2 .* ICMP' "$capture"
#     podwire_checks_summary demo || exit 1

PODWIRE_CHECKS_PASSED=0
PODWIRE_CHECKS_FAILED=0
PODWIRE_CHECKS_FAILURES=()

check_pass() {
    PODWIRE_CHECKS_PASSED=$((PODWIRE_CHECKS_PASSED + 1))
    printf '  [ok]   %s\n' "$1"
}

check_fail() {
    PODWIRE_CHECKS_FAILED=$((PODWIRE_CHECKS_FAILED + 1))
    PODWIRE_CHECKS_FAILURES+=("$1")
    printf '  [FAIL] %s\n' "$1"
    if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/           /'; fi
}

# check WHAT COMMAND...: passes if the command exits 0 (its output is discarded).
check() {
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then check_pass "$what"; else check_fail "$what" "(failed: $*)"; fi
}

# check_equal WHAT EXPECTED ACTUAL: exact match after trimming trailing blanks on each line.
check_equal() {
    local expected actual
    expected=$(printf '%s\n' "$2" | sed 's/[[:space:]]*$//')
    actual=$(printf '%s\n' "$3" | sed 's/[[:space:]]*$//')
    if [ "$expected" = "$actual" ]; then
        check_pass "$1"
    else
        check_fail "$1" "$(printf 'expected:\n%s\ngot:\n%s' "$(printf '%s\n' "$expected" | sed 's/^/  /')" \
            "$(printf '%s\n' "${actual:-(nothing)}" | sed 's/^/  /')")"
    fi
}

# check_match WHAT ERE TEXT: passes if some line of TEXT matches the extended regex.
check_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then
        check_pass "$1"
    else
        check_fail "$1" "(no line matches /$2/)"
    fi
}

# check_no_match WHAT ERE TEXT: passes if no line of TEXT matches the extended regex.
check_no_match() {
    local hits
    hits=$(printf '%s\n' "$3" | grep -E -- "$2" || true)
    if [ -z "$hits" ]; then check_pass "$1"; else check_fail "$1" "(unexpected: $hits)"; fi
}

# podwire_checks_summary LABEL: the closing line; returns 1 if any check failed.
podwire_checks_summary() {
    if [ "$PODWIRE_CHECKS_FAILED" -gt 0 ]; then
        echo "failed checks:"
        printf '  - %s\n' "${PODWIRE_CHECKS_FAILURES[@]}"
    fi
    echo "${1:-checks}: $PODWIRE_CHECKS_PASSED checks passed, $PODWIRE_CHECKS_FAILED failed"
    [ "$PODWIRE_CHECKS_FAILED" -eq 0 ]
}
