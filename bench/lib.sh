# Shared set-up of the benchmarks; sourced by bench/*.sh from the repo root.
# Installs what they need, builds the release binaries into $bin, makes a
# work dir $work, and offers a private bus with Berth's policy.
. scripts/deps.sh
berth_need_root
berth_apt_install "${BERTH_TEST_PACKAGES[@]}"
berth_need_cargo

cargo build --release -q -p berthd -p berth -p berth-tests --bins
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target/release"
work=$(mktemp -d /var/tmp/berth-bench.XXXXXX)
# Processes to stop at the end, by pid.
pids=()

# Start a private system-like bus in $work/bus and point berth at it.
bench_bus() {
    mkdir -p "$work/bus"
    sed -e "s#@SOCKET@#$work/bus/socket#" -e "s#@POLICY@#$PWD/helper/data/org.berth.Helper1.conf#" \
        scripts/bus.conf.in > "$work/bus/bus.conf"
    dbus-daemon --config-file="$work/bus/bus.conf" --fork --print-pid > "$work/bus/pid"
    pids+=("$(cat "$work/bus/pid")")
    export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$work/bus/socket"
}

now() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {v = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf (v == int(v)) ? "%.0f\n" : "%.3f\n", v}'; }
