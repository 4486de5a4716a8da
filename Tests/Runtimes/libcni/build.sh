#!/bin/bash
# build.sh BUILD_DIR: builds podwire-libcni (main.go beside this script) offline, in GOPATH mode,
# against Debian's packaged libcni (golang-github-appc-cni-dev, under /usr/share/gocode) with
# Debian's Go (golang-go), and prints the binary's path.
#
# The binary is BUILD_DIR/podwire-libcni-STAMP, STAMP a digest of this script, main.go, the Go
# version and libcni's sources: a build that exists is reused, so test processes after the first
# start at once. Nothing is written outside BUILD_DIR: the private GOPATH entry, Go's build cache
# and its temporary files all live there.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C

[ $# = 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(realpath -m -- "$1")
source_dir=$(cd "$(dirname "$0")" && pwd)
gocode=/usr/share/gocode
libcni=$gocode/src/github.com/containernetworking/cni

command -v go >/dev/null || { echo "build.sh: go not found (apt-get install golang-go)" >&2; exit 1; }
[ -f "$libcni/libcni/api.go" ] || { echo "build.sh: libcni not found in $libcni (apt-get install golang-github-appc-cni-dev)" >&2; exit 1; }

stamp=$({
    cat "$source_dir/build.sh" "$source_dir/main.go"
    go version
    find "$libcni" -name '*.go' -print0 | sort -z | xargs -0 cat
} | sha256sum | cut -c1-16)
binary=$build/podwire-libcni-$stamp
if [ -x "$binary" ]; then
    echo "$binary"
    exit 0
fi

mkdir -p "$build/gopath" "$build/gocache" "$build/tmp"
partial=$(mktemp "$build/tmp/podwire-libcni.XXXXXX")
trap 'rm -f "$partial"' EXIT
cd "$source_dir"
# The private GOPATH entry comes first: it is where go would write, never /usr/share/gocode. GOPATH
# mode builds a directory outside GOPATH only by a relative path. GOENV=off ignores any user's go
# configuration, GOPROXY=off keeps it offline; cgo off makes a static binary and needs no C compiler.
env -i PATH="$PATH" LC_ALL=C HOME="$build" \
    GO111MODULE=off GOPATH="$build/gopath:$gocode" GOCACHE="$build/gocache" GOTMPDIR="$build/tmp" TMPDIR="$build/tmp" \
    GOENV=off GOFLAGS= GOPROXY=off GOSUMDB=off CGO_ENABLED=0 \
    go build -trimpath -o "$partial" . >&2
chmod 0755 "$partial"
# Atomic: a concurrent build of the same stamp replaces it with the same program.
mv -f "$partial" "$binary"
# Builds of older sources are of no more use.
find "$build" -maxdepth 1 -name 'podwire-libcni-*' ! -name "podwire-libcni-$stamp" -delete
echo "$binary"
