#!/bin/bash
# Benchmark: clusterf apply against `ipvsadm -R` of the same rules, side by
# side in one VM run (tests/vm/bench-guest.sh), for N services x 10 dests:
# from empty, a 1% change, and a run with nothing to do.
#
#   tests/vm/bench.sh [N...]      (default: 1000; the recorded runs: 1000
#                                  10000, and 100000 on its own)
#
# The configs, the rules (`clusterf render --output ipvsadm`, on the host)
# and the ipvsadm delta of the 1% change are generated here and copied into
# the guest. Emulated absolute times mean little; the ratios are the figures.
# Prints the guest's report; record it in docs/benchmarks.md by hand.
#
# The guest has 2 CPUs (a one-shot apply reads the kernel's table while it
# renders, as on any real machine) and 2 GiB, 8 GiB from 100,000 services
# (two tables of a million dests, the configs and the rules in its RAM).
#
# Environment: CLUSTERF_BIN (default target/release/clusterf if present,
# else target/debug/clusterf); BENCH_BASE_BIN, a baseline binary whose 1%
# apply alternates with this one's for BENCH_ROUNDS rounds (default 5), and
# whose apply from empty is timed after this one's (a row "base, same run");
# BENCH_CLUSTERF_FIRST=1, clusterf's side first and `ipvsadm -R` of the cold
# rules in ten timed parts (figures even from a run cut short: 100k);
# BENCH_GUEST, another guest script (tests/vm/bench-cold-guest.sh: the
# baseline's and this binary's apply from empty, BENCH_ROUNDS rounds, and
# with BENCH_COLD_ENV="VAR=VALUE ..." this binary with that environment);
# CLUSTERF_VM_MEM, CLUSTERF_VM_SMP (default 2) and everything run.sh reads.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sizes=${*:-1000}
if [ -z "${CLUSTERF_BIN:-}" ]; then
    CLUSTERF_BIN=$root/target/debug/clusterf
    [ -x "$root/target/release/clusterf" ] && CLUSTERF_BIN=$root/target/release/clusterf
fi
export CLUSTERF_BIN
[ -x "$CLUSTERF_BIN" ] || { echo "vm/bench: error: no clusterf binary at $CLUSTERF_BIN" >&2; exit 1; }
echo "vm/bench: clusterf binary $CLUSTERF_BIN" >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/clusterf-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The addresses of service i (awk functions): its frontend vip(i), in
# 198.18.0.0/15 (i < 131,072), and its dest rip(i, d) for d in 1..11, in
# 10.128.0.0/9. Up to 32,768 services they are 198.18.A.B and 10.128+A.B.d
# (A = i/256, B = i%256); beyond, the fourth octet of a dest moves up by 16
# per 32,768 services (unique and valid up to 491,520 services).
addrs='
function vip(i) { return "198." 18 + int(i / 65536) "." int(i / 256) % 256 "." i % 256 }
function rip(i, d) { return "10." 128 + int(i / 256) % 128 "." i % 256 "." d + 16 * int(i / 32768) }
'

# gen N DIR CHANGED: N services s<i> (vip(i):80, wlc) with 10 masq dests
# each (rip(i, 1..10):8080, weight 10). With CHANGED=1, every 100th service
# has weight 20 on all dests and dest 10 replaced by 11.
gen() {
    mkdir -p "$2/services"
    awk -v n="$1" -v dir="$2/services" -v changed="$3" "$addrs"'BEGIN {
        for (i = 0; i < n; i++) {
            f = dir "/s" i ".yaml"
            ch = changed && i % 100 == 0
            w = ch ? 20 : 10
            print "frontend: {ipv4: " vip(i) ", tcp: 80}" > f
            print "backends:" > f
            for (d = 1; d <= 10; d++) {
                dd = (ch && d == 10) ? 11 : d
                print "  d" dd ": {ipv4: " rip(i, dd) ", tcp: 8080, weight: " w "}" > f
            }
            close(f)
        }
    }'
}

# delta N: the ipvsadm -R input for the 1% change.
delta() {
    awk -v n="$1" "$addrs"'BEGIN {
        for (i = 0; i < n; i += 100) {
            v = vip(i) ":80"
            for (d = 1; d <= 9; d++)
                print "-e -t " v " -r " rip(i, d) ":8080 -m -w 20"
            print "-a -t " v " -r " rip(i, 11) ":8080 -m -w 20"
            print "-d -t " v " -r " rip(i, 10) ":8080"
        }
    }'
}

files=()
for n in $sizes; do
    d=$work/$n
    gen "$n" "$d/a" 0
    gen "$n" "$d/b" 1
    "$CLUSTERF_BIN" render --config-path "$d/a" --output ipvsadm >"$d/a.rules"
    "$CLUSTERF_BIN" render --config-path "$d/b" --output ipvsadm >"$d/b.rules"
    delta "$n" >"$d/delta.rules"
    echo "vm/bench: $n services: $(grep -c '^-a' "$d/a.rules") dests, $(wc -l <"$d/delta.rules") delta rules" >&2
    files+=("$d:bench/$(printf '%06d' "$n")")
done
if [ -n "${BENCH_BASE_BIN:-}" ]; then
    objcopy --strip-debug "$BENCH_BASE_BIN" "$work/clusterf-base"
    echo "${BENCH_ROUNDS:-5}" >"$work/rounds"
    files+=("$work/clusterf-base:clusterf-base" "$work/rounds:rounds")
fi
if [ -n "${BENCH_COLD_ENV:-}" ]; then
    echo "$BENCH_COLD_ENV" >"$work/cold-env"
    files+=("$work/cold-env:cold-env")
fi
if [ -n "${BENCH_CLUSTERF_FIRST:-}" ]; then
    : >"$work/clusterf-first"
    files+=("$work/clusterf-first:clusterf-first")
fi
mem=2048
for n in $sizes; do
    [ "$n" -lt 50000 ] || mem=8192
done
CLUSTERF_VM_MEM=${CLUSTERF_VM_MEM:-$mem} CLUSTERF_VM_SMP=${CLUSTERF_VM_SMP:-2} \
    CLUSTERF_VM_TIMEOUT=${CLUSTERF_VM_TIMEOUT:-6000} \
    "$here/run.sh" ${BENCH_GUEST:-$here/bench-guest.sh} "${files[@]}"
