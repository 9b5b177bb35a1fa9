# Guest side of tests/vm/bench.sh: for each /data/bench/<N>/ (configs a/ and
# b/, a.rules, b.rules, delta.rules), in fresh network namespaces (so that
# no dest trash from earlier runs skews a later one):
#   ipvsadm -R < a.rules          vs  clusterf apply a/        (from empty)
#   ipvsadm -R < delta.rules      vs  clusterf apply b/        (1% change)
#   clusterf plan b/ (nothing to do: dump + render + diff)
#   clusterf render b/ and clusterf show (the two fixed costs of every run)
# With /data/clusterf-base (BENCH_BASE_BIN), the baseline's apply from empty
# too (after this binary's, in a namespace of its own, deleted after its
# check), then rounds of the baseline's and this binary's 1% apply,
# alternating, next to render and show alone.
# With /data/clusterf-first (BENCH_CLUSTERF_FIRST=1, for runs that may not
# finish in time), clusterf's side runs first and `ipvsadm -R` of the cold
# rules in ten timed parts, so that a run cut short still has figures.
# Every result is checked against the rules; times from /proc/uptime.
. "$SCENARIO_LIB"
need_clusterf apply
IP=/usr/sbin/ip

# timed NAME CMD...: run CMD, set $t to its wall time in seconds.
timed() {
    _name=$1
    shift
    _t0=$(now)
    "$@" >/tmp/timed.out 2>/tmp/timed.err
    _rc=$?
    _t1=$(now)
    t=$(awk "BEGIN{printf \"%.2f\", $_t1 - $_t0}")
    if [ $_rc != 0 ]; then
        fail "$_name: exit $_rc"
        tail -n 20 /tmp/timed.err
    fi
    echo "  $_name: ${t}s" >&2
    # clusterf's own account of its apply phase (encode, sendmsgs, acks).
    grep -h -o 'applied [0-9]* changes in [0-9]* batch.*' /tmp/timed.err /tmp/timed.out 2>/dev/null |
        sed "s/^/    $_name: /" >&2 || true
}

# same NAME NETNS RULES: the namespace's table equals RULES (as sets).
same() {
    $IP netns exec "$2" ipvsadm -S -n | sort >/tmp/got
    sort "$3" >/tmp/want
    expect_eq "$1" /tmp/want /tmp/got >&2
}

# median FILE: the median of the numbers in FILE, one a line.
median() {
    sort -n "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# rounds N DIR: with a baseline binary (/data/clusterf-base), /data/rounds
# rounds of: the baseline's 1% apply (b -> a), this binary's (a -> b), this
# binary's render only and show only; one row of medians (all samples on
# stderr).
rounds() {
    rm -f /tmp/round.*
    for _r in $(seq "$(cat /data/rounds)"); do
        timed "base apply 1%" $IP netns exec c$1 /data/clusterf-base apply --config-path $2/a
        echo $t >>/tmp/round.base
        timed "clusterf apply 1%" $IP netns exec c$1 clusterf apply --config-path $2/b
        echo $t >>/tmp/round.new
        timed "clusterf render only" clusterf render --config-path $2/b --output ipvsadm
        echo $t >>/tmp/round.render
        timed "clusterf show (dump) only" $IP netns exec c$1 clusterf show --output ipvsadm
        echo $t >>/tmp/round.dump
    done
    same "clusterf apply 1% result after the rounds" c$1 $2/b.rules
    for f in base new render dump; do
        echo "  rounds, $f: $(tr '\n' ' ' </tmp/round.$f)" >&2
    done
    echo "|   medians of $(cat /data/rounds) rounds | | | | | base $(median /tmp/round.base) s, this $(median /tmp/round.new) s | | $(median /tmp/round.render) s | $(median /tmp/round.dump) s |"
}

# The four timed steps of a size N in DIR; each sets its variable.
ipvsadm_cold() {
    timed "ipvsadm -R cold" $IP netns exec r$1 sh -c "ipvsadm -R < $2/a.rules"
    r_cold=$t
    same "ipvsadm -R result" r$1 $2/a.rules
}
clusterf_cold() {
    timed "clusterf apply cold" $IP netns exec c$1 clusterf apply --config-path $2/a
    c_cold=$t
    same "clusterf apply result" c$1 $2/a.rules
}
ipvsadm_delta() {
    timed "ipvsadm -R delta" $IP netns exec r$1 sh -c "ipvsadm -R < $2/delta.rules"
    r_delta=$t
    same "ipvsadm delta result" r$1 $2/b.rules
}
# base_cold N DIR: with a baseline binary, its apply from empty in a
# namespace of its own (b<N>), checked, then deleted (with a pause: the
# kernel frees a deleted namespace's table in the background).
base_cold() {
    $IP netns add b$1
    $IP -n b$1 link set lo up
    timed "base apply cold" $IP netns exec b$1 /data/clusterf-base apply --config-path $2/a
    b_cold=$t
    same "base apply result" b$1 $2/a.rules
    $IP netns del b$1
    sleep 10
}
clusterf_delta() {
    timed "clusterf apply 1%" $IP netns exec c$1 clusterf apply --config-path $2/b
    c_delta=$t
    same "clusterf apply 1% result" c$1 $2/b.rules
}

# clusterf_fixed N DIR: the no-op plan, and where a run's fixed cost goes:
# reading + rendering the config, and dumping the kernel table.
clusterf_fixed() {
    timed "clusterf plan no change" $IP netns exec c$1 clusterf plan --config-path $2/b --detailed-exitcode
    c_noop=$t
    timed "clusterf render only" clusterf render --config-path $2/b --output ipvsadm
    c_render=$t
    timed "clusterf show (dump) only" $IP netns exec c$1 clusterf show --output ipvsadm
    c_dump=$t
}

# ipvsadm_cold_parts N DIR: ipvsadm_cold in ten parts of the rules (a
# service's dests may start in the part after the service), each timed, the
# running total on stderr as it goes.
ipvsadm_cold_parts() {
    _lines=$(wc -l <$2/a.rules)
    _total=0
    for _p in 0 1 2 3 4 5 6 7 8 9; do
        awk -v p=$_p -v n=$_lines 'NR > int(n * p / 10) && NR <= int(n * (p + 1) / 10)' $2/a.rules >/tmp/part.rules
        timed "ipvsadm -R cold, part $((_p + 1)) of 10" $IP netns exec r$1 sh -c "ipvsadm -R < /tmp/part.rules"
        _total=$(awk "BEGIN{printf \"%.2f\", $_total + $t}")
        echo "    ipvsadm -R cold so far: ${_total}s" >&2
    done
    r_cold=$_total
    same "ipvsadm -R result" r$1 $2/a.rules
}

# clusterf_first N DIR: clusterf's cold and 1% applies and fixed costs,
# then ipvsadm's in parts (its table shares the kernel's global service
# hash with clusterf's, as clusterf's does with ipvsadm's in the other
# order).
clusterf_first() {
    clusterf_cold $1 $2
    clusterf_delta $1 $2
    clusterf_fixed $1 $2
    ipvsadm_cold_parts $1 $2
    ipvsadm_delta $1 $2
}

echo "| services x dests | ipvsadm -R cold | clusterf apply cold | ratio | ipvsadm -R 1% delta | clusterf apply 1% | clusterf plan, no change | clusterf render only | clusterf show (dump) only |"
echo "|---|---|---|---|---|---|---|---|---|"
for d in /data/bench/*/; do
    n=$(grep -c '^-A' $d/a.rules)
    m=$(grep -c '^-a' $d/a.rules)
    echo "$n services x $((m / n)) dests" >&2
    for ns in r$n c$n; do
        $IP netns add $ns
        # With lo down, the kernel rejects masq dests (address type check).
        $IP -n $ns link set lo up
    done
    if [ -f /data/clusterf-first ]; then
        clusterf_first $n $d
    else
        ipvsadm_cold $n $d
        clusterf_cold $n $d
        [ -x /data/clusterf-base ] && base_cold $n $d
        ipvsadm_delta $n $d
        clusterf_delta $n $d
        clusterf_fixed $n $d
    fi
    ratio=$(awk "BEGIN{ if ($c_cold > 0) printf \"%.1fx\", $r_cold / $c_cold; else print \"inf\" }")
    echo "| $n x $((m / n)) | ${r_cold} s | ${c_cold} s | $ratio | ${r_delta} s | ${c_delta} s | ${c_noop} s | ${c_render} s | ${c_dump} s |"
    if [ -x /data/clusterf-base ] && [ ! -f /data/clusterf-first ]; then
        ratio=$(awk "BEGIN{ if ($b_cold > 0) printf \"%.1fx\", $r_cold / $b_cold; else print \"inf\" }")
        echo "|   base, same run | ${r_cold} s | ${b_cold} s | $ratio | | | | | |"
    fi
    [ -x /data/clusterf-base ] && rounds $n $d
    $IP netns del r$n
    $IP netns del c$n
done
finish
