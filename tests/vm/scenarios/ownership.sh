# Ownership: with --own ranges, clusterf manages only services whose address
# lies inside them. A service made by hand with ipvsadm outside the ranges
# (and its dests) survives every apply; a stray service inside the ranges
# that the config does not name is removed.
. "$SCENARIO_LIB"
need_clusterf apply
SRC="--config-path /data/config-repo --overlay-path /data/overlay"
OWN="--own 198.51.100.0/24 --own 2001:db8:100::/48"

ipvsadm -A -t 192.0.2.1:22 -s rr
ipvsadm -a -t 192.0.2.1:22 -r 10.9.9.9:22 -m -w 1
ipvsadm -A -u [2001:db8:999::1]:53 -s sh
ipvsadm -A -f 42 -s wlc
ipvsadm -a -f 42 -r 10.9.9.10:0 -g -w 3
kernel_rules /tmp/hand

rendered_rules /tmp/want $SRC
sort -m /tmp/want /tmp/hand | sort >/tmp/want_all

# check NAME: the kernel holds exactly the rendered rules plus the hand-made ones.
check() {
    kernel_rules /tmp/got
    expect_eq "$1: rendered + hand-made" /tmp/want_all /tmp/got
    if grep -q '198.51.100.99' /tmp/got; then fail "$1: stray owned service kept"; else ok "$1: stray owned service removed"; fi
    expect_code "$1: re-plan is empty" 0 clusterf plan $SRC $OWN --detailed-exitcode
}

expect_code "apply with --own" 0 clusterf apply $SRC $OWN
check "first apply"
# A stray service inside the owned ranges (made after the first apply: were
# it the only owned service, removing it would trip the guard against
# deleting every owned service).
ipvsadm -A -t 198.51.100.99:80 -s rr
ipvsadm -a -t 198.51.100.99:80 -r 10.9.9.11:80 -m -w 1
expect_code "second apply" 0 clusterf apply $SRC $OWN
check "second apply"

# A config change (drop the dns service) still leaves the hand-made ones.
cp -a /data/config-repo /tmp/cfg
rm /tmp/cfg/services/dns.yaml
SRC="--config-path /tmp/cfg --overlay-path /data/overlay"
rendered_rules /tmp/want $SRC
sort -m /tmp/want /tmp/hand | sort >/tmp/want_all
expect_code "apply after removing dns" 0 clusterf apply $SRC $OWN --allow-mass-delete
check "after removing dns"
finish
