# Helpers for scenarios, sourced as `. "$SCENARIO_LIB"` inside the guest.
# Each check prints one line; a failed check makes the scenario exit 1.
# This file does not run anything by itself.

FAILS=0

# fail MESSAGE...: record a failed check (the scenario goes on).
fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}

# ok MESSAGE...: record a passed check.
ok() {
    echo "ok: $*"
}

# die MESSAGE...: stop the scenario now.
die() {
    echo "FAIL: $*"
    exit 1
}

# finish: exit with the scenario's result.
finish() {
    if [ "$FAILS" -gt 0 ]; then
        echo "$FAILS check(s) failed"
        exit 1
    fi
    echo "all checks passed"
    exit 0
}

# expect_eq NAME EXPECTED_FILE ACTUAL_FILE: files equal, else show a diff.
expect_eq() {
    if cmp -s "$2" "$3"; then
        ok "$1"
    else
        fail "$1"
        diff -u "$2" "$3" | head -n 40
    fi
}

# expect_code NAME WANT CMD...: run CMD, check its exit code; its output
# goes to /tmp/last.out and /tmp/last.err.
expect_code() {
    _name=$1 _want=$2
    shift 2
    "$@" >/tmp/last.out 2>/tmp/last.err
    _got=$?
    if [ "$_got" = "$_want" ]; then
        ok "$_name (exit $_got)"
    else
        fail "$_name: exit $_got, want $_want: $*"
        echo "--- stdout"; head -n 30 /tmp/last.out
        echo "--- stderr"; head -n 30 /tmp/last.err
    fi
}

# kernel_rules FILE: the live table as sorted `ipvsadm -S -n` lines.
kernel_rules() {
    ipvsadm -S -n | sort >"$1"
}

# rendered_rules FILE ARGS...: what clusterf renders, sorted.
rendered_rules() {
    _out=$1
    shift
    clusterf render "$@" --output ipvsadm | sort >"$_out"
}

# need_clusterf COMMAND: stop (failing) when clusterf lacks COMMAND (a stub
# takes no options).
need_clusterf() {
    [ -x /usr/bin/clusterf ] || die "no clusterf binary in the guest"
    clusterf "$1" --help >/tmp/help 2>&1 || die "clusterf $1 --help failed: $(head -n1 /tmp/help)"
    grep -q -e '--config-path' -e '--output' /tmp/help || die "clusterf $1 is not implemented (no options)"
}

# now: seconds since boot, with centiseconds.
now() {
    cut -d' ' -f1 /proc/uptime
}
