#!/usr/bin/env bash
# The main job, start to finish on Debian's Fashion-MNIST: build, train the default recipe,
# evaluate (terminal table + HTML report), and classify sample images.
# Outputs land in out/ (override with OUT=dir). Assumes scripts/setup.sh has run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
mkdir -p "$OUT"
make -j"$(nproc)"
OCELOT=./build/ocelot

echo "== train (Fashion-MNIST, the default recipe)"
"$OCELOT" train --data fashion-mnist --model models/fashion_net.json --epochs 6 \
    --label-smoothing 0.1 --out "$OUT/fashion.ocm"

echo "== evaluate on the 10,000 test images"
"$OCELOT" eval "$OUT/fashion.ocm" --data fashion-mnist --report "$OUT/fashion-report.html"

echo "== classify sample images"
"$OCELOT" data export fashion-mnist --split test --n 8 --out "$OUT/samples"
"$OCELOT" predict "$OUT/fashion.ocm" "$OUT/samples" --top 3

echo
echo "Model: $OUT/fashion.ocm   report: $OUT/fashion-report.html   log: $OUT/fashion.ocm.csv"
