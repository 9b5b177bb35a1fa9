# Helpers for scenarios, sourced as `. "$SCENARIO_LIB"` inside the guest.
# Each check prints one line; a failed check makes the scenario exit 1.
# This file does not run anything by itself.

FAILS=0

# fail MESSAGE...: record a failed check (the scenario goes on).
fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}

# ok MESSAGE...: record a passed check.
ok() {
    echo "ok: $*"
}

# die MESSAGE...: stop the scenario now.
die() {
    echo "FAIL: $*"
    exit 1
}

# finish: exit with the scenario's result.
finish() {
    if [ "$FAILS" -gt 0 ]; then
        echo "$FAILS check(s) failed"
        exit 1
    fi
    echo "all checks passed"
    exit 0
}

# expect_eq NAME EXPECTED_FILE ACTUAL_FILE: files equal, else show a diff.
expect_eq() {
    if cmp -s "$2" "$3"; then
        ok "$1"
    else
        fail "$1"
        diff -u "$2" "$3" | head -n 40
    fi
}

# expect_code NAME WANT CMD...: run CMD, check its exit code; its output
# goes to /tmp/last.out and /tmp/last.err.
expect_code() {
    _name=$1 _want=$2
    shift 2
    "$@" >/tmp/last.out 2>/tmp/last.err
    _got=$?
    if [ "$_got" = "$_want" ]; then
        ok "$_name (exit $_got)"
    else
        fail "$_name: exit $_got, want $_want: $*"
        echo "--- stdout"; head -n 30 /tmp/last.out
        echo "--- stderr"; head -n 30 /tmp/last.err
    fi
}

# kernel_rules FILE: the live table as sorted `ipvsadm -S -n` lines.
kernel_rules() {
    ipvsadm -S -n | sort >"$1"
}

# rendered_rules FILE ARGS...: what clusterf renders, sorted.
rendered_rules() {
    _out=$1
    shift
    clusterf render "$@" --output ipvsadm | sort >"$_out"
}

# apply_exactly NAME ARGS...: `clusterf apply ARGS`, then the kernel
# (`ipvsadm -S -n`, which never prints thresholds) and `clusterf show`
# (which does) equal the render, and the plan after it is empty.
apply_exactly() {
    _n=$1
    shift
    rendered_rules /tmp/want-x "$@"
    [ -s /tmp/want-x ] || die "$_n: render produced nothing"
    sed -e 's/ -x [0-9]*//' -e 's/ -y [0-9]*//' /tmp/want-x >/tmp/want
    expect_code "$_n: apply" 0 clusterf apply "$@"
    kernel_rules /tmp/got
    expect_eq "$_n: kernel (ipvsadm -S -n) equals render" /tmp/want /tmp/got
    expect_code "$_n: show" 0 clusterf show --output ipvsadm
    sort /tmp/last.out >/tmp/show
    expect_eq "$_n: show (thresholds too) equals render" /tmp/want-x /tmp/show
    expect_code "$_n: plan after apply is empty" 0 clusterf plan "$@" --detailed-exitcode
}

# need_clusterf COMMAND: stop (failing) when clusterf lacks COMMAND (a stub
# takes no options).
need_clusterf() {
    [ -x /usr/bin/clusterf ] || die "no clusterf binary in the guest"
    clusterf "$1" --help >/tmp/help 2>&1 || die "clusterf $1 --help failed: $(head -n1 /tmp/help)"
    grep -q -e '--config-path' -e '--output' /tmp/help || die "clusterf $1 is not implemented (no options)"
}

# now: seconds since boot, with centiseconds.
now() {
    cut -d' ' -f1 /proc/uptime
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 10 ms until it succeeds.
wait_for() {
    _limit=$1 _what=$2
    shift 2
    _end=$(awk -v n="$(now)" -v l="$_limit" 'BEGIN {print n + l}')
    while ! "$@" >/dev/null 2>&1; do
        if awk -v n="$(now)" -v e="$_end" 'BEGIN {exit !(n > e)}'; then
            fail "timed out after ${_limit}s waiting for $_what"
            return 1
        fi
        sleep 0.01
    done
    return 0
}

# --- real traffic (traffic.sh, health.sh) -------------------------------------
IP=/usr/sbin/ip # busybox sh would run its own `ip` applet first

# traffic_network: a client namespace c (10.9.0.2) routed through this
# director to the VIP 10.107.107.107 on dummy0, and busybox httpd backends
# in namespaces b1 (10.3.1.1:80) and b2 (10.3.2.1:80), each answering its
# own name. veth pairs inside the guest; nothing leaves the VM.
traffic_network() {
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


# --- a router, two frontends with BIRD, a client (bgp-bird.sh, datapath.sh) ---
# Bridge `lan` in the guest root (nothing leaves the VM): r 10.0.0.254
# fd00::254, fe1 .1 fd00::1, fe2 .2 fd00::2; the client c 10.9.0.2 behind
# r (10.9.0.1). The router's BIRD peers with both frontends' (v4 and v6)
# and writes what it learns to its kernel table with ECMP; the frontends'
# BIRD runs examples/bird/bird.conf ($DATA/bird) with only the router id
# and the neighbors changed.

nsx() { # NS CMD...: run CMD in namespace NS
    _ns=$1
    shift
    $IP netns exec "$_ns" "$@"
}
sysctl_in() { # NS KEY VALUE
    nsx "$1" sh -c "echo $3 >/proc/sys/$2"
}
attach() { # NS ADDR4 [ADDR6]: a veth from NS's eth0 to the bridge
    $IP link add l$1 type veth peer name eth0 netns $1
    $IP link set l$1 master lan up
    $IP -n $1 addr add $2/24 dev eth0
    [ -z "$3" ] || $IP -n $1 addr add $3/64 dev eth0 nodad
    $IP -n $1 link set eth0 up
}

# router_network NS...: namespaces r, c and NS...; the bridge, the router
# on it, the client behind it; the frontends fe1 and fe2 attached, with
# their default route via the router.
router_network() {
    modprobe bridge || die "modprobe bridge"
    for ns in r c fe1 fe2 "$@"; do
        $IP netns add $ns
        $IP -n $ns link set lo up
    done
    # No multicast snooping: neighbour discovery must not depend on the
    # bridge having seen each port's MLD report.
    $IP link add lan type bridge mcast_snooping 0
    $IP link set lan up
    attach r 10.0.0.254 fd00::254
    attach fe1 10.0.0.1 fd00::1
    attach fe2 10.0.0.2 fd00::2
    $IP -n r link add eth1 type veth peer name eth0 netns c
    $IP -n r addr add 10.9.0.1/24 dev eth1
    $IP -n r link set eth1 up
    $IP -n c addr add 10.9.0.2/24 dev eth0
    $IP -n c link set eth0 up
    $IP -n c route add default via 10.9.0.1
    sysctl_in r net/ipv4/ip_forward 1
    sysctl_in r net/ipv6/conf/all/forwarding 1
    # ECMP by the 5-tuple, so that one client's connections spread.
    sysctl_in r net/ipv4/fib_multipath_hash_policy 1
    for fe in fe1 fe2; do
        $IP -n $fe route add default via 10.0.0.254
    done
}

# start_birds: the router's BIRD and the frontends' (examples/bird).
start_birds() {
    command -v bird >/dev/null && command -v birdc >/dev/null || die "no bird/birdc in the guest (tests/vm/build.sh)"
    CONF=$DATA/bird/bird.conf
    [ -f "$CONF" ] || die "no $CONF"
    cat >/tmp/bird-r.conf <<'B'
log "/tmp/bird-r.log" all;
router id 10.0.0.254;
protocol device { scan time 10; }
protocol kernel k4 { ipv4 { import none; export all; }; merge paths on; }
protocol kernel k6 { ipv6 { import none; export all; }; merge paths on; }
template bgp fe {
    local as 64500;
    hold time 9;
    keepalive time 3;
    connect retry time 5;
}
template bgp fe4 from fe { ipv4 { import all; export none; }; }
template bgp fe6 from fe { ipv6 { import all; export none; }; }
protocol bgp fe1_v4 from fe4 { neighbor 10.0.0.1 as 64512; }
protocol bgp fe2_v4 from fe4 { neighbor 10.0.0.2 as 64512; }
protocol bgp fe1_v6 from fe6 { neighbor fd00::1 as 64512; }
protocol bgp fe2_v6 from fe6 { neighbor fd00::2 as 64512; }
B
    frontend_conf fe1 10.0.0.1
    frontend_conf fe2 10.0.0.2
    for ns in r fe1 fe2; do
        nsx $ns bird -c /tmp/bird-$ns.conf -s /run/bird-$ns.ctl -P /run/bird-$ns.pid ||
            die "bird in $ns: $(cat /tmp/bird-$ns.log 2>/dev/null)"
    done
}
frontend_conf() { # NAME ADDR4: the example with this network's ids and neighbors
    {
        echo "log \"/tmp/bird-$1.log\" all;"
        sed -e "s/^router id 192\.0\.2\.11;/router id $2;/" \
            -e 's/neighbor 192\.0\.2\.1 as 64500;/neighbor 10.0.0.254 as 64500;/' \
            -e 's/neighbor 2001:db8:ffff::1 as 64500;/neighbor fd00::254 as 64500;/' "$CONF"
    } >/tmp/bird-$1.conf
    n=$(grep -c -e "^router id $2;" -e 'neighbor 10.0.0.254 as 64500;' -e 'neighbor fd00::254 as 64500;' /tmp/bird-$1.conf)
    [ "$n" = 3 ] || die "examples/bird/bird.conf no longer has the router id and neighbors this scenario replaces"
}
birdc_r() { birdc -s /run/bird-r.ctl "$@"; }
# established: the router's 4 BGP sessions are up.
established() { [ "$(birdc_r show protocols | grep -c Established)" = 4 ]; }
# hops [-6] PREFIX: the next hops of PREFIX in the router's kernel table.
hops() {
    _f=-4
    [ "$1" = -6 ] && { _f=-6; shift; }
    $IP -n r $_f route show "$1" | grep -o 'via [0-9a-f.:]*' | awk '{print $2}' | sort | tr '\n' ' ' | sed 's/ $//'
}
hops_are() { [ "$(hops $1)" = "$2" ]; }
