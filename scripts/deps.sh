#!/usr/bin/env bash
# Installs what building, running and testing Berth needs on Debian 12.
# Safe to run again: apt skips what is there. Sourced by run.sh and test.sh.
set -euo pipefail

berth_apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
}

berth_need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "Berth's helper runs as root and the set-up installs packages: run this as root (sudo $0)" >&2
        exit 1
    fi
}

berth_need_cargo() {
    # Debian 12's own rustc is too old for Berth's dependencies; use rustup's.
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo is missing: install Rust 1.85 or newer with rustup (https://rustup.rs), then run this again" >&2
        exit 1
    fi
}

# Packages for running berthd and the demo registry.
# nftables: the firewall of app networks (NAT, isolation, published ports).
BERTH_RUN_PACKAGES=(ca-certificates curl dbus pkg-config gcc make util-linux
                    docker-registry busybox-static nftables)
# Packages the tests and benchmarks add.
# iproute2: the network tests build an "outside" host and inspect links with ip.
BERTH_TEST_PACKAGES=("${BERTH_RUN_PACKAGES[@]}" openssl apache2-utils skopeo umoci procps bc runc crun
                     iproute2)
# What bench/apps.sh compares Berth's app install with: Debian's Docker
# (dockerd, containerd, runc, docker-proxy) and Compose (v1, the one Debian 12 has).
BERTH_COMPOSE_BENCH_PACKAGES=(docker.io docker-compose)
