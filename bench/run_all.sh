#!/usr/bin/env bash
# The comparison benchmarks in one run: training throughput (ocelot vs PyTorch) then inference
# latency and throughput (ocelot vs PyTorch vs ONNX Runtime). Prints the tables and keeps the raw
# measurements as JSON.
#
#   bench/run_all.sh [--quick] [--ocelot PATH] [--threads N] [--out DIR]
#
# --quick: about 3 minutes of training and a few of inference on 2 idle cores (the default run
# is about 15 minutes). The ocelot binary defaults to $OCELOT, else build/ocelot.
# Needs: /usr/bin/python3 with torch, node, and bench/node_modules
# (cd bench && npm install --ignore-scripts). The environment (OMP_WAIT_POLICY, ...) is passed
# to every framework alike.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
quick=(); threads=2; out=""
OCELOT=${OCELOT:-build/ocelot}
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=(--quick) ;;
        --ocelot) OCELOT=$2; shift ;;
        --threads) threads=$2; shift ;;
        --out) out=$2; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run_all.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$OCELOT" ] || { echo "run_all.sh: no ocelot binary at $OCELOT (make, or --ocelot PATH)" >&2; exit 1; }
"$PY" -c 'import torch' 2>/dev/null || { echo "run_all.sh: $PY has no torch (apt install python3-torch)" >&2; exit 1; }
command -v node > /dev/null || { echo "run_all.sh: node is not on PATH" >&2; exit 1; }
[ -d bench/node_modules/onnxruntime-node ] || {
    echo "run_all.sh: onnxruntime-node missing: (cd bench && npm install --ignore-scripts)" >&2; exit 1; }
out=${out:-$(mktemp -d -t ocelot-bench-XXXXXX)}
mkdir -p "$out"

echo "== ocelot $("$OCELOT" --version | awk '{print $2}'), $(nproc) cores, $threads threads, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "== training (ocelot vs PyTorch)"
"$PY" bench/bench_train.py "${quick[@]}" --ocelot "$OCELOT" --threads "$threads" \
    --json "$out/train.json"
echo
echo "== inference (ocelot vs PyTorch vs ONNX Runtime)"
"$PY" bench/bench_infer.py "${quick[@]}" --ocelot "$OCELOT" --threads "$threads" \
    --json "$out/infer.json"
echo
echo "raw measurements: $out/train.json $out/infer.json"
