#!/usr/bin/env bash
# Bring up what the tests, `make run` and the benchmark need on a bare Debian machine: the
# Debian packages (Docker engine, registry, static busybox, htpasswd, openssl, and `ip` for
# the second daemon some tests start), QEMU for arm64 (qemu-user-static registered in
# binfmt_misc) with an arm64 static busybox for the two-platform base image
# (.run/arm64/bin/busybox), and a Docker daemon. `down` stops only a daemon that `up`
# started, found by its pid file. Each part is skipped, quietly, where it is done already.
#
#   scripts/services.sh up                  install what is missing, start dockerd if needed
#   scripts/services.sh qemu                only QEMU and the arm64 busybox
#   scripts/services.sh down                stop the dockerd that `up` started, if any
#   scripts/services.sh packages [PKG...]   install only the packages (plus any named)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run_dir="$root/.run"
pid_file="$run_dir/dockerd.pid"
log_file="$run_dir/dockerd.log"
packages=(docker.io docker-registry busybox-static apache2-utils openssl iproute2 openssh-client openssh-server procps)
start_timeout=60
qemu_packages=(qemu-user-static binfmt-support)
binfmt_dir=/proc/sys/fs/binfmt_misc
arm64_busybox="$run_dir/arm64/bin/busybox"
stop_timeout=60

say() { echo "services: $*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

install_packages() {
    local missing=() p
    for p in "$@"; do
        installed "$p" || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "packages present"
        return
    fi
    say "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Foreign binaries run through QEMU once binfmt_misc is mounted and qemu-aarch64 enabled;
# the `F` flag Debian registers it with makes it work inside containers too.
setup_qemu() {
    if [[ ! -e $binfmt_dir/register ]]; then
        say "mounting binfmt_misc"
        as_root mount -t binfmt_misc binfmt_misc "$binfmt_dir"
    fi
    # Installed after the mount, so the packages register their handlers into it.
    install_packages "${qemu_packages[@]}"
    if [[ $(head -n 1 "$binfmt_dir/qemu-aarch64" 2>/dev/null || true) != enabled ]]; then
        say "enabling qemu-aarch64 in binfmt_misc"
        as_root update-binfmts --enable qemu-aarch64
    fi
    [[ $(head -n 1 "$binfmt_dir/qemu-aarch64" 2>/dev/null || true) == enabled ]] || {
        say "qemu-aarch64 is still not enabled in $binfmt_dir"
        return 1
    }
    fetch_arm64_busybox
}

# An aarch64 ELF: byte 18 of the header (e_machine, little-endian) is 0xb7.
is_arm64_elf() {
    [[ $(od -An -tx1 -j 18 -N 1 "$1" 2>/dev/null | tr -d ' ') == b7 ]]
}

fetch_arm64_busybox() {
    local work deb found
    if [[ -x $arm64_busybox ]] && is_arm64_elf "$arm64_busybox"; then
        return
    fi
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        say "adding the arm64 architecture to dpkg"
        as_root dpkg --add-architecture arm64
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    say "fetching busybox-static:arm64 into $arm64_busybox"
    work=$(mktemp -d)
    # shellcheck disable=SC2064  # the folder is known now
    trap "rm -rf '$work'" RETURN
    # Lists older than the archive name a package it no longer has: update, try again.
    (cd "$work" && apt-get download -qq busybox-static:arm64 >/dev/null 2>&1) || {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        (cd "$work" && apt-get download -qq busybox-static:arm64 2>&1 >/dev/null |
            grep -v 'unsandboxed as root' >&2 || true)
    }
    deb=$(echo "$work"/busybox-static_*_arm64.deb)
    dpkg -x "$deb" "$work/root"
    found="$work/root/bin/busybox"
    [[ -f $found ]] || found="$work/root/usr/bin/busybox"
    if ! is_arm64_elf "$found"; then
        say "no arm64 busybox in $deb"
        return 1
    fi
    mkdir -p "$(dirname "$arm64_busybox")"
    install -m 0755 "$found" "$arm64_busybox.tmp"
    mv "$arm64_busybox.tmp" "$arm64_busybox"
}

daemon_answers() { docker info >/dev/null 2>&1; }

# The pid from our pid file, if that process is still a dockerd (guards against pid reuse).
our_daemon_pid() {
    local pid
    [[ -f $pid_file ]] || return 1
    pid=$(<"$pid_file")
    [[ $(cat "/proc/$pid/comm" 2>/dev/null || true) == dockerd ]] || return 1
    echo "$pid"
}

wait_until_ready() {
    local pid=$1 deadline=$((SECONDS + start_timeout))
    until daemon_answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd (pid $pid) exited; end of $log_file:"
            tail -n 30 "$log_file" >&2 || true
            rm -f "$pid_file"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            say "dockerd (pid $pid) not answering after ${start_timeout}s; end of $log_file:"
            tail -n 30 "$log_file" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

up() {
    local pid
    install_packages "${packages[@]}"
    # A machine that cannot emulate (no right to mount binfmt_misc, say) still gets the rest;
    # the multi-platform tests then say what is missing. Its own process: `set -e` holds.
    "$root/scripts/services.sh" qemu || say "warning: no QEMU for arm64 (see above)"
    # Registries with their own CA put it here; the daemon reads it without a restart.
    as_root mkdir -p /etc/docker/certs.d
    mkdir -p "$run_dir"

    if pid=$(our_daemon_pid); then
        say "dockerd already started by this script (pid $pid)"
        wait_until_ready "$pid"
        return
    fi
    rm -f "$pid_file"
    if daemon_answers; then
        say "using the Docker daemon already running"
        return
    fi

    say "starting dockerd (log: $log_file)"
    # setsid: the daemon must outlive this shell and not get the terminal's signals.
    setsid dockerd </dev/null >"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    wait_until_ready "$pid"
    say "dockerd ready (pid $pid)"
}

down() {
    local pid deadline
    if ! pid=$(our_daemon_pid); then
        rm -f "$pid_file"
        say "no dockerd started by this script; nothing to stop"
        return
    fi
    say "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    deadline=$((SECONDS + stop_timeout))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            say "dockerd (pid $pid) still running after ${stop_timeout}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    rm -f "$pid_file"
    say "dockerd stopped"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    qemu) mkdir -p "$run_dir"; setup_qemu ;;
    packages) shift; install_packages "${packages[@]}" "$@" ;;
    *)
        echo "usage: $0 up|down|qemu|packages [PKG...]" >&2
        exit 2
        ;;
esac
