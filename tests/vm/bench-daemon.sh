#!/bin/bash
# Benchmark: the watch daemon's memory against the real kernel. One VM run
# (tests/vm/bench-daemon-guest.sh) of `clusterf apply --watch` with N
# services x 10 backends shaped as benches/latency.rs shapes them: the
# frontends in a config directory (original JSON layout), the backends in
# an etcd 3.4 running inside the guest. Reports the daemon's VmHWM (peak)
# and VmRSS from /proc/PID/status after the first pass and after changes.
#
#   tests/vm/bench-daemon.sh [N]      (default 10000; the recorded run)
#
# The etcd data is made on the host: a throwaway etcd on free ports is
# filled (1,000 puts a transaction), saved with `etcdctl snapshot save` and
# restored as member `vm` of the guest's one-member cluster, so the guest
# starts with the keys instead of writing them under emulation.
#
# Environment: CLUSTERF_BIN (default target/release/clusterf if present,
# else target/debug/clusterf); BENCH_BASE_BIN, a second binary measured in
# the same VM run, alternating with this one (base first) for BENCH_ROUNDS
# rounds (default 1); BENCH_VARIANTS, a file of further runs after those
# two in each round, one a line: NAME BINARY [VAR=VALUE...] (BINARY a path,
# or `new` or `base`; the variables set for that run, e.g. MIMALLOC_*
# options; MIMALLOC_SHOW_STATS=1 prints mimalloc's statistics); BENCH_CHANGES
# (single reweights, default 50); CLUSTERF_VM_MEM (default 2048),
# CLUSTERF_VM_SMP (default 2) and everything run.sh reads. Needs etcd and
# etcdctl on the host ($CLUSTERF_ETCD_BIN, else /usr/bin/etcd).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-10000}
if [ -z "${CLUSTERF_BIN:-}" ]; then
    CLUSTERF_BIN=$root/target/debug/clusterf
    [ -x "$root/target/release/clusterf" ] && CLUSTERF_BIN=$root/target/release/clusterf
fi
export CLUSTERF_BIN
[ -x "$CLUSTERF_BIN" ] || { echo "vm/bench-daemon: error: no clusterf binary at $CLUSTERF_BIN" >&2; exit 1; }
etcd=${CLUSTERF_ETCD_BIN:-/usr/bin/etcd}
etcdctl=$(dirname "$etcd")/etcdctl
[ -x "$etcdctl" ] || etcdctl=$(command -v etcdctl)
echo "vm/bench-daemon: clusterf binary $CLUSTERF_BIN, $n services" >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/clusterf-bench-daemon.XXXXXX")
etcd_pid=
cleanup() {
    [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The config: services/s<i>/frontend, 10.100.0.0 + i, tcp 80 (as
# benches/latency.rs: frontend_ip).
awk -v n="$n" -v dir="$work/cfg/services" 'BEGIN { for (i = 0; i < n; i++) print dir "/s" i }' | xargs mkdir -p
awk -v n="$n" -v dir="$work/cfg/services" 'BEGIN {
    for (i = 0; i < n; i++) {
        a = 174325760 + i
        f = dir "/s" i "/frontend"
        printf "{\"ipv4\": \"%d.%d.%d.%d\", \"tcp\": 80}\n", int(a / 16777216), int(a / 65536) % 256, int(a / 256) % 256, a % 256 >f
        close(f)
    }
}'

# The overlay: <prefix>/services/s<i>/backends/b<j>, 10.0.0.0 + 10i + j,
# tcp 8080, weight 10 (benches/latency.rs: backend_ip, backend_json), as
# `etcdctl txn` input (no compares, the puts, no else), 1,000 puts a file.
prefix=/clusterf-$n
mkdir -p "$work/txn"
awk -v n="$n" -v p="$prefix" -v dir="$work/txn" 'BEGIN {
    for (k = 0; k < n * 10; k++) {
        f = dir "/" int(k / 1000)
        if (k % 1000 == 0) printf "\n" >f
        i = int(k / 10); j = k % 10; a = 167772160 + k
        printf "put %s/services/s%d/backends/b%d \"{\\\"ipv4\\\": \\\"%d.%d.%d.%d\\\", \\\"tcp\\\": 8080, \\\"weight\\\": 10}\"\n", p, i, j, int(a / 16777216), int(a / 65536) % 256, int(a / 256) % 256, a % 256 >f
        if (k % 1000 == 999 || k == n * 10 - 1) { printf "\n\n" >f; close(f) }
    }
}'

# A throwaway etcd on free ports, filled, saved, restored for the guest.
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cport=$(port)
pport=$(port)
url=http://127.0.0.1:$cport
"$etcd" --name fill --data-dir "$work/fill" --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "fill=http://127.0.0.1:$pport" --max-txn-ops 1000 >"$work/etcd.log" 2>&1 &
etcd_pid=$!
export ETCDCTL_API=3
for _ in $(seq 100); do
    "$etcdctl" --endpoints "$url" endpoint health >/dev/null 2>&1 && break
    sleep 0.1
done
for f in "$work"/txn/*; do
    "$etcdctl" --endpoints "$url" txn <"$f" >/dev/null
done
keys=$("$etcdctl" --endpoints "$url" get --prefix "$prefix/" --limit 1 -w json | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
[ "$keys" = $((n * 10)) ] || { echo "vm/bench-daemon: error: $keys keys in etcd, want $((n * 10))" >&2; exit 1; }
"$etcdctl" --endpoints "$url" snapshot save "$work/snap.db" >/dev/null 2>&1
kill "$etcd_pid"
wait "$etcd_pid" 2>/dev/null || true
etcd_pid=
"$etcdctl" snapshot restore "$work/snap.db" --name vm --data-dir "$work/etcd-data" \
    --initial-cluster vm=http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 >/dev/null 2>&1
echo "vm/bench-daemon: $keys backends in etcd ($(du -sh "$work/etcd-data" | cut -f1) data dir)" >&2

echo "$n" >"$work/services"
echo "${BENCH_CHANGES:-50}" >"$work/changes"
echo "${BENCH_ROUNDS:-1}" >"$work/rounds"
files=("$work/cfg:cfg" "$work/etcd-data:etcd-data" "$etcd:etcd" "$etcdctl:etcdctl"
    "$work/services:services" "$work/changes:changes" "$work/rounds:rounds")
if [ -n "${BENCH_BASE_BIN:-}" ]; then
    objcopy --strip-debug "$BENCH_BASE_BIN" "$work/clusterf-base"
    files+=("$work/clusterf-base:clusterf-base")
fi
if [ -n "${BENCH_VARIANTS:-}" ]; then
    : >"$work/variants"
    k=0
    while read -r vname vbin vvars; do
        case $vname in '' | '#'*) continue ;; esac
        case $vbin in
        new) guest=/usr/bin/clusterf ;;
        base) guest=/data/clusterf-base ;;
        *)
            k=$((k + 1))
            objcopy --strip-debug "$vbin" "$work/clusterf-v$k"
            files+=("$work/clusterf-v$k:clusterf-v$k")
            guest=/data/clusterf-v$k
            ;;
        esac
        echo "$vname $guest $vvars" >>"$work/variants"
    done <"$BENCH_VARIANTS"
    files+=("$work/variants:variants")
fi
CLUSTERF_VM_MEM=${CLUSTERF_VM_MEM:-2048} CLUSTERF_VM_SMP=${CLUSTERF_VM_SMP:-2} \
    CLUSTERF_VM_TIMEOUT=${CLUSTERF_VM_TIMEOUT:-2400} \
    "$here/run.sh" "$here/bench-daemon-guest.sh" "${files[@]}"
