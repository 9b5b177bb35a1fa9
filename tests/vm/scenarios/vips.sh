# VIPs on the frontend (issue 20, item 1) on the real kernel:
# `apply --watch --vip-interface clusterf0` creates the dummy link (marked
# with its alias), puts the VIP of each owned service on it (IPv4 /32 and
# IPv6 /128), real TCP from the client namespace to the VIP reaches a
# backend, a service leaving the config loses its VIP before the service
# is deleted (and a new one gets its VIP after its service exists: the
# order is read from the daemon's netlink trace), a plain restart changes
# no address, --withdraw-on-exit removes them. An interface of that name
# that clusterf did not create is refused and left as it is. Every other
# interface and address is the same before and after (`ip -d addr`).
. "$SCENARIO_LIB"
need_clusterf apply
M=http://127.0.0.1:9469
# IPv6 addresses of the test network are usable at once (no DAD flags
# changing under the before/after comparison).
echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad
traffic_network
# traffic_network puts the VIP on dummy0 by hand; here clusterf does it.
$IP addr del 10.107.107.107/32 dev dummy0
$IP addr add 192.0.2.1/32 dev dummy0
$IP link add notours type dummy
$IP addr add 192.0.2.2/32 dev notours

# ip -d addr of every link but clusterf0.
others() {
    $IP -d addr | awk '/^[0-9]+: /{skip = ($2 ~ /^clusterf0[:@]/)} !skip' >"$1"
}
others /tmp/others.before

mkdir -p /tmp/cfg/services
write_service() { # NAME ADDRESS FAMILY [backends]
    cat >/tmp/cfg/services/$1.yaml <<Y
frontend:
  $3: $2
  tcp: 80
scheduler: rr
Y
    if [ -n "$4" ]; then
        cat >>/tmp/cfg/services/$1.yaml <<Y
backends:
  b1: {ipv4: 10.3.1.1, tcp: 80}
  b2: {ipv4: 10.3.2.1, tcp: 80}
Y
    fi
}
write_service web 10.107.107.107 ipv4 backends
write_service web6 2001:db8::10 ipv6
write_service old 10.107.107.108 ipv4

metrics() { timeout 5 wget -q -O - $M/metrics 2>/dev/null; }
passes_ok() { metrics | awk '$1 == "clusterf_passes_total{outcome=\"ok\"}" {print $2}'; }
passed() { [ "$(passes_ok)" -ge "$1" ] 2>/dev/null; }

start_clusterf() { # LOG [FLAGS...]
    _log=$1
    shift
    CLUSTERF_NETLINK_TRACE=1 clusterf apply --watch --config-path /tmp/cfg \
        --own 10.107.107.0/24 --own 2001:db8::/64 --resync 2s \
        --metrics-listen 127.0.0.1:9469 --vip-interface clusterf0 "$@" >"$_log" 2>&1 &
    CF_PID=$!
}
stop_clusterf() {
    kill -TERM $CF_PID
    wait $CF_PID
}

vips() { $IP -o addr show dev clusterf0 scope global | awk '{print $4}' | sort; }
has_vip() { vips | grep -qx "$1"; }
no_vip() { ! has_vip "$1"; }

# first_line LOG PATTERN: the line number of the first match (0: none).
first_line() { grep -n -m1 -e "$2" "$1" | cut -d: -f1 | grep . || echo 0; }
# Request types in the trace: an rtnetlink header's type is bytes 4-5
# (RTM_NEWADDR 0x14, RTM_DELADDR 0x15); a generic netlink request's
# command is byte 16 (IPVS_CMD_NEW_SERVICE 1, IPVS_CMD_DEL_SERVICE 3).
NEWADDR='^rtnetlink send: ........1400'
DELADDR='^rtnetlink send: ........1500'
NEWSVC='^netlink send: ................................01'
DELSVC='^netlink send: ................................03'

# --- start: the link, the VIPs, their order -----------------------------------
start_clusterf /tmp/cf1.log
wait_for 60 "the first pass" passed 1 || { tail -n 30 /tmp/cf1.log; die "no pass"; }
wait_for 10 "the VIPs" has_vip 2001:db8::10/128
printf '10.107.107.107/32\n10.107.107.108/32\n2001:db8::10/128\n' >/tmp/want
vips >/tmp/got
expect_eq "a VIP per owned service, IPv4 and IPv6" /tmp/want /tmp/got
$IP -d link show clusterf0 | tee /tmp/link
grep -q 'dummy' /tmp/link && ok "clusterf0 is a dummy" || fail "clusterf0 is not a dummy"
grep -q 'alias clusterf: VIPs' /tmp/link && ok "clusterf0 carries clusterf's alias" ||
    fail "no alias on clusterf0"
$IP -6 addr show dev clusterf0 | grep 2001:db8::10 | grep -q tentative &&
    fail "the IPv6 VIP is tentative (DAD)" || ok "the IPv6 VIP is usable at once (nodad)"
svc=$(first_line /tmp/cf1.log "$NEWSVC")
add=$(first_line /tmp/cf1.log "$NEWADDR")
[ "$svc" -gt 0 ] && [ "$add" -gt "$svc" ] && ok "services added (line $svc) before their VIPs (line $add)" ||
    fail "VIP added (line $add) before the services (line $svc)"
clusterf show --vip-interface clusterf0 | tee /tmp/show
grep -q '^VIPs on clusterf0: 3$' /tmp/show && grep -q '^  10.107.107.108/32$' /tmp/show &&
    ok "show lists the VIPs" || fail "show --vip-interface"
metrics | grep '^clusterf_vips' | tee /tmp/m
grep -q 'clusterf_vips{state="present"} 3' /tmp/m && ok "clusterf_vips present 3" || fail "metrics"

# --- real TCP to the VIP -----------------------------------------------------
count 10
[ "$other" = 0 ] && [ $((n1 + n2)) = 10 ] && ok "10 requests to the VIP answered by the backends" ||
    fail "requests to the VIP: b1=$n1 b2=$n2 other=$other"

# --- a service leaves: its VIP goes first -------------------------------------
: >/tmp/cf1.mark
lines=$(wc -l </tmp/cf1.log)
rm /tmp/cfg/services/old.yaml
wait_for 20 "the VIP of the removed service gone" no_vip 10.107.107.108/32
wait_for 20 "the removed service gone" sh -c '! ipvsadm -S -n | grep -q 10.107.107.108'
tail -n +$((lines + 1)) /tmp/cf1.log >/tmp/cf1.tail
del=$(first_line /tmp/cf1.tail "$DELADDR")
dsvc=$(first_line /tmp/cf1.tail "$DELSVC")
[ "$del" -gt 0 ] && [ "$dsvc" -gt "$del" ] && ok "VIP removed (line $del) before its service (line $dsvc)" ||
    fail "service deleted (line $dsvc) before its VIP (line $del)"
grep -q -e '- vip 10.107.107.108/32 on clusterf0' /tmp/cf1.log && ok "the daemon logs the VIP plan" ||
    fail "no '- vip' line in the log"

# --- a plain restart: no address changes --------------------------------------
stop_clusterf
vips >/tmp/got
printf '10.107.107.107/32\n2001:db8::10/128\n' >/tmp/want
expect_eq "VIPs kept on exit without --withdraw-on-exit" /tmp/want /tmp/got
start_clusterf /tmp/cf2.log --withdraw-on-exit
wait_for 60 "a pass after the restart" passed 2 || tail -n 30 /tmp/cf2.log
vips >/tmp/got
expect_eq "VIPs in place after the restart" /tmp/want /tmp/got
n=$(grep -c -e "$NEWADDR" -e "$DELADDR" /tmp/cf2.log)
[ "$n" = 0 ] && ok "the restart changed no address (no flap)" || fail "the restart sent $n address changes"
count 4
[ "$other" = 0 ] && ok "traffic after the restart" || fail "$other requests failed after the restart"

# --- --withdraw-on-exit -------------------------------------------------------
stop_clusterf
[ -z "$(vips)" ] && ok "--withdraw-on-exit removed the VIPs" || fail "VIPs left: $(vips)"
ipvsadm -S -n | grep -q 10.107.107.107 && ok "the services stay (no --flush-on-exit)" ||
    fail "the service went"

# --- an interface that is not ours --------------------------------------------
for link in notours vc; do
    $IP -d addr show dev $link >/tmp/before.$link
    timeout 20 clusterf apply --watch --config-path /tmp/cfg --own 10.107.107.0/24 \
        --vip-interface $link >/tmp/cf3.log 2>&1
    code=$?
    [ "$code" != 0 ] && grep -q 'not touching it' /tmp/cf3.log &&
        ok "--vip-interface $link refused (exit $code): $(grep -o 'link .*' /tmp/cf3.log | head -n1)" ||
        { fail "--vip-interface $link: exit $code"; cat /tmp/cf3.log; }
    $IP -d addr show dev $link >/tmp/after.$link
    expect_eq "$link untouched" /tmp/before.$link /tmp/after.$link
done

# --- nothing else changed ------------------------------------------------------
others /tmp/others.after
expect_eq "every other interface and address as before" /tmp/others.before /tmp/others.after
finish
