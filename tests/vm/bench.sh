#!/bin/bash
# Benchmark: clusterf apply against `ipvsadm -R` of the same rules, side by
# side in one VM run (tests/vm/bench-guest.sh), for N services x 10 dests:
# from empty, a 1% change, and a run with nothing to do.
#
#   tests/vm/bench.sh [N...]      (default: 1000; the recorded run: 1000 10000)
#
# The configs, the rules (`clusterf render --output ipvsadm`, on the host)
# and the ipvsadm delta of the 1% change are generated here and copied into
# the guest. Emulated absolute times mean little; the ratios are the figures.
# Prints the guest's report; record it in docs/benchmarks.md by hand.
#
# Environment: CLUSTERF_BIN (default target/release/clusterf if present,
# else target/debug/clusterf) and everything run.sh reads.
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

# gen N DIR CHANGED: N services s<i> (198.18.i/256.i%256:80, wlc) with 10
# masq dests each (10.128+i/256.i%256.d:8080, weight 10). With CHANGED=1,
# every 100th service has weight 20 on all dests and dest 10 replaced by 11.
gen() {
    mkdir -p "$2/services"
    awk -v n="$1" -v dir="$2/services" -v changed="$3" 'BEGIN {
        for (i = 0; i < n; i++) {
            f = dir "/s" i ".yaml"
            a = int(i / 256); b = i % 256
            ch = changed && i % 100 == 0
            w = ch ? 20 : 10
            print "frontend: {ipv4: 198.18." a "." b ", tcp: 80}" > f
            print "backends:" > f
            for (d = 1; d <= 10; d++) {
                dd = (ch && d == 10) ? 11 : d
                print "  d" dd ": {ipv4: 10." 128 + a "." b "." dd ", tcp: 8080, weight: " w "}" > f
            }
            close(f)
        }
    }'
}

# delta N: the ipvsadm -R input for the 1% change.
delta() {
    awk -v n="$1" 'BEGIN {
        for (i = 0; i < n; i += 100) {
            a = int(i / 256); b = i % 256
            vip = "198.18." a "." b ":80"
            for (d = 1; d <= 9; d++)
                print "-e -t " vip " -r 10." 128 + a "." b "." d ":8080 -m -w 20"
            print "-a -t " vip " -r 10." 128 + a "." b ".11:8080 -m -w 20"
            print "-d -t " vip " -r 10." 128 + a "." b ".10:8080"
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
CLUSTERF_VM_MEM=${CLUSTERF_VM_MEM:-2048} CLUSTERF_VM_TIMEOUT=${CLUSTERF_VM_TIMEOUT:-3000} \
    "$here/run.sh" ${BENCH_GUEST:-$here/bench-guest.sh} "${files[@]}"
