# Shared helpers for the end-to-end tests (sourced). Each test_*.sh calls `check NAME CMD...`
# per case and ends with `finish`, which prints "N passed, N failed" and sets the exit code.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OCELOT=${OCELOT:-$PWD/${OC_BUILD:-build}/ocelot}
SHARED=${SHARED:-$PWD/../shared}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
_p=0; _f=0
pass() { echo "PASS $1"; _p=$((_p + 1)); }
fail() { echo "FAIL $1"; shift; [ $# -gt 0 ] && echo "    $*"; _f=$((_f + 1)); }
# check NAME CMD...: passes when CMD exits 0
check() { local n=$1; shift; if "$@" > "$TMP/last.out" 2>&1; then pass "$n"; else fail "$n" "$(tail -n 5 "$TMP/last.out")"; fi; }
# check_fails NAME CMD...: passes when CMD exits non-zero without crashing (no signal, no sanitizer report)
check_fails() {
    local n=$1 rc; shift
    "$@" > "$TMP/last.out" 2>&1; rc=$?
    if [ $rc -eq 0 ]; then fail "$n" "expected failure, got exit 0"
    elif [ $rc -ge 128 ] || grep -q -E 'Sanitizer|runtime error' "$TMP/last.out"; then fail "$n" "crashed (rc=$rc): $(tail -n 3 "$TMP/last.out")"
    else pass "$n"; fi
}
finish() { echo "$_p passed, $_f failed"; [ $_f -eq 0 ]; exit $?; }
