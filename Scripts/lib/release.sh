# Builds the release binaries a node runs: fully static (-static-executable), with the Swift
# standard library, Foundation essentials and libnl linked in and symbols stripped, so they
# need no Swift toolchain and no libnl on the node and start without the dynamic loader.
# Prints the directory that holds podwire and podwire-ipam.
podwire_build_release() {
    local scratch=.build-release log
    log=$(mktemp)
    if ! PODWIRE_STATIC=1 swift build -c release -Xswiftc -static-executable -Xlinker -s \
            --scratch-path "$scratch" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
    PODWIRE_STATIC=1 swift build -c release -Xswiftc -static-executable -Xlinker -s \
        --scratch-path "$scratch" --show-bin-path
}
