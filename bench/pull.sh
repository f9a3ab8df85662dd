#!/usr/bin/env bash
# Pull + unpack benchmark: `berth pull` against `skopeo copy` + `umoci unpack`
# of the same 5-6 layer, ~180 MB image from a registry on 127.0.0.1, in one
# run, alternating, each from an empty store. Prints medians, the ratio, and
# berthd's idle and peak RSS. Needs root (berthd). Usage: bench/pull.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. bench/lib.sh

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    "$bin/berth-seed" --stop-registry "$work/registry" >/dev/null 2>&1 || true
    sleep 0.5
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> registry with the benchmark image"
registry=$("$bin/berth-seed" --start-registry "$work/registry")
"$bin/berth-seed" --registry "$registry" --bench-image > "$work/seed.txt" 2>&1
cat "$work/seed.txt"
image="$registry/bench/debian-files:latest"

echo "==> private bus"
bench_bus

secs() { date +%s.%N; }
rss() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }

berth_times=(); peer_times=(); idle=(); peak=()
for i in $(seq "$runs"); do
    # berth: a fresh berthd and store each run.
    rm -rf "$work/root" "$work/run"
    "$bin/berthd" --root "$work/root" --run-root "$work/run" 2> "$work/berthd.log" &
    bpid=$!
    pids+=("$bpid")
    for _ in $(seq 100); do "$bin/berth" info >/dev/null 2>&1 && break; sleep 0.05; done
    sleep 1
    idle+=("$(rss "$bpid" VmRSS)")
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    t0=$(secs)
    "$bin/berth" pull -q "$image"
    t1=$(secs)
    peak+=("$(rss "$bpid" VmHWM)")
    berth_times+=("$(echo "$t1 - $t0" | bc)")
    kill "$bpid"; wait "$bpid" 2>/dev/null || true

    # skopeo + umoci: the same image into an OCI layout, then a rootfs.
    rm -rf "$work/oci" "$work/bundle"
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    t0=$(secs)
    skopeo copy -q --src-tls-verify=false "docker://$image" "oci:$work/oci:latest"
    umoci unpack --image "$work/oci:latest" "$work/bundle" >/dev/null
    t1=$(secs)
    peer_times+=("$(echo "$t1 - $t0" | bc)")
    echo "run $i: berth $(printf %.2f "${berth_times[-1]}") s, skopeo+umoci $(printf %.2f "${peer_times[-1]}") s"
done

mb=$(median "${berth_times[@]}"); mp=$(median "${peer_times[@]}")
cat <<EOF2

pull + unpack of $image ($(grep -m1 "layers," "$work/seed.txt" | sed "s/^ *//")), $runs runs, median:
  berth pull              $(printf %.2f "$mb") s
  skopeo copy + umoci     $(printf %.2f "$mp") s
  ratio                   $(echo "scale=2; $mb / $mp" | bc) x   (target <= 0.5)
berthd RSS: idle $(( $(median "${idle[@]}") / 1024 )) MB (target < 15), peak during pull $(( $(median "${peak[@]}") / 1024 )) MB (target < 64)
EOF2
