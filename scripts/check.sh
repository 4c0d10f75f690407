# Sourced by the test scripts that report one line per check and a closing count.
#
#   check NAME COMMAND...   runs COMMAND; prints "ok   NAME", or "FAIL NAME" and the last
#                           lines of what it printed
#   report SUITE            prints "SUITE: N passed, N failed"; fails if any failed
#   wait_for WHAT COMMAND...
#                           polls COMMAND every 0.1 s until it succeeds, for up to 60 s
#                           (a loaded machine's while, not a clock the test relies on);
#                           else says "never: WHAT" and fails
passed=0 failed=0

check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1)); echo "ok   $name"
    else
        failed=$((failed + 1)); echo "FAIL $name"; echo "$out" | tail -n 20 | sed 's/^/     /'
    fi
}

report() {
    echo "$1: $passed passed, $failed failed"
    (( failed == 0 ))
}

wait_for() {
    for _ in $(seq 1 600); do "${@:2}" && return 0; sleep 0.1; done
    echo "${0##*/}: never: $1" >&2
    return 1
}
