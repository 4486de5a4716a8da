#!/bin/bash
# podman.sh: Debian's podman 4.3 with its CNI network backend, runc and cgroupfs, every file it
# reads or writes under one directory, for running podwire under a real container engine.
#
#   podman.sh setup DIR CONFLIST PLUGIN...  write DIR's configs, put the conflist and the plugins
#                                           on podman's CNI paths, import a busybox image
#   podman.sh podman DIR ARGS...            run podman against DIR (`run` and `create` get DIR's
#                                           cgroup parent)
#   podman.sh cgroups DIR                   list the cgroup directories of DIR's containers
#   podman.sh cleanup DIR                   remove every container, kill whatever of DIR's still
#                                           runs, remove its cgroups, then DIR
#
# DIR holds containers.conf, storage.conf, registries.conf, policy.json, graphroot, runroot,
# podman's tmp_dir, the network config directory and the CNI plugin directory; HOME, TMPDIR and
# the XDG directories point into it too, so podman uses nothing of /etc/containers,
# /var/lib/containers or the caller's home. Containers' cgroups go under a parent of DIR's own
# (`cgroup-parent` in DIR, a random name), in every hierarchy, so that `cleanup` removes exactly
# them. The image is `localhost/podwire-busybox:latest`: a rootfs of Debian's busybox-static
# (/bin/busybox and its applet links, /etc/passwd, /etc/group), tarred and `podman import`ed.
#
# Every command refuses to run in this machine's own network or mount namespace: run it inside a
# private network + mount namespace (`unshare -nm --propagation private`) as real root, with the
# conflist's IPAM state and /run/netns private to that namespace too (a tmpfs on /run).
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C

readonly image=localhost/podwire-busybox:latest
readonly debian_plugins=/usr/lib/cni

die() {
    echo "podman.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

# Containers, runc and the CNI plugins change the network and mounts of whatever namespace podman
# runs in: never this machine's own. Its own are PID 1's and the kernel threads' (kthreadd, PID 2,
# always in the initial namespaces); PID 1's may be unreadable even to root (it is on a VM whose
# init is not dumpable), so both are asked, and a namespace that cannot be told apart from them is
# refused too.
require_private_namespaces() {
    local kind own machine known
    for kind in net mnt; do
        own=$(readlink "/proc/self/ns/$kind") || die "cannot read /proc/self/ns/$kind"
        known=0
        for machine in 1 2; do
            local theirs
            if [ "$machine" = 2 ] && [ "$(cat /proc/2/comm 2>/dev/null)" != kthreadd ]; then continue; fi
            theirs=$(readlink "/proc/$machine/ns/$kind" 2>/dev/null) || continue
            [ -n "$theirs" ] || continue
            known=1
            [ "$own" != "$theirs" ] \
                || die "refusing to run in this machine's own $kind namespace ($own, PID $machine's); run me inside unshare -nm --propagation private"
        done
        [ "$known" = 1 ] || die "cannot read PID 1's or PID 2's $kind namespace, so cannot tell that $own is not this machine's own; refusing"
    done
    [ "$(id -u)" = 0 ] || die "podman with runc and cgroupfs needs real root (uid $(id -u) here)"
}

require_tools() {
    local tool
    for tool in podman runc conmon iptables tar; do
        command -v "$tool" >/dev/null || die "$tool not found (apt-get install podman runc conmon iptables tar)"
    done
    [ -x /bin/busybox ] || die "/bin/busybox not found (apt-get install busybox-static)"
}

# Every plugin the conflist names (its plugins' and their IPAMs' "type") must be on podman's CNI
# paths: the kit's own directory (the plugins given to setup) or Debian's.
require_conflist_plugins() {
    local dir=$1 conflist=$2 type
    while read -r type; do
        [ -x "$dir/cni-bin/$type" ] || [ -x "$debian_plugins/$type" ] \
            || die "the conflist names plugin \"$type\", found neither in $dir/cni-bin nor in $debian_plugins (give it to setup, or apt-get install containernetworking-plugins)"
    done < <(grep -o '"type"[[:space:]]*:[[:space:]]*"[^"]*"' "$conflist" | sed 's/.*"\([^"]*\)"$/\1/' | sort -u)
}

# The environment every podman (and the `podman container cleanup` conmon runs when a container
# exits) gets: nothing from the caller's.
podman_environment() {
    local dir=$1
    echo "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    echo "LC_ALL=C"
    echo "CONTAINERS_CONF=$dir/containers.conf"
    echo "CONTAINERS_STORAGE_CONF=$dir/storage.conf"
    echo "CONTAINERS_REGISTRIES_CONF=$dir/registries.conf"
    echo "HOME=$dir/home"
    echo "XDG_CONFIG_HOME=$dir/home/.config"
    echo "XDG_DATA_HOME=$dir/home/.local/share"
    echo "XDG_CACHE_HOME=$dir/home/.cache"
    echo "XDG_RUNTIME_DIR=$dir/xdg-runtime"
    echo "TMPDIR=$dir/tmp"
}

toml_list() {
    local first=1 item
    printf '['
    for item in "$@"; do
        [ "$first" = 1 ] || printf ', '
        first=0
        printf '"%s"' "$item"
    done
    printf ']'
}

write_configs() {
    local dir=$1 network=$2
    local -a environment
    mapfile -t environment < <(podman_environment "$dir")

    cat >"$dir/containers.conf" <<EOF
[containers]
netns = "private"
# podman's default nofile (1048576) is above the hard limit here; runc's setrlimit would fail.
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
default_sysctls = ["net.ipv4.ping_group_range=0 0"]
log_driver = "k8s-file"

[secrets]
driver = "file"

[secrets.opts]
root = "$dir/secrets"

[network]
network_backend = "cni"
cni_plugin_dirs = $(toml_list "$dir/cni-bin" "$debian_plugins")
network_config_dir = "$dir/net.d"
default_network = "$network"

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$dir/libpod-tmp"
static_dir = "$dir/storage/libpod"
volume_path = "$dir/storage/volumes"
image_copy_tmp_dir = "$dir/tmp"
hooks_dir = $(toml_list "$dir/hooks.d")
# Locks in files under tmp_dir, not in /dev/shm, which this namespace shares with the machine.
lock_type = "file"
num_locks = 64
# conmon runs \`podman container cleanup\` when a container exits: it must see the same configs.
conmon_env_vars = $(toml_list "${environment[@]}")
EOF

    cat >"$dir/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF

    # No registries at all: the image is imported, never pulled.
    cat >"$dir/registries.conf" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"
EOF

    # Read from \$HOME before /etc/containers/policy.json.
    mkdir -p "$dir/home/.config/containers"
    cat >"$dir/home/.config/containers/policy.json" <<EOF
{"default": [{"type": "insecureAcceptAnything"}]}
EOF
}

# What the configs cannot reach: podman 4.3 keeps containers/image's blob info cache in root's fixed
# /var/lib/containers/cache whatever storage.conf says (`podman import` creates it), and some
# defaults still name /etc/containers. In this mount namespace only: an empty tmpfs over each
# that exists; where /var/lib/containers does not, /var/lib becomes read-only (mounts below it,
# such as a tmpfs on /var/lib/cni, stay as they are), so podman falls back to a cache in memory.
hide_machine_state() {
    local path
    # Whatever propagation this namespace was made with, none of these mounts may reach another.
    mount --make-rprivate /
    for path in /etc/containers /var/lib/containers; do
        if [ -d "$path" ] && ! mountpoint -q "$path"; then
            mount -t tmpfs -o mode=0700 tmpfs "$path"
        fi
    done
    if [ ! -e /var/lib/containers ] && [ "$(findmnt -n -o OPTIONS --target /var/lib | cut -d, -f1)" != ro ]; then
        mount --rbind /var/lib /var/lib
        mount -o remount,bind,ro /var/lib
    fi
}

# A busybox rootfs with a merged /usr as Debian's: the static binary in /usr/bin with a link per
# applet beside it (busybox makes them, pointing at where it runs from: /usr/bin/busybox here),
# /bin and /sbin linking there, and the files a container's user lookup reads.
build_image() {
    local dir=$1 rootfs=$1/image/rootfs
    mkdir -p "$rootfs/usr/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
    ln -s usr/bin "$rootfs/bin"
    ln -s usr/bin "$rootfs/sbin"
    cp /bin/busybox "$rootfs/usr/bin/busybox"
    /bin/busybox --install -s "$rootfs/usr/bin"
    [ -L "$rootfs/usr/bin/sh" ] && [ -L "$rootfs/usr/bin/ping" ] && [ -L "$rootfs/usr/bin/ip" ] \
        || die "busybox --install made no usable sh, ping and ip in $rootfs/usr/bin"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    chmod 1777 "$rootfs/tmp"
    tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$dir/image/rootfs.tar" .
    run_podman "$dir" import --quiet --change 'CMD ["/bin/sh"]' "$dir/image/rootfs.tar" "$image" >/dev/null
    rm -rf "$rootfs" "$dir/image/rootfs.tar"
}

run_podman() {
    local dir=$1
    shift
    [ -f "$dir/containers.conf" ] || die "$dir is not set up (no containers.conf); run setup first"
    local -a environment
    mapfile -t environment < <(podman_environment "$dir")
    case "${1:-}" in
        run | create)
            local subcommand=$1
            shift
            set -- "$subcommand" --cgroup-parent "/$(cat "$dir/cgroup-parent")" "$@"
            ;;
    esac
    env -i "${environment[@]}" podman "$@"
}

# Every cgroup hierarchy mounted here (cgroup v1 controllers, named ones, a unified v2).
hierarchies() {
    awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts
}

list_cgroups() {
    local dir=$1 parent hierarchy
    [ -f "$dir/cgroup-parent" ] || return 0
    parent=$(cat "$dir/cgroup-parent")
    # Only ever a name setup makes: anything else could name a hierarchy's root.
    [[ "$parent" =~ ^podwire-podman-[0-9a-f]{12}$ ]] || die "$dir/cgroup-parent holds ${parent@Q}, not a name setup makes"
    while read -r hierarchy; do
        if [ -d "$hierarchy/$parent" ]; then
            find "$hierarchy/$parent" -type d
        fi
    done < <(hierarchies)
}

setup() {
    local dir=$1 conflist=$2
    shift 2
    require_tools
    [ -f "$conflist" ] || die "conflist $conflist not found"
    local network
    network=$(sed -n 's/^[[:space:]]*"name"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$conflist" | head -n1)
    [ -n "$network" ] || die "cannot find the network's \"name\" in $conflist"
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then die "$dir exists and is not empty"; fi

    mkdir -p "$dir"/{net.d,cni-bin,tmp,libpod-tmp,hooks.d,secrets,xdg-runtime,image}
    chmod 0700 "$dir/xdg-runtime"
    echo "podwire-podman-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" >"$dir/cgroup-parent"
    cp "$conflist" "$dir/net.d/$network.conflist"
    local plugin
    for plugin in "$@"; do
        [ -x "$plugin" ] || die "plugin $plugin is not an executable file"
        ln -s "$(readlink -f "$plugin")" "$dir/cni-bin/$(basename "$plugin")"
    done
    require_conflist_plugins "$dir" "$conflist"
    write_configs "$dir" "$network"
    hide_machine_state
    build_image "$dir"
}

cleanup() {
    local dir=$1 cgroup pid
    [ -d "$dir" ] || return 0
    local status=0
    if [ -f "$dir/containers.conf" ]; then
        run_podman "$dir" rm --all --force --time 0 >/dev/null || status=$?
    fi
    # Whatever still runs in the containers' cgroups (conmon, runc, the containers) is DIR's alone.
    local _
    for _ in $(seq 50); do
        local -a left=()
        while read -r cgroup; do
            [ -f "$cgroup/cgroup.procs" ] || continue
            while read -r pid; do left+=("$pid"); done <"$cgroup/cgroup.procs"
        done < <(list_cgroups "$dir")
        [ "${#left[@]}" = 0 ] && break
        kill -KILL "${left[@]}" 2>/dev/null || true
        sleep 0.1
    done
    # Deepest first: a cgroup can only be removed once it has no children.
    while read -r cgroup; do
        rmdir "$cgroup" 2>/dev/null || { echo "podman.sh: cannot remove cgroup $cgroup" >&2; status=1; }
    done < <(list_cgroups "$dir" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
    # podman mounts each container's /dev/shm under the runroot.
    while read -r mountpoint; do
        umount -l "$mountpoint" || status=1
    done < <(awk -v dir="$dir/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf "$dir"
    return "$status"
}

main() {
    [ $# -ge 2 ] || usage
    local command=$1 dir=$2
    shift 2
    case "$dir" in
        /*) ;;
        *) die "DIR must be an absolute path, not $dir" ;;
    esac
    require_private_namespaces
    case "$command" in
        setup)
            [ $# -ge 1 ] || usage
            setup "$dir" "$@"
            ;;
        podman) run_podman "$dir" "$@" ;;
        cgroups) list_cgroups "$dir" ;;
        cleanup) cleanup "$dir" ;;
        *) usage ;;
    esac
}

main "$@"
