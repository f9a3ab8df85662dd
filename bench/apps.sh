#!/usr/bin/env bash
# App install/uninstall benchmark, in one run, same machine, same Compose
# file, same images: Berth's `berth install hello-api` / `berth uninstall
# hello-api --delete-data` against Docker Compose's `up -d` / `down -v` of
# the demo two-service app (catalog/demo/hello-api: `front` on
# 127.0.0.1:8091, started once `api` is healthy; its /cgi-bin/api fetches a
# greeting from http://api:8080). Prints medians and the ratios.
# Needs root. Usage: bench/apps.sh [ROUNDS]   (default 5)
# BENCH_APP_PORT=N publishes front on 127.0.0.1:N instead of the catalog's
# 8091, for both tools (`berth install --port front:N`), e.g. when tests
# beside the bench publish the demo app on 8091 themselves.
#
# What is timed, for both tools alike:
#   install    from the start of the command until
#              `curl http://127.0.0.1:PORT/cgi-bin/api` returns the api's
#              greeting (polled every 20 ms once the command returned);
#   uninstall  the command, until it returns; then (untimed) the script
#              checks that nothing of the app is left: containers,
#              networks, volumes, the published port.
# Each tool is timed twice per round:
#   images already pulled   both stores hold the two images beforehand
#                           (`berth pull`, `docker pull`, untimed), so
#                           neither install downloads and Berth's
#                           uninstall keeps them (the install did not pull
#                           them), as `down -v` does;
#   first install           both stores emptied of the images beforehand
#                           (untimed): the install pulls them from the
#                           registry on 127.0.0.1, and the uninstall
#                           removes what it pulled (Berth's default;
#                           `down -v --rmi all` for Compose).
# One untimed warm-up install+uninstall per tool comes first. The tools
# alternate: odd rounds Berth first, even rounds Docker first.
#
# Docker runs privately: Debian's docker.io and docker-compose (installed
# here if missing, without starting Debian's docker service), a containerd
# and a dockerd that this script starts with their roots, sockets and
# cgroup parent under its work dir, and stops at the end. dockerd never
# touches the host's firewall (--iptables=false --ip6tables=false
# --ip-masq=false), forwarding sysctls (--ip-forward=false), nor makes
# docker0 (--bridge=none); Compose's own network is a bridge the daemon
# removes at `down`, names resolve through Docker's embedded DNS, and the
# published port is served by docker-proxy on 127.0.0.1.
#
# Without the `berth install`/`uninstall`/`catalog` commands in this build,
# it measures Docker Compose alone and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
case $runs in '' | *[!0-9]* | 0) echo "usage: bench/apps.sh [ROUNDS]" >&2; exit 2 ;; esac
. bench/lib.sh

app=hello-api
catalog_port=8091   # what catalog/demo/hello-api publishes front on
app_port=${BENCH_APP_PORT:-$catalog_port}
case $app_port in '' | *[!0-9]*) echo "BENCH_APP_PORT must be a port number" >&2; exit 2 ;; esac
greeting="Hello from the api service"
dk="$work/docker"
dockerd_pid=; containerd_pid=; berthd_pid=; runstate=; registry=
have_berth=
netid=
api_from=

die() { echo "bench/apps.sh: $*" >&2; exit 1; }

# What the host looks like before; compared at the end.
# Other benches and tests may run beside this one and make (their own
# berthd's) links and tables meanwhile: what is new at the end counts as
# left behind only if it is ours (see ours_link, ours_table).
links_now() { ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort; }
tables_now() { nft list tables 2>/dev/null | sed 's/^table //' | sort; }
table_text() { nft -s list table $1 2>/dev/null; }   # "FAMILY NAME"
links_before=$(links_now)
tables_before=$(tables_now)
declare -A table_before=()
while read -r t; do [ -n "$t" ] && table_before[$t]=$(table_text "$t"); done <<< "$tables_before"
our_scope=   # what our berthd tags its links and tables with, once it runs
ours_link() {
    case $1 in
        docker0 | br-*) return 0 ;;   # dockerd's
        bn-* | bv-*) [ -n "$our_scope" ] && ip -d link show "$1" 2>/dev/null | grep -q "alias berth:$our_scope:" ;;
        *) return 1 ;;
    esac
}
ours_table() {
    case $1 in
        "inet berth-net-"*) [ -n "$our_scope" ] && table_text "$1" | grep -q "comment \"berth:$our_scope:" ;;
        *) return 0 ;;   # iptables-nft's (ip filter, ip nat, ...) would be dockerd's
    esac
}
sysctls=(net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.bridge.bridge-nf-call-iptables
         net.bridge.bridge-nf-call-ip6tables net.bridge.bridge-nf-call-arptables)
declare -A sysctl_before=()
for k in "${sysctls[@]}"; do
    v=$(sysctl -n "$k" 2>/dev/null) && sysctl_before[$k]=$v
done
# Host paths dockerd and containerd's shims make whatever their flags say.
made_run_containerd=; [ -e /run/containerd ] || made_run_containerd=1
made_run_docker=; [ -e /run/docker ] || made_run_docker=1
cgparent="berth-bench-docker-${work##*.}"

docker() { DOCKER_HOST="unix://$dk/docker.sock" DOCKER_CONFIG="$dk/cli" /usr/bin/docker "$@"; }
compose=()
dc() { DOCKER_HOST="unix://$dk/docker.sock" DOCKER_CONFIG="$dk/cli" "${compose[@]}" -p "$app" -f "$dk/project/compose.yaml" "$@"; }
berth() { "$bin/berth" "$@"; }

stop_docker() {
    if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
        if [ ${#compose[@]} -gt 0 ] && [ -f "$dk/project/compose.yaml" ]; then
            dc down -v --rmi all -t 1 >/dev/null 2>&1
        fi
        for c in $(docker ps -aq 2>/dev/null); do docker rm -f -v "$c" >/dev/null 2>&1; done
        docker network prune -f >/dev/null 2>&1
        docker volume prune -f >/dev/null 2>&1
        kill "$dockerd_pid"
        for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$dockerd_pid" 2>/dev/null
    fi
    [ -n "$dockerd_pid" ] && wait "$dockerd_pid" 2>/dev/null
    if [ -n "$containerd_pid" ]; then
        kill "$containerd_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$containerd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$containerd_pid" 2>/dev/null
        wait "$containerd_pid" 2>/dev/null
    fi
    # Shims outlive containerd: ours are those given our containerd's socket.
    local p
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -qF -- "-address $dk/containerd/"; then
            kill -9 "${p#/proc/}" 2>/dev/null
        fi
    done
    # Mounts under the daemons' roots (overlays, netns, shm), deepest first.
    local m
    for m in $(awk '{print $5}' /proc/self/mountinfo | grep "^$dk/" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    # Containers' cgroups are gone with them; the parent stays.
    local d
    for d in /sys/fs/cgroup/*/"$cgparent" /sys/fs/cgroup/"$cgparent"; do
        [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    # Compose's bridge, if dockerd died before removing it.
    [ -n "$netid" ] && ip link del "br-${netid:0:12}" 2>/dev/null
    if [ -n "$made_run_containerd" ]; then rmdir /run/containerd/s /run/containerd 2>/dev/null; fi
    if [ -n "$made_run_docker" ]; then rmdir /run/docker/plugins /run/docker 2>/dev/null; fi
    for k in "${!sysctl_before[@]}"; do
        [ "$(sysctl -n "$k" 2>/dev/null)" = "${sysctl_before[$k]}" ] || sysctl -q -w "$k=${sysctl_before[$k]}"
    done
    return 0
}

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    # A signal is handled where the script was, maybe inside a function
    # whose output goes to a log: speak to where the script was started.
    exec 1>&3 2>&4
    echo "==> cleaning up"
    if [ -n "$have_berth" ] && [ -n "$berthd_pid" ] && kill -0 "$berthd_pid" 2>/dev/null; then
        berth uninstall "$app" --delete-data </dev/null >/dev/null 2>&1
        for c in $(berth ps -aq 2>/dev/null); do berth rm -f "$c" >/dev/null 2>&1; done
    fi
    stop_docker
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "$berthd_pid" ] && wait "$berthd_pid" 2>/dev/null
    "$bin/berth-seed" --stop-registry "$work/registry" >/dev/null 2>&1
    sleep 0.5
    for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^($work|${runstate:-/nonexistent})/" | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done

    # Whatever is left now is a leftover of this run.
    local left=()
    local l
    local others=() t
    for l in $(comm -13 <(echo "$links_before") <(links_now)); do
        if ours_link "$l"; then left+=("network link $l"); else others+=("link $l"); fi
    done
    while read -r t; do
        [ -n "$t" ] || continue
        if [ -z "${table_before[$t]+set}" ]; then
            if ours_table "$t"; then left+=("nftables table $t"); else others+=("nftables table $t"); fi
        elif [ "$(table_text "$t")" != "${table_before[$t]}" ]; then
            if ours_table "$t"; then
                left+=("nftables table $t changed:")
                while IFS= read -r l; do left+=("  $l"); done \
                    < <(diff <(echo "${table_before[$t]}") <(table_text "$t") | grep '^[<>]')
            else
                others+=("nftables table $t changed")
            fi
        fi
    done <<< "$(tables_now)"
    for t in $(comm -23 <(echo "$tables_before") <(tables_now) | tr ' ' '@'); do others+=("nftables table ${t/@/ } removed"); done
    while IFS= read -r l; do [ -n "$l" ] && left+=("mount $l"); done \
        < <(awk '{print $5}' /proc/self/mountinfo | grep -E "^($work|${runstate:-/nonexistent})/")
    for d in /sys/fs/cgroup/*/"$cgparent"; do [ -d "$d" ] && left+=("cgroup $d"); done
    for p in $dockerd_pid $containerd_pid $berthd_pid; do kill -0 "$p" 2>/dev/null && left+=("process $p"); done
    rm -rf "$work"
    [ -n "$runstate" ] && rm -rf "$runstate"
    if [ ${#others[@]} -gt 0 ]; then
        echo "    changed meanwhile by something else (another berthd's tests?), not by this run:"
        printf '      %s\n' "${others[@]}"
    fi
    if [ ${#left[@]} -gt 0 ]; then
        echo "LEFT BEHIND:" >&2
        printf '  %s\n' "${left[@]}" >&2
        [ "$status" = 0 ] && status=1
    else
        echo "    nothing left behind (links, nftables, mounts, cgroups, processes as before)"
    fi
    exit "$status"
}
exec 3>&1 4>&2
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Docker and Compose -----------------------------------------------------

# Debian's postinst would start docker.service; where no policy forbids it,
# forbid it for the install (a dockerd of the host's is not what we time).
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    made_policy=1
fi
berth_apt_install "${BERTH_COMPOSE_BENCH_PACKAGES[@]}" || { [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
# Compose v2 (`docker compose`) where it is installed, else Debian 12's v1.
if /usr/bin/docker compose version >/dev/null 2>&1; then
    compose=(/usr/bin/docker compose)
else
    compose=(/usr/bin/docker-compose)
fi

# Listened on, answering, or published by some berthd's nftables map
# (which catches connections to it before any listener would).
port_in_use() {
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] || curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/" \
        || grep -Eq "(^|[{,])[[:space:]]*(127\.0\.0\.1 \. )?$1 : " <<< "$(nft list ruleset 2>/dev/null)"
}
port_in_use "$app_port" && die "port $app_port (where $app is published) is in use or answers on 127.0.0.1: stop what holds it, or pick another with BENCH_APP_PORT=N"

echo "==> private containerd and dockerd in $dk"
mkdir -p "$dk/cli" "$dk/project" "$dk/containerd"
cat > "$dk/containerd.toml" <<EOF
version = 2
root = "$dk/containerd/root"
state = "$dk/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dk/containerd/containerd.sock"
[ttrpc]
  address = "$dk/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dk/containerd/opt"
EOF
# (3>&- 4>&-: the daemons and what they start must not hold our output open.)
/usr/bin/containerd --config "$dk/containerd.toml" > "$dk/containerd.log" 2>&1 3>&- 4>&- &
containerd_pid=$!
for _ in $(seq 100); do [ -S "$dk/containerd/containerd.sock" ] && break; sleep 0.1; done
[ -S "$dk/containerd/containerd.sock" ] || { tail -20 "$dk/containerd.log" >&2; die "containerd did not start"; }
# deprecated-key-path: dockerd 20.10 otherwise writes /etc/docker/key.json.
cat > "$dk/daemon.json" <<EOF
{"deprecated-key-path": "$dk/key.json"}
EOF
/usr/sbin/dockerd --config-file "$dk/daemon.json" \
    --data-root "$dk/data" --exec-root "$dk/exec" --pidfile "$dk/dockerd.pid" \
    -H "unix://$dk/docker.sock" --containerd "$dk/containerd/containerd.sock" \
    --cgroup-parent "/$cgparent" \
    --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
    --bridge=none --userland-proxy=true \
    > "$dk/dockerd.log" 2>&1 3>&- 4>&- &
dockerd_pid=$!
for _ in $(seq 300); do docker version >/dev/null 2>&1 && break; sleep 0.1; done
docker version >/dev/null 2>&1 || { tail -20 "$dk/dockerd.log" >&2; die "dockerd did not start"; }
docker_version=$(docker version --format '{{.Server.Version}}')
compose_version=$("${compose[@]}" version --short 2>/dev/null || "${compose[@]}" version | head -1)
echo "    dockerd $docker_version ($(docker info --format '{{.Driver}}') storage), compose $compose_version (${compose[*]})"

# --- registry, bus, berthd --------------------------------------------------

echo "==> registry with the demo images"
registry=$("$bin/berth-seed" --start-registry "$work/registry" 3>&- 4>&-)
"$bin/berth-seed" --registry "$registry" > "$work/seed.txt"
images=("$registry/demo/api:latest" "$registry/demo/front:latest")
sed -e "s#\${BERTH_DEMO_REGISTRY}#$registry#g" -e "s#127.0.0.1:$catalog_port:#127.0.0.1:$app_port:#" \
    catalog/demo/$app/compose.yaml > "$dk/project/compose.yaml"
berth_install_args=()
[ "$app_port" = "$catalog_port" ] || berth_install_args=(--port "front:$app_port")
grep -q '\${' "$dk/project/compose.yaml" && die "a variable is left in $dk/project/compose.yaml"

if berth catalog --help >/dev/null 2>&1 && berth install --help >/dev/null 2>&1 \
    && berth uninstall --help >/dev/null 2>&1; then
    have_berth=1
    echo "==> private bus and berthd"
    bench_bus 3>&- 4>&-
    runstate=$(mktemp -d /run/berth-bench.XXXXXX)
    "$bin/berthd" --root "$work/root" --run-root "$runstate/berthd" 2> "$work/berthd.log" 3>&- 4>&- &
    berthd_pid=$!
    pids+=("$berthd_pid")
    for _ in $(seq 100); do berth info >/dev/null 2>&1 && break; sleep 0.05; done
    berth info >/dev/null 2>&1 || { tail -20 "$work/berthd.log" >&2; die "berthd did not start"; }
    # The tag of its links and tables (helper/src/network/names.rs: scope_hash of its run root).
    our_scope=$(printf '%s\0scope\0' "$runstate/berthd" | sha256sum | cut -c1-8)
    berth catalog add "$PWD/catalog/demo" --name demo --set "BERTH_DEMO_REGISTRY=$registry" >/dev/null
    tools=(berth docker)
else
    echo "==> this berth has no install/uninstall/catalog commands yet: timing Docker Compose alone"
    tools=(docker)
fi

# --- one install, one uninstall ---------------------------------------------

# Poll until the front end relays the api's greeting; sets answer.
wait_answer() {
    local deadline=$(( $(now) + 120000000000 ))
    while :; do
        answer=$(curl -sf -m 2 "http://127.0.0.1:$1/cgi-bin/api" 2>/dev/null) || answer=
        [[ $answer == *"$greeting"* ]] && return 0
        [ "$(now)" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

# images_cached TOOL / images_absent TOOL: untimed preparation.
images_cached() {
    local i
    for i in "${images[@]}"; do
        case $1 in
            berth) berth pull -q "$i" >/dev/null ;;
            docker) docker pull -q "$i" >/dev/null ;;
        esac
    done
}
images_absent() {
    case $1 in
        berth) berth rmi "${images[@]}" >/dev/null 2>&1 || true
               berth image prune >/dev/null
               ! berth images 2>/dev/null | grep -qF "$registry/demo/" ;;
        docker) docker rmi -f "${images[@]}" >/dev/null 2>&1 || true
                docker image prune -af >/dev/null
                [ -z "$(docker images -q)" ] ;;
    esac || die "$1 still holds the demo images after removing them"
}

# install TOOL: sets t_ret (command returned) and t_ans (page answered), in ms.
install() {
    local out="$work/$1-install.log" port=$app_port t0 t1 t2 p
    port_in_use "$app_port" && die "port $app_port is in use before the $1 install"
    case $1 in
        berth)
            t0=$(now)
            berth install "$app" "${berth_install_args[@]}" </dev/null > "$out" 2>&1 || { cat "$out" >&2; die "berth install failed"; }
            t1=$(now)
            p=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$out" | head -1 | sed 's/.*://') || true
            port=${p:-$app_port} ;;
        docker)
            t0=$(now)
            dc up -d </dev/null > "$out" 2>&1 || { cat "$out" >&2; die "compose up failed"; }
            t1=$(now) ;;
    esac
    wait_answer "$port" || { cat "$out" >&2; die "$1: no greeting on 127.0.0.1:$port/cgi-bin/api after 120 s"; }
    t2=$(now)
    t_ret=$(( (t1 - t0) / 1000000 )); t_ans=$(( (t2 - t0) / 1000000 ))
    # Untimed: was it this run's api that answered? (The api puts its host
    # name in "from"; another berthd's app on the same port would answer too.)
    local from api_host=
    from=$(sed -n 's/.*"from":"\([^"]*\)".*/\1/p' <<< "$answer")
    case $1 in
        berth) berth inspect "$app-api-1" > "$work/berth-api.json" 2>/dev/null \
                   && ! grep -qF "\"$from\"" "$work/berth-api.json" \
                   && die "the greeting on 127.0.0.1:$port came from host \"$from\", not this run's api: another app publishes $port (pick another port with BENCH_APP_PORT=N)"
               api_from=$from ;;
        docker) netid=$(docker network inspect -f '{{.Id}}' "${app}_default")
                api_host=$(docker inspect -f '{{.Config.Hostname}}' \
                    $(docker ps -q --filter "label=com.docker.compose.project=$app" --filter label=com.docker.compose.service=api))
                [ "$from" = "$api_host" ] \
                    || die "the greeting on 127.0.0.1:$port came from host \"$from\", not this run's api ($api_host): another app publishes $port (pick another port with BENCH_APP_PORT=N)"
                api_from=$from ;;
    esac
    return 0
}

# uninstall TOOL keep|rmi: sets t_un (ms), then checks nothing is left.
uninstall() {
    local out="$work/$1-uninstall.log" t0 t1 left=()
    case $1 in
        berth)
            t0=$(now)
            berth uninstall "$app" --delete-data </dev/null > "$out" 2>&1 || { cat "$out" >&2; die "berth uninstall failed"; }
            t1=$(now)
            [ -z "$(berth ps -aq 2>/dev/null)" ] || left+=("containers: $(berth ps -aq | tr '\n' ' ')")
            if [ "$2" = rmi ] && berth images 2>/dev/null | grep -qF "$registry/demo/"; then
                left+=("images the install pulled")
            fi ;;
        docker)
            local extra=(); [ "$2" = rmi ] && extra=(--rmi all)
            t0=$(now)
            dc down -v "${extra[@]}" </dev/null > "$out" 2>&1 || { cat "$out" >&2; die "compose down failed"; }
            t1=$(now)
            [ -z "$(docker ps -aq)" ] || left+=("containers: $(docker ps -aq | tr '\n' ' ')")
            [ -z "$(docker network ls --format '{{.Name}}' | grep -vx 'host\|none')" ] \
                || left+=("networks: $(docker network ls --format '{{.Name}}' | grep -vx 'host\|none' | tr '\n' ' ')")
            [ -z "$(docker volume ls -q)" ] || left+=("volumes: $(docker volume ls -q | tr '\n' ' ')")
            if [ -n "$netid" ] && ip link show "br-${netid:0:12}" >/dev/null 2>&1; then
                left+=("bridge br-${netid:0:12}")
            fi
            netid=
            if [ "$2" = rmi ] && [ -n "$(docker images -q)" ]; then left+=("images"); fi ;;
    esac
    local body
    if body=$(curl -s -m 1 "http://127.0.0.1:$app_port/cgi-bin/api" 2>/dev/null); then
        [[ $body == *"\"$api_from\""* ]] || die "after the $1 uninstall another app answers on 127.0.0.1:$app_port: pick another port with BENCH_APP_PORT=N"
        left+=("its api still answers on 127.0.0.1:$app_port")
    fi
    [ ${#left[@]} -eq 0 ] || { cat "$out" >&2; die "$1 uninstall left: ${left[*]}"; }
    t_un=$(( (t1 - t0) / 1000000 ))
}

# Milliseconds (kept below 2^31, which median's awk prints exactly) as seconds.
s() { printf '%.2f' "$(echo "scale=3; $1 / 1000" | bc)"; }

# --- warm-up, then the rounds -----------------------------------------------

echo "==> warm-up (untimed): one install and uninstall each, images pulled first"
for t in "${tools[@]}"; do
    images_cached "$t"
    install "$t"
    uninstall "$t" keep
    echo "    $t: install $(s "$t_ans") s, uninstall $(s "$t_un") s"
done

declare -A T=()   # T[tool.phase.what] = space-separated ms
rec() { T[$1]="${T[$1]:-} $2"; }
echo "==> $runs rounds, alternating"
for i in $(seq "$runs"); do
    order=("${tools[@]}")
    if [ ${#tools[@]} -eq 2 ] && [ $((i % 2)) -eq 0 ]; then order=(docker berth); fi
    line=()
    for t in "${order[@]}"; do
        images_cached "$t"
        install "$t"; rec "$t.c.ret" "$t_ret"; rec "$t.c.ans" "$t_ans"
        uninstall "$t" keep; rec "$t.c.un" "$t_un"
        line+=("$t: install $(s "$t_ans") s, uninstall $(s "$t_un") s")
    done
    for t in "${order[@]}"; do
        images_absent "$t"
        install "$t"; rec "$t.f.ret" "$t_ret"; rec "$t.f.ans" "$t_ans"
        uninstall "$t" rmi; rec "$t.f.un" "$t_un"
        line+=("$t first: install $(s "$t_ans") s, uninstall $(s "$t_un") s")
    done
    echo "round $i: $(IFS=';'; echo "${line[*]}" | sed 's/;/; /g')"
done

# --- report -----------------------------------------------------------------

m() { median ${T[$1]}; }
row() { printf '    %-40s %6s s%s\n' "$1" "$(s "$(m "$2")")" "${3:-}"; }
ratio() {
    if [ -n "$have_berth" ]; then
        printf '    %-40s %6s x   (target <= 0.5)\n' "ratio berth / docker" \
            "$(echo "scale=2; $(m "berth.$1") / $(m "docker.$1")" | bc | sed 's/^\./0./')"
    else
        printf '    %-40s n/a (this berth has no install yet)\n' "ratio berth / docker"
    fi
}
section() { # PHASE TITLE UNINSTALL-TITLE DOCKER-DOWN
    echo "$2:"
    echo "  install, until /cgi-bin/api answers the greeting"
    [ -n "$have_berth" ] && row "berth install $app" "berth.$1.ans" "   (command returned at $(s "$(m "berth.$1.ret")") s)"
    row "$dcname up -d" "docker.$1.ans" "   (command returned at $(s "$(m "docker.$1.ret")") s)"
    ratio "$1.ans"
    echo "  $3"
    [ -n "$have_berth" ] && row "berth uninstall $app --delete-data" "berth.$1.un"
    row "$dcname $4" "docker.$1.un"
    ratio "$1.un"
}
dcname=${compose[*]##*/}
echo
echo "$app (front + api, front started once api is healthy), $runs rounds, alternating, median;"
echo "dockerd $docker_version, $dcname $compose_version:"
section c "images already pulled" "uninstall" "down -v"
section f "first install (images pulled from 127.0.0.1 during it)" \
    "uninstall, removing the images the install pulled" "down -v --rmi all"
