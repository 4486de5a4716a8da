# Builds the release binaries a node runs: fully static (-static-executable), with the Swift
# standard library and libnl linked in and symbols stripped, so they need no Swift toolchain and
# no libnl on the node and start without the dynamic loader. Cross-module optimization lets the
# compiler specialize the generic code of podwire's own modules where it is used: about a fifth
# fewer instructions per ADD, most of them the runtime instantiating generic types by name.
#
# The link (lld, each Swift function in a section of its own) packs the functions listed in
# Scripts/lib/podwire.order at the start of the text, so that an ADD faults in about half the
# code pages it would otherwise, and the variables ADD and DEL touch at the start of the data
# (see Scripts/order.sh, which writes that list). Each segment
# starts on a 2 MiB boundary, in the file and in memory: where the kernel caches the file in
# 2 MiB folios (install.sh writes it in one piece for that), the packed code and the standard
# library's text behind it are mapped two PMDs at a time instead of 16 pages per fault. That
# pads the file by about 4 MB.
#
# PODWIRE_RELEASE_SYMBOLS=1 keeps the symbol table (for profiling; its own scratch directory). The
# debug info goes either way: valgrind 3.19 cannot read what lld writes of it.
# Prints the directory that holds podwire, podwire-ipam and podwirectl.
podwire_build_release() {
    local scratch=.build-release log order missing listed
    order="$PWD/Scripts/lib/podwire.order"
    local flags=(-c release -Xswiftc -static-executable -Xswiftc -cross-module-optimization
        -Xswiftc -Xfrontend -Xswiftc -function-sections -Xswiftc -use-ld=lld
        -Xlinker -z -Xlinker max-page-size=0x200000 -Xlinker -z -Xlinker separate-loadable-segments)
    if [ "${PODWIRE_RELEASE_SYMBOLS:-0}" = 1 ]; then
        scratch=.build-release-symbols
        flags+=(-Xlinker --strip-debug)
    else
        flags+=(-Xlinker -s)
    fi
    if [ -f "$order" ]; then
        # Linked from a copy named by its content: SwiftPM relinks when the flags change, not when
        # a file a flag names does.
        local linked_order
        mkdir -p "$scratch"
        linked_order="$PWD/$scratch/podwire-$(sha256sum "$order" | cut -c1-16).order"
        [ -f "$linked_order" ] || cp "$order" "$linked_order"
        # Given to the plugins' links only (Package.swift reads it): podwirectl runs other code.
        export PODWIRE_ORDER_FILE="$linked_order"
    fi
    flags+=(--scratch-path "$scratch")
    log=$(mktemp)
    # podwire alone first: lld names each listed function a link did not find, and the list is
    # podwire's (podwire-ipam lacks most of it by design). A few missing are normal; many mean
    # the list is stale. Then the other products.
    if ! PODWIRE_STATIC=1 swift build "${flags[@]}" --product podwire >"$log" 2>&1 ||
        ! PODWIRE_STATIC=1 swift build "${flags[@]}" >>"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    missing=$(sed -n '1,/Build of product .podwire. complete/p' "$log" | grep -c "symbol ordering file: no such symbol" || true)
    rm -f "$log"
    if [ -f "$order" ]; then
        listed=$(grep -vc '^#' "$order")
        if [ $((missing * 10)) -gt "$listed" ]; then
            echo "release: $missing lookups of the $listed functions in Scripts/lib/podwire.order found nothing:" \
                "the list is stale, Scripts/order.sh rewrites it" >&2
        fi
    fi
    PODWIRE_STATIC=1 swift build "${flags[@]}" --show-bin-path
}
