# Guest side of `BENCH_GUEST=tests/vm/bench-cold-guest.sh BENCH_BASE_BIN=...
# tests/vm/bench.sh N`: the apply from empty of the baseline and of this
# binary, alternating, /data/rounds rounds (each round starts with the
# other binary), next to one `ipvsadm -R` of the same rules. Each apply
# goes into a fresh namespace, is checked against the rules, and the
# namespace is deleted with a pause after it (the kernel frees a deleted
# namespace's table in the background). The `ipvsadm -R` table stays up
# all along, as in bench-guest.sh (the kernel's one service hash holds it).
# Wall times from /proc/uptime, the process's user + system CPU seconds
# and minor page faults (busybox time), and clusterf's own apply phase.
# With /data/cold-env (bench.sh's BENCH_COLD_ENV, e.g. MIMALLOC_PURGE_DELAY=10),
# a third contender each round: this binary with that environment. Each
# contender's `render --output ipvsadm` of the config alone and `show
# --output ipvsadm` of the `ipvsadm -R` table alone are timed in every
# round too (the two fixed costs of a one-shot apply).
. "$SCENARIO_LIB"
need_clusterf apply
IP=/usr/sbin/ip
[ -x /data/clusterf-base ] || die "bench-cold-guest: needs BENCH_BASE_BIN"
echo "guest THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>&1)" >&2

# timed NAME CMD...: run CMD, set $t (wall), $u, $s (CPU) and $p (the
# apply phase in ms, or -).
timed() {
    _name=$1
    shift
    _t0=$(now)
    time -f "%U %S %R" -o /tmp/timed.rusage "$@" >/tmp/timed.out 2>/tmp/timed.err
    _rc=$?
    _t1=$(now)
    t=$(awk "BEGIN{printf \"%.2f\", $_t1 - $_t0}")
    u=$(tail -n 1 /tmp/timed.rusage | cut -d' ' -f1)
    s=$(tail -n 1 /tmp/timed.rusage | cut -d' ' -f2)
    f=$(tail -n 1 /tmp/timed.rusage | cut -d' ' -f3)
    p=$(sed -n 's/^applied .* in [0-9]* batch.*, \([0-9.]*\) ms$/\1/p' /tmp/timed.err /tmp/timed.out | head -n 1)
    [ -n "$p" ] || p=-
    if [ $_rc != 0 ]; then
        fail "$_name: exit $_rc"
        tail -n 20 /tmp/timed.err
    fi
    echo "  $_name: ${t}s (user ${u}s, sys ${s}s, $f minor faults, apply phase ${p} ms)" >&2
}

# median FILE: the median of the numbers in FILE, one a line.
median() {
    sort -n "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# cold WHO BIN N DIR: BIN's apply from empty into a fresh namespace, checked,
# the samples appended to /tmp/cold.WHO.{wall,cpu,phase}.
cold() {
    $IP netns add x$3
    $IP -n x$3 link set lo up
    timed "$1 apply cold" $IP netns exec x$3 $2 apply --config-path $4/a
    echo $t >>/tmp/cold.$1.wall
    awk "BEGIN{print $u + $s}" >>/tmp/cold.$1.cpu
    echo $p >>/tmp/cold.$1.phase
    echo $f >>/tmp/cold.$1.faults
    $IP netns exec x$3 ipvsadm -S -n | sort >/tmp/got
    sort $4/a.rules >/tmp/want
    expect_eq "$1 apply cold result" /tmp/want /tmp/got >&2
    $IP netns del x$3
    sleep 10
}

# fixed WHO BIN N DIR: BIN's render alone and show alone, appended to
# /tmp/{render,dump}.WHO.{wall,cpu,faults}.
fixed() {
    for _k in render dump; do
        if [ $_k = render ]; then
            timed "$1 render only" $2 render --config-path $4/a --output ipvsadm
        else
            timed "$1 show (dump) only" $IP netns exec r$3 $2 show --output ipvsadm
        fi
        echo $t >>/tmp/$_k.$1.wall
        awk "BEGIN{print $u + $s}" >>/tmp/$_k.$1.cpu
        echo $f >>/tmp/$_k.$1.faults
    done
}

echo "| services x dests | ipvsadm -R cold | base apply cold, median (samples) | this apply cold, median (samples) | base CPU (user + sys) | this CPU | base apply phase | this apply phase | ratio base | ratio this |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for d in /data/bench/*/; do
    n=$(grep -c '^-A' $d/a.rules)
    m=$(grep -c '^-a' $d/a.rules)
    echo "$n services x $((m / n)) dests" >&2
    rm -f /tmp/cold.* /tmp/render.* /tmp/dump.*
    $IP netns add r$n
    $IP -n r$n link set lo up
    timed "ipvsadm -R cold" $IP netns exec r$n sh -c "ipvsadm -R < $d/a.rules"
    r_cold=$t
    for r in $(seq "$(cat /data/rounds)"); do
        if [ $((r % 2)) = 1 ]; then
            cold base /data/clusterf-base $n $d
            cold new clusterf $n $d
        else
            cold new clusterf $n $d
            cold base /data/clusterf-base $n $d
        fi
        [ -f /data/cold-env ] && cold env "env $(cat /data/cold-env) clusterf" $n $d
        fixed base /data/clusterf-base $n $d
        fixed new clusterf $n $d
        [ -f /data/cold-env ] && fixed env "env $(cat /data/cold-env) clusterf" $n $d
    done
    for f in /tmp/cold.* /tmp/render.* /tmp/dump.*; do
        echo "  $(basename $f): $(tr '\n' ' ' <$f)" >&2
    done
    bw=$(median /tmp/cold.base.wall)
    nw=$(median /tmp/cold.new.wall)
    echo "| $n x $((m / n)) | $r_cold s | $bw s ($(tr '\n' ' ' </tmp/cold.base.wall)) | $nw s ($(tr '\n' ' ' </tmp/cold.new.wall)) | $(median /tmp/cold.base.cpu) s | $(median /tmp/cold.new.cpu) s | $(median /tmp/cold.base.phase) ms | $(median /tmp/cold.new.phase) ms | $(awk "BEGIN{printf \"%.1fx\", $r_cold / $bw}") | $(awk "BEGIN{printf \"%.1fx\", $r_cold / $nw}") |"
    if [ -f /data/cold-env ]; then
        ew=$(median /tmp/cold.env.wall)
        echo "|   this with $(cat /data/cold-env) | | | $ew s ($(tr '\n' ' ' </tmp/cold.env.wall)) | | $(median /tmp/cold.env.cpu) s | | $(median /tmp/cold.env.phase) ms | | $(awk "BEGIN{printf \"%.1fx\", $r_cold / $ew}") |"
    fi
    echo "|   minor faults, medians | | base $(median /tmp/cold.base.faults) | this $(median /tmp/cold.new.faults) | | | | | | |"
    for w in base new env; do
        [ -f /tmp/render.$w.wall ] || continue
        echo "|   $w: render only, show only (medians: wall, CPU, faults) | | render $(median /tmp/render.$w.wall) s, $(median /tmp/render.$w.cpu) s, $(median /tmp/render.$w.faults) | show $(median /tmp/dump.$w.wall) s, $(median /tmp/dump.$w.cpu) s, $(median /tmp/dump.$w.faults) | | | | | | |"
    done
    $IP netns del r$n
done
finish
