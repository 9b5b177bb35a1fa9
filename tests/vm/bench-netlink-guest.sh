# Guest side of tests/vm/bench-netlink.sh: for each /data/bench/<N>/ (rules,
# plan.json), times reading the table (ipvsadm -S -n vs clusterf show) and
# the apply phase of a saved plan at each batch size in /data/batches, each
# apply in a fresh network namespace (batch `default`: clusterf's own; the
# reads are skipped when /data/reads says 0; /data/reps rounds of the
# applies, the sizes interleaved). Results are checked against the rules;
# wall times from /proc/uptime (best of 3 for the reads), with the process's
# user + system CPU seconds (busybox time) in brackets.
. "$SCENARIO_LIB"
need_clusterf apply
IP=/usr/sbin/ip

# timed NAME CMD...: run CMD (stdout to /tmp/timed.out), set $t to its
# wall time in seconds, $u and $s to its user and system CPU seconds.
timed() {
    _name=$1
    shift
    _t0=$(now)
    time -p -o /tmp/timed.rusage "$@" >/tmp/timed.out 2>/tmp/timed.err
    _rc=$?
    _t1=$(now)
    t=$(awk "BEGIN{printf \"%.2f\", $_t1 - $_t0}")
    u=$(awk '$1 == "user" {print $2}' /tmp/timed.rusage)
    s=$(awk '$1 == "sys" {print $2}' /tmp/timed.rusage)
    if [ $_rc != 0 ]; then
        fail "$_name: exit $_rc"
        tail -n 20 /tmp/timed.err
    fi
    echo "  $_name: ${t}s (user ${u}s, sys ${s}s)" >&2
}

# best3 NAME CMD...: the fastest of three timed runs in $t, $u, $s.
best3() {
    _best=
    for _i in 1 2 3; do
        timed "$@"
        if [ -z "$_best" ] || awk "BEGIN{exit !($t < $_best)}"; then
            _best=$t _bu=$u _bs=$s
        fi
    done
    t=$_best u=$_bu s=$_bs
}

fresh() {
    $IP netns add "$1"
    # With lo down, the kernel rejects masq dests (address type check).
    $IP -n "$1" link set lo up
}

# read_table N DIR M: load the rules with ipvsadm -R, then time reading
# them back with ipvsadm -S -n, clusterf show --output ipvsadm and clusterf
# show.
read_table() {
    fresh r$1
    timed "ipvsadm -R" $IP netns exec r$1 sh -c "ipvsadm -R < $2/rules"
    r_load="$t s ($u + $s)"
    best3 "ipvsadm -S -n" $IP netns exec r$1 ipvsadm -S -n
    r_dump="$t s ($u + $s)"
    sort /tmp/timed.out >/tmp/got
    expect_eq "ipvsadm -S -n result" /tmp/want /tmp/got >&2
    best3 "clusterf show --output ipvsadm" $IP netns exec r$1 clusterf show --output ipvsadm
    c_dump="$t s ($u + $s)"
    sort /tmp/timed.out >/tmp/got
    expect_eq "clusterf show --output ipvsadm result" /tmp/want /tmp/got >&2
    best3 "clusterf show" $IP netns exec r$1 clusterf show
    c_list="$t s ($u + $s)"
    $IP netns del r$1
    echo "| $1 x $(($3 / $1)) | ${r_dump} | ${c_dump} | ${c_list} | ${r_load} | | |"
}

echo "| services x dests | ipvsadm -S -n | clusterf show --output ipvsadm | clusterf show | ipvsadm -R | apply phase | whole clusterf apply PLAN |"
echo "|---|---|---|---|---|---|---|"
for d in /data/bench/*/; do
    n=$(grep -c '^-A' $d/rules)
    m=$(grep -c '^-a' $d/rules)
    sort $d/rules >/tmp/want
    echo "$n services x $((m / n)) dests" >&2
    [ "$(cat /data/reads)" = 0 ] || read_table $n $d $m
    # The same run without the apply phase: what is left is reading the
    # saved plan, the (empty) table and printing the changes.
    fresh c$n
    timed "clusterf apply --dry-run PLAN" $IP netns exec c$n clusterf apply --dry-run $d/plan.json
    echo "|   apply --dry-run (no apply phase) | | | | | | $t s ($u + $s) |"
    $IP netns del c$n
    # Batch sizes interleaved, BENCH_REPS rounds, each round starting one
    # size later: a row per size with the fastest apply phase and every
    # sample (the host's load moves them). A fresh namespace each (deleted
    # dests stay in a trash list that every dest add scans), and a pause
    # after its deletion, which frees the table in the background.
    rm -f /tmp/phase.*
    for r in $(seq "$(cat /data/reps)"); do
        for b in $(awk -v r=$r '{b[NR] = $1} END {for (i = 0; i < NR; i++) print b[(i + r - 1) % NR + 1]}' /data/batches); do
            fresh c$n
            timed "clusterf apply PLAN, batch $b" $IP netns exec c$n env CLUSTERF_NETLINK_BATCH=$b clusterf apply $d/plan.json
            echo "$t s ($u + $s)" >/tmp/whole.$b
            sed -n 's/^applied .* in \([0-9]*\) batch.*, \([0-9.]*\) ms$/\2 \1/p' /tmp/timed.err >>/tmp/phase.$b
            $IP netns exec c$n ipvsadm -S -n | sort >/tmp/got
            expect_eq "clusterf apply batch $b result" /tmp/want /tmp/got >&2
            $IP netns del c$n
            sleep 3
        done
    done
    for b in $(cat /data/batches); do
        phase=$(sort -n /tmp/phase.$b | awk 'NR == 1 {best = $1 " ms (" $2 " sendmsgs)"} {all = all (NR > 1 ? ", " : "") $1} END {print best "; all: " all}')
        echo "|   apply, batch $b | | | | | $phase | $(cat /tmp/whole.$b) |"
    done
done
finish
