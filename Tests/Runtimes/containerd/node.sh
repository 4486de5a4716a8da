#!/usr/bin/env bash
# A containerd node kit: one containerd with its CRI plugin, all of its state under one directory,
# wiring pods with the CNI plugins of a directory given here.
#
# Run INSIDE a private network + mount namespace as real root (TestNode(realRoot: true), or
# `unshare -nm --propagation private` with tmpfs on /run and /var/lib/cni): it refuses to run in
# this machine's own network namespace. containerd itself still keeps a few things at fixed paths,
# which that namespace's tmpfs holds: shim sockets (/run/containerd/s), runc's state
# (/run/containerd/runc), pod netns mounts (/run/netns), libcni's result cache (/var/lib/cni).
#
#   node.sh cni-bin DEST PODWIRE_DIR    symlinks podwire, podwire-ipam (from PODWIRE_DIR) and every
#                                       plugin of /usr/lib/cni (portmap, host-local, ptp, loopback...)
#                                       into DEST: what the CRI's bin_dir must hold
#   node.sh start DIR CNI_BIN_DIR CNI_CONF_DIR PAUSE_TAR
#                                       writes DIR/config.toml, starts containerd (log in
#                                       DIR/containerd.log), waits until its CRI answers on
#                                       DIR/containerd.sock, imports the pause archive once (native
#                                       snapshotter); prints {"socket", "cgroup_parent", "image"}
#   node.sh kill DIR                    SIGKILL containerd only: shims and pods keep running
#   node.sh restart DIR                 starts containerd again with the same config and state, and
#                                       waits until the CRI has recovered its sandboxes
#   node.sh stop DIR                    SIGTERM containerd and wait for it to exit
#   node.sh cleanup DIR                 whatever is left after a failure: containerd, the shims,
#                                       every process in the node's cgroup tree and the tree itself
#                                       on every controller, mounts under DIR and in /run/netns, DIR
#
# Pods' cgroups: `start` picks one cgroup parent for the node, /podwire-test-<random> (in
# DIR/cgroup-parent), for the caller to pass as RunPodSandbox's linux.cgroup_parent; runc (cgroupfs)
# makes every pod's cgroup below it, so `cleanup` can remove the whole tree.
set -euo pipefail

PAUSE_DEFAULT_TAG=localhost/podwire-pause:1
PYTHON=/usr/bin/python3
CRI_CLIENT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../cri" && pwd)/cri.py
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() {
    echo "node.sh: $*" >&2
    exit 1
}

refuse_machine_netns() {
    local own machine
    own=$(readlink /proc/self/ns/net) || die "cannot read /proc/self/ns/net"
    # PID 1's namespace is the machine's. Where PID 1 cannot be inspected (a VM's init may refuse
    # ptrace access even to root), kthreadd's is: kernel threads live in the initial namespace.
    if ! machine=$(readlink /proc/1/ns/net 2>/dev/null); then
        [ "$(cat /proc/2/comm 2>/dev/null)" = kthreadd ] && machine=$(readlink /proc/2/ns/net 2>/dev/null) \
            || die "cannot read the network namespace of PID 1 nor of kthreadd (PID 2): not real root?"
    fi
    [ "$own" != "$machine" ] || die "refusing to run in this machine's own network namespace ($own); run inside a private one (unshare -nm)"
    [ "$(id -u)" = 0 ] || die "containerd needs real root (uid $(id -u))"
}

# The PID in FILE if it still names a live (not zombie) process whose comm starts with PREFIX.
live_pid() {
    local file=$1 prefix=$2 pid comm state
    [ -s "$file" ] || return 1
    pid=$(cat "$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$prefix"* ]] || return 1
    state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] || return 1
    echo "$pid"
}

# Waits until PID is gone (or a zombie nobody here can reap), at most SECONDS.
wait_gone() {
    local pid=$1 seconds=$2 tries=0 state
    while [ -e "/proc/$pid" ]; do
        state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null) || return 0
        [ "$state" != Z ] || return 0
        tries=$((tries + 1))
        [ "$tries" -lt $((seconds * 50)) ] || return 1
        sleep 0.02
    done
}

write_config() {
    local dir=$1 bin=$2 conf=$3 image=$4
    cat >"$dir/config.toml" <<EOF
# Written by Tests/Runtimes/containerd/node.sh: everything under $dir.
version = 2
root = "$dir/root"
state = "$dir/state"
temp = "$dir/tmp"
oom_score = 0
# Snapshotters: only native (works on any filesystem, tmpfs too). No /opt/containerd, no tracing.
# (The legacy io.containerd.runtime.v1.linux stays: the tasks service, and so the CRI, need it.)
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.opt",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$image"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$bin"
    conf_dir = "$conf"
    max_conf_num = 1
EOF
}

# Starts containerd in the background, detached from the caller's stdio (a harness waiting for
# its pipes to close must not wait for the daemon), and waits until it answers on its socket.
start_daemon() {
    local dir=$1 pid deadline=$((SECONDS + 30))
    [ -f "$dir/config.toml" ] || die "$dir/config.toml missing: run start first"
    if pid=$(live_pid "$dir/containerd.pid" containerd); then
        die "containerd already runs (pid $pid)"
    fi
    rm -f "$dir/containerd.sock" "$dir/containerd.sock.ttrpc"
    echo "=== containerd starting $(date -u +%FT%T.%NZ)" >>"$dir/containerd.log"
    TMPDIR="$dir/tmp" setsid containerd --config "$dir/config.toml" </dev/null >>"$dir/containerd.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/containerd.pid"
    # Ready means the CRI answers, not merely containerd: after a restart the CRI plugin recovers
    # its sandboxes first and refuses calls until it has ("server is not initialized yet").
    until [ -S "$dir/containerd.sock" ] && "$PYTHON" -B "$CRI_CLIENT" --socket "$dir/containerd.sock" --timeout 5 version >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$dir/containerd.log" >&2
            die "containerd exited while starting (log: $dir/containerd.log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$dir/containerd.log" >&2
            die "containerd's CRI did not answer on $dir/containerd.sock within 30 s"
        fi
        sleep 0.02
    done
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = containerd ] || die "pid $pid is not containerd (setsid forked?)"
}

cmd_cni_bin() {
    [ $# = 2 ] || die "usage: node.sh cni-bin DEST PODWIRE_DIR"
    local dest=$1 podwire_dir=$2 plugin
    for plugin in podwire podwire-ipam; do
        [ -x "$podwire_dir/$plugin" ] || die "$podwire_dir/$plugin is not an executable file"
    done
    [ -x /usr/lib/cni/loopback ] || die "/usr/lib/cni/loopback missing (apt-get install containernetworking-plugins)"
    mkdir -p "$dest"
    for plugin in /usr/lib/cni/*; do
        ln -sfn "$plugin" "$dest/$(basename "$plugin")"
    done
    ln -sfn "$podwire_dir/podwire" "$dest/podwire"
    ln -sfn "$podwire_dir/podwire-ipam" "$dest/podwire-ipam"
}

cmd_start() {
    [ $# = 4 ] || die "usage: node.sh start DIR CNI_BIN_DIR CNI_CONF_DIR PAUSE_TAR"
    local dir=$1 bin=$2 conf=$3 pause=$4 image parent tool
    refuse_machine_netns
    for tool in containerd containerd-shim-runc-v2 runc ctr; do
        command -v "$tool" >/dev/null || die "$tool not found (apt-get install containerd runc)"
    done
    [ -f "$pause" ] || die "pause archive $pause missing"
    [ -x "$bin/loopback" ] || die "$bin/loopback missing: the CRI execs loopback from its bin_dir"
    case $dir in /*) ;; *) die "DIR must be an absolute path: $dir" ;; esac
    mkdir -p "$dir/root" "$dir/state" "$dir/tmp" "$dir/logs"
    image=$("$PYTHON" -c 'import json, sys, tarfile
with tarfile.open(sys.argv[1]) as archive:
    print(json.load(archive.extractfile("manifest.json"))[0]["RepoTags"][0])' "$pause") || image=$PAUSE_DEFAULT_TAG
    if [ ! -s "$dir/cgroup-parent" ]; then
        echo "/podwire-test-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" >"$dir/cgroup-parent"
    fi
    parent=$(cat "$dir/cgroup-parent")
    write_config "$dir" "$bin" "$conf" "$image"
    start_daemon "$dir"
    if [ ! -e "$dir/imported" ]; then
        TMPDIR="$dir/tmp" ctr --address "$dir/containerd.sock" -n k8s.io images import --snapshotter native "$pause" >"$dir/import.log" 2>&1 \
            || { cat "$dir/import.log" >&2; die "ctr images import $pause failed"; }
        touch "$dir/imported"
    fi
    printf '{"socket":"%s","cgroup_parent":"%s","image":"%s"}\n' "$dir/containerd.sock" "$parent" "$image"
}

cmd_kill() {
    [ $# = 1 ] || die "usage: node.sh kill DIR"
    local dir=$1 pid
    refuse_machine_netns
    pid=$(live_pid "$dir/containerd.pid" containerd) || die "containerd does not run (pid file $dir/containerd.pid)"
    kill -KILL "$pid"
    wait_gone "$pid" 10 || die "containerd (pid $pid) still runs 10 s after SIGKILL"
}

cmd_restart() {
    [ $# = 1 ] || die "usage: node.sh restart DIR"
    refuse_machine_netns
    start_daemon "$1"
}

cmd_stop() {
    [ $# = 1 ] || die "usage: node.sh stop DIR"
    local dir=$1 pid
    refuse_machine_netns
    pid=$(live_pid "$dir/containerd.pid" containerd) || return 0
    kill -TERM "$pid"
    wait_gone "$pid" 15 || die "containerd (pid $pid) still runs 15 s after SIGTERM"
    rm -f "$dir/containerd.pid"
}

# PIDs of the shims serving DIR's containerd in this mount namespace.
node_shims() {
    local dir=$1 own entry pid args
    own=$(readlink /proc/self/ns/mnt)
    for entry in /proc/[0-9]*; do
        pid=${entry#/proc/}
        [ "$(cat "$entry/comm" 2>/dev/null)" = containerd-shim ] || continue
        [ "$(readlink "$entry/ns/mnt" 2>/dev/null)" = "$own" ] || continue
        args=$(tr '\0' '\n' <"$entry/cmdline" 2>/dev/null) || continue
        grep -qxF -- "$dir/containerd.sock" <<<"$args" || continue
        echo "$pid"
    done
}

# Every directory of the node's cgroup tree, on every hierarchy, deepest first.
cgroup_dirs() {
    local parent=$1 hierarchy
    for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/*; do
        # Controllers mounted together also appear as symlinks (cpu -> cpu,cpuacct): once is enough.
        [ ! -L "$hierarchy" ] || continue
        [ -d "$hierarchy$parent" ] && find "$hierarchy$parent" -depth -type d
    done
    return 0
}

cmd_cleanup() {
    [ $# = 1 ] || die "usage: node.sh cleanup DIR"
    local dir=$1 parent="" pid file tries mountpoint left
    refuse_machine_netns
    case $dir in /*) ;; *) die "DIR must be an absolute path: $dir" ;; esac
    [ -s "$dir/cgroup-parent" ] && parent=$(cat "$dir/cgroup-parent")
    if pid=$(live_pid "$dir/containerd.pid" containerd); then
        kill -KILL "$pid"
        wait_gone "$pid" 10 || echo "node.sh: containerd (pid $pid) survived SIGKILL" >&2
    fi
    # The shims: containerd-shim-runc-v2 processes of this mount namespace started for this
    # containerd (their -address argument); then whatever runs in the pods' cgroups.
    for pid in $(node_shims "$dir"); do kill -KILL "$pid" 2>/dev/null || true; done
    if [ -n "$parent" ] && [[ $parent == /podwire-test-* ]]; then
        for tries in $(seq 100); do
            left=0
            while read -r cgroup; do
                for pid in $(cat "$cgroup/cgroup.procs" 2>/dev/null); do
                    kill -KILL "$pid" 2>/dev/null || true
                    left=1
                done
            done < <(cgroup_dirs "$parent")
            [ "$left" = 1 ] || break
            sleep 0.05
        done
        for tries in $(seq 100); do
            left=0
            while read -r cgroup; do
                rmdir "$cgroup" 2>/dev/null || left=1
            done < <(cgroup_dirs "$parent")
            [ "$left" = 1 ] || break
            sleep 0.05
        done
        [ "$left" = 0 ] || echo "node.sh: cgroups left under $parent: $(cgroup_dirs "$parent" | tr '\n' ' ')" >&2
    fi
    # Mounts under DIR (the native snapshotter's rootfs binds, the sandboxes' /dev/shm) and the
    # pods' network namespaces, deepest first.
    while read -r mountpoint; do
        umount -l "$mountpoint" 2>/dev/null || true
    done < <(awk -v dir="$dir/" '$5 == substr(dir, 1, length(dir) - 1) || index($5, dir) == 1 || index($5, "/run/netns/cni-") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    rm -f /run/netns/cni-*
    # Only a directory this kit set up is removed whole.
    if [ -f "$dir/config.toml" ] && [ "$dir" != / ]; then rm -rf "$dir"; fi
}

[ $# -ge 1 ] || die "usage: node.sh cni-bin|start|kill|restart|stop|cleanup ..."
command=$1
shift
case $command in
    cni-bin) cmd_cni_bin "$@" ;;
    start) cmd_start "$@" ;;
    kill) cmd_kill "$@" ;;
    restart) cmd_restart "$@" ;;
    stop) cmd_stop "$@" ;;
    cleanup) cmd_cleanup "$@" ;;
    *) die "unknown command $command" ;;
esac
