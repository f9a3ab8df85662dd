#!/usr/bin/env bash
# Window benchmark, in one run, same machine, same webview: Berth's window
# (release build of src-tauri) against an empty Tauri 2 window
# (bench/empty-window: same Tauri, same WebKitGTK, a blank page). Prints
# medians and ratios. Needs root. Usage: bench/gui.sh [ROUNDS] (default 5)
#
# What is measured, per round, for both windows alike:
#   start      from launching the binary until the page has drawn its
#              first useful frame: for Berth, the catalog with its cards
#              (the page calls the app's `ready` command in the frame after
#              the cards render; the app writes the time to
#              BERTH_APP_READY_FILE); for the empty window, its blank page.
#              Caches are dropped first (`echo 3 > /proc/sys/vm/drop_caches`)
#              so every start reads the binary and WebKit from disk: cold.
#   memory     PSS (from /proc/PID/smaps_rollup) summed over the window's
#              process and every process under it (WebKitWebProcess,
#              WebKitNetworkProcess), with RSS beside it, 15 s after
#              start. Berth's window then shows an app's detail view (its
#              five graphs filling at 1 Hz and its log following), with five
#              apps installed.
# The windows alternate: odd rounds Berth first, even rounds empty first.
#
# Everything runs privately: an Xvfb display, a bus with Berth's policy, a
# berthd with its roots under the work dir, and a registry with the demo
# images (built from Debian's busybox-static by berth-seed). All of it is
# stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
case $runs in '' | *[!0-9]* | 0) echo "usage: bench/gui.sh [ROUNDS]" >&2; exit 2 ;; esac
. bench/lib.sh
berth_apt_install "${BERTH_GUI_PACKAGES[@]}"
berth_need_node
berth_build_ui
cargo build --release -q -p berth-app -p berth-bench-empty-window

apps=(hello hello-api docs notes status-board)
berthd_pid=
berth() { "$bin/berth" "$@"; }
die() { echo "bench/gui.sh: $*" >&2; exit 1; }

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    exec 1>&3 2>&4
    echo "==> cleaning up"
    if [ -n "$berthd_pid" ] && kill -0 "$berthd_pid" 2>/dev/null; then
        for a in "${apps[@]}"; do berth uninstall "$a" --delete-data </dev/null >/dev/null 2>&1; done
    fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "$berthd_pid" ] && wait "$berthd_pid" 2>/dev/null
    "$bin/berth-seed" --stop-registry "$work/registry" >/dev/null 2>&1
    rm -rf "$work"
    exit "$status"
}
exec 3>&1 4>&2
trap cleanup EXIT
trap 'exit 130' INT TERM

# The display.
exec 5> >(cat > "$work/display")
Xvfb -displayfd 5 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
pids+=($!)
exec 5>&-
for _ in $(seq 100); do [ -s "$work/display" ] && break; sleep 0.1; done
[ -s "$work/display" ] || die "Xvfb did not start"
display=:$(head -1 "$work/display")

# berthd with the demo catalog and five apps installed.
bench_bus
mkdir -p "$work/root" "$work/run"
"$bin/berthd" --root "$work/root" --run-root "$work/run" > "$work/berthd.log" 2>&1 &
berthd_pid=$!
pids+=("$berthd_pid")
for _ in $(seq 100); do berth info >/dev/null 2>&1 && break; sleep 0.1; done
registry=$("$bin/berth-seed" --start-registry "$work/registry")
"$bin/berth-seed" --registry "$registry" >/dev/null
berth catalog add "$PWD/catalog/demo" --name demo --set "BERTH_DEMO_REGISTRY=$registry" >/dev/null
echo "==> installing ${apps[*]}"
for a in "${apps[@]}"; do berth install "$a" >/dev/null </dev/null || die "installing $a"; done

# Sum a field of smaps_rollup (kB) over a process and all under it.
descendants() {
    local p=$1 c
    echo "$p"
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do descendants "$c"; done
}
mem_kb() {   # PID FIELD
    local total=0 p v
    for p in $(descendants "$1"); do
        v=$(awk -v f="$2:" '$1 == f {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# Launch BINARY with VIEW and the environment ENV...; print
# "START_MS PSS_KB RSS_KB PROCESSES".
measure() {
    local binary=$1 view=$2 ready="$work/ready" t0 t1 pid n
    shift 2
    rm -f "$ready"
    sync
    echo 3 > /proc/sys/vm/drop_caches
    t0=$(( $(now) / 1000000 ))
    env DISPLAY="$display" NO_AT_BRIDGE=1 BERTH_APP_READY_FILE="$ready" BERTH_APP_VIEW="$view" "$@" \
        "$binary" > "$work/window.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do [ -s "$ready" ] && break; sleep 0.05; done
    [ -s "$ready" ] || { kill "$pid"; die "$(basename "$binary") did not get ready in 30 s: $(cat "$work/window.log")"; }
    t1=$(cat "$ready")
    sleep 15
    n=$(descendants "$pid" | wc -l)
    echo "$((t1 - t0)) $(mem_kb "$pid" Pss) $(mem_kb "$pid" Rss) $n"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

berth_app="$bin/berth-app"
empty="$bin/berth-bench-empty-window"
# What Berth's window sets for WebKit by itself (src-tauri/src/webview.rs),
# given to the empty window too for a third column.
tuned=(JSC_useJIT=false)
ls /dev/dri/renderD* >/dev/null 2>&1 || tuned+=(WEBKIT_SKIA_ENABLE_CPU_RENDERING=1)
b_start=(); b_pss=(); b_rss=(); e_start=(); e_pss=(); e_rss=(); t_start=(); t_pss=(); t_rss=()
# One untimed start of each first: the first start of a build also makes
# WebKit's caches under the home directory.
measure "$berth_app" catalog >/dev/null
measure "$empty" catalog >/dev/null
for r in $(seq "$runs"); do
    order=("berth" "empty" "tuned")
    [ $((r % 2)) = 0 ] && order=("tuned" "empty" "berth")
    for w in "${order[@]}"; do
        if [ "$w" = berth ]; then
            read -r start _ _ _ < <(measure "$berth_app" catalog)
            read -r _ pss rss n < <(measure "$berth_app" app:hello-api)
            b_start+=("$start"); b_pss+=("$pss"); b_rss+=("$rss")
        elif [ "$w" = empty ]; then
            read -r start pss rss n < <(measure "$empty" catalog)
            e_start+=("$start"); e_pss+=("$pss"); e_rss+=("$rss")
        else
            read -r start pss rss n < <(measure "$empty" catalog "${tuned[@]}")
            t_start+=("$start"); t_pss+=("$pss"); t_rss+=("$rss")
        fi
        echo "    round $r $w: start ${start} ms, PSS $((pss / 1024)) MB, RSS $((rss / 1024)) MB, $n processes"
    done
done

ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }
bs=$(median "${b_start[@]}"); es=$(median "${e_start[@]}")
bp=$(median "${b_pss[@]}"); ep=$(median "${e_pss[@]}")
br=$(median "${b_rss[@]}"); er=$(median "${e_rss[@]}")
ts=$(median "${t_start[@]}"); tp=$(median "${t_pss[@]}"); tr=$(median "${t_rss[@]}")
secs() { echo "scale=2; $1 / 1000" | bc | sed 's/^\./0./'; }
cat <<TABLE

| median of $runs | Berth's window | empty Tauri 2 window | ratio | empty window, Berth's WebKit settings | ratio |
|---|---|---|---|---|---|
| cold start to catalog visible | $(secs "$bs") s | $(secs "$es") s | $(ratio "$bs" "$es") × | $(secs "$ts") s | $(ratio "$bs" "$ts") × |
| PSS, app + WebKit processes | $((bp / 1024)) MB | $((ep / 1024)) MB | $(ratio "$bp" "$ep") × | $((tp / 1024)) MB | $(ratio "$bp" "$tp") × |
| RSS, app + WebKit processes | $((br / 1024)) MB | $((er / 1024)) MB | $(ratio "$br" "$er") × | $((tr / 1024)) MB | $(ratio "$br" "$tr") × |

Berth's memory is taken with ${#apps[@]} apps installed and hello-api's detail view open.
Berth's WebKit settings here: ${tuned[*]}.
TABLE
