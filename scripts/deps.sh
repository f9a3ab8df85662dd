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

# Node.js for building the window's page (Vite, TypeScript) and testing
# its logic (Vitest): Debian 12's 18.x will do. Installed only if no node
# is there.
berth_need_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        berth_apt_install nodejs npm
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$major" -lt 18 ]; then
        echo "Node.js $(node --version) is too old for building Berth's window; install Node.js 18 or newer" >&2
        exit 1
    fi
}

# Build the page into ui/dist (the window embeds it when it is compiled).
# npm's packages are fetched again only when package-lock.json changed.
berth_build_ui() {
    (
        cd ui
        if ! [ node_modules/.package-lock.json -nt package-lock.json ]; then
            echo "==> fetching the page's npm packages"
            # `npm install` with the lock file installs its versions. Not
            # `npm ci`: npm 11 writes lock files without the other
            # platforms' optional packages (rollup's), and `npm ci` then
            # calls the lock file out of sync.
            npm install --no-audit --no-fund --loglevel=error
        fi
        echo "==> building the page"
        npm run --silent build -- --logLevel warn
    )
}

# tauri-driver: the WebDriver server the window's end-to-end tests drive
# it through (in front of WebKitGTK's WebKitWebDriver).
berth_need_tauri_driver() {
    if ! command -v tauri-driver >/dev/null 2>&1; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v tauri-driver >/dev/null 2>&1; then
        echo "==> installing tauri-driver"
        cargo install tauri-driver --locked --quiet
    fi
}

# Packages for running berthd and the demo registry.
# nftables: the firewall of app networks (NAT, isolation, published ports).
BERTH_RUN_PACKAGES=(ca-certificates curl dbus pkg-config gcc make util-linux
                    docker-registry busybox-static nftables)
# Packages the tests and benchmarks add.
# iproute2: the network tests build an "outside" host and inspect links with ip.
# polkitd: the authorization tests ask a real polkit (tests/src/polkit.rs).
# libglib2.0-bin: gdbus, for raw calls on the bus as other users.
BERTH_TEST_PACKAGES=("${BERTH_RUN_PACKAGES[@]}" openssl apache2-utils skopeo umoci procps bc runc crun
                     iproute2 polkitd libglib2.0-bin)
# Packages the window needs to build (WebKitGTK, GTK, their headers) and,
# for its tests, a display without a screen (Xvfb) and WebKitGTK's
# WebDriver server (webkit2gtk-driver).
BERTH_GUI_PACKAGES=(build-essential libwebkit2gtk-4.1-dev libgtk-3-dev librsvg2-dev libssl-dev
                    xdg-utils)
BERTH_GUI_TEST_PACKAGES=("${BERTH_GUI_PACKAGES[@]}" xvfb xauth webkit2gtk-driver)
# What bench/apps.sh compares Berth's app install with: Debian's Docker
# (dockerd, containerd, runc, docker-proxy) and Compose (v1, the one Debian 12 has).
BERTH_COMPOSE_BENCH_PACKAGES=(docker.io docker-compose)
