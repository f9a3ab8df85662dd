#!/usr/bin/env bash
# OCI runtime conformance: runs Berth's suite (tests/oci/ocitest) against
# berth-runtime and, for a baseline, runc. The suite is modelled on
# opencontainers/runtime-tools' validation/ programs and cmd/runtimetest
# (same test names, same method: drive the runtime's CLI, check from outside
# and from a checker inside the container), written anew because Debian's
# golang-github-opencontainers-runtime-tools-dev ships only the library
# packages, not validation/ or runtimetest; it uses those library packages
# (the config generator) and runtime-spec's Go types.
#
# Usage: tests/oci/run.sh [--berth-only] [TEST...]
#   TEST       names from `ocitest list` (default: all)
#   env OCITEST_TIMEOUT   seconds one test may take (default 120)
#   env BERTH_RUNTIME     a berth-runtime binary to test instead of building one
#
# Needs root (it creates containers). Installs its Debian packages, builds
# berth-runtime (release) and the Go suite into the workspace's target/
# directory, runs every test against each runtime with a timeout, prints TAP
# per test into a results directory and a summary table. Every container
# uses a private --root state directory (the cgroup tests a cgroup parent
# of their own), so nothing else on the machine is touched; all of it is
# removed at the end.
# Exits 0 when the suite ran, whatever it found (runc fails some tests too).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
. scripts/deps.sh
berth_need_root

berth_only=
tests=()
for a in "$@"; do
    case $a in
        --berth-only) berth_only=1 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        -*) echo "unknown option $a" >&2; exit 2 ;;
        *) tests+=("$a") ;;
    esac
done

berth_apt_install golang-go golang-github-opencontainers-runtime-tools-dev \
    golang-github-opencontainers-specs-dev golang-gocapability-dev \
    busybox-static runc util-linux coreutils

# --- build ------------------------------------------------------------------
if [ -n "${BERTH_RUNTIME:-}" ]; then
    berth=$BERTH_RUNTIME
else
    berth_need_cargo
    echo "==> building berth-runtime"
    target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    berth="$target/release/berth-runtime"
    if ! cargo build --release -q -p berthd --bin berth-runtime; then
        # A tree mid-edit may not build; test the last binary if there is one.
        [ -x "$berth" ] || exit 1
        echo "warning: the build failed; testing the existing $berth (built $(date -r "$berth"))" >&2
    fi
fi
if [ -z "${target:-}" ]; then
    target=$(cargo metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p' || true)
fi
cache="${target:-$repo/target}/ocitest"
mkdir -p "$cache/gopath"
echo "==> building the conformance suite"
# GOPATH mode: the imports come from Debian's /usr/share/gocode; static, so
# the same binary runs inside the busybox containers as /runtimetest.
(cd "$here/ocitest" && GO111MODULE=off GOFLAGS= GOPATH="$cache/gopath:/usr/share/gocode" \
    GOCACHE="$cache/gocache" CGO_ENABLED=0 go build -o "$cache/ocitest" .)
ocitest="$cache/ocitest"

runtimes=(berth-runtime)
bins=("$berth")
if [ -z "$berth_only" ]; then
    runtimes+=(runc)
    bins+=("$(command -v runc)")
fi
[ ${#tests[@]} -gt 0 ] || mapfile -t tests < <("$ocitest" list)

# --- work dir, rootfs, cleanup -----------------------------------------------
work=$(mktemp -d /var/tmp/berth-ocitest.XXXXXX)
# Searchable, so a container in a user namespace reaches its bundle.
chmod 0755 "$work"
cgparent="berth-ocitest-$$"
cleanup() {
    set +e
    local i rt state c
    for i in "${!runtimes[@]}"; do
        state="$work/state-${runtimes[$i]}"
        [ -d "$state" ] || continue
        for c in "$state"/*; do
            [ -e "$c" ] || continue
            "${bins[$i]}" --root "$state" delete --force "$(basename "$c")" >/dev/null 2>&1
        done
    done
    # Cgroups the runtimes left (runc puts relative paths under our own).
    find /sys/fs/cgroup -mindepth 2 -type d -name "$cgparent" 2>/dev/null | while read -r d; do
        find "$d" -name cgroup.procs 2>/dev/null | xargs -r cat 2>/dev/null | xargs -r kill -9 2>/dev/null
        sleep 0.2
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    # Mounts that "shared" root propagation sent back to the host.
    grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,dev,proc,sys,tmp,etc,root}
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
install -m 0755 "$ocitest" "$rootfs/runtimetest"

# --- run ---------------------------------------------------------------------
results="$work/results"
keep="$cache/results"
rm -rf "$keep"
timeout_s=${OCITEST_TIMEOUT:-120}
for i in "${!runtimes[@]}"; do
    rt=${runtimes[$i]}
    mkdir -p "$results/$rt" "$work/state-$rt" "$work/bundles-$rt"
    echo "==> $rt (${bins[$i]})"
    for t in "${tests[@]}"; do
        rc=0
        timeout -k 10 "$timeout_s" env RUNTIME="${bins[$i]}" OCITEST_ROOTFS="$rootfs" \
            OCITEST_STATE="$work/state-$rt" OCITEST_WORK="$work/bundles-$rt" OCITEST_CGROUP="$cgparent" \
            "$ocitest" run "$t" > "$results/$rt/$t.tap" 2> "$results/$rt/$t.err" || rc=$?
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            echo "not ok - timed out after ${timeout_s}s # runner" >> "$results/$rt/$t.tap"
        elif [ "$rc" != 0 ]; then
            echo "not ok - ocitest exited with $rc # runner" >> "$results/$rt/$t.tap"
        fi
        p=$(grep -c '^ok ' "$results/$rt/$t.tap" | tr -d ' ' || true)
        s=$(grep -c '^ok .*# SKIP' "$results/$rt/$t.tap" || true)
        f=$(grep -c '^not ok' "$results/$rt/$t.tap" || true)
        echo "$t $((p - s)) $f $s" >> "$results/$rt.summary"
        printf '  %-34s pass %3d  fail %3d  skip %3d\n' "$t" "$((p - s))" "$f" "$s"
    done
done

# --- summary -----------------------------------------------------------------
echo
awk -v rts="${runtimes[*]}" -v dir="$results" '
BEGIN {
    n = split(rts, rt, " ")
    for (i = 1; i <= n; i++) {
        f = dir "/" rt[i] ".summary"
        while ((getline line < f) > 0) {
            split(line, a, " ")
            if (!(a[1] in seen)) { seen[a[1]] = 1; order[++m] = a[1] }
            P[i, a[1]] = a[2]; F[i, a[1]] = a[3]; S[i, a[1]] = a[4]
            TP[i] += a[2]; TF[i] += a[3]; TS[i] += a[4]
            if (a[3] == 0) TT[i]++
        }
    }
    printf "%-34s", "test"
    for (i = 1; i <= n; i++) printf " | %-20s", rt[i] " pass/fail/skip"
    printf "\n"
    for (j = 1; j <= m; j++) {
        t = order[j]; mark = ""
        printf "%-34s", t
        for (i = 1; i <= n; i++) printf " | %5d %5d %5d     ", P[i, t], F[i, t], S[i, t]
        if (n > 1 && F[1, t] > 0 && F[2, t] == 0) mark = "  <- only " rt[1] " fails"
        if (n > 1 && F[1, t] == 0 && F[2, t] > 0) mark = "  <- only " rt[2] " fails"
        printf "%s\n", mark
    }
    printf "%-34s", "TOTAL checks"
    for (i = 1; i <= n; i++) printf " | %5d %5d %5d     ", TP[i], TF[i], TS[i]
    printf "\n%-34s", "tests without a failure"
    for (i = 1; i <= n; i++) printf " | %5d of %-5d       ", TT[i], m
    printf "\n"
}'
mkdir -p "$keep"
cp -r "$results"/. "$keep"/
echo
echo "TAP output and stderr of every test: $keep/<runtime>/<test>.tap|.err"
