#!/bin/bash
# Benchmark of the netlink client alone, against ipvsadm, in one VM run
# (tests/vm/bench-netlink-guest.sh), for N services x 10 masq dests:
#   - reading the table: `ipvsadm -S -n` vs `clusterf show --output ipvsadm`
#     (and `clusterf show`), on a table loaded with `ipvsadm -R`;
#   - the apply phase: a saved plan (`clusterf plan --live empty --out`)
#     applied with `clusterf apply PLAN` into a fresh namespace, at several
#     batch sizes (CLUSTERF_NETLINK_BATCH), against `ipvsadm -R` of the same
#     rules. No config is read or rendered in the guest.
#
#   tests/vm/bench-netlink.sh [N...]      (default: 1000)
#
# Environment: CLUSTERF_BIN (default target/release/clusterf if present,
# else target/debug/clusterf), BENCH_BATCHES (default "default 64 256";
# `default` is clusterf's own choice), BENCH_REPS rounds of the applies
# (default 1; each size's fastest is reported), BENCH_READS=0 to time the
# applies only, and everything run.sh reads. The guest has 2 GiB, 8 GiB from
# 100,000 services (the saved plan alone is ~700 MB). Prints the guest's
# report.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sizes=${*:-1000}
if [ -z "${CLUSTERF_BIN:-}" ]; then
    CLUSTERF_BIN=$root/target/debug/clusterf
    [ -x "$root/target/release/clusterf" ] && CLUSTERF_BIN=$root/target/release/clusterf
fi
export CLUSTERF_BIN
[ -x "$CLUSTERF_BIN" ] || { echo "vm/bench-netlink: error: no clusterf binary at $CLUSTERF_BIN" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/clusterf-bench-netlink.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The addresses of tests/vm/bench.sh (see there).
addrs='
function vip(i) { return "198." 18 + int(i / 65536) "." int(i / 256) % 256 "." i % 256 }
function rip(i, d) { return "10." 128 + int(i / 256) % 128 "." i % 256 "." d + 16 * int(i / 32768) }
'

# gen N DIR: the config of tests/vm/bench.sh (N services s<i>, 10 masq
# dests each).
gen() {
    mkdir -p "$2/services"
    awk -v n="$1" -v dir="$2/services" "$addrs"'BEGIN {
        for (i = 0; i < n; i++) {
            f = dir "/s" i ".yaml"
            print "frontend: {ipv4: " vip(i) ", tcp: 80}" > f
            print "backends:" > f
            for (d = 1; d <= 10; d++)
                print "  d" d ": {ipv4: " rip(i, d) ", tcp: 8080, weight: 10}" > f
            close(f)
        }
    }'
}

files=()
for n in $sizes; do
    d=$work/$(printf '%06d' "$n")
    gen "$n" "$d/cfg"
    "$CLUSTERF_BIN" render --config-path "$d/cfg" --output ipvsadm >"$d/rules"
    "$CLUSTERF_BIN" plan --config-path "$d/cfg" --live empty --out "$d/plan.json" >/dev/null
    rm -rf "$d/cfg"
    echo "vm/bench-netlink: $n services: $(grep -c '^-a' "$d/rules") dests" >&2
    files+=("$d:bench/$(basename "$d")")
done
printf '%s\n' ${BENCH_BATCHES:-default 64 256} >"$work/batches"
echo "${BENCH_READS:-1}" >"$work/reads"
echo "${BENCH_REPS:-1}" >"$work/reps"
files+=("$work/batches:batches" "$work/reads:reads" "$work/reps:reps")
mem=2048
for n in $sizes; do
    [ "$n" -lt 50000 ] || mem=8192
done
CLUSTERF_VM_MEM=${CLUSTERF_VM_MEM:-$mem} CLUSTERF_VM_TIMEOUT=${CLUSTERF_VM_TIMEOUT:-6000} \
    "$here/run.sh" "$here/bench-netlink-guest.sh" "${files[@]}"
