#!/usr/bin/env bash
# Runs Berth on this machine: installs what it needs, builds it, starts
# berthd (on the system bus, or on a bus of its own where none runs), and
# says how to use `berth`. If Docker Hub cannot be reached, it starts a local
# registry with demo images built from Debian packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
berth_need_root
berth_apt_install "${BERTH_RUN_PACKAGES[@]}"
berth_need_cargo

echo "==> building Berth (release)"
cargo build --release -q -p berthd -p berth -p berth-tests --bins
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target/release"

root=${BERTH_ROOT:-/var/lib/berth}
run=${BERTH_RUN_ROOT:-/run/berth}
mkdir -p "$root" "$run"

# The bus: the system bus if one runs, else a private one with the same policy.
if [ -S /run/dbus/system_bus_socket ]; then
    install -m 0644 helper/data/org.berth.Helper1.conf /etc/dbus-1/system.d/
    dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig || true
    bus_address=unix:path=/run/dbus/system_bus_socket
else
    # Beside the run root, not in it: berthd keeps its run root to root
    # alone (0700), and every local user must reach the bus, as they reach
    # /run/dbus.
    busdir=${run}-bus
    bus_address=unix:path=$busdir/socket
    if ! [ -S "$busdir/socket" ] || ! kill -0 "$(cat "$busdir/pid" 2>/dev/null)" 2>/dev/null; then
        mkdir -p "$busdir"
        chmod 0755 "$busdir"
        rm -f "$busdir/socket"
        sed -e "s#@SOCKET@#$busdir/socket#" -e "s#@POLICY@#$PWD/helper/data/org.berth.Helper1.conf#" \
            scripts/bus.conf.in > "$busdir/bus.conf"
        dbus-daemon --config-file="$busdir/bus.conf" --fork --print-pid > "$busdir/pid"
    fi
fi
export DBUS_SYSTEM_BUS_ADDRESS=$bus_address

# berthd, unless one is already serving this root.
if [ -f "$run/berthd.pid" ] && kill -0 "$(cat "$run/berthd.pid")" 2>/dev/null; then
    echo "==> berthd is already running (pid $(cat "$run/berthd.pid"))"
else
    echo "==> starting berthd (log: $run/berthd.log)"
    nohup "$bin/berthd" --root "$root" --run-root "$run" > "$run/berthd.log" 2>&1 &
    for _ in $(seq 100); do
        "$bin/berth" version 2>/dev/null | grep -q '^berthd' && ! "$bin/berth" version | grep -q 'not reachable' && break
        sleep 0.1
    done
fi
"$bin/berth" version

# Catalogs: Berth's default apps on their public images when Docker Hub can
# be reached; otherwise demo apps on images built from Debian packages and
# served by a local registry. Registered again on every run (the demo
# registry's port can change).
berth() { "$bin/berth" "$@"; }
if curl -s -o /dev/null -m 5 https://registry-1.docker.io/v2/; then
    demo="busybox"
    berth catalog remove default >/dev/null 2>&1 || true
    berth catalog add "$PWD/catalog/default" --name default >/dev/null
    app=nginx
else
    echo "==> Docker Hub is not reachable: starting a local registry with demo images"
    registry=$("$bin/berth-seed" --start-registry "$root-demo-registry")
    "$bin/berth-seed" --registry "$registry" >/dev/null
    demo="$registry/demo/busybox"
    berth catalog remove demo >/dev/null 2>&1 || true
    berth catalog add "$PWD/catalog/demo" --name demo --set "BERTH_DEMO_REGISTRY=$registry" >/dev/null
    app=hello-api
fi
berth catalog list

# The window, where there is a display to show it on (or when asked to
# build it anyway with BERTH_BUILD_WINDOW=1).
display="${DISPLAY:-}${WAYLAND_DISPLAY:-}"
if [ -n "$display" ] || [ "${BERTH_BUILD_WINDOW:-}" = 1 ]; then
    berth_apt_install "${BERTH_GUI_PACKAGES[@]}"
    berth_need_node
    berth_build_ui
    echo "==> building the window (release)"
    cargo build --release -q -p berth-app
fi
if [ -n "$display" ]; then
    # sudo keeps DISPLAY, but not always the user's X cookie or Wayland dir.
    if [ -n "${SUDO_USER:-}" ]; then
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        export XAUTHORITY="${XAUTHORITY:-$home/.Xauthority}"
        if [ -n "${WAYLAND_DISPLAY:-}" ]; then
            export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/${SUDO_UID:-0}}"
        fi
    fi
    nohup "$bin/berth-app" > "$run/window.log" 2>&1 &
    echo "==> Berth's window is open (log: $run/window.log)"
    echo "    open it again with: DBUS_SYSTEM_BUS_ADDRESS=$bus_address $bin/berth-app"
    echo "Berth is running. The command line works too:"
else
    echo "Berth is running. No display here, so use the command line"
    echo "(on a desktop, this script also opens Berth's window):"
fi
cat <<MSG
    export DBUS_SYSTEM_BUS_ADDRESS=$bus_address
    export PATH=$bin:\$PATH
    berth catalog apps                  # what can be installed
    berth install $app                 # pull, start, wait until it answers
    berth apps; berth open $app        # state, URL, CPU and memory
    berth logs $app; berth stop $app; berth start $app
    berth uninstall $app --delete-data # and check that nothing is left
    berth doctor                        # the same check for everything
    berth run --rm $demo echo hello from a container
    berth ps; berth stats --no-stream; berth images; berth info
Stop it with: kill \$(cat $run/berthd.pid)
MSG
