# Make-before-break: while `clusterf apply` replaces every dest of 50
# services (new ports, new addresses), a poller records the kernel table
# (`ipvsadm -S -n`) over and over; apply runs at nice 19 so that the poller
# sees many intermediate states. In every recorded table, every service that
# has desired dests both before and after must exist and have at least one
# dest. The check is meaningless without intermediate states, so some must
# have been seen. Replacing every dest deletes them all: --allow-mass-delete.
. "$SCENARIO_LIB"
need_clusterf apply
N=50

# write_config PORT BASE: N services, 4 dests each at 10.BASE.S.D:PORT.
write_config() {
    rm -rf /tmp/cfg
    mkdir -p /tmp/cfg/services
    for s in $(seq $N); do
        {
            echo "frontend: {ipv4: 198.51.100.$s, tcp: 80}"
            echo "backends:"
            for d in 1 2 3 4; do
                echo "  d$d: {ipv4: 10.$2.$s.$d, tcp: $1}"
            done
        } >/tmp/cfg/services/s$s.yaml
    done
}

write_config 8080 3
expect_code "apply state A" 0 clusterf apply --config-path /tmp/cfg
kernel_rules /tmp/a
[ "$(grep -c '^-a' /tmp/a)" = $((N * 4)) ] && ok "state A has $((N * 4)) dests" || fail "state A: $(grep -c '^-a' /tmp/a) dests"

# State B: odd services move to port 9090, even ones to new addresses.
write_config 9090 3
for s in $(seq 2 2 $N); do
    sed -i "s/10\.3\.$s\./10.4.$s./; s/9090/8080/" /tmp/cfg/services/s$s.yaml
done
rendered_rules /tmp/b --config-path /tmp/cfg

mkdir -p /tmp/snaps
(
    i=0
    while [ ! -f /tmp/stop ]; do
        ipvsadm -S -n >/tmp/snaps/$i 2>&1
        i=$((i + 1))
    done
) &
poller=$!
sleep 0.2
nice -n 19 clusterf apply --config-path /tmp/cfg --allow-mass-delete >/tmp/apply.out 2>/tmp/apply.err
rc=$?
touch /tmp/stop
wait $poller
[ $rc = 0 ] && ok "apply state B (exit 0)" || { fail "apply state B: exit $rc"; cat /tmp/apply.err; }
kernel_rules /tmp/got
expect_eq "kernel equals render of state B" /tmp/b /tmp/got

services=$(grep '^-A' /tmp/b | awk '{print $3}')
total=0 mid=0 bad=0
for f in /tmp/snaps/*; do
    total=$((total + 1))
    sort "$f" >/tmp/snap
    if cmp -s /tmp/snap /tmp/a || cmp -s /tmp/snap /tmp/b; then continue; fi
    mid=$((mid + 1))
    for s in $services; do
        if ! grep -q -- "^-A -t $s " /tmp/snap; then
            bad=$((bad + 1))
            echo "snapshot $f: service $s missing"
        elif ! grep -q -- "^-a -t $s " /tmp/snap; then
            bad=$((bad + 1))
            echo "snapshot $f: service $s has no dests"
        fi
    done
done
echo "snapshots: $total, intermediate: $mid"
[ "$bad" = 0 ] && ok "no service lost all its dests in $total snapshots" || fail "$bad service(s) without dests in some snapshot"
[ "$mid" -ge 3 ] && ok "saw $mid intermediate states" || fail "only $mid intermediate states seen: the check proves nothing"
expect_code "re-plan is empty" 0 clusterf plan --config-path /tmp/cfg --detailed-exitcode
finish
