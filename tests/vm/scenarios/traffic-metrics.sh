# Traffic metrics against the real kernel with real traffic: the traffic
# network (lib.sh), `clusterf apply --watch` with --metrics-listen,
# --traffic-interval 1s and --metrics-per-dest; after 20 requests through
# the VIP, /metrics shows the kernel's own counters (compared with
# `ipvsadm -L -n --stats --exact` once the traffic has stopped), per
# service and per dest, and the kernel's rate estimate while requests come;
# a service taken out of the config leaves the exposition.
. "$SCENARIO_LIB"
need_clusterf apply
traffic_network

mkdir -p /tmp/cfg/services
cat >/tmp/cfg/services/web.yaml <<Y
frontend: {ipv4: 10.107.107.107, tcp: 80}
scheduler: rr
backends:
  b1: {ipv4: 10.3.1.1, tcp: 80}
  b2: {ipv4: 10.3.2.1, tcp: 80}
Y
# A second service stays when web leaves (an empty config is refused).
cat >/tmp/cfg/services/keep.yaml <<Y
frontend: {ipv4: 10.107.107.108, tcp: 80}
backends:
  b1: {ipv4: 10.3.1.1, tcp: 80}
Y

M=http://127.0.0.1:9469
clusterf apply --watch --config-path /tmp/cfg --metrics-listen 127.0.0.1:9469 \
    --traffic-interval 1s --metrics-per-dest >>/tmp/clusterf.log 2>&1 &
CF_PID=$!

SVC='service="tcp://10.107.107.107:80"'
metric() { # SERIES (with labels): its value, or "none"
    timeout 5 wget -q -O - $M/metrics 2>/dev/null |
        awk -v n="$1" '$1 == n {print $2; found=1; exit} END {if (!found) print "none"}'
}
stats() { # FIELD [DEST]: the kernel's counter (Conns InPkts OutPkts InBytes OutBytes = 1..5)
    ipvsadm -L -n --stats --exact -t 10.107.107.107:80 | awk -v f="$1" -v d="${2:-}" '
        d == "" && $1 == "TCP" {print $(2 + f); exit}
        d != "" && $1 == "->" && $2 == d ":80" {print $(2 + f); exit}'
}

web_applied() { [ "$(ipvsadm -S -n | grep -c -e '-t 10.107.107.107:80 -r .* -w 10$')" = 2 ]; }
wait_for 30 "both dests applied" web_applied &&
    ok "both dests applied"
wait_for 10 "service counters exported" sh -c "[ \"\$(timeout 5 wget -q -O - $M/metrics | grep -c '^clusterf_ipvs_service_connections_total{$SVC}')\" = 1 ]" &&
    ok "the service's counters are exported before any traffic"
[ "$(metric "clusterf_ipvs_service_connections_total{$SVC}")" = 0 ] &&
    ok "no connections yet" || fail "connections before traffic: $(metric "clusterf_ipvs_service_connections_total{$SVC}")"

count 20
[ "$other" = 0 ] && ok "every request answered" || fail "$other requests failed"

# The kernel's rate estimate (every 2 s; its first estimate may take a
# while to start) sees connections while they come: requests keep coming
# until the kernel's own rate (ipvsadm --rate) is above 0, then the metric
# must be too.
kernel_cps() {
    ipvsadm -L -n --rate --exact -t 10.107.107.107:80 | awk '$1 == "TCP" {print $3; exit}'
}
( while [ ! -e /tmp/stop-load ]; do
    timeout 5 $IP netns exec c wget -q -O /dev/null http://10.107.107.107/ 2>/dev/null
  done ) &
LOAD=$!
kernel_rate_up() { [ "$(kernel_cps)" -gt 0 ]; }
wait_for 60 "a connection rate in the kernel" kernel_rate_up &&
    ok "the kernel estimates $(kernel_cps) connections per second"
rate_metric() {
    v=$(metric "clusterf_ipvs_service_connections_per_second{$SVC}")
    [ "$v" != none ] && [ "$v" -gt 0 ]
}
wait_for 10 "connections_per_second above 0" rate_metric &&
    ok "connections_per_second is $(metric "clusterf_ipvs_service_connections_per_second{$SVC}") while requests come"
touch /tmp/stop-load
wait "$LOAD"
ipvsadm -L -n --rate -t 10.107.107.107:80

# The kernel folds its per-CPU counters into what a dump reports on its
# estimator's tick (every 2 s): wait until they hold still.
settled() {
    a=$(ipvsadm -L -n --stats --exact -t 10.107.107.107:80)
    sleep 3
    [ "$a" = "$(ipvsadm -L -n --stats --exact -t 10.107.107.107:80)" ]
}
wait_for 60 "the kernel's counters to settle" settled && ok "the kernel's counters settled"

# Once the traffic has stopped the counters hold still: the metrics must
# equal the kernel's after the next read.
[ "$(stats 1)" -ge 20 ] && ok "the kernel counted $(stats 1) connections (20 counted, then the load)" ||
    fail "the kernel counted $(stats 1) connections"
same_as_kernel() {
    [ "$(metric "clusterf_ipvs_service_connections_total{$SVC}")" = "$(stats 1)" ] &&
        [ "$(metric "clusterf_ipvs_service_packets_total{$SVC,direction=\"in\"}")" = "$(stats 2)" ] &&
        [ "$(metric "clusterf_ipvs_service_packets_total{$SVC,direction=\"out\"}")" = "$(stats 3)" ] &&
        [ "$(metric "clusterf_ipvs_service_bytes_total{$SVC,direction=\"in\"}")" = "$(stats 4)" ] &&
        [ "$(metric "clusterf_ipvs_service_bytes_total{$SVC,direction=\"out\"}")" = "$(stats 5)" ]
}
wait_for 10 "service counters equal to ipvsadm --stats" same_as_kernel &&
    ok "service connections, packets and bytes in and out equal the kernel's ($(stats 2) packets in, $(stats 5) bytes out)"
dest_same() { # DEST
    D="$SVC,dest=\"$1:80\""
    [ "$(metric "clusterf_ipvs_dest_connections_total{$D}")" = "$(stats 1 "$1")" ] &&
        [ "$(metric "clusterf_ipvs_dest_bytes_total{$D,direction=\"out\"}")" = "$(stats 5 "$1")" ]
}
dests_same() { dest_same 10.3.1.1 && dest_same 10.3.2.1; }
wait_for 10 "per-dest counters equal to ipvsadm --stats" dests_same &&
    ok "per-dest counters equal the kernel's (b1 $(stats 1 10.3.1.1), b2 $(stats 1 10.3.2.1) connections)" ||
    echo "per-dest: $(timeout 5 wget -q -O - $M/metrics | grep '^clusterf_ipvs_dest_connections_total')"
[ "$n1" = 10 ] && [ "$n2" = 10 ] && ok "rr split the 20 counted requests 10:10" ||
    fail "b1 answered $n1, b2 $n2"
[ "$(metric 'clusterf_traffic_reads_total{outcome="failed"}')" = 0 ] && ok "no failed reads" ||
    fail "failed reads: $(metric 'clusterf_traffic_reads_total{outcome="failed"}')"

# The service leaves the config, the kernel, then the exposition.
rm /tmp/cfg/services/web.yaml
wait_for 30 "service deleted" sh -c "! ipvsadm -S -n | grep -q 10.107.107.107" && ok "service deleted"
gone() { [ "$(metric "clusterf_ipvs_service_connections_total{$SVC}")" = none ]; }
wait_for 10 "series gone" gone && ok "the deleted service's series left /metrics"

kill "$CF_PID"
wait "$CF_PID"
[ "$FAILS" -gt 0 ] && tail -n 40 /tmp/clusterf.log
finish
