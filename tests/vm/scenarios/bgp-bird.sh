# BGP through BIRD (issue 20, item 2) on the real kernel: two frontends
# (namespaces fe1, fe2) run `clusterf apply --watch --vip-interface
# clusterf0` and BIRD 2 with examples/bird/bird.conf (only the router id and
# the neighbors changed); a router namespace r runs its own BIRD, peering
# by BGP with both, and writes what it learns to its kernel table with
# ECMP. Checks: the VIPs (and nothing else) reach the router as /32 and
# /128 routes with both frontends as next hops; real TCP from a client
# namespace through the router reaches the backend (droute; it replies by
# its default route, the router) via both frontends; a service leaving the config,
# a frontend failing static past --withdraw-after, and a frontend stopping
# with --withdraw-on-exit each withdraw their routes within seconds, and
# traffic moves to the other frontend; a plain restart changes no route on
# the router; a frozen frontend is dropped when its BGP hold time runs out.
#
# Network (bridge `lan` in the guest root, nothing leaves the VM):
#   c 10.9.0.2 -- r 10.9.0.1 | lan 10.0.0.0/24, fd00::/64:
#   r .254, fe1 .1, fe2 .2, backend b .10 (VIP on lo, httpd); fe1 and fe2
#   also have 10.255.0.1/32 and .2/32 on mgmt0 (not VIPs)
. "$SCENARIO_LIB"
need_clusterf apply
VIP=10.107.107.107
OLD=10.107.107.108
VIP6=2001:db8::10

# --- the network (lib.sh: router_network) ------------------------------------
router_network b
attach b 10.0.0.10
# Each frontend also has a /32 of its own that is not a VIP (a management
# address on another dummy): it must never be announced.
i=1
for fe in fe1 fe2; do
    $IP -n $fe link add mgmt0 type dummy
    $IP -n $fe addr add 10.255.0.$i/32 dev mgmt0
    $IP -n $fe link set mgmt0 up
    i=$((i + 1))
done
# The backend: a droute realserver (VIP on lo, no ARP for it), replies
# straight to the router.
$IP -n b addr add $VIP/32 dev lo
sysctl_in b net/ipv4/conf/all/arp_ignore 1
sysctl_in b net/ipv4/conf/all/arp_announce 2
$IP -n b route add default via 10.0.0.254
mkdir -p /www/b
echo b >/www/b/index.html
nsx b httpd -p 80 -h /www/b || die "httpd in b"

# --- BIRD: the router's own config, the frontends' from examples/bird --------
start_birds

# --- clusterf on both frontends -----------------------------------------------
service() { # DIR NAME ADDRESS [IPV6]
    cat >$1/services/$2.yaml <<Y
frontend:
  ipv4: $3
  ${4:+ipv6: $4}
  tcp: 80
scheduler: rr
backends:
  b: {ipv4: 10.0.0.10, tcp: 80}
Y
}
for fe in fe1 fe2; do
    mkdir -p /tmp/cfg-$fe/services
    echo "method: droute" >/tmp/cfg-$fe/clusterf.yaml
    service /tmp/cfg-$fe web $VIP $VIP6
    service /tmp/cfg-$fe old $OLD
done
start_clusterf() { # FE FLAGS...
    _fe=$1
    shift
    # Not through nsx (a function: & would fork a subshell); ip netns exec
    # execs clusterf, so $! is clusterf.
    $IP netns exec $_fe clusterf apply --watch --config-path /tmp/cfg-$_fe --own 10.107.107.0/24 \
        --own 2001:db8::/64 --resync 2s --vip-interface clusterf0 "$@" >/tmp/cf-$_fe.log 2>&1 &
}
start_clusterf fe1 --withdraw-after 3s --withdraw-on-exit
CF1=$!
start_clusterf fe2 --metrics-listen 127.0.0.1:9469
CF2=$!
vips_on() { $IP -n $1 -o addr show dev clusterf0 scope global 2>/dev/null | awk '{print $4}' | sort; }
has_vips() { [ "$(vips_on $1 | wc -l)" = 3 ]; }
for fe in fe1 fe2; do
    wait_for 60 "the VIPs on $fe" has_vips $fe || { tail -n 20 /tmp/cf-$fe.log; die "no VIPs on $fe"; }
done

# --- the router learns the VIPs ---------------------------------------------------
wait_for 60 "4 BGP sessions established on the router" established ||
    { birdc_r show protocols; tail -n 20 /tmp/bird-r.log /tmp/bird-fe1.log; die "no sessions"; }
hop_count() { [ "$(hops -6 $1 | wc -w)" = "$2" ]; }
wait_for 30 "$VIP/32 via both frontends" hops_are $VIP/32 "10.0.0.1 10.0.0.2"
$IP -n r route show $VIP/32
[ "$(hops $VIP/32)" = "10.0.0.1 10.0.0.2" ] && ok "the router has $VIP/32 with two ECMP next hops (fe1, fe2)" ||
    fail "$VIP/32 next hops: '$(hops $VIP/32)'"
wait_for 30 "$OLD/32 via both" hops_are $OLD/32 "10.0.0.1 10.0.0.2" &&
    ok "and $OLD/32, the other service's VIP"
wait_for 30 "$VIP6/128 via both" hop_count $VIP6/128 2 && ok "and $VIP6/128 with two next hops: $(hops -6 $VIP6/128)"
$IP -n r route show proto bird | grep -q "^$VIP " && ok "the routes are BIRD's (proto bird)" || fail "no proto bird routes"
birdc_r show route $VIP/32 | tee /tmp/r-route
[ "$(grep -c 'via ' /tmp/r-route)" = 2 ] && grep -q 'AS64512' /tmp/r-route &&
    ok "birdc show route: $VIP/32 from both frontends, AS path 64512" || fail "birdc show route $VIP/32"
birdc_r show route | awk '$1 ~ /\// {print $1}' | sort >/tmp/r-prefixes
printf '%s\n' $VIP/32 $OLD/32 $VIP6/128 | sort >/tmp/want
expect_eq "the router learned the VIPs and nothing else (not the frontends' own addresses)" /tmp/want /tmp/r-prefixes

# --- real TCP through the router, via both frontends --------------------------------
conns() { # FE: connections the frontend's IPVS forwarded to the VIP
    nsx $1 ipvsadm -L -n --stats --exact | awk -v s="$VIP:80" '$1 == "TCP" && $2 == s {print $3}'
}
requests() { # N: sets good, bad
    good=0 bad=0
    for _ in $(seq "$1"); do
        r=$(timeout 5 $IP netns exec c wget -q -O - http://$VIP/ 2>&1)
        if [ "$r" = b ]; then good=$((good + 1)); else
            bad=$((bad + 1))
            echo "unexpected reply: $r"
        fi
    done
}
# The kernel folds its per-CPU counters into what ipvsadm reads every 2 s:
# wait until the counters have caught up with the requests.
counted() { [ $(($(conns fe1) + $(conns fe2))) -ge "$1" ]; }
fe2_counted() { [ "$(conns fe2)" -ge "$1" ]; }
requests 20
wait_for 10 "the frontends' counters to reach 20 connections" counted 20
a1=$(conns fe1) a2=$(conns fe2)
[ "$good" = 20 ] && ok "20 requests from the client answered by the backend" || fail "requests: good=$good bad=$bad"
[ "${a1:-0}" -gt 0 ] && [ "${a2:-0}" -gt 0 ] && [ $((a1 + a2)) -ge 20 ] &&
    ok "the router spread them over both frontends (fe1 $a1, fe2 $a2 connections)" ||
    fail "connections per frontend: fe1 '$a1', fe2 '$a2'"

# gone_within SECONDS DESCRIPTION CMD...: wait, report how long it took.
gone_within() {
    _t0=$(now)
    _lim=$1 _what=$2
    shift 2
    if wait_for "$_lim" "$_what" "$@"; then
        ok "$_what in $(awk -v a="$_t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}') s"
    fi
}

# --- a service leaves the config: its route is withdrawn ---------------------------
rm /tmp/cfg-fe1/services/old.yaml /tmp/cfg-fe2/services/old.yaml
no_route() { [ -z "$($IP -n r route show $1)" ]; }
gone_within 10 "$OLD/32 gone from the router after its service left the config" no_route $OLD/32
for fe in fe1 fe2; do
    vips_on $fe | grep -qx $OLD/32 && fail "$OLD still on $fe" || ok "$OLD/32 gone from $fe's clusterf0"
done
[ "$(hops $VIP/32)" = "10.0.0.1 10.0.0.2" ] && ok "$VIP/32 keeps both next hops" || fail "$VIP/32: '$(hops $VIP/32)'"

# --- fe1 fails static past --withdraw-after 3s -----------------------------------
echo 'frontend: [' >/tmp/cfg-fe1/services/broken.yaml
fe2_only() { hops_are $VIP/32 10.0.0.2; }
gone_within 20 "fe1 withdrawn from $VIP/32 after failing static past --withdraw-after" fe2_only
[ -z "$(vips_on fe1)" ] && ok "fe1 removed its VIPs" || fail "VIPs left on fe1: $(vips_on fe1)"
grep -q 'withdrawing the VIPs' /tmp/cf-fe1.log && ok "fe1 logs the withdrawal" || fail "no withdrawal in fe1's log"
b1=$(conns fe1) b2=$(conns fe2)
requests 10
wait_for 10 "fe2's counter to reach $((b2 + 10))" fe2_counted $((b2 + 10))
[ "$good" = 10 ] && [ "$(conns fe1)" = "$b1" ] && [ "$(conns fe2)" -ge $((b2 + 10)) ] &&
    ok "10 requests answered, all through fe2" ||
    fail "with fe1 withdrawn: good=$good bad=$bad, fe1 $b1 -> $(conns fe1), fe2 $b2 -> $(conns fe2)"
rm /tmp/cfg-fe1/services/broken.yaml
both() { hops_are $VIP/32 "10.0.0.1 10.0.0.2"; }
gone_within 30 "fe1 back in $VIP/32 after a successful pass" both

# --- a plain restart of fe2's clusterf: nothing changes on the router ----------
$IP netns exec r $IP monitor route >/tmp/r-monitor 2>&1 &
MON=$!
kill -TERM $CF2
wait $CF2
start_clusterf fe2 --metrics-listen 127.0.0.1:9469
CF2=$!
fe2_passed() {
    timeout 5 $IP netns exec fe2 wget -q -O - http://127.0.0.1:9469/metrics 2>/dev/null |
        awk '$1 == "clusterf_passes_total{outcome=\"ok\"}" && $2 >= 1 {found = 1} END {exit !found}'
}
wait_for 60 "a pass of fe2's restarted clusterf" fe2_passed
sleep 1
kill $MON
if grep -q "$VIP" /tmp/r-monitor; then
    fail "the router's route changed while fe2's clusterf restarted:"
    cat /tmp/r-monitor
else
    ok "a plain restart of fe2's clusterf changed no route on the router (ip monitor route)"
fi
[ "$(hops $VIP/32)" = "10.0.0.1 10.0.0.2" ] && ok "$VIP/32 keeps both next hops" || fail "$VIP/32: '$(hops $VIP/32)'"

# --- fe1 stops with --withdraw-on-exit ---------------------------------------------
kill -TERM $CF1
wait $CF1
gone_within 10 "fe1 withdrawn from $VIP/32 after clusterf stopped with --withdraw-on-exit" fe2_only
b1=$(conns fe1) b2=$(conns fe2)
requests 10
wait_for 10 "fe2's counter to reach $((b2 + 10))" fe2_counted $((b2 + 10))
[ "$good" = 10 ] && [ "$(conns fe1)" = "$b1" ] && [ "$(conns fe2)" -ge $((b2 + 10)) ] &&
    ok "10 requests answered, all through fe2" ||
    fail "with fe1 stopped: good=$good bad=$bad, fe1 $b1 -> $(conns fe1), fe2 $b2 -> $(conns fe2)"

# --- fe2 freezes (its BIRD stops answering): dropped after the hold time -------------
kill -STOP "$(cat /run/bird-fe2.pid)"
gone_within 20 "fe2's frozen BIRD dropped from $VIP/32 by the router's hold time (9 s)" no_route $VIP/32
grep -q 'Hold timer expired' /tmp/bird-r.log && ok "the router's log says: hold timer expired" ||
    fail "no hold timer expiry in the router's log"
kill -CONT "$(cat /run/bird-fe2.pid)"
finish
