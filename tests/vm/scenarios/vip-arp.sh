# ARP mode (issue 20, item 3) on the real kernel: `apply --watch
# --vip-mode arp --vip-interface eth0` in a frontend namespace fe puts the
# VIPs on fe's existing eth0 (on a bridge with a peer, a backend and an
# old holder of the VIPs). Checks: the peer's neighbour entries for the
# VIPs, learnt from the old holder, move to fe's MAC after clusterf adds
# them, without the peer asking (the kernel adding the address by hand
# does not move them: the control); real TCP from the peer to the VIP
# reaches the backend; addresses on eth0 that clusterf did not add (one
# equal to a configured VIP, IPv4 and IPv6, and one inside --own) are
# never removed: not when a VIP leaves the config, not on withdrawal
# (--withdraw-after, --withdraw-on-exit); a plain restart changes no
# address and announces nothing; --arp-refresh announces again; eth0
# after the last exit, and every other interface, are as before.
#
# Network (bridge `lan` in the guest root; nothing leaves the VM):
#   lan 10.0.0.0/24, fd00::/64: fe .1, b .10 (backend, VIP on lo,
#   httpd), peer .20, old .30 (held the VIPs first)
. "$SCENARIO_LIB"
need_clusterf apply
modprobe bridge || die "modprobe bridge"
VIP=10.0.0.100
VIP6=fd00::100
THEIRS=10.0.0.101  # a configured VIP, on fe's eth0 before clusterf starts
THEIRS6=fd00::101  # the same for IPv6
HAND=10.0.0.102    # inside --own, not configured, on eth0 by hand
OLD=10.0.0.103     # a configured VIP that leaves the config
M=http://127.0.0.1:9469

nsx() { # NS CMD...
    _ns=$1
    shift
    $IP netns exec "$_ns" "$@"
}

# --- the network ----------------------------------------------------------
echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad
$IP link add lan type bridge mcast_snooping 0
$IP link set lan up
for ns in fe b peer old; do
    $IP netns add $ns
    $IP -n $ns link set lo up
    # No DAD: no tentative address changing under the comparisons.
    nsx $ns sh -c 'echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad'
done
attach() { # NS N: 10.0.0.N/24 and fd00::N/64 on the namespace's eth0
    $IP link add l$1 type veth peer name eth0 netns $1
    $IP link set l$1 master lan up
    $IP -n $1 addr add 10.0.0.$2/24 dev eth0
    $IP -n $1 addr add fd00::$2/64 dev eth0 nodad
    $IP -n $1 link set eth0 up
}
attach fe 1
attach b 10
attach peer 20
attach old 30
mac() { $IP -n $1 -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | awk '{print $2}'; }
FE_MAC=$(mac fe)
OLD_MAC=$(mac old)
echo "fe eth0 $FE_MAC, old eth0 $OLD_MAC"
# The backend: a droute realserver (VIP on lo, no ARP for it).
$IP -n b addr add $VIP/32 dev lo
$IP -n b addr add $THEIRS/32 dev lo
nsx b sh -c 'echo 1 >/proc/sys/net/ipv4/conf/all/arp_ignore; echo 2 >/proc/sys/net/ipv4/conf/all/arp_announce'
mkdir -p /www/b
echo b >/www/b/index.html
nsx b httpd -p 80 -h /www/b || die "httpd in b"

# --- the peer learns the VIPs at the old holder's MAC --------------------------
$IP -n old addr add $VIP/32 dev eth0
$IP -n old addr add $VIP6/128 dev eth0 nodad
nsx peer ping -c 1 -W 2 $VIP >/dev/null || die "peer cannot reach $VIP on old"
nsx peer ping6 -c 1 -W 2 $VIP6 >/dev/null || die "peer cannot reach $VIP6 on old"
$IP -n old addr del $VIP/32 dev eth0
$IP -n old addr del $VIP6/128 dev eth0
lladdr() { # ADDR: the peer's neighbour entry's MAC
    $IP -n peer neigh show "$1" dev eth0 | grep -o 'lladdr [0-9a-f:]*' | awk '{print $2}'
}
neigh_state() { $IP -n peer neigh show "$1" dev eth0 | awk '{print $NF}'; }
[ "$(lladdr $VIP)" = "$OLD_MAC" ] && [ "$(lladdr $VIP6)" = "$OLD_MAC" ] &&
    ok "the peer has $VIP and $VIP6 at the old holder's MAC" ||
    die "peer's entries: $VIP $(lladdr $VIP), $VIP6 $(lladdr $VIP6)"

# --- the control: the kernel adding the address announces nothing --------------
$IP -n fe addr add $VIP/32 dev eth0
$IP -n fe addr add $VIP6/128 dev eth0 nodad
sleep 3
[ "$(lladdr $VIP)" = "$OLD_MAC" ] && [ "$(lladdr $VIP6)" = "$OLD_MAC" ] &&
    ok "control: ip addr add on fe alone leaves the peer's entries at the old MAC" ||
    fail "control: the peer's entries moved without clusterf: $(lladdr $VIP) $(lladdr $VIP6)"
$IP -n fe addr del $VIP/32 dev eth0
$IP -n fe addr del $VIP6/128 dev eth0

# --- addresses that are not clusterf's, and the snapshots ------------------------
$IP -n fe addr add $THEIRS/32 dev eth0
$IP -n fe addr add $THEIRS6/128 dev eth0 nodad
$IP -n fe addr add $HAND/32 dev eth0
$IP -n fe -d addr show dev eth0 >/tmp/eth0.before
$IP -n fe -d addr show dev lo >/tmp/fe-lo.before
# ip -d addr of the guest root, without the bridge's running timers.
root_addrs() { $IP -d addr | sed -E 's/(_timer) +[0-9.]+/\1/g' >"$1"; }
root_addrs /tmp/root.before

# --- clusterf ----------------------------------------------------------------------
mkdir -p /tmp/cfg/services
echo "method: droute" >/tmp/cfg/clusterf.yaml
service() { # NAME FAMILY ADDRESS [backend]
    cat >/tmp/cfg/services/$1.yaml <<Y
frontend:
  $2: $3
  tcp: 80
scheduler: rr
Y
    [ -z "$4" ] || printf 'backends:\n  b: {ipv4: 10.0.0.10, tcp: 80}\n' >>/tmp/cfg/services/$1.yaml
}
service web ipv4 $VIP b
service web6 ipv6 $VIP6
service theirs ipv4 $THEIRS b
service theirs6 ipv6 $THEIRS6
service old ipv4 $OLD
start_clusterf() { # LOG FLAGS...
    _log=$1
    shift
    # ip netns exec execs clusterf: $! is clusterf.
    CLUSTERF_NETLINK_TRACE=1 $IP netns exec fe clusterf apply --watch --config-path /tmp/cfg \
        --own 10.0.0.96/28 --own fd00::100/120 --resync 2s --metrics-listen 127.0.0.1:9469 \
        --vip-interface eth0 --vip-mode arp "$@" >"$_log" 2>&1 &
    CF_PID=$!
}
stop_clusterf() {
    kill -TERM $CF_PID
    wait $CF_PID
}
metrics() { timeout 5 $IP netns exec fe wget -q -O - $M/metrics 2>/dev/null; }
passes_ok() { metrics | awk '$1 == "clusterf_passes_total{outcome=\"ok\"}" {print $2}'; }
passed() { [ "$(passes_ok)" -ge "$1" ] 2>/dev/null; }
addrs() { $IP -n fe -o addr show dev eth0 scope global | awk '{print $4}' | sort; }
has() { addrs | grep -qx "$1"; }
hasnt() { ! has "$1"; }
count_of() { addrs | grep -cx "$1"; }
# rtnetlink request types in the trace (bytes 4-5 of the header).
NEWADDR='^rtnetlink send: ........1400'
DELADDR='^rtnetlink send: ........1500'

start_clusterf /tmp/cf1.log
wait_for 60 "the first pass" passed 1 || { tail -n 30 /tmp/cf1.log; die "no pass"; }
wait_for 10 "the VIPs on fe's eth0" has $VIP6/128
for a in $VIP/32 $VIP6/128 $OLD/32; do
    has $a && ok "$a added to eth0" || fail "$a not on eth0"
done
on_fe() { [ "$(lladdr $1)" = "$FE_MAC" ]; }
wait_for 5 "the peer's entry for $VIP at fe's MAC" on_fe $VIP &&
    ok "the peer's entry for $VIP moved to fe's MAC ($(neigh_state $VIP), unasked)"
wait_for 5 "the peer's entry for $VIP6 at fe's MAC" on_fe $VIP6 &&
    ok "the peer's entry for $VIP6 moved to fe's MAC ($(neigh_state $VIP6), unasked)"
grep -q "announcing $VIP on eth0 (gratuitous ARP" /tmp/cf1.log &&
    grep -q "announcing $VIP6 on eth0 (unsolicited neighbour advertisement" /tmp/cf1.log &&
    ok "the daemon logs the announcements" || fail "no announcement in the log"
# The mark: IFA_PROTO (5 bytes, type 11) = 0xcf in each RTM_NEWADDR.
n=$(grep -e "$NEWADDR" /tmp/cf1.log | grep -c '05000b00cf')
[ "$n" = 3 ] && ok "3 addresses added, each with IFA_PROTO 0xcf" ||
    { fail "$n marked RTM_NEWADDR requests, want 3"; grep -e "$NEWADDR" /tmp/cf1.log; }
for a in $THEIRS/32 $THEIRS6/128 $HAND/32; do
    [ "$(count_of $a)" = 1 ] && ok "$a (not clusterf's) still there, once" || fail "$a: $(count_of $a) on eth0"
done
grep -q "= vip $THEIRS/32 on eth0: present, not clusterf's (left alone)" /tmp/cf1.log &&
    grep -q "= vip $THEIRS6/128 on eth0: present, not clusterf's" /tmp/cf1.log &&
    ok "the plan names $THEIRS and $THEIRS6 as present, not clusterf's" ||
    fail "no '= vip ... not clusterf's' lines in the log"
$IP netns exec fe clusterf show --vip-interface eth0 | sed -n '/^VIPs on/,$p' | tee /tmp/show
printf 'VIPs on eth0: 3\n  10.0.0.100/32\n  10.0.0.103/32\n  fd00::100/128\n' >/tmp/want
expect_eq "show --vip-interface eth0 lists clusterf's VIPs and no other address" /tmp/want /tmp/show
metrics | grep '^clusterf_vips' | tee /tmp/m
grep -q 'clusterf_vips{state="present"} 5' /tmp/m && grep -q 'clusterf_vips{state="desired"} 5' /tmp/m &&
    ok "clusterf_vips: 5 desired, 5 present (2 of them not clusterf's)" || fail "metrics"

# --- real TCP from the peer ----------------------------------------------------------
good=0
for _ in $(seq 5); do
    [ "$(timeout 5 $IP netns exec peer wget -q -O - http://$VIP/ 2>&1)" = b ] && good=$((good + 1))
done
[ "$good" = 5 ] && ok "5 requests from the peer to $VIP answered by the backend through fe" ||
    fail "$good of 5 requests to $VIP answered"

# --- VIPs leave the config: only clusterf's go -------------------------------------
rm /tmp/cfg/services/old.yaml /tmp/cfg/services/theirs.yaml /tmp/cfg/services/theirs6.yaml
wait_for 20 "$OLD gone from eth0" hasnt $OLD/32
wait_for 20 "the services gone" sh -c "! $IP netns exec fe ipvsadm -S -n | grep -q $THEIRS"
sleep 1
for a in $THEIRS/32 $THEIRS6/128 $HAND/32; do
    has $a && ok "$a stays on eth0 after its service left (not clusterf's)" || fail "$a removed"
done
grep -q -e "- vip $THEIRS" /tmp/cf1.log && fail "a removal of $THEIRS was planned" ||
    ok "no removal of $THEIRS was planned"

# --- a plain restart, --arp-refresh, fail static past --withdraw-after -----------
stop_clusterf
start_clusterf /tmp/cf2.log --withdraw-after 2s --arp-refresh 2s
wait_for 60 "a pass after the restart" passed 1 || tail -n 30 /tmp/cf2.log
n=$(grep -c -e "$NEWADDR" -e "$DELADDR" /tmp/cf2.log)
[ "$n" = 0 ] && ok "a plain restart changed no address" || fail "the restart sent $n address changes"
grep -q announcing /tmp/cf2.log && fail "the restart announced" || ok "and announced nothing"
# --arp-refresh: a wrong entry is corrected without an add.
$IP -n peer neigh change $VIP lladdr "$OLD_MAC" dev eth0 nud stale
[ "$(lladdr $VIP)" = "$OLD_MAC" ] || fail "could not set the peer's entry back"
wait_for 5 "the refresh to correct the peer's entry" on_fe $VIP &&
    ok "--arp-refresh 2s announced $VIP again: the peer's entry is back at fe's MAC"
# Fail static past --withdraw-after: only clusterf's go; back after.
echo 'frontend: [' >/tmp/cfg/services/broken.yaml
wait_for 20 "$VIP withdrawn" hasnt $VIP/32
hasnt $VIP6/128 && ok "fail static past --withdraw-after withdrew $VIP and $VIP6" || fail "$VIP6 left"
for a in $THEIRS/32 $THEIRS6/128 $HAND/32; do
    has $a && ok "$a stays through the withdrawal" || fail "$a withdrawn"
done
rm /tmp/cfg/services/broken.yaml
wait_for 20 "$VIP back" has $VIP/32 && ok "a good pass put $VIP back"
grep -q "announcing $VIP on eth0" /tmp/cf2.log && ok "and announced it again" || fail "not announced after the withdrawal"
stop_clusterf

# --- --withdraw-on-exit: eth0 as before clusterf ------------------------------------
start_clusterf /tmp/cf3.log --withdraw-on-exit
wait_for 60 "a pass" passed 1 || tail -n 30 /tmp/cf3.log
stop_clusterf
hasnt $VIP/32 && hasnt $VIP6/128 && ok "--withdraw-on-exit removed clusterf's VIPs" || fail "VIPs left: $(addrs)"
$IP -n fe -d addr show dev eth0 >/tmp/eth0.after
expect_eq "fe's eth0 after the last exit is as before clusterf (its own and the hand-added addresses)" \
    /tmp/eth0.before /tmp/eth0.after
$IP -n fe -d addr show dev lo >/tmp/fe-lo.after
expect_eq "fe's lo untouched" /tmp/fe-lo.before /tmp/fe-lo.after
root_addrs /tmp/root.after
expect_eq "every interface of the guest root as before" /tmp/root.before /tmp/root.after

# --- an interface that cannot do ARP mode ---------------------------------------------
for link in lo nosuch; do
    timeout 20 $IP netns exec fe clusterf apply --watch --config-path /tmp/cfg --own 10.0.0.96/28 \
        --vip-interface $link --vip-mode arp >/tmp/cf4.log 2>&1
    code=$?
    [ "$code" != 0 ] && ok "--vip-mode arp --vip-interface $link refused (exit $code): $(grep -o 'link .*' /tmp/cf4.log | head -n1)" ||
        { fail "--vip-interface $link: exit $code"; cat /tmp/cf4.log; }
done
$IP -n fe -d addr show dev lo >/tmp/fe-lo.after
expect_eq "lo untouched by the refusal" /tmp/fe-lo.before /tmp/fe-lo.after
finish
