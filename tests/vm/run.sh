#!/bin/bash
# Boots the test guest once and runs one scenario in it.
#
#   tests/vm/run.sh SCENARIO [SRC[:DEST]...]
#
# SCENARIO is a shell script (a path, or a name in tests/vm/scenarios/). It
# runs as /scenario/run.sh under busybox sh, in /data, as root, with ip_vs,
# veth and dummy loaded; tests/vm/scenarios/lib.sh is at $SCENARIO_LIB.
# Each SRC (file or directory) is copied to /data/DEST (default: its base
# name). The clusterf binary ($CLUSTERF_BIN, default target/debug/clusterf,
# debug info stripped) is /usr/bin/clusterf, with the libraries ldd lists.
#
# Prints the scenario's stdout and stderr and exits with its exit code;
# 124 when the guest hit the time limit, 125 when it did not report one.
#
# Environment:
#   CLUSTERF_BIN          clusterf binary to put in the guest
#   CLUSTERF_VM_TIMEOUT   seconds before the guest is killed (default 300)
#   CLUSTERF_VM_MEM       guest memory in MiB (default 1024)
#   CLUSTERF_VM_SMP       guest CPUs (default 1)
#   CLUSTERF_VM_ACCEL     kvm or tcg (default: kvm only with kvm_intel/kvm_amd)
#   CLUSTERF_VM_KEEP      keep the run directory (console log, cpio) if set
#   CLUSTERF_VM_CACHE     see build.sh
#
# This script does not judge results; the scenario's exit code does.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { echo "vm/run: $*" >&2; }
die() { echo "vm/run: error: $*" >&2; exit 125; }

[ $# -ge 1 ] || die "usage: run.sh SCENARIO [SRC[:DEST]...]"
scenario=$1
shift
if [ ! -f "$scenario" ] && [ -f "$here/scenarios/$scenario.sh" ]; then
    scenario=$here/scenarios/$scenario.sh
fi
[ -f "$scenario" ] || die "no scenario $scenario"

cache=$("$here/build.sh")
[ -f "$cache/kernel" ] && [ -f "$cache/base.cpio" ] || die "guest not built in $cache"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found: install qemu-system-x86"

bin=${CLUSTERF_BIN:-$root/target/debug/clusterf}
timeout_s=${CLUSTERF_VM_TIMEOUT:-300}
mem=${CLUSTERF_VM_MEM:-1024}
smp=${CLUSTERF_VM_SMP:-1}

run=$(mktemp -d "${TMPDIR:-/tmp}/clusterf-vm.XXXXXX")
cleanup() {
    if [ -n "${CLUSTERF_VM_KEEP:-}" ]; then log "kept $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT

# --- the per-run archive: scenario, data files, clusterf ---------------------
stage=$run/root
mkdir -p "$stage/scenario" "$stage/data" "$stage/usr/bin"
cp "$scenario" "$stage/scenario/run.sh"
cp "$here/scenarios/lib.sh" "$stage/scenario/lib.sh"
for spec in "$@"; do
    src=${spec%%:*}
    dest=$(basename "$src")
    [ "$spec" != "$src" ] && dest=${spec#*:}
    [ -e "$src" ] || die "no such file: $src"
    mkdir -p "$(dirname "$stage/data/$dest")"
    cp -a "$src" "$stage/data/$dest"
done
if [ -x "$bin" ]; then
    objcopy --strip-debug "$bin" "$stage/usr/bin/clusterf" 2>/dev/null || cp "$bin" "$stage/usr/bin/clusterf"
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}' | sort -u); do
        mkdir -p "$stage$(dirname "$lib")"
        cp -L "$lib" "$stage$lib"
    done
else
    log "warning: no clusterf binary at $bin (build it with cargo build)"
fi
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$run/extra.cpio"
# base.cpio is 4-byte aligned (build.sh pads it), so the appended archive is too.
cat "$cache/base.cpio" "$run/extra.cpio" >"$run/initrd"

# --- boot ---------------------------------------------------------------------
accel=${CLUSTERF_VM_ACCEL:-}
if [ -z "$accel" ]; then
    accel=tcg
    if [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; then
        [ -r /dev/kvm ] && [ -w /dev/kvm ] && accel=kvm
    fi
fi
case $accel in
kvm) cpu=(-accel kvm -cpu host) ;;
tcg) cpu=(-accel tcg -cpu qemu64) ;;
*) die "CLUSTERF_VM_ACCEL: expected kvm or tcg, got $accel" ;;
esac

append="console=ttyS0 quiet loglevel=4 panic=-1 cryptomgr.notests mitigations=off tsc=reliable rdinit=/init"
touch "$run/console" "$run/stdout" "$run/stderr" "$run/rc"
start=$(date +%s.%N)
set +e
timeout -k 5 "$timeout_s" qemu-system-x86_64 \
    -M pc "${cpu[@]}" -m "$mem" -smp "$smp" \
    -nodefaults -no-user-config -display none -no-reboot \
    -kernel "$cache/kernel" -initrd "$run/initrd" -append "$append" \
    -serial "file:$run/console" -serial "file:$run/stdout" \
    -serial "file:$run/stderr" -serial "file:$run/rc" \
    </dev/null >"$run/qemu.log" 2>&1
qrc=$?
set -e
end=$(date +%s.%N)
elapsed=$(awk "BEGIN{printf \"%.2f\", $end - $start}")

cat "$run/stdout"
cat "$run/stderr" >&2
rc=$(tr -dc '0-9' <"$run/rc")
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    log "$(basename "$scenario"): guest killed after ${timeout_s}s time limit; console tail:"
    tail -n 30 "$run/console" >&2
    exit 124
fi
if [ -z "$rc" ]; then
    log "$(basename "$scenario"): guest reported no exit code (qemu exit $qrc); qemu and console tail:"
    tail -n 5 "$run/qemu.log" >&2
    tail -n 30 "$run/console" >&2
    exit 125
fi
log "$(basename "$scenario"): exit $rc, boot+run+poweroff ${elapsed}s ($accel)"
exit "$rc"
