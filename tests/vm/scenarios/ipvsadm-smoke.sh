# The guest itself works: ip_vs is loaded, ipvsadm talks to the kernel, a
# scheduler module loads on demand, and the table reads back as written.
. "$SCENARIO_LIB"

grep -q '^ip_vs ' /proc/modules && ok "ip_vs loaded" || fail "ip_vs not loaded"
head -n1 /proc/net/ip_vs

ipvsadm -A -t 10.0.0.1:80 -s wlc || fail "ipvsadm -A"
ipvsadm -a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 10 || fail "ipvsadm -a 1"
ipvsadm -a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m -w 5 || fail "ipvsadm -a 2"
ipvsadm -A -u 10.0.0.2:53 -s rr || fail "ipvsadm -A udp"
ipvsadm -a -u 10.0.0.2:53 -r 10.1.0.3:53 -g -w 1 || fail "ipvsadm -a udp"
ipvsadm -A -t [2001:db8::1]:443 -s sh -p 300 || fail "ipvsadm -A ipv6"
ipvsadm -A -f 7 -s wrr || fail "ipvsadm -A fwmark"

cat >/tmp/want <<'W'
-A -f 7 -s wrr
-A -t 10.0.0.1:80 -s wlc
-A -t [2001:db8::1]:443 -s sh -p 300
-A -u 10.0.0.2:53 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 10
-a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m -w 5
-a -u 10.0.0.2:53 -r 10.1.0.3:53 -g -w 1
W
kernel_rules /tmp/got
expect_eq "ipvsadm -S -n reads back the rules" /tmp/want /tmp/got
cat /tmp/got

for s in wlc rr sh wrr; do
    grep -q "^ip_vs_$s " /proc/modules && ok "ip_vs_$s auto-loaded" || fail "ip_vs_$s not loaded"
done

ipvsadm -C
[ -z "$(ipvsadm -S -n)" ] && ok "flushed" || fail "table not empty after -C"
finish
