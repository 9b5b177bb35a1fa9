# Failure isolation: 1,000 services have every dest replaced, and the
# kernel refuses one new dest of one service. That service fails alone: the
# rest of its changes is skipped (its old dests stay: make-before-break), the
# other 999 services are applied in full, apply exits 1 naming the service
# and why, and the next plan holds only what that service still needs.
#
# The refused dest is the broadcast address of a subnet of this host
# (10.250.0.255 with 10.250.0.1/24 on dummy0): the local routing table has
# a broadcast route for it, so ip_vs_new_dest refuses it with EINVAL.
# Validation cannot see that (it depends on the host's addresses, and
# 10.250.0.255 is a plain host address in a /16), which is why the kernel's
# refusal must not take the other services down. With the address gone
# from dummy0, the next apply completes.
. "$SCENARIO_LIB"
need_clusterf apply
N=1000
BAD=500
BAD_VIP=198.18.2.1
/usr/sbin/ip link set dummy0 up
/usr/sbin/ip addr add 10.250.0.1/24 dev dummy0

# write_config A B: N services, backends a at 10.A.x.y and b at 10.B.x.y
# (x.y from the service's number); the BAD service's b is 10.250.0.255
# when B is 4.
write_config() {
    rm -rf /tmp/cfg
    mkdir -p /tmp/cfg/services
    i=0
    while [ $i -lt $N ]; do
        x=$((i / 250))
        y=$((i % 250 + 1))
        b=10.$2.$x.$y
        [ $i = $BAD ] && [ "$2" = 4 ] && b=10.250.0.255
        printf 'frontend: {ipv4: 198.18.%s.%s, tcp: 80}\nbackends:\n  a: {ipv4: 10.%s.%s.%s, tcp: 8080}\n  b: {ipv4: %s, tcp: 8080}\n' \
            $x $y $1 $x $y $b >/tmp/cfg/services/s$i.yaml
        i=$((i + 1))
    done
}
SRC="--config-path /tmp/cfg"

write_config 1 2
expect_code "apply state A" 0 clusterf apply $SRC
kernel_rules /tmp/a
[ "$(grep -c '^-a' /tmp/a)" = $((N * 2)) ] && ok "state A: $((N * 2)) dests" || fail "state A: $(grep -c '^-a' /tmp/a) dests"

write_config 3 4
expect_code "the refused address passes validation" 0 clusterf validate $SRC
rendered_rules /tmp/want $SRC
t0=$(now)
expect_code "apply with one refused dest fails" 1 clusterf apply $SRC --allow-mass-delete
echo "apply took $(echo "$(now) $t0" | awk '{print $1 - $2}') s"
echo "--- apply stderr (head)"; head -n 20 /tmp/last.err
grep -q "^error: 1 service failed: dest 10.250.0.255:8080 of tcp://$BAD_VIP:80: invalid argument; the other services were applied" /tmp/last.err &&
    ok "the error names the failed service and why" || fail "the error does not name tcp://$BAD_VIP:80 and EINVAL"
grep -q "^  tcp://$BAD_VIP:80: dest 10.250.0.255:8080" /tmp/last.err &&
    ok "the report lists the failed service" || fail "the report does not list the failed service"
# Of the 4,000 changes, the refused add fails and the service's two deletes
# are skipped; its other add came before the refusal.
grep -q "^applied 3997 of 4000 changes; not applied: 3 (1 failed, 2 skipped after a failure in their service, 0 never sent)" /tmp/last.err &&
    ok "3997 of 4000 changes applied, 1 failed, 2 skipped" || fail "unexpected counts: $(head -n 1 /tmp/last.err)"

kernel_rules /tmp/got
grep -v -F "$BAD_VIP:80" /tmp/want >/tmp/want.others
grep -v -F "$BAD_VIP:80" /tmp/got >/tmp/got.others
[ "$(grep -c '^-A' /tmp/got.others)" = $((N - 1)) ] && ok "999 other services" || fail "$(grep -c '^-A' /tmp/got.others) other services"
expect_eq "the 999 other services are applied in full" /tmp/want.others /tmp/got.others
grep -F "$BAD_VIP:80" /tmp/got >/tmp/got.bad
cat >/tmp/want.bad <<EOF
-A -t $BAD_VIP:80 -s wlc
-a -t $BAD_VIP:80 -r 10.1.2.1:8080 -m -w 10
-a -t $BAD_VIP:80 -r 10.2.2.1:8080 -m -w 10
-a -t $BAD_VIP:80 -r 10.3.2.1:8080 -m -w 10
EOF
sort -o /tmp/want.bad /tmp/want.bad
expect_eq "the failed service kept its old dests (its deletes were skipped)" /tmp/want.bad /tmp/got.bad

expect_code "the next plan has changes" 2 clusterf plan $SRC --detailed-exitcode
grep -q '^Plan: 1 to add, 0 to change, 2 to delete\.$' /tmp/last.out &&
    ok "the next plan holds only what the failed service still needs" || { fail "next plan:"; head -n 20 /tmp/last.out; }
[ "$(grep -c '^  service\|^[-+~] *service' /tmp/last.out)" = 1 ] && grep -q "service tcp://$BAD_VIP:80" /tmp/last.out &&
    ok "the next plan touches the failed service only" || fail "the next plan touches other services"

/usr/sbin/ip addr del 10.250.0.1/24 dev dummy0
expect_code "apply with the address no longer a broadcast" 0 clusterf apply $SRC
kernel_rules /tmp/got
expect_eq "kernel equals render after recovery" /tmp/want /tmp/got
expect_code "re-plan is empty" 0 clusterf plan $SRC --detailed-exitcode
finish
