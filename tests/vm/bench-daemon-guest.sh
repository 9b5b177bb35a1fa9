# Guest side of tests/vm/bench-daemon.sh: for each binary (/data/clusterf-base
# first if present, then this build's clusterf), in a fresh network namespace
# with its own etcd (a copy of /data/etcd-data, so every run starts from the
# same revision) and its own copy of the config:
#   1. `clusterf apply --watch` (default flags, etcd overlay) until /readyz:
#      the first pass applied N x 10 dests; VmHWM and VmRSS;
#   2. changes: /data/changes single reweights (one backend of a different
#      service each, waited for in the kernel), one transaction reweighting
#      every backend of 1% of the services, 1% of the frontends moved to
#      another port in the config directory, one scrape of /metrics, a
#      SIGHUP (the next pass reads the kernel's table); VmHWM and VmRSS
#      again (and after each step, on stderr).
# After each step, on stderr: the split of the resident memory
# (/proc/PID/smaps_rollup: Rss, anonymous, file-backed = Rss - anonymous,
# private dirty) and the thread count. Through the whole run, VmRSS and
# that split sampled every 0.2 s, each sample named by the step under way:
# the highest sample of the first pass, and of the whole run (the step that
# sets the peak).
# /data/variants (optional, tests/vm/bench-daemon.sh: BENCH_VARIANTS), one
# line a run after base and new: NAME BINARY [VAR=VALUE...], the binary run
# with those variables set (MIMALLOC_SHOW_STATS=1: mimalloc's statistics at
# exit, printed on stderr).
# Times from /proc/uptime (emulated: only the memory figures count).
. "$SCENARIO_LIB"
need_clusterf apply
IP=/usr/sbin/ip
N=$(cat /data/services)
C=$(cat /data/changes)
P=/clusterf-$N
ETCD=http://127.0.0.1:2379
M=http://127.0.0.1:9469
export ETCDCTL_API=3

# ipv4 A: the dotted form of a 32-bit address.
ipv4() { awk -v a="$1" 'BEGIN {printf "%d.%d.%d.%d", int(a / 16777216), int(a / 65536) % 256, int(a / 256) % 256, a % 256}'; }
vip() { ipv4 $((174325760 + $1)); }      # service i's frontend: 10.100.0.0 + i
rip() { ipv4 $((167772160 + $1 * 10 + $2)); } # its backend j: 10.0.0.0 + 10i + j
backend() { # I J WEIGHT: the etcd value (benches/latency.rs: backend_json)
    echo "{\"ipv4\": \"$(rip "$1" "$2")\", \"tcp\": 8080, \"weight\": $3}"
}

nsx() { $IP netns exec bench "$@"; }
ctl() { nsx /data/etcdctl --endpoints $ETCD "$@"; }

# weight_is I J W [PORT]: the kernel has backend J of service I at weight W.
weight_is() {
    nsx ipvsadm -L -n -t "$(vip "$1"):${4:-80}" 2>/dev/null |
        awk -v r="$(rip "$1" "$2"):8080" -v w="$3" '$2 == r && $4 == w {f = 1} END {exit !f}'
}

# mem PID: "VmHWM MB, VmRSS MB".
mem() {
    awk '/^VmHWM|^VmRSS/ {v[$1] = $2} END {printf "%.1f %.1f", v["VmHWM:"] / 1024, v["VmRSS:"] / 1024}' "/proc/$1/status"
}

# split PID: "Rss anon file private-dirty (MB) threads", from smaps_rollup
# and status.
split() {
    awk '/^Rss:/ {r = $2} /^Anonymous:/ {a = $2} /^Private_Dirty:/ {d = $2}
        /^Threads:/ {t = $2}
        END {printf "rss %.1f anon %.1f file %.1f private-dirty %.1f MB, %d threads", r / 1024, a / 1024, (r - a) / 1024, d / 1024, t}' \
        "/proc/$1/smaps_rollup" "/proc/$1/status"
}

# detail NAME STEP PID: the step's split on stderr.
detail() {
    echo "$1 $2: $(split "$3")" >&2
}

# sample PID STEPFILE: VmRSS, the step named in STEPFILE and the split
# every 0.2 s while PID lives, one line each: "VmRSS-MB step split".
sample() {
    while [ -e "/proc/$1/status" ]; do
        l=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null)
        [ -n "$l" ] && echo "$l $(cat "$2") $(split "$1" 2>/dev/null)"
        sleep 0.2
    done
}

# highest FILE [STEP]: the sample with the highest VmRSS (of STEP's only).
highest() {
    awk -v s="${2:-}" 's == "" || $2 == s' "$1" | sort -n -r | head -n1
}

metric() {
    nsx timeout 5 wget -q -O - $M/metrics 2>/dev/null |
        awk -v n="$1" '$1 == n {print $2; found = 1; exit} END {if (!found) print 0}'
}

OK='clusterf_passes_total{outcome="ok"}'
# passes_above N: more than N passes succeeded.
passes_above() { awk -v a="$1" -v b="$(metric "$OK")" 'BEGIN {exit !(b > a)}'; }

# run NAME BIN: one measured run (the daemon's pid is $! of `ip netns
# exec`, which execs it); prints NAME's line of the table.
run() {
    name=$1
    bin=$2
    shift 2
    $IP netns add bench
    nsx $IP link set lo up
    rm -rf /tmp/etcd /tmp/cfg
    cp -a /data/etcd-data /tmp/etcd
    cp -a /data/cfg /tmp/cfg
    $IP netns exec bench /data/etcd --name vm --data-dir /tmp/etcd \
        --listen-client-urls $ETCD --advertise-client-urls $ETCD \
        --listen-peer-urls http://127.0.0.1:2380 \
        --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster vm=http://127.0.0.1:2380 --max-txn-ops 1000 >/tmp/etcd-$name.log 2>&1 &
    etcd_pid=$!
    wait_for 120 "etcd in the guest" ctl endpoint health || { tail -n 20 /tmp/etcd-$name.log; die "etcd did not start"; }

    t0=$(now)
    $IP netns exec bench env "$@" "$bin" apply --watch --config-path /tmp/cfg --etcd $ETCD --etcd-prefix $P \
        --metrics-listen 127.0.0.1:9469 >/tmp/clusterf-$name.log 2>&1 &
    pid=$!
    echo first-pass >/tmp/step-$name
    sample $pid /tmp/step-$name >/tmp/samples-$name &
    sampler=$!
    wait_for 1200 "the first pass ($name)" nsx timeout 5 wget -q -O /dev/null $M/readyz ||
        { tail -n 5 /tmp/clusterf-$name.log; die "no first pass"; }
    t_first=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f", b - a}')
    dests=$(nsx ipvsadm -S -n | grep -c '^-a')
    [ "$dests" = $((N * 10)) ] && ok "$name: first pass applied $dests dests" ||
        fail "$name: $dests dests in the kernel, want $((N * 10))"
    echo "$name first pass, at the highest sampled VmRSS: $(highest /tmp/samples-$name first-pass)" >&2
    sleep 2
    first=$(mem $pid)
    detail "$name" "first pass" $pid
    echo reweights >/tmp/step-$name

    t0=$(now)
    i=1
    while [ $i -le "$C" ]; do
        s=$((i * (N / (C + 1))))
        ctl put "$P/services/s$s/backends/b0" "$(backend $s 0 $((10 + i)))" >/dev/null
        wait_for 60 "reweight $i" weight_is $s 0 $((10 + i)) || break
        i=$((i + 1))
    done
    [ $i -gt "$C" ] && ok "$name: $C reweights applied"
    steps="reweights $(mem $pid)"
    detail "$name" reweights $pid
    echo 1%-txn >/tmp/step-$name
    # 1% of the services, every backend to weight 20, in one transaction.
    lo=$((N / 2))
    hi=$((lo + N / 100 - 1))
    {
        echo
        s=$lo
        while [ $s -le $hi ]; do
            j=0
            while [ $j -lt 10 ]; do
                echo "put $P/services/s$s/backends/b$j \"$(backend $s $j 20 | sed 's/"/\\"/g')\""
                j=$((j + 1))
            done
            s=$((s + 1))
        done
        printf '\n\n'
    } >/tmp/txn
    ctl txn </tmp/txn >/dev/null
    wait_for 120 "1% reweighted" weight_is $hi 9 20 && ok "$name: 1% of the services reweighted in one transaction"
    steps="$steps; 1% txn $(mem $pid)"
    detail "$name" "1% txn" $pid
    echo 1%-config >/tmp/step-$name
    # 1% of the frontends to port 81.
    s=$((N / 4))
    while [ $s -lt $((N / 4 + N / 100)) ]; do
        echo "{\"ipv4\": \"$(vip $s)\", \"tcp\": 81}" >/tmp/cfg/services/s$s/frontend.tmp
        mv /tmp/cfg/services/s$s/frontend.tmp /tmp/cfg/services/s$s/frontend
        s=$((s + 1))
    done
    wait_for 120 "1% moved" weight_is $((s - 1)) 9 10 81 && ok "$name: 1% of the frontends moved to another port"
    steps="$steps; 1% config $(mem $pid)"
    detail "$name" "1% config" $pid
    echo metrics-scrape >/tmp/step-$name
    # A scrape of /metrics on its own (the SIGHUP step below scrapes too,
    # to see its pass): a Prometheus server scrapes every 15 s or so.
    nsx timeout 60 wget -q -O /dev/null $M/metrics
    sleep 2
    steps="$steps; /metrics scrape $(mem $pid)"
    detail "$name" "/metrics scrape" $pid
    echo sighup >/tmp/step-$name
    passes=$(metric "$OK")
    kill -HUP $pid
    wait_for 300 "the SIGHUP pass" passes_above "$passes" &&
        ok "$name: SIGHUP pass (kernel read) done"
    t_changes=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f", b - a}')
    sleep 2
    after=$(mem $pid)
    detail "$name" SIGHUP $pid
    dests=$(nsx ipvsadm -S -n | grep -c '^-a')
    [ "$dests" = $((N * 10)) ] && ok "$name: $dests dests after the changes" ||
        fail "$name: $dests dests in the kernel after the changes, want $((N * 10))"

    kill $pid
    wait $pid 2>/dev/null
    wait $sampler 2>/dev/null
    echo "$name whole run, at the highest sampled VmRSS ($(wc -l </tmp/samples-$name) samples): $(highest /tmp/samples-$name)" >&2
    # The daemon's warnings and errors (a failed pass, an unreadable file
    # seen mid-rename) explain a step's peak: the first few, and how many.
    problems=$(grep -cE ' (WARN|ERROR) ' /tmp/clusterf-$name.log || true)
    echo "$name: $problems warnings and errors in the daemon's log" >&2
    grep -E ' (WARN|ERROR) ' /tmp/clusterf-$name.log | head -n 5 | cut -c1-300 | sed "s/^/$name log: /" >&2 || true
    # mimalloc's statistics (MIMALLOC_SHOW_STATS=1), printed at exit.
    sed -n '/^subproc /,$p' /tmp/clusterf-$name.log | sed "s/^/$name mimalloc: /" >&2
    kill $etcd_pid
    wait $etcd_pid 2>/dev/null
    $IP netns del bench
    set -- $first $after
    echo "$name: peak, resident (MB) after each step: $steps; SIGHUP $after" >&2
    echo "| $name | $1 | $2 | $3 | $4 | ${t_first} s | ${t_changes} s |"
}

echo "daemon memory, $N services x 10 backends (etcd overlay), $C reweights + 1% txn + 1% config + /metrics scrape + SIGHUP:"
echo "| binary | peak after first pass (MB) | resident after first pass (MB) | peak after changes (MB) | resident after changes (MB) | start -> ready | changes |"
echo "|---|---|---|---|---|---|---|"
r=0
while [ $r -lt "$(cat /data/rounds)" ]; do
    [ -x /data/clusterf-base ] && run base /data/clusterf-base
    run new /usr/bin/clusterf
    if [ -f /data/variants ]; then
        while read -r vname vbin vvars; do
            [ -n "$vname" ] || continue
            # shellcheck disable=SC2086 # VAR=VALUE words
            run "$vname" "$vbin" $vvars </dev/null
        done </data/variants
    fi
    r=$((r + 1))
done
finish
