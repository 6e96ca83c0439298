#!/usr/bin/env bash
# Regenerates every PyTorch reference fixture in tests/fixtures. Needs Debian's python3-torch;
# the generated files are committed, so the test suite itself never runs this.
set -euo pipefail
cd "$(dirname "$0")"
for gen in gen_*.py; do
    echo "== $gen"
    /usr/bin/python3 "$gen"
done
