#!/usr/bin/env bash
# `ocelot bench` end to end: inference and training runs on a zoo model, a spec file and a model
# file print valid JSON with positive throughput, in fp32 and (on CPUs with AVX512_BF16) bf16;
# bad flags, bad precisions and unknown models fail cleanly.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3

# json_ok FILE MODE: the output parses, has the schema, the mode and positive numbers
json_ok() {
    "$PY" - "$1" "$2" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["schema"] == "ocelot.bench/1", d.get("schema")
assert d["mode"] == sys.argv[2], d["mode"]
for k in ("images_per_s", "gflops_per_s", "peak_rss_mib", "flops_per_image"):
    assert d[k] > 0, (k, d[k])
lat = d["latency_ms"]
assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"], lat
assert d["iters"] == 2 and d["warmup"] == 1
PYEOF
}
B="--iters 2 --warmup 1 --threads 1"

check "infer resnet20 --json" sh -c "'$OCELOT' bench resnet20 $B --json > '$TMP/i.json'"
check "infer JSON valid, img/s > 0" json_ok "$TMP/i.json" infer
check "train resnet20 --json" sh -c "'$OCELOT' bench resnet20 --train --batch 8 $B --json > '$TMP/t.json'"
check "train JSON valid, img/s > 0" json_ok "$TMP/t.json" train
check "train loss finite" "$PY" -c "import json,math,sys; d=json.load(open(sys.argv[1])); assert math.isfinite(d['final_loss'])" "$TMP/t.json"
check "text output" sh -c "'$OCELOT' bench cnn $B --batch 4 | grep -q 'images/s'"
check "--input and --classes" sh -c "'$OCELOT' bench cnn $B --input 16x16x1 --classes 3 --json > '$TMP/s.json' && '$PY' -c \"import json,sys; d=json.load(open(sys.argv[1])); assert (d['height'], d['channels'], d['classes']) == (16, 1, 3)\" '$TMP/s.json'"
check "--precision fp32" "$OCELOT" bench cnn $B --precision fp32
# --profile: one entry per layer, times that add up to no more than the step, and a text table
check "train --profile --json" sh -c "'$OCELOT' bench resnet20 --train --batch 8 $B --profile --json > '$TMP/p.json'"
check "profile: every layer timed, sums within the step" "$PY" - "$TMP/p.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
prof = d["profile"]
names = [l["node"] for l in prof]
assert len(names) == len(set(names)) > 20, names
assert any(l["op"] == "conv2d" and l["forward_ms"] > 0 and l["backward_ms"] > 0 for l in prof)
total = sum(l["forward_ms"] + l["backward_ms"] for l in prof)
assert 0 < total <= d["latency_ms"]["mean"] * 1.001, (total, d["latency_ms"])
assert d["profile_other_ms"] >= -1e-6 and abs(total + d["profile_other_ms"] - d["latency_ms"]["mean"]) < 1e-3 * d["latency_ms"]["mean"] + 1e-6
PYEOF
check "profile text table" sh -c "'$OCELOT' bench cnn $B --profile | grep -q '^  other'"
check "--help" sh -c "'$OCELOT' bench --help | grep -q -- --train"

# a JSON spec file and a model file are accepted as MODEL
cat > "$TMP/spec.json" <<'JSON'
{"format":"ocelot-graph","version":1,"nodes":[
 {"name":"conv","op":"conv2d","filters":8,"kernel":3,"stride":1,"padding":"same"},
 {"name":"relu","op":"relu"},
 {"name":"pool","op":"global_avgpool"},
 {"name":"fc","op":"dense","units":"classes"}]}
JSON
check "JSON spec as MODEL" sh -c "'$OCELOT' bench '$TMP/spec.json' $B --train --batch 4 --json > '$TMP/p.json'"
check "spec JSON valid" json_ok "$TMP/p.json" train
check "init a model file" "$OCELOT" init --model cnn --out "$TMP/m.ocm"
if [ -f "$TMP/m.ocm" ]; then
    check "model file as MODEL" sh -c "'$OCELOT' bench '$TMP/m.ocm' $B --json > '$TMP/m.json'"
    check "model file JSON valid" json_ok "$TMP/m.json" infer
    check_fails "--input with a model file" "$OCELOT" bench "$TMP/m.ocm" $B --input 8x8x3
fi

# failures: exit code 2 for usage errors, 1 for a model that does not exist
expect_rc() { local want=$1; shift; "$@" > "$TMP/rc.out" 2>&1; test $? -eq "$want"; }
# bf16 runs where the CPU has AVX512_BF16 and is a clean usage error (exit 2) where it has not
if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then
    check "bf16 train --json" sh -c "'$OCELOT' bench cnn --train --batch 8 $B --precision bf16 --json > '$TMP/bf.json'"
    check "bf16 JSON valid, says bf16" sh -c "'$PY' -c \"import json,math,sys; d=json.load(open(sys.argv[1])); assert d['precision'] == 'bf16' and d['mode'] == 'train' and d['images_per_s'] > 0 and math.isfinite(d['final_loss'])\" '$TMP/bf.json'"
    check "bf16 inference text says bf16" sh -c "'$OCELOT' bench cnn $B --batch 4 --precision bf16 | grep -q 'bf16'"
else
    check "bf16 without AVX512_BF16: exit 2" sh -c "'$OCELOT' bench resnet20 --precision bf16 > '$TMP/bf.out' 2>&1; test \$? -eq 2 && grep -q 'AVX512_BF16' '$TMP/bf.out'"
fi
check "unknown precision: exit 2" expect_rc 2 "$OCELOT" bench resnet20 --precision fp64
check "unknown flag: exit 2" expect_rc 2 "$OCELOT" bench resnet20 --frobnicate
check "bad --batch: exit 2" expect_rc 2 "$OCELOT" bench resnet20 --batch 0
check "bad --iters: exit 2" expect_rc 2 "$OCELOT" bench resnet20 --iters x
check "bad --input: exit 2" expect_rc 2 "$OCELOT" bench resnet20 --input 32x32
check "no model: exit 2" expect_rc 2 "$OCELOT" bench
check "two models: exit 2" expect_rc 2 "$OCELOT" bench cnn resnet20
check_fails "unknown model" "$OCELOT" bench no-such-model $B
check_fails "garbage model file" sh -c "head -c 4096 /dev/urandom > '$TMP/g.ocm'; '$OCELOT' bench '$TMP/g.ocm' $B"
finish
