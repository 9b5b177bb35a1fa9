# The seed README walk-through, applied step by step from a config directory
# in the original JSON layout: add the frontend, add backends test3-1 and
# test3-2, change test3-2's port, remove the service. After each step the
# kernel must hold exactly what the README shows (and what render says), and
# a re-plan must be empty.
. "$SCENARIO_LIB"
need_clusterf apply
C=/tmp/cfg
S=$C/services/test
mkdir -p $C/services

# step NAME EXPECTED_RULES: apply, then check the kernel and the re-plan.
step() {
    expect_code "$1: apply" 0 clusterf apply --config-path $C
    printf '%s' "$2" | sort >/tmp/want
    kernel_rules /tmp/got
    expect_eq "$1: kernel as in the README" /tmp/want /tmp/got
    rendered_rules /tmp/rendered --config-path $C
    expect_eq "$1: kernel equals render" /tmp/rendered /tmp/got
    expect_code "$1: re-plan is empty" 0 clusterf plan --config-path $C --detailed-exitcode
}

step "empty config" ""

mkdir -p $S/backends
echo '{"ipv4": "10.107.107.107", "tcp": 1337}' >$S/frontend
step "add frontend" "-A -t 10.107.107.107:1337 -s wlc
"

echo '{"ipv4": "10.3.107.1", "tcp": 1337}' >$S/backends/test3-1
step "add backend test3-1" "-A -t 10.107.107.107:1337 -s wlc
-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10
"

echo '{"ipv4": "10.3.107.2", "tcp": 1337}' >$S/backends/test3-2
step "add backend test3-2" "-A -t 10.107.107.107:1337 -s wlc
-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10
-a -t 10.107.107.107:1337 -r 10.3.107.2:1337 -m -w 10
"

echo '{"ipv4": "10.3.107.2", "tcp": 1338}' >$S/backends/test3-2
step "change test3-2 port" "-A -t 10.107.107.107:1337 -s wlc
-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10
-a -t 10.107.107.107:1337 -r 10.3.107.2:1338 -m -w 10
"

echo '{"ipv4": "10.3.107.2", "tcp": 1338, "weight": 5}' >$S/backends/test3-2
step "reweight test3-2" "-A -t 10.107.107.107:1337 -s wlc
-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10
-a -t 10.107.107.107:1337 -r 10.3.107.2:1338 -m -w 5
"

rm -r $S
step "remove the service" ""
finish
