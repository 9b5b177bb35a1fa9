# Fault: a plan that fails midway. The module of one scheduler (sh) is taken
# out of the guest, so creating the service that uses it fails in the kernel.
# That fails its service only: its dests are skipped, the other services are
# applied in full. apply must exit 1, name the failed service, and report
# exactly the changes that are not in the kernel. With the module back, the
# next apply re-plans from the real state and completes; then the re-plan is
# empty.
. "$SCENARIO_LIB"
need_clusterf apply
mods=/lib/modules/$(uname -r)/kernel/net/netfilter/ipvs
[ -f $mods/ip_vs_sh.ko ] || die "no ip_vs_sh.ko in the guest"
grep -q '^ip_vs_sh ' /proc/modules && die "ip_vs_sh already loaded"
mv $mods/ip_vs_sh.ko /tmp/ip_vs_sh.ko

mkdir -p /tmp/cfg/services
for i in 1 2 3 4 5 6; do
    sched=wlc
    [ $i = 4 ] && sched=sh
    cat >/tmp/cfg/services/s$i.yaml <<Y
frontend:
  ipv4: 198.51.100.$i
  tcp: 80
scheduler: $sched
backends:
  a:
    ipv4: 10.3.$i.1
    tcp: 8080
  b:
    ipv4: 10.3.$i.2
    tcp: 8080
Y
done
SRC="--config-path /tmp/cfg"
rendered_rules /tmp/want $SRC

expect_code "apply fails midway" 1 clusterf apply $SRC
echo "--- apply stdout"; cat /tmp/last.out
echo "--- apply stderr"; cat /tmp/last.err
grep -q '198.51.100.4' /tmp/last.err && ok "error names the failed service" || fail "error does not name 198.51.100.4:80"
# The service's dest adds were in the same datagram as its add (all 18 adds
# are one batch), so they ran and failed too; a later op would be skipped.
grep -q '^applied 15 of 18 changes; not applied: 3 (3 failed, 0 skipped after a failure in their service, 0 never sent)' /tmp/last.err &&
    ok "report says what was not applied" || fail "report does not say what was not applied"

kernel_rules /tmp/got
echo "--- kernel after the failure"; cat /tmp/got
if grep -q '198.51.100.4' /tmp/got; then fail "sh service exists"; else ok "sh service absent"; fi
grep -v -F '198.51.100.4:' /tmp/want >/tmp/want.others
expect_eq "every other service is applied in full" /tmp/want.others /tmp/got
# The report and the kernel agree: each change it lists as not applied
# (failed or skipped) is not in the kernel.
awk '
$2 == "failed" || $2 == "skipped" {
    for (i = 3; i <= NF; i++) if ($i == "add") break
    if (i > NF) next
    if ($(i + 1) == "service") { svc = $(i + 2); rule = "-A " }
    else if ($(i + 1) == "dest" && $(i + 3) == "of") { svc = $(i + 4); rule = "-a "; dest = $(i + 2) }
    else next
    sub(/:$/, "", svc)
    proto = substr(svc, 1, index(svc, "://") - 1)
    addr = substr(svc, index(svc, "://") + 3)
    flag = (proto == "tcp") ? "-t" : (proto == "udp") ? "-u" : "-f"
    rule = rule flag " " addr " "
    if ($(i + 1) == "dest") rule = rule "-r " dest " "
    print rule
}' /tmp/last.err >/tmp/report.rules
n=$(wc -l </tmp/report.rules)
[ "$n" = 3 ] && ok "report lists the 3 changes not applied" || fail "report lists $n changes not applied, want 3"
before=$FAILS
while read -r rule; do
    grep -q -F -- "$rule" /tmp/got && fail "report says not applied for '$rule', the kernel has it"
done </tmp/report.rules
[ "$FAILS" = "$before" ] && ok "no change reported as not applied is in the kernel"

expect_code "plan sees the remaining changes" 2 clusterf plan $SRC --detailed-exitcode

mv /tmp/ip_vs_sh.ko $mods/ip_vs_sh.ko
expect_code "apply with the module back" 0 clusterf apply $SRC
kernel_rules /tmp/got
expect_eq "kernel equals render after recovery" /tmp/want /tmp/got
expect_code "re-plan is empty" 0 clusterf plan $SRC --detailed-exitcode
finish
