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

