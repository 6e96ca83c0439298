#!/usr/bin/env bash
# Installs everything ocelot needs to build and test, from Debian's packages (and npm for the
# browser and ONNX Runtime test oracles). Safe to run again: it skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# build: compiler, libraries. tests: PyTorch / scikit-learn oracles (reference fixtures are
# committed; Python only re-checks model files and metrics), Fashion-MNIST, Chromium, curl.
# bench: wrk (bench/serve_load.sh, bench/serve_batching.sh).
PKGS=(build-essential pkg-config
      libjpeg62-turbo-dev libpng-dev libwebp-dev libcjson-dev libmicrohttpd-dev zlib1g-dev liblzma-dev
      python3 python3-numpy python3-torch python3-sklearn
      dataset-fashion-mnist chromium
      curl wrk)
# Node.js and npm (the browser test's driver) often come from elsewhere than Debian, and
# Debian's npm conflicts with such a nodejs: install Debian's only where the commands are absent.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm test oracles (browser driver), installed into tests/e2e without downloading browsers.
if [ -f tests/e2e/package.json ] && [ ! -d tests/e2e/node_modules ]; then
    (cd tests/e2e && npm install --ignore-scripts --no-audit --no-fund --silent)
fi
echo "setup: done"
