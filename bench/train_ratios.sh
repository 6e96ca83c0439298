#!/usr/bin/env bash
# ocelot's own training ratios: bf16 against fp32 (2 threads) and 2 threads against 1 (fp32),
# from `ocelot bench MODEL --train --json` (batch 128, p50 step latency). Each rep runs fp32 on
# 2 threads, bf16 on 2 threads and fp32 on 1 thread in turn, so a noisy moment hits all three;
# prints each rep's ratios and their medians.
#
#   bench/train_ratios.sh [REPS] [MODEL...]     (default: 3 reps; cnn resnet20 resnet18
#                                                mobilenetv2_cifar airnet)
# The binary is build/ocelot (OCELOT=path to override); ITERS sets --iters (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
OCELOT=${OCELOT:-build/ocelot}
REPS=${1:-3}
shift || true
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(cnn resnet20 resnet18 mobilenetv2_cifar airnet)
[ -x "$OCELOT" ] || { echo "train_ratios.sh: $OCELOT not found: run make first" >&2; exit 2; }

p50() { # model threads precision
    # the output is parsed after ocelot exits: a python started alongside it (a pipe) takes a
    # core from its timed steps while it starts up (cnn's bf16 step came out 1.8x slower)
    local out
    out=$("$OCELOT" bench "$1" --train --threads "$2" --precision "$3" --iters "${ITERS:-4}" \
        --warmup 1 --json)
    python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms"]["p50"])' <<<"$out"
}
med() { # the median of the arguments
    printf '%s\n' "$@" | sort -n |
        awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

printf '%-18s %-28s %-28s\n' model "bf16 / fp32 (reps) median" "2 threads / 1 (reps) median"
for m in "${MODELS[@]}"; do
    bf=() sc=()
    for _ in $(seq 1 "$REPS"); do
        f2=$(p50 "$m" 2 fp32)
        b2=$(p50 "$m" 2 bf16)
        f1=$(p50 "$m" 1 fp32)
        bf+=("$(python3 -c "print('%.2f' % ($f2 / $b2))")")
        sc+=("$(python3 -c "print('%.2f' % ($f1 / $f2))")")
    done
    printf '%-18s %-28s %-28s\n' "$m" "(${bf[*]}) $(med "${bf[@]}")" "(${sc[*]}) $(med "${sc[@]}")"
done
