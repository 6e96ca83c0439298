#!/usr/bin/env bash
# Before / after: two ocelot binaries on one `ocelot bench` workload, alternated with the order
# flipped every repetition (on a shared machine the first of a fixed pair came out up to 6 %
# ahead), each run's p50 latency printed and their medians and ratio.
#
#   bench/ab.sh BIN_A BIN_B REPS BENCH-ARGS...
#   bench/ab.sh /tmp/old/build/ocelot build/ocelot 6 mobilenetv2 --input 224x224x3 \
#       --classes 1000 --iters 200
# B/A < 1: B is faster. Build the old binary from a worktree (`git worktree add /tmp/old REV
# && make -C /tmp/old`).
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
A=$1 B=$2 REPS=$3
shift 3
for bin in "$A" "$B"; do
    [ -x "$bin" ] || { echo "ab.sh: $bin is not an executable" >&2; exit 2; }
done

# ocelot's output is parsed after it exits: a python started alongside it (a pipe) would take a
# core from its timed steps while starting up.
p50() {
    local out
    out=$("$1" bench "${@:2}" --json)
    python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms"]["p50"])' <<<"$out"
}

a=() b=()
for i in $(seq 1 "$REPS"); do
    if [ $((i % 2)) = 1 ]; then
        a+=("$(p50 "$A" "$@")"); b+=("$(p50 "$B" "$@")")
    else
        b+=("$(p50 "$B" "$@")"); a+=("$(p50 "$A" "$@")")
    fi
done
python3 - "${a[*]}" "${b[*]}" <<'EOF'
import statistics, sys
a, b = ([float(v) for v in arg.split()] for arg in sys.argv[1:3])
for name, v in (("A", a), ("B", b)):
    print("%s p50 ms: median %.3f  (%s)" % (name, statistics.median(v), " ".join("%.3f" % x for x in v)))
print("B/A %.3f" % (statistics.median(b) / statistics.median(a)))
EOF
