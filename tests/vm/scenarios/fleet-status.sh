# Fleet status from a real-kernel daemon, with a real etcd inside the guest
# (the host's /usr/bin/etcd, copied to /data/etcd):
#   1. `clusterf apply --watch --frontend-id vm1 --own 10.107.0.0/16` on a
#      config directory, beside a service made by hand outside --own;
#   2. `clusterf status --output json` shows vm1 alive, what it owns, and
#      the same counts of services and dests as `ipvsadm -S -n` shows in
#      the owned range; again after a backend is added through etcd;
#   3. the text view names it, and after SIGTERM (no revoke: the host may
#      be gone) it shows dead once its 3 s lease ran out, its record kept.
. "$SCENARIO_LIB"
need_clusterf status
[ -x /data/etcd ] || die "no etcd binary at /data/etcd"

ETCD=http://127.0.0.1:2379

/data/etcd --name vm --data-dir /tmp/etcd \
    --listen-client-urls $ETCD --advertise-client-urls $ETCD \
    --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster vm=http://127.0.0.1:2380 >>/tmp/etcd.log 2>&1 &
i=0
until clusterf etcd dump --etcd $ETCD --output json >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 300 ] && { tail -n 20 /tmp/etcd.log; die "etcd did not start"; }
    sleep 0.1
done
ok "etcd started in the guest"

svc() { # DIR NAME ADDR PROTO PORT
    mkdir -p "$1/services/$2/backends"
    echo "{\"ipv4\": \"$3\", \"$4\": $5}" >"$1/services/$2/frontend"
}
be() { # DIR NAME BACKEND IP PROTO PORT
    echo "{\"ipv4\": \"$4\", \"$5\": $6}" >"$1/services/$2/backends/$3"
}
svc /tmp/cfg web 10.107.0.1 tcp 80
be /tmp/cfg web a 10.3.0.1 tcp 8080
be /tmp/cfg web b 10.3.0.2 tcp 8080
be /tmp/cfg web c 10.3.0.3 tcp 8080
svc /tmp/cfg dns 10.107.0.2 udp 53
be /tmp/cfg dns a 10.3.0.1 udp 5353

# Not ours: outside --own, kept, and not counted by vm1.
ipvsadm -A -t 10.9.9.9:80 -s rr
ipvsadm -a -t 10.9.9.9:80 -r 10.3.9.9:80 -m

clusterf apply --watch --config-path /tmp/cfg --etcd $ETCD --frontend-id vm1 \
    --own 10.107.0.0/16 --resync 1s --status-ttl 3s >>/tmp/clusterf.log 2>&1 &
CF_PID=$!

# json_num KEY: the first number after "KEY": in /tmp/status.json.
json_num() {
    grep -o "\"$1\": *[0-9]*" /tmp/status.json | head -n1 | grep -o '[0-9]*$'
}

# counts_agree WANT_DESTS: status and ipvsadm agree on the owned range, and
# the dests are WANT_DESTS.
counts_agree() {
    clusterf status --etcd $ETCD --output json >/tmp/status.json 2>/tmp/status.err || return 1
    grep -q '"alive": true' /tmp/status.json || return 1
    ipvsadm -S -n >/tmp/rules
    k_svc=$(grep -c '^-A .*10\.107\.' /tmp/rules)
    k_dst=$(grep -c '^-a .*10\.107\.' /tmp/rules)
    s_svc=$(json_num services)
    s_dst=$(json_num dests)
    [ "$s_svc" = "$k_svc" ] && [ "$s_dst" = "$k_dst" ] && [ "$s_dst" = "$1" ]
}

if wait_for 40 "vm1's record to agree with the kernel (4 dests)" counts_agree 4; then
    ok "status agrees with ipvsadm -S -n: $s_svc services, $s_dst dests in 10.107.0.0/16"
else
    echo "status: services=$s_svc dests=$s_dst; ipvsadm: services=$k_svc dests=$k_dst"
    cat /tmp/status.json /tmp/status.err
fi
grep -q '"frontend": "vm1"' /tmp/status.json && ok "the record is vm1's" || fail "no vm1 record"
tr -d ' \n' </tmp/status.json | grep -q '"own":\["10.107.0.0/16"\]' &&
    ok "it owns 10.107.0.0/16" || fail "own not reported"
grep -q '^-A -t 10.9.9.9:80' /tmp/rules && ok "the service outside --own stays" ||
    fail "the service outside --own was touched"

clusterf etcd put-backend --etcd $ETCD --service web --name e1 \
    --ipv4 10.3.0.4 --tcp 8080 >/dev/null
if wait_for 20 "a backend put into etcd counted (5 dests)" counts_agree 5; then
    ok "after an etcd put: status agrees with ipvsadm -S -n: $s_svc services, $s_dst dests"
else
    echo "status: services=$s_svc dests=$s_dst; ipvsadm: services=$k_svc dests=$k_dst"
fi

clusterf status --etcd $ETCD >/tmp/status.txt
grep -q '^vm1 *alive' /tmp/status.txt && ok "text view: vm1 alive" ||
    { fail "text view"; cat /tmp/status.txt; }

kill -TERM $CF_PID
wait $CF_PID
dead() {
    clusterf status --etcd $ETCD >/tmp/status.txt 2>&1 && grep -q '^vm1 *DEAD' /tmp/status.txt
}
wait_for 20 "vm1 dead after its lease TTL" dead && ok "stopped: vm1 shows dead, its record kept: $(grep '^vm1' /tmp/status.txt)"

if [ "$FAILS" -gt 0 ]; then
    echo "--- clusterf log (tail)"
    tail -n 40 /tmp/clusterf.log
fi
finish
