# examples/config-repo with its overlay (/data/config-repo, /data/overlay):
# plan shows changes, --dry-run changes nothing, apply makes `ipvsadm -S -n`
# equal `clusterf render --output ipvsadm` (as sets), `show` agrees, and a
# second apply (and plan) finds nothing to do.
. "$SCENARIO_LIB"
need_clusterf apply
SRC="--config-path /data/config-repo --overlay-path /data/overlay"

rendered_rules /tmp/want $SRC
[ -s /tmp/want ] || die "render produced nothing"

expect_code "plan against the empty kernel has changes" 2 clusterf plan $SRC --detailed-exitcode
expect_code "apply --dry-run" 0 clusterf apply $SRC --dry-run
[ -z "$(ipvsadm -S -n)" ] && ok "--dry-run left the kernel empty" || fail "--dry-run changed the kernel"

expect_code "apply" 0 clusterf apply $SRC
cat /tmp/last.out
kernel_rules /tmp/got
expect_eq "kernel equals render after apply" /tmp/want /tmp/got

expect_code "plan after apply is empty" 0 clusterf plan $SRC --detailed-exitcode
expect_code "second apply" 0 clusterf apply $SRC
kernel_rules /tmp/got2
expect_eq "second apply changed nothing" /tmp/got /tmp/got2

expect_code "show --output ipvsadm" 0 clusterf show --output ipvsadm
sort /tmp/last.out >/tmp/show
expect_eq "show --output ipvsadm equals ipvsadm -S -n" /tmp/got /tmp/show
expect_code "show --output text" 0 clusterf show --output text
expect_code "show --output json" 0 clusterf show --output json
grep -q '198.51.100.10' /tmp/last.out && ok "show json names the services" || fail "show json lacks 198.51.100.10"
finish
