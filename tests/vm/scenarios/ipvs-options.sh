# The IPVS options of issue 19 (fwmark services of both families,
# persistence netmask and engine, one-packet scheduling, scheduler flags,
# dest connection thresholds) in both layouts (/data/yaml, /data/json with
# /data/overlay), and an fwmark service's dest ports (/data/fwmark-ports):
# apply makes `ipvsadm -S -n` equal `clusterf render --output ipvsadm` and
# a re-plan is empty; then every option of the YAML repo changes (or goes)
# and the same holds, the services edited in place.
# `ipvsadm -S` never prints dest thresholds (-x, -y): those are compared
# without them, and read from the kernel by `ipvsadm -L -n --thresholds`;
# `clusterf show` (netlink) must equal the render with them.
. "$SCENARIO_LIB"
need_clusterf apply

# check NAME ARGS...: apply_exactly (lib.sh), then keep the kernel's thresholds for `thresholds`.
check() {
    apply_exactly "$@"
    ipvsadm -L -n --thresholds >/tmp/thresholds
}

# thresholds DEST UPPER LOWER: the kernel's thresholds of DEST (in the
# last check's `ipvsadm -L -n --thresholds`, which lists each dest as
# `-> ADDR:PORT UPPER LOWER ACTIVE INACTIVE`).
thresholds() {
    if awk -v d="$1" -v u="$2" -v l="$3" '$1 == "->" && $2 == d && $3 == u && $4 == l {f = 1} END {exit !f}' /tmp/thresholds; then
        ok "kernel thresholds of $1: $2 $3"
    else
        fail "kernel thresholds of $1 are not $2 $3"
        grep -F -- "$1" /tmp/thresholds
    fi
}

# every_option FILE: the options the YAML repo must show in the kernel.
every_option() {
    for want in '-f 42 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port' \
        '-f 42 -6 -s sh -p 600 -M 64 -b sh-fallback,sh-port' \
        '-u 10.0.0.5:5060 -s mh -p 120 --pe sip -o -b mh-port' \
        '-t 10.0.0.5:5060 -s mh -p 120 -b mh-port'; do
        grep -q -e "$want" "$1" && ok "kernel has: $want" || fail "kernel lacks: $want"
    done
    thresholds 10.1.0.1:0 1000 800
    thresholds '[2001:db8:1::1]:0' 1000 800
    thresholds 10.2.0.1:5060 50 0
    thresholds 10.1.0.2:8080 0 0
}

check "yaml" --config-path /data/yaml
every_option /tmp/got

# Every option changes: netmasks, flags, engine and ops go or change,
# thresholds change, a mark moves.
rm -rf /tmp/yaml2
cp -r /data/yaml /tmp/yaml2
sed -i -e 's/persistence_netmask_ipv4: 24/persistence_netmask_ipv4: 16/' \
    -e 's/persistence_netmask_ipv6: 64/persistence_netmask_ipv6: 48/' \
    -e 's/scheduler_flags: sh-port, sh-fallback/scheduler_flags: sh-port/' \
    -e 's/fwmark_ipv6: 42/fwmark_ipv6: 43/' \
    -e 's/upper_threshold: 1000, lower_threshold: 800/upper_threshold: 2000/' \
    /tmp/yaml2/services/marked.yaml
sed -i -e '/persistence_engine/d' -e 's/ops: true/ops: false/' \
    -e 's/scheduler_flags: mh-port/scheduler_flags: mh-fallback,mh-port/' \
    -e 's/upper_threshold: 50/upper_threshold: 60, lower_threshold: 30/g' \
    /tmp/yaml2/services/sip.yaml
expect_code "plan of the changes" 2 clusterf plan --config-path /tmp/yaml2 --detailed-exitcode
for svc in 'fwmark://42' 'udp://10.0.0.5:5060'; do
    if grep -q "^~ service $svc " /tmp/last.out && ! grep -q "^- service $svc" /tmp/last.out; then
        ok "plan edits $svc in place"
    else
        fail "plan does not edit $svc in place"
        cat /tmp/last.out
    fi
done
check "yaml changed" --config-path /tmp/yaml2
for want in '-f 42 -s sh -p 600 -M 255.255.0.0 -b sh-port' \
    '-f 43 -6 -s sh -p 600 -M 48 -b sh-port' \
    '-u 10.0.0.5:5060 -s mh -p 120 -b mh-fallback,mh-port'; do
    grep -q -e "$want" /tmp/got && ok "kernel has: $want" || fail "kernel lacks: $want"
done
thresholds 10.1.0.1:0 2000 0
thresholds '[2001:db8:1::1]:0' 2000 0
thresholds 10.2.0.1:5060 60 30
grep '10.0.0.5' /tmp/got | grep -q -e '--pe' -e ' -o' && fail "the engine or ops stayed" ||
    ok "the engine and ops are gone"

# And back: the first repo again.
check "yaml again" --config-path /data/yaml
every_option /tmp/got

# The JSON layout (and its overlay): the same options. (Its
# services replace every one of the YAML repo: flushed, not mass-deleted.)
ipvsadm -C
check "json" --config-path /data/json --overlay-path /data/overlay
for want in '-a -f 7 -6 -r \[2001:db8:1::1\]:0 -m -w 10' \
    '-A -f 7 -s sh -p 300 -M 255.255.0.0 -b sh-fallback' \
    '-A -f 7 -6 -s sh -p 300 -M 56 -b sh-fallback' \
    '-A -u 10.0.0.1:80 -s mh -p 60 --pe sip -o -b mh-fallback,mh-port' \
    '-A -t 10.0.0.1:80 -s mh -p 60 -b mh-fallback,mh-port'; do
    grep -q -e "$want" /tmp/got && ok "json: kernel has: $want" || fail "json: kernel lacks: $want"
done
thresholds '[2001:db8:1::1]:0' 200 100
thresholds 10.2.0.2:8080 30 5

# fwmark dests' ports: masq with a port, port 0 (the packet's), droute,
# tunnel and a gateway at port 0.
ipvsadm -C
check "fwmark ports" --config-path /data/fwmark-ports
grep -q -e '-a -f 3 -r 10.9.0.1:0 -g -w 10' /tmp/got && ok "a droute fwmark dest at port 0" ||
    fail "no droute fwmark dest at port 0"
finish
