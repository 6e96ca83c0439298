#!/usr/bin/env bash
# The web page in headless Chromium (Debian's, driven by playwright-core): upload the cat,
# see the top-5; the screenshot lands in $OC_BUILD/screenshots/serve_page.png to look at.
source "$(dirname "$0")/lib.sh"
SHOTS=$PWD/${OC_BUILD:-build}/screenshots
mkdir -p "$SHOTS"
check "init model" "$OCELOT" init --model resnet20 --classes 10 \
    --class-names airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck --out "$TMP/cifar10.ocm"
"$OCELOT" serve "$TMP/cifar10.ocm" --port 0 --quiet 2> "$TMP/serve.err" &
PID=$!
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/serve.err"); [ -n "$PORT" ] && break; sleep 0.1
done
[ -n "$PORT" ] && pass "server up" || fail "server up" "$(cat "$TMP/serve.err")"
echo "this is not an image" > "$TMP/notes.txt"
check "page: upload cat_chelsea.png, top-5 rendered; a text file gets a message" \
    node tests/e2e/serve_page.mjs "http://127.0.0.1:$PORT/" "$SHARED/data/photos/cat_chelsea.png" \
    "$SHOTS/serve_page.png" "$TMP/notes.txt"
cat "$TMP/last.out"
[ -s "$SHOTS/serve_page.png" ] && pass "screenshot saved" || fail "screenshot saved"
kill -TERM $PID; wait $PID
finish
