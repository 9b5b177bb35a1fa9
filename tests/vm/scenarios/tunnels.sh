# Tunnel dests of issue 19: GUE (with its port and each checksum option)
# and GRE beside IPIP, in both layouts (/data/yaml, /data/json with
# /data/overlay). First what ipvsadm 1.31 itself makes of each tunnel
# option (its `ipvsadm -S -n` form, which clusterf writes and reads); then
# apply makes `ipvsadm -S -n` equal `clusterf render --output ipvsadm`,
# `clusterf show` equals it too, and a re-plan is empty; a changed gue
# port, checksum and type are each applied as an edit of the dest (never
# deleted); a GUE dest made by hand reads back exactly.
. "$SCENARIO_LIB"
need_clusterf apply

# ipvsadm's own dump of each encapsulation, as clusterf must read it.
ipvsadm -A -t 10.0.0.9:80 -s rr
i=1
for opts in '--tun-type ipip' '--tun-type gue --tun-port 6080' \
    '--tun-type gue --tun-port 6081 --tun-csum' '--tun-type gue --tun-port 6082 --tun-remcsum' \
    '--tun-type gre' '--tun-type gre --tun-csum'; do
    # shellcheck disable=SC2086
    ipvsadm -a -t 10.0.0.9:80 -r 10.8.0.$i:80 -i $opts || fail "ipvsadm refused -i $opts"
    i=$((i + 1))
done
# ipvsadm's table of tunnel options for gre and remcsum (shown, not judged).
if ipvsadm -a -t 10.0.0.9:80 -r 10.8.0.99:80 -i --tun-type gre --tun-remcsum 2>/tmp/gre-rem; then
    echo "note: ipvsadm takes gre with --tun-remcsum"
    ipvsadm -d -t 10.0.0.9:80 -r 10.8.0.99:80
else
    echo "note: ipvsadm refuses gre with --tun-remcsum: $(cat /tmp/gre-rem)"
fi
echo "--- ipvsadm -S -n of hand-made tunnel dests"
ipvsadm -S -n | tee /tmp/hand
expect_code "show of hand-made tunnels" 0 clusterf show --output ipvsadm
expect_eq "show (netlink) equals ipvsadm -S -n, each tunnel exactly" /tmp/hand /tmp/last.out
# ipvsadm's own dump, imported and rendered, comes back as it was.
expect_code "import of ipvsadm's dump" 0 clusterf import --from ipvsadm /tmp/hand --out /tmp/imported
rendered_rules /tmp/rendered --config-path /tmp/imported
sort /tmp/hand >/tmp/hand-sorted
expect_eq "ipvsadm's dump imported renders back to it" /tmp/hand-sorted /tmp/rendered
echo "--- a GUE dest's GET_DEST reply (for tests/fixtures/netlink)"
ipvsadm -C
ipvsadm -A -u 192.0.2.53:53 -s rr
ipvsadm -a -u 192.0.2.53:53 -r 10.8.0.1:53 -i -w 3 --tun-type gue --tun-port 6080 --tun-remcsum
CLUSTERF_NETLINK_TRACE=1 clusterf show --output ipvsadm 2>&1 >/dev/null | grep 'netlink recv' | tail -n 2
ipvsadm -C


# has WANT: the last kernel rules have the line fragment WANT.
has() {
    grep -q -e "$1" /tmp/got && ok "kernel has: $1" || fail "kernel lacks: $1"
}

apply_exactly "yaml" --config-path /data/yaml
has '-r 10.1.0.1:80 -i -w 20 --tun-type gue --tun-port 6080 --tun-csum'
has '-r 10.2.0.1:80 -i -w 10 --tun-type gre --tun-nocsum'
has '-r 10.3.0.1:80 -i -w 10 --tun-type ipip'
has '-r 10.5.0.1:80 -i -w 10 --tun-type gue --tun-port 6081 --tun-remcsum'
has '-r \[2001:db8:2::1\]:80 -i -w 10 --tun-type gre --tun-csum'

# The gue port, a checksum and a type change: each an edit of its dest.
rm -rf /tmp/yaml2
cp -r /data/yaml /tmp/yaml2
sed -i 's/port: 6080/port: 6090/' /tmp/yaml2/routes/gue.yaml
sed -i 's/checksum: remcsum/checksum: none/' /tmp/yaml2/routes/rem.yaml
sed -i 's/type: ipip/type: gre/' /tmp/yaml2/routes/ipip.yaml
expect_code "plan of the changes" 2 clusterf plan --config-path /tmp/yaml2 --detailed-exitcode
cat /tmp/last.out
for d in 10.1.0.1:80 10.1.0.2:80 10.3.0.1:80 10.5.0.1:80; do
    if grep -q "^~   dest $d tunnel " /tmp/last.out && ! grep -q "^-   dest $d" /tmp/last.out; then
        ok "plan edits dest $d in place"
    else
        fail "plan does not edit dest $d in place"
    fi
done
grep -q '^~   dest 10.1.0.1:80 tunnel gue port 6080 checksum csum -> gue port 6090 checksum csum' /tmp/last.out &&
    ok "the plan names the port change" || fail "the plan does not name the port change"
apply_exactly "yaml changed" --config-path /tmp/yaml2
has '-r 10.1.0.1:80 -i -w 20 --tun-type gue --tun-port 6090 --tun-csum'
has '-r 10.3.0.1:80 -i -w 10 --tun-type gre --tun-nocsum'
has '-r 10.5.0.1:80 -i -w 10 --tun-type gue --tun-port 6081 --tun-nocsum'
apply_exactly "yaml again" --config-path /data/yaml

# The JSON layout and its overlay.
ipvsadm -C
apply_exactly "json" --config-path /data/json --overlay-path /data/overlay
has '-r 10.1.0.1:80 -i -w 10 --tun-type gue --tun-port 6080 --tun-remcsum'
has '-r 10.2.0.1:80 -i -w 20 --tun-type gre --tun-csum'
has '-r 10.3.0.1:80 -i -w 10 --tun-type gue --tun-port 7777 --tun-nocsum'

# A dest changed by hand to another encapsulation is planned back as an
# edit, and the kernel takes it back.
ipvsadm -e -t 198.51.100.20:80 -r 10.2.0.1:80 -i -w 20 --tun-type gue --tun-port 5555
expect_code "plan after a hand edit" 2 clusterf plan --config-path /data/json --overlay-path /data/overlay --detailed-exitcode
grep -q '^~   dest 10.2.0.1:80 tunnel gue port 5555 -> gre checksum csum' /tmp/last.out &&
    ok "the hand edit is seen exactly" || { fail "the hand edit is not seen exactly"; cat /tmp/last.out; }
apply_exactly "json after a hand edit" --config-path /data/json --overlay-path /data/overlay
finish
