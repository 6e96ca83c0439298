#!/usr/bin/env bash
# Renders a sample HTML evaluation report (written by `test_report --sample`, from synthetic
# predictions) in headless Chromium: the screenshot must be a real, non-trivial PNG of the
# requested size, and the rendered DOM must hold every section, the confusion-matrix SVG and
# the class names escaped. Skipped (0 passed, 0 failed) when Chromium is not installed.
source "$(dirname "$0")/lib.sh"

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
SAMPLE_BIN=$PWD/${OC_BUILD:-build}/tests/test_report
if [ ! -x "$CHROMIUM" ]; then
    echo "SKIP: $CHROMIUM not found (apt-get install chromium)"
    finish
fi

REPORT=$TMP/report.html
chrome() { # chrome OUTPUT-FLAG... : one headless run with its own profile, offline flags
    local profile
    profile=$(mktemp -d "$TMP/profile.XXXXXX")
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" "$@" "file://$REPORT" 2> "$TMP/chrome.err"
}

# PNG check: signature, IHDR width x height, and more than MIN bytes (a blank 1200x1600 page
# compresses to ~6 KB; the report with charts, heat map and thumbnails is over 100 KB).
png_ok() { # png_ok FILE WIDTH HEIGHT MIN_BYTES
    local sig w h size
    [ -s "$1" ] || { echo "no file $1"; return 1; }
    sig=$(od -An -tx1 -N8 "$1" | tr -d ' \n')
    [ "$sig" = 89504e470d0a1a0a ] || { echo "not a PNG (signature $sig)"; return 1; }
    w=$(od -An -tu4 --endian=big -j16 -N4 "$1" | tr -d ' ')
    h=$(od -An -tu4 --endian=big -j20 -N4 "$1" | tr -d ' ')
    size=$(stat -c %s "$1")
    echo "$1: ${w}x${h}, $size bytes"
    [ "$w" = "$2" ] && [ "$h" = "$3" ] || { echo "size ${w}x${h}, want $2x$3"; return 1; }
    [ "$size" -gt "$4" ] || { echo "only $size bytes: blank page?"; return 1; }
}

check "sample report written" "$SAMPLE_BIN" --sample "$REPORT"
check "report is self-contained" bash -c "! grep -Eq '<script|src=\"https?:|href=|@import|url\\(' '$REPORT'"

check "desktop screenshot" chrome --screenshot="$TMP/desktop.png" --window-size=1200,1600
check "desktop screenshot is a non-trivial 1200x1600 PNG" png_ok "$TMP/desktop.png" 1200 1600 40000
check "phone screenshot" chrome --screenshot="$TMP/phone.png" --window-size=390,2400
check "phone screenshot is a non-trivial 390x2400 PNG" png_ok "$TMP/phone.png" 390 2400 40000

check "dump DOM" bash -c "$(declare -f chrome); TMP='$TMP' CHROMIUM='$CHROMIUM' REPORT='$REPORT' \
    chrome --dump-dom > '$TMP/dom.html' && test -s '$TMP/dom.html'"
dom_has() { grep -qF -- "$1" "$TMP/dom.html" || { echo "rendered DOM lacks: $1"; return 1; }; }
check "DOM: confusion-matrix SVG" dom_has '<svg class="heatmap"'
check "DOM: every section" bash -c "$(declare -f dom_has); TMP='$TMP'; for s in curves confusion \
    per-class calibration mistakes; do dom_has \"<section id=\\\"\$s\\\">\" || exit 1; done"
check "DOM: training curves drawn" dom_has '<polyline class="ln'
check "DOM: thumbnails" dom_has 'src="data:image/png;base64,'
check "DOM: class name escaped" dom_has '&lt;b&gt;&amp;"x'
check "DOM: no injected <b> element" bash -c "! grep -qF '<b>&amp;' '$TMP/dom.html'"
heat_cells() { # the heat map of 10 classes draws 100 cells plus its background
    local n
    n=$(tr '\n' ' ' < "$TMP/dom.html" | grep -o '<svg class="heatmap".*' | sed 's#</svg>.*##' |
        grep -o '<rect' | wc -l)
    echo "heat-map rects in the DOM: $n"
    [ "$n" -eq 101 ]
}
check "DOM: heat map has 10x10 cells" heat_cells

if [ -n "${OC_KEEP_SCREENSHOTS:-}" ]; then cp "$TMP"/desktop.png "$TMP"/phone.png "$OC_KEEP_SCREENSHOTS"/; fi
finish
