# Make-before-break: while `clusterf apply` replaces every dest of 50
# services (new ports, new addresses), a poller records the kernel table
# (/proc/net/ip_vs) over and over. In every recorded table, every service
# that has desired dests both before and after must exist and have at least
# one dest. The check is meaningless without intermediate states, so some
# must have been seen. Replacing every dest deletes them all: --allow-mass-delete.
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

# Each /proc/net/ip_vs record is one service with all its dests, printed in
# one go under RCU: a consistent view of that service.
cat /proc/net/ip_vs >/tmp/a.proc
(
    i=0
    while [ ! -f /tmp/stop ]; do
        echo "=== $i"
        cat /proc/net/ip_vs
        i=$((i + 1))
    done >/tmp/snaps
) &
poller=$!
sleep 0.2
t0=$(now)
# At nice 5 the apply gets about a quarter of the CPU against the poller.
sh -c 'renice -n 5 -p $$ >/dev/null && exec clusterf apply --config-path /tmp/cfg --allow-mass-delete' \
    >/tmp/apply.out 2>/tmp/apply.err
rc=$?
echo "apply took $(awk "BEGIN{print $(now) - $t0}")s"
touch /tmp/stop
wait $poller
[ $rc = 0 ] && ok "apply state B (exit 0)" || { fail "apply state B: exit $rc"; cat /tmp/apply.err; }
kernel_rules /tmp/got
expect_eq "kernel equals render of state B" /tmp/b /tmp/got
cat /proc/net/ip_vs >/tmp/b.proc

# Services (as /proc keys) that have dests both before and after: all of them.
grep -E '^(TCP|UDP|FWM)' /tmp/b.proc | awk '{print $1, $2}' | sort >/tmp/keys
grep -E '^(TCP|UDP|FWM)' /tmp/a.proc | awk '{print $1, $2}' | sort | cmp -s - /tmp/keys ||
    fail "states A and B have different services"
[ "$(wc -l </tmp/keys)" = $N ] || fail "expected $N services in /proc/net/ip_vs"

# check_snaps FILE: count snapshots, intermediate ones and violations in
# FILE into /tmp/mbb.result ("total mid bad").
check_snaps() {
    # A snapshot is intermediate when it holds a dest that state A lacks and
    # one that state B lacks.
    awk '
    function snap_end() {
        if (snap == "") return
        total++
        if (newc > 0 && oldc > 0) mid++
        for (k in need) {
            if (!(k in dests)) { bad++; if (shown++ < 10) print "snapshot " snap ": service " k " missing" }
            else if (dests[k] == 0) { bad++; if (shown++ < 10) print "snapshot " snap ": service " k " has no dests" }
        }
    }
    function snap_start(name) { snap = name; delete dests; cur = ""; newc = 0; oldc = 0 }
    FILENAME == "/tmp/keys" { need[$1 " " $2] = 1; next }
    /^(TCP|UDP|FWM)/ { cur = $1 " " $2; dests[cur] = 0; next }
    !/^  -> [0-9A-F]/ { if (/^=== /) { snap_end(); snap_start($2) } next }
    FILENAME == "/tmp/a.proc" { inA[cur " " $2] = 1; next }
    FILENAME == "/tmp/b.proc" { inB[cur " " $2] = 1; next }
    {
        dests[cur]++
        if (!((cur " " $2) in inA)) newc++
        if (!((cur " " $2) in inB)) oldc++
    }
    END {
        snap_end()
        printf "snapshots: %d, intermediate: %d, violations: %d\n", total, mid, bad
        print total + 0, mid + 0, bad + 0 > "/tmp/mbb.result"
    }' /tmp/keys /tmp/a.proc /tmp/b.proc "$1"
}

# The checker must see a violation when there is one: service 1 of state A
# with its dests cut out.
awk '/^(TCP|UDP|FWM)/ { n++ } !(n == 1 && /^  -> [0-9A-F]/)' /tmp/a.proc >/tmp/cut.proc
{ echo "=== selftest"; cat /tmp/cut.proc; } >/tmp/selftest
check_snaps /tmp/selftest >/dev/null
read total mid bad </tmp/mbb.result
[ "$bad" = 1 ] && ok "checker flags a service without dests" || fail "checker missed a cut service ($total $mid $bad)"

check_snaps /tmp/snaps
read total mid bad </tmp/mbb.result
[ "$total" -gt 0 ] && [ "$bad" = 0 ] && ok "no service lost all its dests in $total snapshots" ||
    fail "$bad violation(s) in $total snapshots"
[ "$mid" -ge 3 ] && ok "saw $mid intermediate states" || fail "only $mid intermediate states seen: the check proves nothing"
expect_code "re-plan is empty" 0 clusterf plan --config-path /tmp/cfg --detailed-exitcode
finish
