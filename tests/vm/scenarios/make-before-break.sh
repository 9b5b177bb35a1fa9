# Make-before-break: `clusterf apply` replaces every dest of 50 services
# (new ports, new addresses). No service that has desired dests both before
# and after may ever be left without dests (or missing) in the kernel.
#
# The proof does not depend on timing. The apply runs with
# CLUSTERF_NETLINK_TRACE=1, which hex-dumps every datagram clusterf sends
# before sending it; the kernel runs the requests of a datagram one by one in
# order, so the mutating requests decoded from that dump, in order, are the
# sequence of operations the kernel executed. Replaying them on the table of
# state A (from /proc/net/ip_vs) gives the kernel's table after every single
# operation, and each of those tables is checked. The replay is held to the
# kernel: every operation must apply (no add of a present entry, no delete
# of an absent one), their number must equal what apply reports it applied,
# and the replay must end on exactly the table the kernel has afterwards.
# The replay is self-tested on a bad sequence (one service's deletes moved
# before the adds) and on a sequence with an operation missing.
#
# A poller also records /proc/net/ip_vs during the apply; any snapshot with
# a service without dests fails the scenario. How many intermediate states
# it catches depends on scheduling, so that count is only reported.
# Replacing every dest deletes them all: --allow-mass-delete.
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
# The trace (every datagram sent, and received) stays in the guest.
CLUSTERF_NETLINK_TRACE=1 sh -c 'renice -n 5 -p $$ >/dev/null && exec clusterf apply --config-path /tmp/cfg --allow-mass-delete' \
    >/tmp/apply.out 2>/tmp/apply.err
rc=$?
echo "apply took $(awk "BEGIN{print $(now) - $t0}")s"
touch /tmp/stop
wait $poller
[ $rc = 0 ] && ok "apply state B (exit 0)" || { fail "apply state B: exit $rc"; grep -v '^netlink ' /tmp/apply.err | head -n 20; }
kernel_rules /tmp/got
expect_eq "kernel equals render of state B" /tmp/b /tmp/got
cat /proc/net/ip_vs >/tmp/b.proc

# Services (as /proc keys) that have dests both before and after: all of them.
grep -E '^(TCP|UDP|SCTP|FWM)' /tmp/b.proc | awk '{print $1, $2}' | sort >/tmp/keys
grep -E '^(TCP|UDP|SCTP|FWM)' /tmp/a.proc | awk '{print $1, $2}' | sort | cmp -s - /tmp/keys ||
    fail "states A and B have different services"
[ "$(wc -l </tmp/keys)" = $N ] || fail "expected $N services in /proc/net/ip_vs"

# decode_ops TRACE: the mutating IPVS requests in the `netlink send:` lines
# of TRACE, in the order sent, one a line in /proc/net/ip_vs terms:
#   addsvc|setsvc|delsvc PROTO SERVICE
#   adddest|setdest|deldest PROTO SERVICE DEST
# e.g. `adddest TCP C6336401:0050 0A040201:1F90`. What cannot be decoded is
# an `error ...` line. Messages of the nlctrl family (type 0x10) and reads
# (GET_*) are skipped. Numbers in attributes are host order (x86: little
# endian); addresses and ports are network order, as /proc prints them.
decode_ops() {
    awk '
    BEGIN {
        for (i = 0; i < 16; i++) H[substr("0123456789abcdef", i + 1, 1)] = i
        P[6] = "TCP"; P[17] = "UDP"; P[132] = "SCTP"
        C[1] = "addsvc"; C[2] = "setsvc"; C[3] = "delsvc"
        C[5] = "adddest"; C[6] = "setdest"; C[7] = "deldest"
    }
    function byte(p) { return H[substr(x, 2 * p + 1, 1)] * 16 + H[substr(x, 2 * p + 2, 1)] }
    function u16(p) { return byte(p) + 256 * byte(p + 1) }
    function u32(p) { return u16(p) + 65536 * u16(p + 2) }
    function hexat(p, n) { return toupper(substr(x, 2 * p + 1, 2 * n)) }
    function align(n) { return int((n + 3) / 4) * 4 }
    # attrs(START, END, PREFIX): offset and length of each attribute
    # payload in AT[PREFIX type] and AL[PREFIX type].
    function attrs(p, e, pre,   l, t) {
        while (p + 4 <= e) {
            l = u16(p)
            if (l < 4) { bad = "attribute length " l; return }
            t = pre (u16(p + 2) % 16384)
            AT[t] = p + 4; AL[t] = l - 4
            p += align(l)
        }
    }
    function op(s, e, cmd,   svc, line) {
        split("", AT); split("", AL); bad = ""
        attrs(s, e, "c")
        if (!("c1" in AT)) bad = bad " no service attribute"
        else attrs(AT["c1"], AT["c1"] + AL["c1"], "s")
        if (("s1" in AT) && u16(AT["s1"]) != 2) bad = bad " address family " u16(AT["s1"]) " (only IPv4 is decoded)"
        if ("s5" in AT) svc = sprintf("FWM %08X", u32(AT["s5"]))
        else if (("s2" in AT) && ("s3" in AT) && ("s4" in AT) && (u16(AT["s2"]) in P))
            svc = P[u16(AT["s2"])] " " hexat(AT["s3"], 4) ":" hexat(AT["s4"], 2)
        else bad = bad " no service key"
        line = C[cmd] " " svc
        if (cmd >= 5) {
            if (!("c2" in AT)) bad = bad " no dest attribute"
            else attrs(AT["c2"], AT["c2"] + AL["c2"], "d")
            if (("d11" in AT) && u16(AT["d11"]) != 2) bad = bad " dest family " u16(AT["d11"])
            if (("d1" in AT) && ("d2" in AT)) line = line " " hexat(AT["d1"], 4) ":" hexat(AT["d2"], 2)
            else bad = bad " no dest key"
        }
        if (bad != "") print "error in request " NR ":" bad
        else print line
    }
    /^netlink send: / {
        x = tolower($3); n = length(x) / 2; p = 0
        while (p + 20 <= n) {
            len = u32(p)
            if (len < 20 || p + len > n) { print "error in datagram " NR ": message length " len; next }
            if (u16(p + 4) != 16 && (byte(p + 16) in C)) op(p + 20, p + len, byte(p + 16))
            p += align(len)
        }
    }' "$1"
}

# replay_ops OPS: replays OPS (decode_ops lines) on the table of state A
# (/tmp/a.proc) and checks every service of /tmp/keys after each op; writes
# "ops violations mismatches" to /tmp/replay.result. A mismatch is an op
# that does not apply to the replayed table (the kernel would have refused
# it), an undecodable request, or a difference between the replayed end
# table and the kernel's (/tmp/b.proc).
replay_ops() {
    awk '
    function mismatch(why) { mis++; if (shown++ < 10) print "op " ops " (" $0 "): " why }
    FILENAME == "/tmp/keys" { need[$1 " " $2] = 1; next }
    FILENAME == "/tmp/a.proc" || FILENAME == "/tmp/b.proc" {
        inA = FILENAME == "/tmp/a.proc"
        if (/^(TCP|UDP|SCTP|FWM)/) {
            cur = $1 " " $2
            if (inA) { svc[cur] = 1; cnt[cur] += 0 } else bsvc[cur] = 1
        } else if (/^  -> [0-9A-F]/) {
            if (inA) { mem[cur " " $2] = 1; cnt[cur]++ } else bmem[cur " " $2] = 1
        }
        next
    }
    { ops++; k = $2 " " $3; m = k " " $4 }
    $1 == "error" { mismatch("undecodable request"); next }
    $1 == "addsvc" { if (k in svc) mismatch("service already there"); else { svc[k] = 1; cnt[k] = 0 } }
    $1 == "delsvc" {
        if (!(k in svc)) mismatch("no such service")
        else { delete svc[k]; cnt[k] = 0; for (x in mem) if (index(x, k " ") == 1) delete mem[x] }
    }
    $1 == "adddest" { if (!(k in svc) || (m in mem)) mismatch("service missing or dest already there"); else { mem[m] = 1; cnt[k]++ } }
    $1 == "deldest" { if (!(m in mem)) mismatch("no such dest"); else { delete mem[m]; cnt[k]-- } }
    $1 == "setsvc" { if (!(k in svc)) mismatch("no such service") }
    $1 == "setdest" { if (!(m in mem)) mismatch("no such dest") }
    {
        for (s in need) {
            if (!(s in svc)) { bad++; if (shown++ < 10) print "after op " ops " (" $0 "): service " s " missing" }
            else if (cnt[s] == 0) { bad++; if (shown++ < 10) print "after op " ops " (" $0 "): service " s " has no dests" }
        }
    }
    END {
        for (x in mem) if (!(x in bmem)) { mis++; if (shown++ < 10) print "replay ends with " x ", the kernel has not" }
        for (x in bmem) if (!(x in mem)) { mis++; if (shown++ < 10) print "kernel ends with " x ", the replay has not" }
        for (s in svc) if (!(s in bsvc)) { mis++; if (shown++ < 10) print "replay ends with service " s ", the kernel has not" }
        for (s in bsvc) if (!(s in svc)) { mis++; if (shown++ < 10) print "kernel ends with service " s ", the replay has not" }
        printf "ops: %d, violations: %d, mismatches: %d\n", ops, bad, mis
        print ops + 0, bad + 0, mis + 0 > "/tmp/replay.result"
    }' /tmp/keys /tmp/a.proc /tmp/b.proc "$1"
}

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
    /^(TCP|UDP|SCTP|FWM)/ { cur = $1 " " $2; dests[cur] = 0; next }
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

# --- the operations the kernel executed, replayed one by one --------------
decode_ops /tmp/apply.err >/tmp/ops
applied=$(sed -n 's/^applied \([0-9]*\) change.*/\1/p' /tmp/apply.err)
nops=$(wc -l </tmp/ops)
echo "decoded $nops operations ($(awk '{print $1}' /tmp/ops | sort | uniq -c | awk '{printf "%s %s ", $1, $2}'))"
[ "$nops" -gt 0 ] && [ "$nops" = "$applied" ] && ok "the trace holds the $applied changes apply reports" ||
    fail "decoded $nops operations from the trace, apply reports '$applied' applied"

# Self-test 1: one service's dest deletes moved before every other op must
# show that service without dests.
victim=$(awk '$1 == "deldest" {print $2, $3; exit}' /tmp/ops)
{
    awk -v v="$victim" '$1 == "deldest" && $2 " " $3 == v' /tmp/ops
    awk -v v="$victim" '!($1 == "deldest" && $2 " " $3 == v)' /tmp/ops
} >/tmp/ops.bad
replay_ops /tmp/ops.bad >/dev/null
read o bad mis </tmp/replay.result
[ -n "$victim" ] && [ "$bad" -gt 0 ] && [ "$mis" = 0 ] &&
    ok "replay flags deletes run before adds ($victim: $bad violation(s))" ||
    fail "replay missed deletes moved first ($victim: $o $bad $mis)"
# Self-test 2: a sequence missing its last op does not end on the kernel's table.
sed '$d' /tmp/ops >/tmp/ops.short
replay_ops /tmp/ops.short >/dev/null
read o bad mis </tmp/replay.result
[ "$mis" -gt 0 ] && ok "replay flags a sequence that does not reach the kernel's table" ||
    fail "replay missed a dropped op ($o $bad $mis)"

replay_ops /tmp/ops
read o bad mis </tmp/replay.result
[ "$o" -gt 0 ] && [ "$mis" = 0 ] && ok "the $o traced operations replay from state A to the kernel's state B" ||
    fail "the traced operations do not replay to the kernel's table: $mis mismatch(es)"
[ "$o" -gt 0 ] && [ "$bad" = 0 ] && ok "no service lost all its dests after any of the $o operations" ||
    fail "$bad violation(s) in the $o replayed operations"

# --- what the poller saw ----------------------------------------------------
# The checker must see a violation when there is one: service 1 of state A
# with its dests cut out.
awk '/^(TCP|UDP|SCTP|FWM)/ { n++ } !(n == 1 && /^  -> [0-9A-F]/)' /tmp/a.proc >/tmp/cut.proc
{ echo "=== selftest"; cat /tmp/cut.proc; } >/tmp/selftest
check_snaps /tmp/selftest >/dev/null
read total mid bad </tmp/mbb.result
[ "$bad" = 1 ] && ok "snapshot checker flags a service without dests" || fail "snapshot checker missed a cut service ($total $mid $bad)"

check_snaps /tmp/snaps
read total mid bad </tmp/mbb.result
[ "$total" -gt 0 ] && [ "$bad" = 0 ] && ok "no service lost all its dests in $total snapshots ($mid caught mid-apply)" ||
    fail "$bad violation(s) in $total snapshots"
expect_code "re-plan is empty" 0 clusterf plan --config-path /tmp/cfg --detailed-exitcode
finish
