# The watch daemon against the real kernel, with a real etcd inside the guest
# (the host's /usr/bin/etcd, copied to /data/etcd):
#   1. start `clusterf apply --watch`; put a backend into etcd and measure
#      until ipvsadm shows it (then N reweights: p50/p99 latency);
#   2. break the config file: the kernel stays as it was, the error metric
#      rises; fix it: recovery;
#   3. change a rule by hand and add a service by hand: the resync corrects
#      both;
#   4. kill etcd: nothing is removed;
#   5. SIGHUP reloads; SIGTERM: clusterf exits within a second and the rules
#      stay; restarted, it applies nothing.
# /data/watch-changes (optional) holds N for step 1 (default 30).
. "$SCENARIO_LIB"
need_clusterf apply
clusterf apply --help | grep -q -e '--watch' || die "clusterf apply has no --watch"
[ -x /data/etcd ] || die "no etcd binary at /data/etcd"

N=30
[ -f /data/watch-changes ] && N=$(cat /data/watch-changes)
ETCD=http://127.0.0.1:2379
M=http://127.0.0.1:9469
VIP=10.107.107.107:1337

start_etcd() {
    /data/etcd --name vm --data-dir /tmp/etcd \
        --listen-client-urls $ETCD --advertise-client-urls $ETCD \
        --listen-peer-urls http://127.0.0.1:2380 \
        --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster vm=http://127.0.0.1:2380 >>/tmp/etcd.log 2>&1 &
    ETCD_PID=$!
    i=0
    until clusterf etcd dump --etcd $ETCD --output json >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 300 ] && { tail -n 20 /tmp/etcd.log; die "etcd did not start"; }
        sleep 0.1
    done
}

start_clusterf() {
    clusterf apply --watch --config-path /tmp/cfg --etcd $ETCD \
        --resync 2s --metrics-listen 127.0.0.1:9469 \
        --state-file /tmp/drains.json >>/tmp/clusterf.log 2>&1 &
    CF_PID=$!
}

metrics() {
    timeout 5 wget -q -O - $M/metrics 2>/dev/null
}

# metric NAME: the value of one series (first match), 0 when absent.
metric() {
    metrics | awk -v n="$1" '$1 == n {print $2; found=1; exit} END {if (!found) print 0}'
}

# metric_gt NAME VALUE: the series is above VALUE now.
metric_gt() { awk -v a="$2" -v b="$(metric "$1")" 'BEGIN {exit !(b > a)}'; }

has_rule() { ipvsadm -S -n | grep -q -e "$1"; }
no_rule() { ! ipvsadm -S -n | grep -q -e "$1"; }

put() { # NAME IP [WEIGHT]
    clusterf etcd put-backend --etcd $ETCD --service test --name "$1" \
        --ipv4 "$2" --tcp 1337 ${3:+--weight $3} >/dev/null
}

mkdir -p /tmp/cfg/services/test
echo '{"ipv4": "10.107.107.107", "tcp": 1337}' >/tmp/cfg/services/test/frontend

start_etcd
ok "etcd started in the guest"
start_clusterf
wait_for 30 "the service in the kernel" has_rule "-A -t $VIP -s wlc" && ok "startup pass applied the frontend"
wait_for 10 "readyz" timeout 5 wget -q -O /dev/null $M/readyz && ok "/readyz ready after the first pass"

# --- 1. etcd put -> kernel ---------------------------------------------------
t0=$(now)
put test3-1 10.3.107.1
t1=$(now)
wait_for 10 "the backend in the kernel" has_rule "-a -t $VIP -r 10.3.107.1:1337 -m -w 10" &&
    ok "backend put into etcd reached the kernel ($(awk -v a="$t1" -v b="$(now)" 'BEGIN {printf "%.0f", (b - a) * 1000}') ms after the put returned)"

: >/tmp/lat
i=1
while [ $i -le "$N" ]; do
    w=$((i % 100 + 1))
    [ $w -ge 10 ] && w=$((w + 1)) # 1..9, 11..101: never the weight before
    put test3-1 10.3.107.1 $w
    t0=$(now)
    wait_for 10 "weight $w" has_rule "-r 10.3.107.1:1337 -m -w $w\$" || break
    awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f\n", (b - a) * 1000}' >>/tmp/lat
    i=$((i + 1))
done
sort -n /tmp/lat >/tmp/lat.sorted
cnt=$(wc -l </tmp/lat.sorted)
p50=$(awk -v n="$cnt" 'NR == int((n + 1) * 0.50) || (n == 1) {print; exit}' /tmp/lat.sorted)
p99=$(awk -v n="$cnt" 'BEGIN {k = int(n * 0.99 + 0.999); if (k < 1) k = 1} NR == k {print; exit}' /tmp/lat.sorted)
echo "latency: $cnt etcd puts -> ipvsadm shows the new weight: p50 ${p50} ms, p99 ${p99} ms, max $(tail -n1 /tmp/lat.sorted) ms (put returned -> rule visible, 10 ms polls, /proc/uptime resolution)"
[ "$cnt" = "$N" ] && ok "$N reweights applied" || fail "only $cnt of $N reweights applied"
echo "metric: clusterf_change_to_apply_seconds_count $(metric clusterf_change_to_apply_seconds_count), sum $(metric clusterf_change_to_apply_seconds_sum)"
put test3-1 10.3.107.1 10
wait_for 10 "weight back to 10" has_rule "-r 10.3.107.1:1337 -m -w 10\$"
ipvsadm -S -n | sort >/tmp/good

# --- 2. broken config -----------------------------------------------------------
errs=$(metric 'clusterf_errors_total{source="config"}')
echo '{"ipv4": "10.107.107.107", "tcp": 99999}' >/tmp/cfg/services/test/frontend.tmp
mv /tmp/cfg/services/test/frontend.tmp /tmp/cfg/services/test/frontend
wait_for 10 "the config error counted" metric_gt 'clusterf_errors_total{source="config"}' "$errs" &&
    ok "broken config: error metric rose"
put test3-2 10.3.107.2
sleep 1
ipvsadm -S -n | sort >/tmp/now
expect_eq "broken config: kernel kept as it was" /tmp/good /tmp/now
echo '{"ipv4": "10.107.107.107", "tcp": 1337}' >/tmp/cfg/services/test/frontend.tmp
mv /tmp/cfg/services/test/frontend.tmp /tmp/cfg/services/test/frontend
wait_for 10 "recovery" has_rule "-r 10.3.107.2:1337 -m -w 10" && ok "fixed config: recovered, the etcd change applied"
ipvsadm -S -n | sort >/tmp/good

# --- 3. drift ---------------------------------------------------------------------
drift=$(metric clusterf_drift_corrections_total)
ipvsadm -e -t $VIP -r 10.3.107.1:1337 -m -w 77
ipvsadm -A -t 10.9.9.9:80 -s rr
wait_for 10 "the resync" no_rule "10.9.9.9:80" && ok "resync removed the service added by hand"
ipvsadm -S -n | sort >/tmp/now
expect_eq "resync restored the weight changed by hand" /tmp/good /tmp/now
metric_gt clusterf_drift_corrections_total "$drift" &&
    ok "drift corrections counted" || fail "drift corrections not counted"

# --- 4. etcd dies -----------------------------------------------------------------
kill -9 $ETCD_PID
wait $ETCD_PID 2>/dev/null
passes=$(metric 'clusterf_passes_total{outcome="ok"}')
wait_for 15 "two resyncs without etcd" metric_gt 'clusterf_passes_total{outcome="ok"}' "$((passes + 1))"
ipvsadm -S -n | sort >/tmp/now
expect_eq "etcd down: nothing removed" /tmp/good /tmp/now
echo "etcd staleness: $(metric 'clusterf_source_staleness_seconds{source="etcd"}') s"

# --- 5. SIGHUP, stop and restart --------------------------------------------------
kill -HUP $CF_PID
wait_for 10 "SIGHUP handled" grep -q "SIGHUP: reloading" /tmp/clusterf.log && ok "SIGHUP: reload pass, still running"

t0=$(now)
kill -TERM $CF_PID
wait $CF_PID
rc=$?
ms=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f", (b - a) * 1000}')
[ "$rc" = 0 ] && ok "SIGTERM: exit 0" || fail "SIGTERM: exit $rc"
[ "$ms" -le 1000 ] && ok "SIGTERM: stopped in ${ms} ms" || fail "SIGTERM: took ${ms} ms (limit 1000)"
ipvsadm -S -n | sort >/tmp/now
expect_eq "stopped: rules left in place" /tmp/good /tmp/now

start_etcd
start_clusterf
wait_for 30 "readyz after the restart" timeout 5 wget -q -O /dev/null $M/readyz && ok "restarted and ready"
[ "$(metrics | grep -c '^clusterf_ops_applied_total')" = 0 ] && ok "restart applied nothing" ||
    { fail "restart applied something"; metrics | grep '^clusterf_ops_applied_total'; }
ipvsadm -S -n | sort >/tmp/now
expect_eq "restart: kernel unchanged" /tmp/good /tmp/now
kill -TERM $CF_PID
wait $CF_PID

if [ "$FAILS" -gt 0 ]; then
    echo "--- clusterf log (tail)"
    tail -n 40 /tmp/clusterf.log
fi
finish
