# Health checks against the real kernel with real traffic: the traffic
# network (lib.sh: a client namespace, busybox httpd backends b1 and b2 in
# namespaces), the service checked over HTTP every second, and
# `clusterf apply --watch` keeping the table:
#   1. both up: rr splits 20 requests 10:10;
#   2. b2's httpd stopped: within the checks' time `ipvsadm -Sn` shows b2 at
#      weight 0 and every request lands on b1;
#   3. b2 started again: its weight returns after `rise` checks and so does
#      the split;
#   4. both stopped: fail-open, both keep their weight;
#   5. `clusterf check` sees what the daemon sees.
. "$SCENARIO_LIB"
need_clusterf apply
need_clusterf check
traffic_network

mkdir -p /tmp/cfg/services
cat >/tmp/cfg/services/web.yaml <<Y
frontend: {ipv4: 10.107.107.107, tcp: 80}
scheduler: rr
healthcheck: {type: http, path: /index.html, interval: 1s, timeout: 500ms, rise: 2, fall: 2}
backends:
  b1: {ipv4: 10.3.1.1, tcp: 80}
  b2: {ipv4: 10.3.2.1, tcp: 80}
Y

M=http://127.0.0.1:9469
clusterf apply --watch --config-path /tmp/cfg --metrics-listen 127.0.0.1:9469 \
    >>/tmp/clusterf.log 2>&1 &
CF_PID=$!

weight_of() { # DEST WEIGHT: ipvsadm shows DEST at WEIGHT
    ipvsadm -S -n | grep -q -e "-r $1:80 -m -w $2\$"
}
httpd_pid() { # NS: the httpd of the namespace
    $IP netns pids "$1" | head -n 1
}
stop_httpd() { kill "$(httpd_pid "$1")"; }
start_httpd() { $IP netns exec "$1" httpd -p 80 -h /www/"$1" || die "httpd in $1"; }
metric() {
    timeout 5 wget -q -O - $M/metrics 2>/dev/null |
        awk -v n="$1" '$1 == n {print $2; found=1; exit} END {if (!found) print 0}'
}

wait_for 30 "both dests at weight 10" sh -c "ipvsadm -S -n | grep -c -e '-w 10\$' | grep -qx 2" &&
    ok "both dests applied"
ipvsadm -S -n
count 20
[ "$other" = 0 ] && ok "every request answered" || fail "$other requests failed"
within "b1 share, both up" "$n1" 10 2

# 2. b2 down.
stop_httpd b2
t0=$(now)
wait_for 30 "b2 at weight 0" weight_of 10.3.2.1 0 &&
    ok "b2 drained after $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')s (fall 2 x 1s)"
weight_of 10.3.1.1 10 && ok "b1 untouched" || fail "b1 changed"
ipvsadm -S -n
count 20
[ "$other" = 0 ] && ok "every request answered with b2 down" || fail "$other requests failed with b2 down"
[ "$n1" = 20 ] && ok "every request on b1" || fail "b1 got $n1 of 20"
[ "$(metric clusterf_health_drained_dests)" = 1 ] && ok "drained dests metric 1" ||
    fail "drained dests metric $(metric clusterf_health_drained_dests)"
grep -q "unhealthy: " /tmp/clusterf.log && ok "the applied plan says why" ||
    fail "no (unhealthy: ...) in the log"
expect_code "check exits 2 with b2 down" 2 clusterf check --config-path /tmp/cfg
grep -q "10.3.2.1:80.*failed" /tmp/last.out && ok "check names b2 failed" || fail "check output: $(cat /tmp/last.out)"

# 3. b2 back.
start_httpd b2
wait_for 30 "b2 back at weight 10" weight_of 10.3.2.1 10 && ok "b2 weight restored"
count 20
[ "$other" = 0 ] && ok "every request answered" || fail "$other requests failed"
within "b1 share, both up again" "$n1" 10 2
expect_code "check exits 0 with both up" 0 clusterf check --config-path /tmp/cfg

# 4. both down: fail-open.
stop_httpd b1
stop_httpd b2
wait_for 30 "fail-open for both" sh -c "[ \"\$(timeout 5 wget -q -O - $M/metrics | awk '\$1 == \"clusterf_health_fail_open_dests\" {print \$2}')\" = 2 ]" &&
    ok "fail-open counted for both dests"
# The first dest to reach `fall` may be drained for a moment, until the
# other one is down too; then fail-open gives it its weight back.
both_weighted() { weight_of 10.3.1.1 10 && weight_of 10.3.2.1 10; }
wait_for 10 "both weights kept with every dest down" both_weighted &&
    ok "neither dest drained with every dest down"
sleep 3
both_weighted && ok "still both weighted 3s later" || {
    fail "a dest was drained with every dest down"
    ipvsadm -S -n
}

kill "$CF_PID"
wait "$CF_PID"
[ "$FAILS" -gt 0 ] && tail -n 40 /tmp/clusterf.log
finish
