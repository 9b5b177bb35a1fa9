# Real traffic: a client network namespace reaches an IPVS NAT service whose
# backends are busybox httpd in two other namespaces (veth pairs inside the
# guest, the VIP on a dummy interface, nothing leaves the VM). The service is
# configured by `clusterf apply`; wrr with weights 3:1 must split 40 requests
# 30:10 (wrr is deterministic; a tolerance of 4 allows for a stray retry).
# Then the weights are flipped to 1:3 by a second apply, in place.
. "$SCENARIO_LIB"
need_clusterf apply
IP=/usr/sbin/ip # busybox sh would run its own `ip` applet first

# --- network: director in the root namespace --------------------------------
$IP link show dummy0 >/dev/null 2>&1 || $IP link add dummy0 type dummy
$IP addr add 10.107.107.107/32 dev dummy0
$IP link set dummy0 up
for ns in c b1 b2; do
    $IP netns add $ns
    $IP -n $ns link set lo up
done
$IP link add vc type veth peer name eth0 netns c
$IP addr add 10.9.0.1/24 dev vc
$IP link set vc up
$IP -n c addr add 10.9.0.2/24 dev eth0
$IP -n c link set eth0 up
$IP -n c route add default via 10.9.0.1
i=1
for ns in b1 b2; do
    $IP link add v$ns type veth peer name eth0 netns $ns
    $IP addr add 10.3.$i.254/24 dev v$ns
    $IP link set v$ns up
    $IP -n $ns addr add 10.3.$i.1/24 dev eth0
    $IP -n $ns link set eth0 up
    $IP -n $ns route add default via 10.3.$i.254
    mkdir -p /www/$ns
    echo $ns >/www/$ns/index.html
    $IP netns exec $ns httpd -p 80 -h /www/$ns || die "httpd in $ns"
    i=$((i + 1))
done
echo 1 >/proc/sys/net/ipv4/ip_forward

# --- config -------------------------------------------------------------------
write_config() { # weight1 weight2
    mkdir -p /tmp/cfg/services
    cat >/tmp/cfg/services/web.yaml <<Y
frontend:
  ipv4: 10.107.107.107
  tcp: 80
scheduler: wrr
backends:
  b1:
    ipv4: 10.3.1.1
    tcp: 80
    weight: $1
  b2:
    ipv4: 10.3.2.1
    tcp: 80
    weight: $2
Y
}

# count N: N requests from the client; sets n1, n2, other.
count() {
    n1=0 n2=0 other=0
    for _ in $(seq "$1"); do
        r=$(timeout 5 $IP netns exec c wget -q -O - http://10.107.107.107/ 2>&1)
        case $r in
        b1) n1=$((n1 + 1)) ;;
        b2) n2=$((n2 + 1)) ;;
        *)
            other=$((other + 1))
            echo "unexpected reply: $r"
            ;;
        esac
    done
    echo "b1=$n1 b2=$n2 other=$other"
}

# within NAME GOT WANT TOLERANCE
within() {
    d=$(($2 - $3))
    [ "$d" -lt 0 ] && d=$((-d))
    if [ "$d" -le "$4" ]; then ok "$1: $2 (want $3 +-$4)"; else fail "$1: $2, want $3 +-$4"; fi
}

write_config 3 1
expect_code "apply weights 3:1" 0 clusterf apply --config-path /tmp/cfg
ipvsadm -S -n
count 40
[ "$other" = 0 ] && ok "every request answered" || fail "$other requests failed"
within "b1 share at 3:1" "$n1" 30 4
within "b2 share at 3:1" "$n2" 10 4

write_config 1 3
expect_code "apply weights 1:3" 0 clusterf apply --config-path /tmp/cfg
ipvsadm -S -n
count 40
[ "$other" = 0 ] && ok "every request answered" || fail "$other requests failed"
within "b1 share at 1:3" "$n1" 10 4
within "b2 share at 1:3" "$n2" 30 4
expect_code "re-plan is empty" 0 clusterf plan --config-path /tmp/cfg --detailed-exitcode
finish
