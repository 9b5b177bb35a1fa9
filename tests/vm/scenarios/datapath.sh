# The whole data path (issue 20) on the real kernel: a client, a router
# (BIRD), two frontends (clusterf apply --watch --vip-interface, BIRD) and
# two realservers running `clusterf realserver --watch` and busybox httpd:
# rs1 serves a droute service, rs2 a tunnel (IPIP) one. Checks: --dry-run
# plans and changes nothing; the realservers get their VIPs on
# clusterf-rs0, their ARP sysctls, and (rs2) clusterf-ipip0 with loose
# rp_filter under a strict `all`; real HTTP from the client to both VIPs
# is answered; a 1 MB reply goes from the realserver straight to the
# router, never through a frontend (byte counters of every eth0); the
# realservers answer no ARP for the VIPs; a service added to and removed
# from the config comes and goes on rs1; stopping fe1 with
# --withdraw-on-exit moves traffic to fe2 and leaves fe1's other
# addresses, routes and ruleset as they were; and after --cleanup `ip -d
# addr`, `ip route`, every arp_*/rp_filter sysctl and `nft -s list
# ruleset` of the realservers are as before. rs1 is also a Docker-style
# host: a third service's backend is a "container" (namespace ct1,
# 172.17.0.2:8080 behind rs1) routed through rs1 as gateway, and
# `realserver --docker` DNATs its VIP:80 to it in clusterf's own nftables
# table, beside a table of another owner that stays as it was.
#
# Network (lib.sh: router_network): c 10.9.0.2 -- r | lan 10.0.0.0/24:
#   r .254, fe1 .1, fe2 .2, rs1 .11, rs2 .12
. "$SCENARIO_LIB"
need_clusterf realserver
modprobe ipip || die "modprobe ipip"
DR=10.107.107.107  # droute, served by rs1
TUN=10.107.107.108 # tunnel, served by rs2
DOCK=10.107.107.110 # droute to rs1 as the gateway of its container ct1

router_network rs1 rs2
attach rs1 10.0.0.11
attach rs2 10.0.0.12
for rs in rs1 rs2; do
    $IP -n $rs route add default via 10.0.0.254
    mkdir -p /www/$rs
    echo $rs >/www/$rs/index.html
    dd if=/dev/zero of=/www/$rs/big bs=1024 count=1024 2>/dev/null
    nsx $rs httpd -p 80 -h /www/$rs || die "httpd in $rs"
done
# A strict rp_filter on rs2: decapsulated packets from the client arrive
# on the IPIP link, whose route back is eth0; only a loose value on the
# link lets them in.
sysctl_in rs2 net/ipv4/conf/all/rp_filter 1
# rs1 as a Docker host: container ct1 behind a veth, 172.17.0.2, httpd on
# 8080; forwarding on, and a table of another owner (Docker's would be
# iptables-nft's), which clusterf must leave as it is.
container() { # CT HOSTIF NET: namespace CT behind rs1's veth HOSTIF, NET.1 (rs1) and NET.2 (CT), httpd on 8080 answering CT
    $IP netns add $1
    $IP -n $1 link set lo up
    $IP -n rs1 link add $2 type veth peer name eth0 netns $1
    $IP -n rs1 addr add $3.1/16 dev $2
    $IP -n rs1 link set $2 up
    $IP -n $1 addr add $3.2/16 dev eth0
    $IP -n $1 link set eth0 up
    $IP -n $1 route add default via $3.1
    mkdir -p /www/$1
    echo $1 >/www/$1/index.html
    nsx $1 httpd -p 8080 -h /www/$1 || die "httpd in $1"
}
container ct1 docker0 172.17.0
sysctl_in rs1 net/ipv4/ip_forward 1
command -v nft >/dev/null || die "no nft in the guest (tests/vm/build.sh)"
nsx rs1 nft -f - <<'NFT' || die "rs1's own table"
table inet filter {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip daddr 172.17.0.0/16 counter accept
    }
}
NFT
start_birds

# --- one config for every host ------------------------------------------------
mkdir -p /tmp/cfg/services /tmp/cfg/routes
echo "method: droute" >/tmp/cfg/clusterf.yaml
printf 'prefix: 10.0.0.12/32\nmethod: tunnel\n' >/tmp/cfg/routes/rs2.yaml
printf 'prefix: 172.17.0.0/16\ngateway: 10.0.0.11\nmethod: droute\n' >/tmp/cfg/routes/rs1-docker.yaml
printf 'frontend: {ipv4: %s, tcp: 80}\nbackends:\n  ct1: {ipv4: 172.17.0.2, tcp: 8080}\n' $DOCK >/tmp/cfg/services/dock.yaml
for s in "dr $DR rs1 10.0.0.11" "tun $TUN rs2 10.0.0.12"; do
    set -- $s
    printf 'frontend: {ipv4: %s, tcp: 80}\nscheduler: rr\nbackends:\n  %s: {ipv4: %s, tcp: 80}\n' \
        $2 $3 $4 >/tmp/cfg/services/$1.yaml
done
clusterf render --config-path /tmp/cfg --output ipvsadm >/tmp/rendered || die "render: $(cat /tmp/rendered)"
grep -q -- "-a -t $TUN:80 -r 10.0.0.12:80 -i" /tmp/rendered && grep -q -- "-a -t $DR:80 -r 10.0.0.11:80 -g" /tmp/rendered &&
    grep -q -- "-a -t $DOCK:80 -r 10.0.0.11:80 -g" /tmp/rendered &&
    ok "the config: $DR droute to rs1, $TUN tunnel to rs2, $DOCK droute to rs1 as ct1's gateway" || { cat /tmp/rendered; die "unexpected render"; }

# --- what the realservers are before clusterf ----------------------------------
snapshot() { # NS FILE: addresses, routes and the ARP/rp_filter sysctls, but for clusterf's links
    {
        for l in $($IP -n $1 -o link | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -v '^clusterf-'); do
            $IP -n $1 -d addr show dev $l
        done
        $IP -n $1 route
        nsx $1 sh -c 'for f in /proc/sys/net/ipv4/conf/*/arp_* /proc/sys/net/ipv4/conf/*/rp_filter; do echo "$f $(cat $f)"; done' |
            grep -v /clusterf-
        nsx $1 nft -s list ruleset
    } >$2
}
snapshot rs1 /tmp/rs1.before
snapshot rs2 /tmp/rs2.before

# --- --dry-run: the plan, and nothing changed ---------------------------------------
rs_flags() { # RS: the realserver's flags (rs1 is a Docker host)
    echo --config-path /tmp/cfg --arp-interface eth0 --state-file /tmp/$1.state.json
    [ $1 = rs1 ] && echo --docker
}
nsx rs1 clusterf realserver $(rs_flags rs1) --dry-run >/tmp/dry 2>&1 || { cat /tmp/dry; die "--dry-run failed"; }
cat /tmp/dry
printf '%s\n' "+ link clusterf-rs0 (dummy)" "~ sysctl net.ipv4.conf.eth0.arp_announce 0 -> 2" \
    "~ sysctl net.ipv4.conf.eth0.arp_ignore 0 -> 1" "+ table inet clusterf" \
    "+ dnat tcp $DOCK:80 -> 172.17.0.2:8080" "+ vip $DR/32 on clusterf-rs0" "+ vip $DOCK/32 on clusterf-rs0" >/tmp/want
expect_eq "rs1's --dry-run plan: its link, the ARP sysctls, its DNAT table, then its VIPs" /tmp/want /tmp/dry
nsx rs2 clusterf realserver $(rs_flags rs2) --dry-run --output json >/tmp/dry.json 2>&1
grep -q '"op": "add-link"' /tmp/dry.json && grep -q '"kind": "ipip"' /tmp/dry.json && grep -q "\"vip\": \"$TUN\"" /tmp/dry.json &&
    ok "rs2's --dry-run --output json: the IPIP link and $TUN" || { cat /tmp/dry.json; fail "rs2's JSON plan"; }
snapshot rs1 /tmp/rs1.dry
$IP -n rs1 link show clusterf-rs0 >/dev/null 2>&1 && fail "--dry-run created clusterf-rs0" ||
    expect_eq "--dry-run changed nothing on rs1" /tmp/rs1.before /tmp/rs1.dry

expect_code "a --vip-link that names a link not clusterf's is refused" 1 nsx rs1 clusterf realserver $(rs_flags rs1) --vip-link eth0
grep -q "link eth0 is a veth link, not a dummy that clusterf created: not touching it" /tmp/last.err &&
    ok "the error names the link and why" || { cat /tmp/last.err; fail "the refusal's message"; }
snapshot rs1 /tmp/rs1.refused
expect_eq "the refusal changed nothing on rs1" /tmp/rs1.before /tmp/rs1.refused

# --- clusterf on both frontends and both realservers ------------------------------
start_fe() { # FE FLAGS...
    _fe=$1
    shift
    $IP netns exec $_fe clusterf apply --watch --config-path /tmp/cfg --own 10.107.107.0/24 \
        --resync 2s --vip-interface clusterf0 "$@" >/tmp/cf-$_fe.log 2>&1 &
}
fe_snapshot() { # FE FILE: its addresses, routes and ruleset, but clusterf0's
    {
        for l in $($IP -n $1 -o link | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -vx clusterf0); do
            $IP -n $1 -d addr show dev $l
        done
        { $IP -n $1 route; $IP -n $1 -6 route; } | grep -v ' dev clusterf0 '
        nsx $1 nft -s list ruleset
    } >$2
}
fe_snapshot fe1 /tmp/fe1.before
start_fe fe1 --withdraw-on-exit
CF1=$!
start_fe fe2
start_rs() { # RS FLAGS...
    _rs=$1
    shift
    $IP netns exec $_rs clusterf realserver --watch $(rs_flags $_rs) --resync 2s "$@" >/tmp/rs-$_rs.log 2>&1 &
}
start_rs rs1 --metrics-listen 127.0.0.1:9470
RS1=$!
start_rs rs2
RS2=$!
vip_on() { # NS LINK VIP...: the VIPs are the only global addresses on LINK
    _ns=$1 _link=$2
    shift 2
    [ "$($IP -n $_ns -o addr show dev $_link scope global 2>/dev/null | awk '{print $4}' | sort | tr '\n' ' ')" = \
        "$(for v in "$@"; do echo $v/32; done | sort | tr '\n' ' ')" ]
}
wait_for 60 "$DR and $DOCK on rs1's clusterf-rs0" vip_on rs1 clusterf-rs0 $DR $DOCK &&
    ok "rs1 holds $DR/32 and $DOCK/32 on clusterf-rs0, nothing else" || { cat /tmp/rs-rs1.log; die "rs1"; }
nsx rs1 nft -s list table inet clusterf >/tmp/dnat-table || die "no table inet clusterf on rs1"
grep -Eq "ip daddr $DOCK .*dnat ip to 172.17.0.2:8080" /tmp/dnat-table &&
    ok "rs1's table inet clusterf DNATs $DOCK:80 to ct1 (172.17.0.2:8080)" || { cat /tmp/dnat-table; fail "rs1's DNAT table"; }
$IP netns exec rs2 nft list table inet clusterf >/dev/null 2>&1 && fail "rs2 (no --docker) has a DNAT table" ||
    ok "rs2 (no --docker) has no DNAT table"
wait_for 60 "$TUN on rs2's clusterf-ipip0" vip_on rs2 clusterf-ipip0 $TUN &&
    ok "rs2 holds $TUN/32 on clusterf-ipip0 (the link it arrives on), nothing else" || { cat /tmp/rs-rs2.log; die "rs2"; }
$IP -n rs2 link show clusterf-rs0 >/dev/null 2>&1 && fail "rs2 (tunnel only) has a dummy link" ||
    ok "rs2 (tunnel only) has no dummy link"
for rs in rs1 rs2; do
    a=$(nsx $rs cat /proc/sys/net/ipv4/conf/eth0/arp_ignore /proc/sys/net/ipv4/conf/eth0/arp_announce | tr '\n' ' ')
    [ "$a" = "1 2 " ] && ok "$rs: eth0 arp_ignore 1, arp_announce 2" || fail "$rs: eth0 arp_ignore, arp_announce: $a"
done
$IP -n rs2 -d link show clusterf-ipip0 | tee /tmp/ipip
grep -q 'ipip external' /tmp/ipip && grep -q 'alias clusterf: realserver' /tmp/ipip && grep -q '<.*UP' /tmp/ipip &&
    ok "rs2: clusterf-ipip0 is an IPIP link in external mode, up, with clusterf's alias" || fail "rs2's clusterf-ipip0"
[ "$(nsx rs2 cat /proc/sys/net/ipv4/conf/clusterf-ipip0/rp_filter)" = 2 ] &&
    [ "$(nsx rs2 cat /proc/sys/net/ipv4/conf/all/rp_filter)" = 1 ] &&
    ok "rs2: rp_filter loose (2) on clusterf-ipip0, all still strict (1)" || fail "rs2's rp_filter"
$IP -n rs1 link show clusterf-ipip0 >/dev/null 2>&1 && fail "rs1 (droute only) has an IPIP link" ||
    ok "rs1 (droute only) has no IPIP link"
grep -q '"was": 0' /tmp/rs1.state.json && ok "rs1's state file records eth0's earlier values" ||
    { cat /tmp/rs1.state.json; fail "rs1's state file"; }
metric() { # NAME: its value on rs1's /metrics
    timeout 5 $IP netns exec rs1 wget -q -O - http://127.0.0.1:9470/metrics 2>/dev/null | awk -v n="$1" '$1 == n {print $2}'
}
[ "$(metric 'clusterf_vips{state="desired"}')" = 2 ] && [ "$(metric 'clusterf_passes_total{outcome="ok"}' | cut -d. -f1)" -ge 1 ] &&
    ok "rs1's /metrics: 2 VIPs desired, passes ok" || fail "rs1's metrics: $(metric 'clusterf_vips{state="desired"}')"

# --- the router learns both VIPs from both frontends -------------------------------
wait_for 60 "4 BGP sessions established on the router" established ||
    { birdc_r show protocols; die "no sessions"; }
wait_for 30 "$DR/32 via both frontends" hops_are $DR/32 "10.0.0.1 10.0.0.2" || die "no ECMP route for $DR"
wait_for 30 "$TUN/32 via both frontends" hops_are $TUN/32 "10.0.0.1 10.0.0.2" || die "no ECMP route for $TUN"
wait_for 30 "$DOCK/32 via both frontends" hops_are $DOCK/32 "10.0.0.1 10.0.0.2" || die "no ECMP route for $DOCK"
ok "the router reaches $DR, $TUN and $DOCK through fe1 and fe2"

# --- real HTTP, answered straight from the realservers -------------------------------
get() { timeout 10 $IP netns exec c wget -q -O - http://$1/$2 2>&1; }
# save FILE: stdin into FILE the way an editor or a deploy saves, written
# beside (a dot-file: not read) and renamed: the running realservers and
# frontends must never see it half written (they warn about a file that
# does not parse, and the checks below count warnings).
save() { cat >"$(dirname "$1")/.$(basename "$1").tmp" && mv "$(dirname "$1")/.$(basename "$1").tmp" "$1"; }
answered() { # N VIP WANT: N requests to VIP, all answered WANT
    _good=0
    for _ in $(seq "$1"); do [ "$(get $2)" = "$3" ] && _good=$((_good + 1)); done
    [ "$_good" = "$1" ] && ok "$1 of $1 requests to $2 answered by $3" || fail "$2: $_good of $1 answered by $3"
}
answered 10 $DR rs1
answered 10 $TUN rs2 || $IP -n rs2 -s link show clusterf-ipip0
answered 10 $DOCK ct1
bytes() { # NS DIR: its eth0's rx or tx bytes
    nsx $1 cat /sys/class/net/eth0/statistics/${2}_bytes
}
straight() { # VIP RS: a 1 MB reply, and where its bytes went
    for ns in fe1 fe2 r $2; do
        eval "rx_$ns=$(bytes $ns rx) tx_$ns=$(bytes $ns tx)"
    done
    n=$(timeout 30 $IP netns exec c wget -q -O - http://$1/big | wc -c)
    [ "$n" = 1048576 ] || fail "$1/big: $n bytes"
    d_rs=$(($(bytes $2 tx) - $(eval echo \$tx_$2)))
    d_r=$(($(bytes r rx) - rx_r))
    d_fe=$(($(bytes fe1 rx) - rx_fe1 + $(bytes fe2 rx) - rx_fe2 + $(bytes fe1 tx) - tx_fe1 + $(bytes fe2 tx) - tx_fe2))
    if [ "$d_rs" -ge 1048576 ] && [ "$d_r" -ge 1048576 ] && [ "$d_fe" -lt 200000 ]; then
        ok "$1: 1 MB from $2 ($d_rs bytes out) to the router ($d_r bytes in); the frontends moved $d_fe bytes (requests and ACKs only)"
    else
        fail "$1: $2 sent $d_rs, the router got $d_r, the frontends moved $d_fe bytes"
    fi
}
straight $DR rs1
straight $TUN rs2

# --- a config change reaches the realserver (its directory watch) ---------------------
NEW=10.107.107.109
printf 'frontend: {ipv4: %s, tcp: 80}\nbackends:\n  rs1: {ipv4: 10.0.0.11, tcp: 80}\n' $NEW | save /tmp/cfg/services/new.yaml
has_vip() { $IP -n rs1 -o addr show dev clusterf-rs0 scope global | grep -q " $1/32 "; }
wait_for 10 "$NEW on rs1" has_vip $NEW && ok "a new droute service in the config: rs1 adds $NEW/32"
wait_for 30 "$NEW/32 via both frontends" hops_are $NEW/32 "10.0.0.1 10.0.0.2" && answered 3 $NEW rs1
rm /tmp/cfg/services/new.yaml
gone() { ! has_vip $1; }
wait_for 10 "$NEW gone from rs1" gone $NEW && has_vip $DR && ok "the service removed: rs1 drops $NEW/32, keeps $DR/32"

# --- a second container behind the same VIP: the table is replaced whole -----------
container ct2 docker1 172.18.0
printf 'prefix: 172.18.0.0/16\ngateway: 10.0.0.11\nmethod: droute\n' | save /tmp/cfg/routes/rs1-docker1.yaml
printf 'frontend: {ipv4: %s, tcp: 80}\nbackends:\n  ct1: {ipv4: 172.17.0.2, tcp: 8080}\n  ct2: {ipv4: 172.18.0.2, tcp: 8080}\n' $DOCK | save /tmp/cfg/services/dock.yaml
two_rules() { [ "$(nsx rs1 nft -s list table inet clusterf | grep -c "ip daddr $DOCK ")" = 2 ]; }
wait_for 15 "two DNAT rules for $DOCK on rs1" two_rules && ok "a second container: rs1's table holds a rule for each"
seen=" "
for _ in $(seq 20); do seen="$seen$(get $DOCK) "; done
case "$seen" in *" ct1 "*" ct2 "* | *" ct2 "*" ct1 "*) ok "20 requests to $DOCK reached both containers" ;;
*) fail "20 requests to $DOCK: $seen" ;; esac
# ct2 leaves the service before its route goes: a read between the two
# steps must not see ct2 without the route that makes it a DNAT backend.
printf 'frontend: {ipv4: %s, tcp: 80}\nbackends:\n  ct1: {ipv4: 172.17.0.2, tcp: 8080}\n' $DOCK | save /tmp/cfg/services/dock.yaml
rm /tmp/cfg/routes/rs1-docker1.yaml
one_rule() { [ "$(nsx rs1 nft -s list table inet clusterf | grep -c "ip daddr $DOCK ")" = 1 ]; }
wait_for 15 "one DNAT rule for $DOCK on rs1" one_rule && answered 5 $DOCK ct1
$IP -n rs1 link del docker1
$IP netns del ct2

# --- no ARP answer for a VIP from a realserver ----------------------------------------
mac() { $IP -n $1 link show eth0 | awk '/link\/ether/ {print $2}'; }
for vip in $DR $TUN $DOCK; do
    nsx r arping -c 3 -w 3 -I eth0 $vip >/tmp/arping 2>&1
    if grep -qi -e "$(mac rs1)" -e "$(mac rs2)" /tmp/arping; then
        fail "a realserver answered ARP for $vip:"
        cat /tmp/arping
    else
        ok "no realserver answers ARP for $vip ($(grep -ci reply /tmp/arping) replies, from frontends only)"
    fi
done

# --- fe1 stops with --withdraw-on-exit: traffic moves to fe2 -------------------------
conns() { # FE VIP: connections the frontend's IPVS forwarded to VIP
    nsx $1 ipvsadm -L -n --stats --exact | awk -v s="$2:80" '$1 == "TCP" && $2 == s {print $3}'
}
kill -TERM $CF1
wait $CF1
fe_snapshot fe1 /tmp/fe1.after
expect_eq "fe1 after its stop: addresses, routes and ruleset (but clusterf0's) as before it started" /tmp/fe1.before /tmp/fe1.after
[ -z "$($IP -n fe1 -o addr show dev clusterf0 scope global)" ] && ok "fe1's clusterf0 holds no VIP after --withdraw-on-exit" ||
    fail "fe1's clusterf0 still holds: $($IP -n fe1 -o addr show dev clusterf0 scope global)"
wait_for 15 "fe1 withdrawn from $DR and $TUN" sh -c "[ \"\$($IP -n r route show $DR/32 | grep -c 10.0.0.1)\" = 0 ] && [ \"\$($IP -n r route show $TUN/32 | grep -c 10.0.0.1)\" = 0 ]" &&
    ok "the router dropped fe1 for both VIPs"
b1=$(conns fe1 $DR) t1=$(conns fe1 $TUN) b2=$(conns fe2 $DR) t2=$(conns fe2 $TUN)
answered 5 $DR rs1
answered 5 $TUN rs2
fe2_counted() { [ "$(conns fe2 $DR)" -ge $((b2 + 5)) ] && [ "$(conns fe2 $TUN)" -ge $((t2 + 5)) ]; }
wait_for 10 "fe2's counters to reach +5 each" fe2_counted
[ "$(conns fe1 $DR)" = "$b1" ] && [ "$(conns fe1 $TUN)" = "$t1" ] && fe2_counted &&
    ok "with fe1 stopped, every request went through fe2" ||
    fail "fe1 $b1/$t1 -> $(conns fe1 $DR)/$(conns fe1 $TUN), fe2 $b2/$t2 -> $(conns fe2 $DR)/$(conns fe2 $TUN)"

for rs in rs1 rs2; do
    grep -E 'WARN|ERROR' /tmp/rs-$rs.log && fail "$rs's realserver logged warnings" || ok "$rs's realserver logged no warning"
    n=$(grep -c -e "+ vip $DR/" -e "+ vip $TUN/" /tmp/rs-$rs.log)
    [ "$n" = 1 ] && ok "$rs added its VIP once, then every resync pass found nothing to do" || fail "$rs: $n VIP additions"
done

# --- the realservers stop (the host stays), then --cleanup ---------------------------
kill -TERM $RS1 $RS2
wait $RS1 $RS2
vip_on rs1 clusterf-rs0 $DR $DOCK && ok "a stopped realserver leaves its VIPs in place" || fail "rs1 lost its VIP on stop"
for rs in rs1 rs2; do
    nsx $rs clusterf realserver --cleanup --state-file /tmp/$rs.state.json >/tmp/cleanup-$rs 2>&1 ||
        { cat /tmp/cleanup-$rs; fail "$rs --cleanup failed"; }
done
cat /tmp/cleanup-rs2
grep -q "~ sysctl net.ipv4.conf.eth0.arp_ignore 1 -> 0 (restored)" /tmp/cleanup-rs2 && grep -q -- "- link clusterf-ipip0 (ipip)" /tmp/cleanup-rs2 &&
    ok "rs2's cleanup plan restores eth0 and deletes its links" || fail "rs2's cleanup plan"
grep -q -- "- table inet clusterf" /tmp/cleanup-rs1 && ok "rs1's cleanup removes its DNAT table" ||
    { cat /tmp/cleanup-rs1; fail "rs1's cleanup plan"; }
for rs in rs1 rs2; do
    snapshot $rs /tmp/$rs.after
    expect_eq "$rs after --cleanup: ip -d addr, ip route, the arp_*/rp_filter sysctls and nft -s list ruleset as before" /tmp/$rs.before /tmp/$rs.after
    $IP -n $rs -o link | grep -q clusterf- && fail "$rs still has a clusterf link" || ok "$rs has no clusterf link left"
    [ -e /tmp/$rs.state.json ] && fail "$rs's state file is left" || ok "$rs's state file is gone"
done
nsx rs1 clusterf realserver --cleanup --state-file /tmp/rs1.state.json >/tmp/again 2>&1
[ "$(cat /tmp/again)" = "no changes" ] && ok "a second --cleanup has nothing to do" || { cat /tmp/again; fail "second cleanup"; }
finish
