# DNAT of VIP:port to a Docker host's containers (issue 20, item 4's
# --docker), through `clusterf nft-dnat` (nf_tables over netlink).
#
# The guest is the Docker host: a bridge docker0 (172.17.0.0/16,
# fd00:17::/64) with two "containers" (namespaces ctr1, ctr2, busybox
# httpd on 8080 answering their names), the VIPs on a dummy link, and a
# client namespace (10.9.0.2, fd00:9::2) routed through the host, so its
# packets arrive addressed to VIP:80 as droute delivers them. A config
# routes the containers' prefixes through this host (gateway 10.9.0.1,
# droute), with weights 3:1 in the overlay.
#
# Before clusterf, Docker-style tables of other owners are there: `inet
# filter` and `ip nat`, whose DOCKER chain publishes port 80 of every local
# address to ctr1:8081 (answering "docker"). Checked: the plan and
# --dry-run; real HTTP over IPv4 and IPv6 reaches the containers (ours wins
# over Docker's rule for VIP:80) in about the weights' shares; a batch the
# kernel refuses changes nothing; a re-run is empty; a weight change and a rule added by hand rewrite the table whole;
# no rule wanted removes it (and Docker's rule answers again); a table of
# our name without our mark is refused and left as it was; the other
# tables stay byte-identical (`nft -s list ruleset` without ours) after
# every step.
. "$SCENARIO_LIB"
need_clusterf nft-dnat
command -v nft >/dev/null || die "no nft in the guest"

# --- network ------------------------------------------------------------------
$IP link add vips0 type dummy
$IP addr add 198.51.100.10/32 dev vips0
$IP addr add 2001:db8::10/128 dev vips0 nodad
$IP link set vips0 up
$IP link add docker0 type bridge
$IP addr add 172.17.0.1/16 dev docker0
$IP addr add fd00:17::1/64 dev docker0 nodad
$IP link set docker0 up
i=2
for ns in ctr1 ctr2; do
    $IP netns add $ns
    $IP -n $ns link set lo up
    $IP link add v$ns type veth peer name eth0 netns $ns
    $IP link set v$ns master docker0 up
    $IP -n $ns addr add 172.17.0.$i/16 dev eth0
    $IP -n $ns addr add fd00:17::$i/64 dev eth0 nodad
    $IP -n $ns link set eth0 up
    $IP -n $ns route add default via 172.17.0.1
    $IP -n $ns -6 route add default via fd00:17::1
    mkdir -p /www/$ns
    echo $ns >/www/$ns/index.html
    $IP netns exec $ns httpd -p 8080 -h /www/$ns || die "httpd in $ns"
    i=$((i + 1))
done
mkdir -p /www/docker
echo docker >/www/docker/index.html
$IP netns exec ctr1 httpd -p 8081 -h /www/docker || die "httpd docker in ctr1"
$IP netns add c
$IP -n c link set lo up
$IP link add vc type veth peer name eth0 netns c
$IP addr add 10.9.0.1/24 dev vc
$IP addr add fd00:9::1/64 dev vc nodad
$IP link set vc up
$IP -n c addr add 10.9.0.2/24 dev eth0
$IP -n c addr add fd00:9::2/64 dev eth0 nodad
$IP -n c link set eth0 up
$IP -n c route add default via 10.9.0.1
$IP -n c -6 route add default via fd00:9::1
echo 1 >/proc/sys/net/ipv4/ip_forward
echo 1 >/proc/sys/net/ipv6/conf/all/forwarding

# --- the tables of other owners (Docker's iptables-nft, a filter) -------------
nft -f - <<'N' || die "loading the other tables"
table inet filter {
    chain input {
        type filter hook input priority filter; policy accept;
        tcp dport 9999 drop
    }
}
table ip nat {
    chain PREROUTING {
        type nat hook prerouting priority dstnat; policy accept;
        fib daddr type local jump DOCKER
    }
    chain DOCKER {
        iifname "docker0" return
        tcp dport 80 dnat to 172.17.0.2:8081
    }
    chain POSTROUTING {
        type nat hook postrouting priority srcnat; policy accept;
        oifname != "docker0" ip saddr 172.17.0.0/16 masquerade
    }
}
N
# others FILE: the ruleset without our table, stateless.
others() {
    nft -s list ruleset | awk '/^table inet clusterf \{/ {skip = 1} !skip {print} skip && /^\}/ {skip = 0}' >"$1"
}
others /tmp/others.before
grep -q "table ip nat" /tmp/others.before || die "the other tables are not there"
check_others() {
    others /tmp/others.now
    expect_eq "other tables byte-identical $1" /tmp/others.before /tmp/others.now
}

# --- config -------------------------------------------------------------------
mkdir -p /tmp/cfg/services /tmp/cfg/routes /tmp/ov/services/web/backends
cat >/tmp/cfg/services/web.yaml <<'Y'
frontend:
  ipv4: 198.51.100.10
  ipv6: 2001:db8::10
  tcp: 80
scheduler: wrr
Y
cat >/tmp/cfg/routes/docker.yaml <<'Y'
prefix: 172.17.0.0/16
gateway: 10.9.0.1
method: droute
Y
cat >/tmp/cfg/routes/docker6.yaml <<'Y'
prefix: fd00:17::/64
gateway: fd00:9::1
method: droute
Y
backend() { # name address6-suffix weight
    echo "{\"ipv4\": \"172.17.0.$2\", \"ipv6\": \"fd00:17::$2\", \"tcp\": 8080, \"weight\": $3}" \
        >/tmp/ov/services/web/backends/$1
}
backend ctr1 2 3
backend ctr2 3 1
dnat() {
    clusterf nft-dnat --config-path /tmp/cfg --overlay-path /tmp/ov \
        --host-address 10.9.0.1 --host-address fd00:9::1 "$@"
}

# count N URL: N requests from the client; sets n1, n2, nd, other.
count() {
    n1=0 n2=0 nd=0 other=0
    for _ in $(seq "$1"); do
        r=$(timeout 5 $IP netns exec c wget -q -O - "$2" 2>&1)
        case $r in
        ctr1) n1=$((n1 + 1)) ;;
        ctr2) n2=$((n2 + 1)) ;;
        docker) nd=$((nd + 1)) ;;
        *)
            other=$((other + 1))
            echo "unexpected reply: $r"
            ;;
        esac
    done
    echo "$2: ctr1=$n1 ctr2=$n2 docker=$nd other=$other"
}

count 5 http://198.51.100.10/
[ "$nd" = 5 ] && ok "before clusterf, Docker's rule answers VIP:80" || fail "Docker's rule: $nd of 5"

# --- dry run ------------------------------------------------------------------
expect_code "dry run" 0 dnat --dry-run
cat /tmp/last.out
cat >/tmp/want.plan <<'P'
+ table inet clusterf
+ dnat tcp 198.51.100.10:80 -> 172.17.0.2:8080 weight 3
+ dnat tcp 198.51.100.10:80 -> 172.17.0.3:8080 weight 1
+ dnat tcp [2001:db8::10]:80 -> [fd00:17::2]:8080 weight 3
+ dnat tcp [2001:db8::10]:80 -> [fd00:17::3]:8080 weight 1
P
expect_eq "the plan" /tmp/want.plan /tmp/last.out
nft list table inet clusterf >/dev/null 2>&1 && fail "dry run created the table" || ok "dry run changed nothing"

# --- a batch the kernel refuses: all or nothing --------------------------------
# nft_numgen is not loaded yet; with module loading off, the kernel refuses
# the first rule that uses numgen, and so the whole batch.
grep -q '^nft_numgen ' /proc/modules && die "nft_numgen is loaded already"
echo /nonexistent >/proc/sys/kernel/modprobe
expect_code "a refused batch fails" 1 dnat
echo /sbin/modprobe >/proc/sys/kernel/modprobe
grep -q "adding a rule: not supported by this kernel (a missing module: .*the batch was not applied" /tmp/last.err &&
    ok "the refusal names the request: $(cat /tmp/last.err)" || fail "refusal: $(cat /tmp/last.err)"
nft list table inet clusterf >/dev/null 2>&1 && fail "a refused batch left a table" || ok "a refused batch changed nothing"
check_others "after a refused batch"

# --- create -------------------------------------------------------------------
CLUSTERF_NETLINK_TRACE=1 dnat >/tmp/create.out 2>/tmp/create.err || fail "create: $(cat /tmp/create.err)"
sed 's/^/trace create: /' /tmp/create.err
expect_eq "create prints the plan" /tmp/want.plan /tmp/create.out
nft list table inet clusterf
nft list table inet clusterf | grep -q 'comment "clusterf: ' && ok "the table carries clusterf's mark" || fail "no mark"
check_others "after create"
count 40 http://198.51.100.10/
[ "$other" = 0 ] && [ "$nd" = 0 ] && ok "IPv4: every request reached a container" || fail "IPv4: docker=$nd other=$other"
within "ctr1's share at 3:1" "$n1" 30 10
within "ctr2's share at 3:1" "$n2" 10 9
count 12 "http://[2001:db8::10]/"
[ "$other" = 0 ] && [ "$nd" = 0 ] && [ "$n1" -gt 0 ] && ok "IPv6: every request reached a container" ||
    fail "IPv6: ctr1=$n1 docker=$nd other=$other"

# --- level-triggered: nothing to do -------------------------------------------
CLUSTERF_NETLINK_TRACE=1 dnat >/tmp/again.out 2>/tmp/again.err || fail "re-run: $(cat /tmp/again.err)"
sed 's/^/trace read: /' /tmp/again.err
[ ! -s /tmp/again.out ] && grep -q "no changes" /tmp/again.err && ok "a re-run changes nothing" ||
    { fail "re-run planned changes"; cat /tmp/again.out; }
nft -s list table inet clusterf >/tmp/ours.before

# --- a weight changes: the table is replaced whole ----------------------------
backend ctr2 3 3
expect_code "weights 3:3" 0 dnat
cat /tmp/last.out
grep -q -- "- dnat tcp 198.51.100.10:80 -> 172.17.0.3:8080 weight 1" /tmp/last.out &&
    grep -q -- "+ dnat tcp 198.51.100.10:80 -> 172.17.0.3:8080 weight 3" /tmp/last.out &&
    ok "the plan shows the weight change" || fail "the plan lacks the weight change"
check_others "after the replace"
count 20 http://198.51.100.10/
[ "$other" = 0 ] && [ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] && ok "both containers answer at 3:3" ||
    fail "at 3:3: ctr1=$n1 ctr2=$n2 other=$other"
backend ctr2 3 1
expect_code "weights 3:1 again" 0 dnat
nft -s list table inet clusterf >/tmp/ours.now
expect_eq "the same table as before" /tmp/ours.before /tmp/ours.now

# --- a rule added by hand: rewritten ------------------------------------------
nft add rule inet clusterf containers tcp dport 1 drop || fail "adding a rule by hand"
expect_code "a hand-made rule" 0 dnat
grep -q "^~ table inet clusterf" /tmp/last.out && ok "the plan says the table is rewritten" ||
    { fail "no rewrite line"; cat /tmp/last.out; }
nft -s list table inet clusterf >/tmp/ours.now
expect_eq "the hand-made rule is gone, the table as clusterf writes it" /tmp/ours.before /tmp/ours.now
check_others "after the rewrite"

# --- a large table: 400 VIPs x 3 containers, a batch past the default send
# buffer, a dump of many datagrams -------------------------------------------
cp -r /tmp/cfg /tmp/bigcfg
cp -r /tmp/ov /tmp/bigov
i=0
while [ $i -lt 400 ]; do
    printf 'frontend: {ipv4: 10.200.%d.%d, tcp: 80}\n' $((i / 200)) $((i % 200 + 1)) >/tmp/bigcfg/services/big$i.yaml
    mkdir -p /tmp/bigov/services/big$i/backends
    for k in 1 2 3; do
        echo "{\"ipv4\": \"172.17.10.$k\", \"tcp\": 8080}" >/tmp/bigov/services/big$i/backends/c$k
    done
    i=$((i + 1))
done
big() {
    clusterf nft-dnat --config-path /tmp/bigcfg --overlay-path /tmp/bigov \
        --host-address 10.9.0.1 --host-address fd00:9::1 "$@"
}
expect_code "a table of 1,204 rules" 0 big
n=$(nft list table inet clusterf | grep -c "dnat ip to")
[ "$n" = 1202 ] && ok "1,202 IPv4 rules in the kernel" || fail "$n IPv4 rules, want 1202"
expect_code "the large table re-read" 0 big
[ ! -s /tmp/last.out ] && ok "a re-run of the large table changes nothing" || fail "re-run: $(head -n3 /tmp/last.out)"
check_others "after the large table"
expect_code "back to the small table" 0 dnat
nft -s list table inet clusterf >/tmp/ours.now
expect_eq "the small table as before" /tmp/ours.before /tmp/ours.now

# --- no rule wanted: the table goes ------------------------------------------
rm /tmp/ov/services/web/backends/ctr1 /tmp/ov/services/web/backends/ctr2
expect_code "no backends" 0 dnat
cat /tmp/last.out
tail -n1 /tmp/last.out | grep -qx -- "- table inet clusterf" && ok "the plan removes the table" || fail "no removal line"
nft list table inet clusterf >/dev/null 2>&1 && fail "the table is still there" || ok "the table is gone"
check_others "after the removal"
count 5 http://198.51.100.10/
[ "$nd" = 5 ] && ok "Docker's rule answers VIP:80 again" || fail "Docker's rule after removal: $nd of 5"
expect_code "nothing to remove" 0 dnat
[ ! -s /tmp/last.out ] && ok "a re-run without a table changes nothing" || fail "re-run: $(cat /tmp/last.out)"

# --- a table of our name that is not ours -------------------------------------
backend ctr1 2 3
nft add table inet clusterf '{ comment "someone else"; }' || fail "making a table of our name"
nft add chain inet clusterf containers || fail "making a chain in it"
nft -s list ruleset >/tmp/all.before
expect_code "a table not ours is refused" 1 dnat
grep -q "not touching it" /tmp/last.err && ok "the refusal says why: $(cat /tmp/last.err)" || fail "refusal: $(cat /tmp/last.err)"
nft -s list ruleset >/tmp/all.now
expect_eq "the table not ours is untouched" /tmp/all.before /tmp/all.now
nft delete table inet clusterf
nft add table inet clusterf
expect_code "a table without a comment is refused" 1 dnat
nft list table inet clusterf | grep -q chain && fail "a chain appeared in the table not ours" || ok "unmarked table untouched"
nft delete table inet clusterf
check_others "at the end"
finish
