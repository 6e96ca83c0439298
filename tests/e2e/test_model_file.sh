#!/usr/bin/env bash
# The model file end to end: `ocelot init` writes it, an independent Python reader
# (tests/ref/read_safetensors.py: json + struct + numpy only) parses every tensor and must agree
# with what ocelot reports; truncated and garbage files make the CLI fail cleanly.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
READER=tests/ref/read_safetensors.py

# json_get FILE EXPR: evaluates a Python expression over the parsed JSON document `d`
json_get() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
# said NAME PATTERN: passes when the previous command's output contains PATTERN
said() { cp "$TMP/last.out" "$TMP/prev.out"; check "$1" grep -q -- "$2" "$TMP/prev.out"; }

# ---- init writes a model file the independent reader accepts
check "init resnet20" "$OCELOT" init --model resnet20 --class-names cat,dog,bird --seed 3 \
    --out "$TMP/r.ocm"
cp "$TMP/last.out" "$TMP/init.out"
check "reader parses the file" "$PY" "$READER" "$TMP/r.ocm" --ocelot
check "reader json" sh -c "'$PY' '$READER' '$TMP/r.ocm' --ocelot --json > '$TMP/r.json'"

init_params=$(sed -nE 's/.* ([0-9]+) parameters.*/\1/p' "$TMP/init.out")
reader_params=$(json_get "$TMP/r.json" 'd["params"]')
check "reader parameter count ($reader_params) = init's ($init_params)" \
    test -n "$init_params" -a "$reader_params" = "$init_params"
check "classes survive" test "$(json_get "$TMP/r.json" '",".join(d["classes"])')" = "cat,dog,bird"
check "input recorded" test "$(json_get "$TMP/r.json" 'd["input"]')" = "[32, 32, 3]"
check "format version 1" test "$(json_get "$TMP/r.json" 'd["metadata"]["format_version"]')" = "1"
check "graph is JSON" test "$(json_get "$TMP/r.json" 'type(d["graph"]).__name__')" != "str"

# `ocelot info` (written by the nn engineer) must report the same parameter count
if "$OCELOT" info --help > /dev/null 2>&1; then
    check "info --json" sh -c "'$OCELOT' info '$TMP/r.ocm' --json > '$TMP/info.json'"
    info_params=$("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("params", "parameters", "param_count", "num_params", "trainable_params"):
    if isinstance(d.get(k), int):
        print(d[k]); break
    if isinstance(d.get(k), dict) and isinstance(d[k].get("trainable"), int):
        print(d[k]["trainable"]); break
' "$TMP/info.json" 2>/dev/null)
    check "info parameter count ($info_params) = reader's ($reader_params)" \
        test "$info_params" = "$reader_params"
fi

# ---- determinism and seeds: same seed, same bytes; another seed, other weights
check "init same seed" "$OCELOT" init --model resnet20 --class-names cat,dog,bird --seed 3 \
    --out "$TMP/r2.ocm"
check "same seed gives an identical file" cmp "$TMP/r.ocm" "$TMP/r2.ocm"
check "init other seed" "$OCELOT" init --model resnet20 --class-names cat,dog,bird --seed 4 \
    --out "$TMP/r3.ocm"
"$PY" "$READER" "$TMP/r3.ocm" --json > "$TMP/r3.json"
check "other seed gives other weights" test "$(json_get "$TMP/r3.json" 'd["param_sum"]')" != \
    "$(json_get "$TMP/r.json" 'd["param_sum"]')"
check "init replaces an existing file" "$OCELOT" init --model cnn --input 28x28x1 --classes 10 \
    --out "$TMP/r2.ocm"
"$PY" "$READER" "$TMP/r2.ocm" --ocelot --json > "$TMP/c.json"
check "cnn input 28x28x1" test "$(json_get "$TMP/c.json" 'd["input"]')" = "[28, 28, 1]"
check "cnn default class names" test "$(json_get "$TMP/c.json" 'len(d["classes"])')" = "10"
check "no temporary files left" test -z "$(ls "$TMP" | grep '\.tmp\.')"

# ---- init usage errors: exit non-zero with a message
check_fails "init without --out" "$OCELOT" init --model cnn
said "  says --out is required" "--out is required"
check_fails "init unknown model" "$OCELOT" init --model nosuchnet --out "$TMP/x.ocm"
said "  names the model" "nosuchnet"
check_fails "init bad --input" "$OCELOT" init --model cnn --input 32x32 --out "$TMP/x.ocm"
check_fails "init classes vs names" "$OCELOT" init --model cnn --classes 3 --class-names a,b \
    --out "$TMP/x.ocm"
check_fails "init into a missing directory" "$OCELOT" init --model cnn --out "$TMP/no/dir/x.ocm"
said "  names the path" "no/dir/x.ocm"
check "  nothing written" test ! -e "$TMP/x.ocm"

# ---- truncated and garbage files: the reader and the CLI reject them, no crash
size=$(stat -c %s "$TMP/r.ocm")
head -c 5 "$TMP/r.ocm" > "$TMP/cut5.ocm"
head -c 200 "$TMP/r.ocm" > "$TMP/cut200.ocm"
head -c $((size / 2)) "$TMP/r.ocm" > "$TMP/cuthalf.ocm"
head -c $((size - 1)) "$TMP/r.ocm" > "$TMP/cutlast.ocm"
head -c 3000 /dev/urandom > "$TMP/garbage.ocm"
{ printf '\x40\x00\x00\x00\x00\x00\x00\x00'; head -c 200 /dev/urandom; } > "$TMP/garbage2.ocm"
: > "$TMP/empty.ocm"
for f in cut5 cut200 cuthalf cutlast garbage garbage2 empty; do
    check_fails "reader rejects $f" "$PY" "$READER" "$TMP/$f.ocm"
    check_fails "init --model $f.ocm" "$OCELOT" init --model "$TMP/$f.ocm" --out "$TMP/y.ocm"
    if "$OCELOT" info --help > /dev/null 2>&1; then
        check_fails "info $f" "$OCELOT" info "$TMP/$f.ocm"
        said "  message names the file" "$f.ocm"
    fi
done
if "$OCELOT" info --help > /dev/null 2>&1; then
    check_fails "info truncated" "$OCELOT" info "$TMP/cuthalf.ocm"
    said "  explains the truncation" "truncated"
    check_fails "info garbage header" "$OCELOT" info "$TMP/garbage2.ocm"
    said "  explains the bad header" "JSON"
fi
finish
