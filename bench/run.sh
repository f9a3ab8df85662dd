#!/usr/bin/env bash
# Container start-up benchmark, in one run, same image and machine:
#   1. end to end: `berth run --rm IMAGE true` (CLI → D-Bus → berthd → shim →
#      berth-runtime, overlay root) against `crun run` and `runc run` of a
#      bundle holding the same image's files;
#   2. the runtime binary alone: create + start + delete of one bundle with
#      `berth-runtime` against `crun`;
#   3. what sampling stats costs berthd with 50 containers running.
# Prints medians and ratios. Needs root. Usage: bench/run.sh [RUNS]
#
# crun refuses a hybrid cgroup layout whose cgroup2 mount holds a
# controller; on such machines the script moves `hugetlb` to a v1 mount for
# the run and gives it back afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
. bench/lib.sh
moved_hugetlb=
cleanup() {
    set +e
    if [ -n "${DBUS_SYSTEM_BUS_ADDRESS:-}" ] && [ -x "$bin/berth" ]; then
        for c in $("$bin/berth" ps -aq 2>/dev/null); do "$bin/berth" rm -f "$c" >/dev/null 2>&1; done
    fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    "$bin/berth-seed" --stop-registry "$work/registry" >/dev/null 2>&1
    for id in $(crun list -q 2>/dev/null | grep '^bench-'); do crun delete -f "$id"; done
    if [ -n "$moved_hugetlb" ]; then
        # The controller goes back to cgroup2 once its v1 hierarchy is gone.
        for _ in 1 2 3 4 5; do
            umount /sys/fs/cgroup/hugetlb 2>/dev/null && rmdir /sys/fs/cgroup/hugetlb && break
            sleep 1
        done
    fi
    sleep 0.5
    umount -R "$work"/root/*/ 2>/dev/null
    rm -rf "$work"
    [ -n "${runstate:-}" ] && { umount -R "$runstate"/berthd/containers/*/bundle/rootfs 2>/dev/null; rm -rf "$runstate"; }
}
trap cleanup EXIT

if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ] && [ -d /sys/fs/cgroup/memory ]; then
    mkdir -p /sys/fs/cgroup/hugetlb
    mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
    moved_hugetlb=1
fi

echo "==> registry, bus, berthd"
registry=$("$bin/berth-seed" --start-registry "$work/registry")
"$bin/berth-seed" --registry "$registry" >/dev/null
image="$registry/demo/busybox:latest"
bench_bus
# Run-time state on tmpfs, as berthd's default /run/berth and crun's and
# runc's /run/crun and /run/runc are; the image store and database on disk.
runstate=$(mktemp -d /run/berth-bench.XXXXXX)
"$bin/berthd" --root "$work/root" --run-root "$runstate/berthd" 2> "$work/berthd.log" &
bpid=$!
pids+=("$bpid")
for _ in $(seq 100); do "$bin/berth" info >/dev/null 2>&1 && break; sleep 0.05; done
"$bin/berth" pull -q "$image"

# A bundle with the same files for crun, runc and berth-runtime.
bundle="$work/bundle"
mkdir -p "$bundle"
"$bin/berth" image export "$image" "$bundle/rootfs" >/dev/null
(cd "$bundle" && crun spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json)

ms() { echo "scale=1; $1 / 1000000" | bc; }

echo "==> $runs runs each, alternating"
b=(); c=(); r=(); rb=(); rc=()
for i in $(seq "$runs"); do
    t0=$(now); "$bin/berth" run --rm "$image" true; t1=$(now); b+=($((t1 - t0)))
    t0=$(now); crun run -b "$bundle" "bench-c$i" </dev/null; t1=$(now); c+=($((t1 - t0)))
    t0=$(now); runc run -b "$bundle" "bench-r$i" </dev/null; t1=$(now); r+=($((t1 - t0)))
    t0=$(now)
    "$bin/berth-runtime" --root "$runstate/rt" create -b "$bundle" "bench-b$i" </dev/null >/dev/null 2>&1
    "$bin/berth-runtime" --root "$runstate/rt" start "bench-b$i"
    "$bin/berth-runtime" --root "$runstate/rt" delete --force "bench-b$i"
    t1=$(now); rb+=($((t1 - t0)))
    t0=$(now)
    crun create -b "$bundle" "bench-x$i" </dev/null >/dev/null 2>&1
    crun start "bench-x$i"
    crun delete -f "bench-x$i"
    t1=$(now); rc+=($((t1 - t0)))
done
mb=$(median "${b[@]}"); mc=$(median "${c[@]}"); mr=$(median "${r[@]}")
mrb=$(median "${rb[@]}"); mrc=$(median "${rc[@]}")

echo "==> stats sampling with 50 containers"
ticks() { awk '{print $14 + $15}' "/proc/$bpid/stat"; }
hz=$(getconf CLK_TCK)
window=20
t0=$(ticks); sleep "$window"; idle=$(( $(ticks) - t0 ))
for i in $(seq 50); do "$bin/berth" run -d --name "load$i" "$image" sleep 3600 >/dev/null; done
sleep 2
t0=$(ticks); sleep "$window"; busy=$(( $(ticks) - t0 ))
for i in $(seq 50); do "$bin/berth" rm -f "load$i" >/dev/null; done
cost=$(echo "scale=2; ($busy - $idle) * 100 / $hz / $window" | bc)

cat <<EOF

container start-up, $runs runs, median (ms):
  berth run --rm IMAGE true       $(ms "$mb")
  crun run (same files)           $(ms "$mc")
  runc run (same files)           $(ms "$mr")
  ratio berth / crun              $(echo "scale=2; $mb / $mc" | bc) x   (target <= 1.5)
  ratio berth / runc              $(echo "scale=2; $mb / $mr" | bc) x
runtime binary alone, create + start + delete (ms):
  berth-runtime                   $(ms "$mrb")
  crun                            $(ms "$mrc")
  ratio                           $(echo "scale=2; $mrb / $mrc" | bc) x   (target <= 1.0)
stats sampling, 50 containers: berthd used $cost % of one core more than idle (target < 1)
EOF
