# The netlink client against the real kernel, attribute by attribute: a
# saved plan (tests/fixtures/netlink/vm/all-features.plan.json) adds TCP,
# UDP, SCTP, IPv4, IPv6 and fwmark services with persistence, netmasks,
# one-packet scheduling, scheduler flags, and masq/droute/tunnel dests with
# thresholds. Then: `show --output ipvsadm` reads back exactly what was
# written, `show` prints what `ipvsadm -Ln` prints (counters included, with
# a real connection entry), the same saved plan is refused as stale, and
# without the ip_vs module (unloaded, and its file moved away so that the
# kernel cannot load it on demand) the error is the one-line hint.
. "$SCENARIO_LIB"
need_clusterf show

expect_code "apply the saved plan" 0 clusterf apply /data/all-features.plan.json
cat /tmp/last.out /tmp/last.err

expect_code "show --output ipvsadm" 0 clusterf show --output ipvsadm
sort /tmp/last.out >/tmp/got
sort /data/all-features.rules >/tmp/want
expect_eq "the kernel reads back every attribute" /tmp/want /tmp/got

# ipvsadm's own save agrees, tunnel dests (--tun-type ipip) included,
# modulo what it leaves out (-x/-y).
ipvsadm -S -n | sort >/tmp/ipvsadm
sed 's/ -x [0-9]* -y [0-9]*//' /tmp/want | sort >/tmp/want2
expect_eq "ipvsadm -S -n agrees" /tmp/want2 /tmp/ipvsadm

# A connection entry: a SYN to the VIP is scheduled to a dest (the packet
# then leaves through a dummy interface and is dropped).
ip link add vip0 type dummy && ip link set vip0 up
ip addr add 10.107.107.107/32 dev vip0
ip route add 10.3.107.0/24 dev vip0
timeout 2 nc 10.107.107.107 1337 </dev/null >/dev/null 2>&1
expect_code "show --output json" 0 clusterf show --output json
grep -q '"inactive_conns": 1\|"active_conns": 1' /tmp/last.out && ok "json has the connection" || fail "no connection counted in show json"
grep -q '"upper_threshold": 100' /tmp/last.out && ok "json has thresholds" || fail "json lacks thresholds"
ipvsadm -L -n >/tmp/ipvsadm-list
expect_code "show" 0 clusterf show
expect_eq "show equals ipvsadm -L -n" /tmp/ipvsadm-list /tmp/last.out
cat /tmp/last.out

expect_code "a used saved plan is stale" 1 clusterf apply /data/all-features.plan.json
grep -q stale /tmp/last.err && ok "refused as stale" || fail "not refused as stale: $(cat /tmp/last.err)"
ipvsadm -S -n | sort >/tmp/after
expect_eq "a stale plan changes nothing" /tmp/ipvsadm /tmp/after

# gue and gre tunnel dests made by hand: show prints them exactly as
# ipvsadm does.
ipvsadm -a -t 10.107.107.107:1337 -r 10.3.107.5:1337 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum
ipvsadm -a -t 10.107.107.107:1337 -r 10.3.107.6:1337 -i -w 2 --tun-type gue --tun-port 6081
ipvsadm -a -t 10.107.107.107:1337 -r 10.3.107.7:1337 -i -w 2 --tun-type gre --tun-remcsum 2>/dev/null ||
    ipvsadm -a -t 10.107.107.107:1337 -r 10.3.107.7:1337 -i -w 2 --tun-type gre --tun-csum
ipvsadm -a -t 10.107.107.107:1337 -r 10.3.107.8:1337 -i -w 2 --tun-type ipip
ipvsadm -S -n | sort >/tmp/ipvsadm
grep -q -- '--tun-type gue --tun-port 6080 --tun-csum' /tmp/ipvsadm && ok "ipvsadm prints gue" || fail "no gue tunnel in ipvsadm -S -n"
expect_code "show --output ipvsadm with gue and gre dests" 0 clusterf show --output ipvsadm
sed 's/ -x [0-9]* -y [0-9]*//' /tmp/last.out | sort >/tmp/got
expect_eq "show prints tunnel types as ipvsadm does" /tmp/ipvsadm /tmp/got
# A plan reads them as they are, without a warning: against the kernel it
# is the plan against ipvsadm's own dump of it.
ipvsadm -S -n >/tmp/ipvsadm-dump
clusterf plan --config-path /data/tunnel-config >/tmp/plan-kernel 2>/tmp/plan.err
clusterf plan --config-path /data/tunnel-config --live /tmp/ipvsadm-dump >/tmp/plan-dump 2>/dev/null
expect_eq "the plan against the kernel is the plan against ipvsadm's dump" /tmp/plan-dump /tmp/plan-kernel
grep -q warning /tmp/plan.err && fail "plan warns: $(head -n 3 /tmp/plan.err)" ||
    ok "plan reads gue and gre dests without a warning"

# A config with tunnel dests (IPv4 and IPv6), applied in its own
# namespace: the kernel's `ipvsadm -S -n` equals `clusterf render --output
# ipvsadm`, line for line (--tun-type ipip included), and reads back as
# nothing to change.
/usr/sbin/ip netns add tun
/usr/sbin/ip -n tun link set lo up
expect_code "apply the tunnel config" 0 /usr/sbin/ip netns exec tun clusterf apply --config-path /data/tunnel-config
rendered_rules /tmp/want --config-path /data/tunnel-config
/usr/sbin/ip netns exec tun ipvsadm -S -n | sort >/tmp/got
grep -q -- '-i -w 20 --tun-type ipip' /tmp/want && ok "render prints --tun-type ipip" || fail "render lacks --tun-type ipip"
expect_eq "ipvsadm -S -n equals render --output ipvsadm" /tmp/want /tmp/got
expect_code "plan after apply: nothing to do" 0 /usr/sbin/ip netns exec tun clusterf plan --config-path /data/tunnel-config --detailed-exitcode
/usr/sbin/ip netns exec tun ipvsadm -S -n >/tmp/dump
expect_code "plan against the ipvsadm dump: nothing to do" 0 clusterf plan --config-path /data/tunnel-config --live /tmp/dump --detailed-exitcode
/usr/sbin/ip netns del tun

# A service whose dests take several dump datagrams (32 KiB each, ~90
# dests), next to an empty one: read back completely.
/usr/sbin/ip netns add big
/usr/sbin/ip -n big link set lo up
i=0
{
    echo "-A -t 10.0.0.1:80 -s wlc"
    echo "-A -t 10.0.0.2:80 -s rr"
    while [ $i -lt 400 ]; do
        echo "-a -t 10.0.0.1:80 -r 10.1.$((i / 200)).$((i % 200 + 1)):8080 -m -w 3"
        i=$((i + 1))
    done
} >/tmp/big.rules
/usr/sbin/ip netns exec big ipvsadm -R </tmp/big.rules
sort /tmp/big.rules >/tmp/want
/usr/sbin/ip netns exec big clusterf show --output ipvsadm | sort >/tmp/got
expect_eq "a 400-dest service reads back whole" /tmp/want /tmp/got
/usr/sbin/ip netns del big

# Without ip_vs: the hint.
ipvsadm -C
ip link del vip0
for m in ip_vs_wlc ip_vs_sh ip_vs_rr ip_vs_wrr ip_vs_mh; do rmmod $m 2>/dev/null; done
rmmod ip_vs_ftp 2>/dev/null
if rmmod ip_vs 2>/tmp/rmmod.err; then
    ko=$(find /lib/modules/$(uname -r) -name 'ip_vs.ko*' | head -n1)
    [ -n "$ko" ] && mv "$ko" /tmp/
    expect_code "show without ip_vs" 1 clusterf show
    grep -q 'modprobe ip_vs' /tmp/last.err && ok "hint: modprobe ip_vs" || fail "no modprobe hint: $(cat /tmp/last.err)"
else
    fail "cannot unload ip_vs: $(cat /tmp/rmmod.err); lsmod: $(grep ip_vs /proc/modules)"
fi
finish
