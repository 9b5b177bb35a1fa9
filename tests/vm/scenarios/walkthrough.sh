# The seed README walk-through, applied step by step: add the frontend, add
# backends test3-1 and test3-2, change test3-2's port, remove the service.
# After each step the kernel must hold exactly what the README shows (and
# what render says), and a re-plan must be empty.
#
# Part 1 uses the golden trees (tests/golden/readme-walkthrough-json, at
# /data/wt): the frontend in the config repo, the backends in the overlay, as
# clusterf-docker publishes them. Part 2 edits one config tree in place (the
# original JSON layout), with a reweight step.
. "$SCENARIO_LIB"
need_clusterf apply
EXTRA=""

# step NAME EXPECTED_RULES ARGS...: apply, then check the kernel and the
# re-plan. $EXTRA goes to apply only (removing the last service needs
# --allow-mass-delete, a guard); it is reset after each step.
step() {
    _step=$1 _rules=$2
    shift 2
    expect_code "$_step: apply" 0 clusterf apply "$@" $EXTRA
    EXTRA=""
    printf '%s' "$_rules" | sort >/tmp/want
    kernel_rules /tmp/got
    expect_eq "$_step: kernel as in the README" /tmp/want /tmp/got
    rendered_rules /tmp/rendered "$@"
    expect_eq "$_step: kernel equals render" /tmp/rendered /tmp/got
    expect_code "$_step: re-plan is empty" 0 clusterf plan "$@" --detailed-exitcode
}

SVC="-A -t 10.107.107.107:1337 -s wlc
"
D1="-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10
"
D2="-a -t 10.107.107.107:1337 -r 10.3.107.2:1337 -m -w 10
"
D2P="-a -t 10.107.107.107:1337 -r 10.3.107.2:1338 -m -w 10
"

# --- part 1: golden trees, backends in the overlay ---------------------------
W=/data/wt
step "1 frontend" "$SVC" --config-path $W/config --overlay-path $W/overlay-1-empty
step "1 test3-1" "$SVC$D1" --config-path $W/config --overlay-path $W/overlay-2-test3-1
step "1 test3-2" "$SVC$D1$D2" --config-path $W/config --overlay-path $W/overlay-3-test3-2
step "1 port 1338" "$SVC$D1$D2P" --config-path $W/config --overlay-path $W/overlay-4-port
EXTRA=--allow-mass-delete
step "1 removed" "" --config-path $W/config-removed --overlay-path $W/overlay-1-empty

# --- part 2: one config tree edited in place ---------------------------------
C=/tmp/cfg
S=$C/services/test
mkdir -p $S/backends $C/routes
# The README's route; it also keeps the tree non-empty once the service is
# gone (an empty config source is refused).
echo '{"Prefix4": "10.3.107.0/24", "IpvsMethod": "masq"}' >$C/routes/test3
echo '{"ipv4": "10.107.107.107", "tcp": 1337}' >$S/frontend
step "2 frontend" "$SVC" --config-path $C
echo '{"ipv4": "10.3.107.1", "tcp": 1337}' >$S/backends/test3-1
step "2 test3-1" "$SVC$D1" --config-path $C
echo '{"ipv4": "10.3.107.2", "tcp": 1337}' >$S/backends/test3-2
step "2 test3-2" "$SVC$D1$D2" --config-path $C
echo '{"ipv4": "10.3.107.2", "tcp": 1338}' >$S/backends/test3-2
step "2 port 1338" "$SVC$D1$D2P" --config-path $C
echo '{"ipv4": "10.3.107.2", "tcp": 1338, "weight": 5}' >$S/backends/test3-2
step "2 reweight" "$SVC$D1-a -t 10.107.107.107:1337 -r 10.3.107.2:1338 -m -w 5
" --config-path $C
rm -r $S
EXTRA=--allow-mass-delete
step "2 removed" "" --config-path $C
finish
