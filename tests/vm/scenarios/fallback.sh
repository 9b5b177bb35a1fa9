# A service's fallback dest (issue 19's sorry server) on the real kernel
# with real traffic: the traffic network (lib.sh: a client namespace,
# busybox httpd backends b1 and b2 in namespaces); b1 is the service's
# backend, b2 its fallback (the "sorry" page).
#   1. one-shot apply: b1 at weight 10, the fallback at 0: every request
#      on b1; b1 at weight 0 in the config: the fallback serves; b1 back;
#      no backend at all: the fallback serves. At each step `ipvsadm -S -n`
#      equals `clusterf render --output ipvsadm`, a re-plan is empty, and
#      the plan gives the rising dest its weight before the other loses
#      its own (make-before-break).
#   2. the daemon with an http check: b1's httpd stopped: b1 drained for
#      health and the fallback serves (no fail-open), every request on b2;
#      b1 started again: b1 serves, the fallback back at 0; the daemon's
#      plans raise before they lower.
. "$SCENARIO_LIB"
need_clusterf apply
traffic_network

# repo DIR B1_WEIGHT [CHECK]: a repo in DIR: web with backend b1 (none
# when B1_WEIGHT is "none") and the fallback b2; CHECK adds a health check.
repo() {
    mkdir -p "$1/services"
    {
        echo "frontend: {ipv4: 10.107.107.107, tcp: 80}"
        echo "scheduler: rr"
        [ "$2" = none ] || echo "backends: {b1: {ipv4: 10.3.1.1, tcp: 80, weight: $2}}"
        echo "fallback: {ipv4: 10.3.2.1, tcp: 80, weight: 3}"
        [ -z "$3" ] || echo "healthcheck: {type: http, path: /index.html, interval: 1s, timeout: 500ms, rise: 2, fall: 2}"
    } >"$1/services/web.yaml"
}
repo /tmp/serving 10
repo /tmp/drained 0
repo /tmp/only none
repo /tmp/checked 10 check

# check NAME DIR: apply DIR, the kernel equals the render, a re-plan is empty.
check() {
    rendered_rules /tmp/want --config-path "$2"
    expect_code "$1: apply" 0 clusterf apply --config-path "$2"
    kernel_rules /tmp/got
    expect_eq "$1: kernel (ipvsadm -S -n) equals render" /tmp/want /tmp/got
    expect_code "$1: plan after apply is empty" 0 clusterf plan --config-path "$2" --detailed-exitcode
}

# first_of FILE A B: the line matching A comes before the one matching B.
first_of() {
    a=$(grep -n -e "$2" "$1" | head -n 1 | cut -d: -f1)
    b=$(grep -n -e "$3" "$1" | head -n 1 | cut -d: -f1)
    [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]
}

# order NAME DIR RISING FALLING: the plan to DIR edits RISING's weight
# before FALLING's.
order() {
    expect_code "$1: plan" 2 clusterf plan --config-path "$2" --detailed-exitcode
    if first_of /tmp/last.out "dest $3 .* -> [1-9]" "dest $4 .* -> 0"; then
        ok "$1: $3 gets its weight before $4 loses its own"
    else
        fail "$1: the plan lowers $4 first"
        cat /tmp/last.out
    fi
}

# all_on NAME NS: 10 requests, every one answered by NS.
all_on() {
    count 10
    got=$n1
    [ "$2" = b2 ] && got=$n2
    [ "$other" = 0 ] && [ "$got" = 10 ] && ok "$1: every request on $2" ||
        fail "$1: $2 got $got of 10, $other failed"
}

weight_of() { # DEST WEIGHT: ipvsadm shows DEST at WEIGHT
    ipvsadm -S -n | grep -q -e "-r $1:80 -m -w $2\$"
}

# 1. One-shot apply.
check "serving" /tmp/serving
weight_of 10.3.2.1 0 && ok "the fallback is in the table at weight 0" || fail "fallback not at 0"
all_on "serving" b1
order "to drained" /tmp/drained 10.3.2.1:80 10.3.1.1:80
check "drained" /tmp/drained
weight_of 10.3.2.1 3 && ok "the fallback has its weight" || fail "fallback without its weight"
all_on "drained" b2
order "back" /tmp/serving 10.3.1.1:80 10.3.2.1:80
check "back" /tmp/serving
all_on "back" b1
check "no backend" /tmp/only
all_on "no backend" b2

# 2. The daemon, with a health check.
ipvsadm -C
clusterf apply --watch --config-path /tmp/checked >>/tmp/clusterf.log 2>&1 &
CF_PID=$!
serving() { weight_of 10.3.1.1 10 && weight_of 10.3.2.1 0; }
wait_for 30 "b1 serving, the fallback at 0" serving && ok "daemon: b1 serving"
all_on "daemon" b1
$IP netns pids b1 | head -n 1 | xargs kill
fallback_serves() { weight_of 10.3.1.1 0 && weight_of 10.3.2.1 3; }
wait_for 30 "b1 drained and the fallback serving" fallback_serves &&
    ok "b1 down: drained for health, the fallback serves (no fail-open)"
ipvsadm -S -n
all_on "b1 down" b2
rendered_rules /tmp/want --config-path /tmp/drained
kernel_rules /tmp/got
expect_eq "b1 down: kernel equals the render of b1 at weight 0" /tmp/want /tmp/got
grep -q "the fallback serves, no fail-open" /tmp/clusterf.log && ok "the applied plan says why" ||
    fail "no 'the fallback serves' in the log"
first_of /tmp/clusterf.log "dest 10.3.2.1:80 .* 0 -> 3" "dest 10.3.1.1:80 .* 10 -> 0" &&
    ok "daemon: the fallback got its weight before b1 lost its own" ||
    fail "daemon: b1 lowered first"
$IP netns exec b1 httpd -p 80 -h /www/b1 || die "httpd in b1"
wait_for 30 "b1 back, the fallback at 0" serving && ok "b1 up: serving again, the fallback at 0"
all_on "b1 up" b1
check_back() {
    rendered_rules /tmp/want --config-path /tmp/checked
    kernel_rules /tmp/got
    expect_eq "b1 up: kernel equals render" /tmp/want /tmp/got
    expect_code "b1 up: plan is empty" 0 clusterf plan --config-path /tmp/checked --detailed-exitcode
}
check_back
grep -n -e "dest 10.3.1.1:80 .* 0 -> 10" -e "dest 10.3.2.1:80 .* 3 -> 0" /tmp/clusterf.log | tail -n 2 >/tmp/back
first_of /tmp/back "10.3.1.1" "10.3.2.1" && ok "daemon: b1 got its weight before the fallback lost its own" ||
    { fail "daemon: the fallback lowered first"; cat /tmp/back; }

kill "$CF_PID"
wait "$CF_PID"
[ "$FAILS" -gt 0 ] && tail -n 40 /tmp/clusterf.log
finish
