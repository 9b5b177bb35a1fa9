# clusterf import against a real keepalived (issue 19's reverse path):
# Debian's keepalived (checker only, no VRRP) loads /data/vm.conf; its
# table (`ipvsadm -S -n`, and `-L -n --thresholds`, since -S never prints
# thresholds) is taken, the table flushed, the same file imported with
# `clusterf import --from keepalived` and applied with `clusterf apply`:
# the kernel must hold the same table, thresholds included, and equal what
# tests/import.rs expects on the host (/data/vm.ipvsadm); a re-plan is empty.
. "$SCENARIO_LIB"
need_clusterf apply
export LD_LIBRARY_PATH=/data/keepalived/lib
ka=/data/keepalived/keepalived

# thresholds OUT: every dest's thresholds, per service, sorted.
thresholds() {
    ipvsadm -L -n --thresholds |
        awk '$1 == "TCP" || $1 == "UDP" || $1 == "FWM" {svc = $1 " " $2} $1 == "->" && $2 != "RemoteAddress:Port" {print svc, $2, $3, $4}' |
        sort >"$1"
}

ipvsadm -C
"$ka" --version >/tmp/ka-version 2>&1 || die "keepalived does not run: $(cat /tmp/ka-version)"
ok "keepalived: $(head -n1 /tmp/ka-version)"
want_lines=$(grep -c . /data/vm.ipvsadm)
"$ka" --dont-fork --log-console --check -f /data/vm.conf >/tmp/keepalived.log 2>&1 &
ka_pid=$!
full() { [ "$(ipvsadm -S -n | grep -c .)" = "$want_lines" ]; }
wait_for 60 "keepalived's table ($want_lines rules)" full
sleep 2
kernel_rules /tmp/keepalived.rules
thresholds /tmp/keepalived.thresholds
kill "$ka_pid"
wait "$ka_pid" 2>/dev/null
if [ "$FAILS" -gt 0 ]; then
    cat /tmp/keepalived.log
    ipvsadm -S -n
fi
sed -e 's/ -x [0-9]*//' -e 's/ -y [0-9]*//' /data/vm.ipvsadm | sort >/tmp/want
expect_eq "keepalived's table is the one tests/import expects" /tmp/want /tmp/keepalived.rules

ipvsadm -C
expect_code "import" 0 clusterf import --from keepalived /data/vm.conf --out /tmp/repo
expect_code "apply the imported repository" 0 clusterf apply --config-path /tmp/repo
kernel_rules /tmp/clusterf.rules
thresholds /tmp/clusterf.thresholds
expect_eq "clusterf's table (ipvsadm -S -n) equals keepalived's" /tmp/keepalived.rules /tmp/clusterf.rules
expect_eq "clusterf's thresholds (ipvsadm -L -n --thresholds) equal keepalived's" /tmp/keepalived.thresholds /tmp/clusterf.thresholds
grep -q '10.1.0.1:8080 1000 800' /tmp/clusterf.thresholds && ok "thresholds reached the kernel" ||
    fail "no thresholds 1000 800 on 10.1.0.1:8080"
expect_code "plan after apply is empty" 0 clusterf plan --config-path /tmp/repo --detailed-exitcode
finish
