#!/usr/bin/env bash
# Runs the test suite: every unit-test binary in $BUILD/tests, then every tests/e2e/*.sh.
# Prints each tier's results and closes with the total "N passed, N failed"; exits non-zero on
# any failure.  --unit / --e2e run one tier; --san marks a sanitizer run (e2e scripts that
# support it read OC_SAN=1).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export OC_BUILD="$BUILD"
run_unit=1; run_e2e=1
for a in "$@"; do
    case "$a" in
        --unit) run_e2e=0 ;;
        --e2e) run_unit=0 ;;
        --san) export OC_SAN=1 ;;
        *) echo "run.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

passed=0; failed=0; failed_names=()
tally() { # name, log file, exit code
    local p f
    p=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$2" | tail -n 1 | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$2" | tail -n 1 | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
    if [ -z "$p" ]; then
        # no summary line: the binary crashed or the script died; count it as one failure
        p=0; f=1
    elif [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then failed_names+=("$1"); fi
    printf '%-40s %s passed, %s failed\n' "$1" "$p" "$f"
}

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
if [ $run_unit = 1 ]; then
    for t in "$BUILD"/tests/test_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        "$t" > "$logdir/$name.log" 2>&1
        rc=$?
        tally "unit/$name" "$logdir/$name.log" $rc
        if [ $rc -ne 0 ]; then grep -E '^(FAIL|    )' "$logdir/$name.log" | head -n 40; tail -n 5 "$logdir/$name.log"; fi
    done
fi
if [ $run_e2e = 1 ]; then
    for t in tests/e2e/test_*.sh; do
        [ -f "$t" ] || continue
        name=$(basename "$t" .sh)
        bash "$t" > "$logdir/$name.log" 2>&1
        rc=$?
        tally "e2e/$name" "$logdir/$name.log" $rc
        if [ $rc -ne 0 ]; then grep -E '^(FAIL|    )' "$logdir/$name.log" | head -n 40; tail -n 15 "$logdir/$name.log"; fi
    done
fi
echo
if [ ${#failed_names[@]} -gt 0 ]; then echo "failing: ${failed_names[*]}"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
