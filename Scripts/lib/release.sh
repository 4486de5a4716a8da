# Builds the release binaries a node runs: fully static (-static-executable), with the Swift
# standard library and libnl linked in and symbols stripped, so they need no Swift toolchain and
# no libnl on the node and start without the dynamic loader. Cross-module optimization lets the
# compiler specialize the generic code of podwire's own modules where it is used: about a fifth
# fewer instructions per ADD, most of them the runtime instantiating generic types by name.
# Prints the directory that holds podwire and podwire-ipam.
podwire_build_release() {
    local scratch=.build-release log
    local flags=(-c release -Xswiftc -static-executable -Xswiftc -cross-module-optimization -Xlinker -s --scratch-path "$scratch")
    log=$(mktemp)
    if ! PODWIRE_STATIC=1 swift build "${flags[@]}" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
    PODWIRE_STATIC=1 swift build "${flags[@]}" --show-bin-path
}
