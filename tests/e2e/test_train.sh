#!/usr/bin/env bash
# train / eval / predict as a user runs them, on a tiny generated dataset (seconds): results,
# files, determinism, kill -9 and SIGINT followed by --resume (bitwise equal weights), eval
# against scikit-learn, the HTML report, bad input.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
D=$TMP/tiny
python3 tests/e2e/make_tiny_idx.py "$D" 384 96
NET=tests/e2e/tiny_net.json
T=(--data "idx:$D" --model "$NET" --epochs 12 --batch 32 --seed 3 --threads 2 --workers 2 --quiet)

check "train the tiny net" "$OCELOT" train "${T[@]}" --out "$TMP/a.ocm"
[ -s "$TMP/a.ocm" ] && [ -s "$TMP/a.ocm.ckpt" ] && pass "model and checkpoint written" || fail "model and checkpoint written"
rows=$(tail -n +2 "$TMP/a.ocm.csv" | wc -l)
[ "$rows" = 12 ] && pass "CSV log has one row per epoch" || fail "CSV log has one row per epoch" "$rows rows"
head -1 "$TMP/a.ocm.csv" | grep -q '^epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds$' \
    && pass "CSV header" || fail "CSV header" "$(head -1 "$TMP/a.ocm.csv")"

check "eval --json" "$OCELOT" eval "$TMP/a.ocm" --data "idx:$D" --json --predictions "$TMP/pred.csv"
cp "$TMP/last.out" "$TMP/eval.json"
acc=$($PY -c "import json; print(json.load(open('$TMP/eval.json'))['accuracy'])")
$PY -c "import sys; sys.exit(0 if $acc > 0.8 else 1)" && pass "learns the tiny task (accuracy $acc)" || fail "learns the tiny task" "accuracy $acc"
if $PY - "$TMP/eval.json" "$TMP/pred.csv" <<'PY'
import csv, json, sys
import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
j = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2])))
y = np.array([int(r["label"]) for r in rows]); p = np.array([int(r["predicted"]) for r in rows])
K = len(j["classes"])
assert len(rows) == j["count"] == 96, (len(rows), j["count"])
pr, rc, f1, sup = precision_recall_fscore_support(y, p, labels=range(K), zero_division=0)
for i, c in enumerate(j["per_class"]):
    for key, ref in (("precision", pr[i]), ("recall", rc[i]), ("f1", f1[i])):
        assert abs(c[key] - ref) < 1e-9, (i, key, c[key], ref)
    assert c["support"] == sup[i]
for avg in ("macro", "weighted"):
    ref = precision_recall_fscore_support(y, p, labels=range(K), average=avg, zero_division=0)
    for n, key in enumerate(("precision", "recall", "f1")):
        assert abs(j[avg + "_avg"][key] - ref[n]) < 1e-9, (avg, key)
assert (np.array(j["confusion_matrix"]) == confusion_matrix(y, p, labels=range(K))).all()
assert abs(j["accuracy"] - accuracy_score(y, p)) < 1e-12
print("sklearn agrees")
PY
then pass "eval --json equals scikit-learn on the same predictions"; else fail "eval --json equals scikit-learn"; fi
check "eval --first 10" "$OCELOT" eval "$TMP/a.ocm" --data "idx:$D" --first 10 --json
$PY -c "import json,sys; sys.exit(0 if json.load(open('$TMP/last.out'))['count'] == 10 else 1)" \
    && pass "--first scores exactly 10 images" || fail "--first scores exactly 10 images"
check_fails "eval --first 0" "$OCELOT" eval "$TMP/a.ocm" --data "idx:$D" --first 0
check "eval text report" "$OCELOT" eval "$TMP/a.ocm" --data "idx:$D"
grep -q "precision" "$TMP/last.out" && pass "text has the classification report" || fail "text report" "$(head -5 "$TMP/last.out")"
check "eval --report --tta" "$OCELOT" eval "$TMP/a.ocm" --data "idx:$D" --report "$TMP/r.html" --tta
grep -q "<svg" "$TMP/r.html" && pass "HTML report has charts" || fail "HTML report has charts"

# the speed-run recipe on the tiny data (grey, stretched to 25x25, the least airnet takes): it
# trains, records itself, and eval runs airbench's six-view TTA
R=(--data "idx:$D" --recipe cifar10-fast --input 25x25x1 --batch 32 --lr 0.05 --epochs 2
   --limit 128 --seed 1 --threads 2 --workers 1 --quiet)
check "train --recipe cifar10-fast" "$OCELOT" train "${R[@]}" --out "$TMP/fast.ocm"
head -c 65536 "$TMP/fast.ocm" | grep -a -q '\\"recipe\\":\\"cifar10-fast\\"' \
    && pass "the model records the recipe" || fail "the model records the recipe"
# the recipe validates only at the end (val_every 10): epoch 1's validation cells are empty
awk -F, 'NR == 2 && $4 == "" && $5 == "" { e = 1 } NR == 3 && $5 != "" { l = 1 } END { exit !(e && l) }' \
    "$TMP/fast.ocm.csv" && pass "--val-every: skipped epochs leave empty cells, the last is validated" \
    || fail "--val-every: skipped epochs leave empty cells, the last is validated" "$(cat "$TMP/fast.ocm.csv")"
check_fails "train --val-every 0" "$OCELOT" train "${R[@]}" --val-every 0 --out "$TMP/x.ocm"
check "eval --tta=2" "$OCELOT" eval "$TMP/fast.ocm" --data "idx:$D" --tta=2
grep -q "flip + shift TTA" "$TMP/last.out" && pass "six-view TTA named" || fail "six-view TTA named" "$(head -2 "$TMP/last.out")"
check_fails "eval --tta=3" "$OCELOT" eval "$TMP/fast.ocm" --data "idx:$D" --tta=3
check_fails "train --recipe nope" "$OCELOT" train --data "idx:$D" --recipe nope --out "$TMP/x.ocm"
"$OCELOT" train --help | grep -q "cifar10-fast" && pass "train --help lists the recipes" || fail "train --help lists the recipes"
# freeze-after: with a constant rate and no lookahead, 1 and 2 epochs of the same run share
# epoch 1; after it whiten.bias stays, the rest moves on; the data-set whitening weight is frozen
F=("${R[@]}" --schedule constant --lookahead 0 --freeze-after whiten.bias:1 --keep last)
check "train 1 epoch, freeze-after" "$OCELOT" train "${F[@]}" --epochs 1 --out "$TMP/f1.ocm"
check "train 2 epochs, freeze-after" "$OCELOT" train "${F[@]}" --epochs 2 --out "$TMP/f2.ocm"
if $PY - "$TMP/f1.ocm" "$TMP/f2.ocm" <<'PY'
import json, struct, sys
def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    h = json.loads(data[8:8 + n])
    return {k: data[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]
            for k, t in h.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a["whiten.bias"] == b["whiten.bias"], "whiten.bias moved after its epoch"
assert a["whiten.weight"] == b["whiten.weight"], "the frozen whitening weight moved"
assert a["head.weight"] != b["head.weight"], "head.weight did not train in epoch 2"
assert a["layers.0.norm1.weight"] == b["layers.0.norm1.weight"], "a frozen batch-norm scale moved"
PY
then pass "freeze-after and frozen tensors hold"; else fail "freeze-after and frozen tensors hold"; fi
check_fails "train --freeze-after nope:1" "$OCELOT" train "${R[@]}" --freeze-after nope:1 --out "$TMP/x.ocm"

# determinism: the same seed and threads give the same bits
# bf16 training (AVX512_BF16 CPUs): learns the task like fp32, records bf16 in the model's
# training info, and the saved model evaluates (in fp32)
if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then
    check "train --precision bf16" "$OCELOT" train "${T[@]}" --precision bf16 --out "$TMP/bf.ocm"
    check "bf16 model evaluates" "$OCELOT" eval "$TMP/bf.ocm" --data "idx:$D" --json
    bacc=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['accuracy'])" "$TMP/last.out" 2>/dev/null || echo 0)
    $PY -c "import sys; sys.exit(0 if $bacc > 0.8 and abs($bacc - $acc) < 0.1 else 1)" \
        && pass "bf16 learns the tiny task like fp32 ($bacc vs $acc)" || fail "bf16 learns like fp32" "$bacc vs $acc"
    check "the model records bf16 training" $PY - "$TMP/bf.ocm" <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
meta = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])["__metadata__"]
assert json.loads(meta["training"])["config"]["precision"] == "bf16", meta["training"]
PY
else
    "$OCELOT" train "${T[@]}" --precision bf16 --out "$TMP/bf.ocm" > "$TMP/p.out" 2>&1
    rc=$?
    [ $rc = 2 ] && grep -q "AVX512_BF16" "$TMP/p.out" && pass "bf16 without AVX512_BF16: exit 2" \
        || fail "bf16 without AVX512_BF16" "rc=$rc $(cat "$TMP/p.out")"
fi

check "train again, same seed" "$OCELOT" train "${T[@]}" --out "$TMP/b.ocm"
check "same seed, same weights" $PY tests/e2e/same_weights.py "$TMP/a.ocm.ckpt" "$TMP/b.ocm.ckpt"

# Interrupted runs, against an uninterrupted one of the same configuration (batch 8, 30 epochs:
# long enough that the interruptions land mid-run even on a fast machine)
T8=("${T[@]}" --batch 8 --epochs 30)
t0=$(date +%s%N)
check "train batch 8 uninterrupted" "$OCELOT" train "${T8[@]}" --out "$TMP/u.ocm"
run_ms=$((($(date +%s%N) - t0) / 1000000))

# kill -9 at a random step after the first checkpoint, then --resume: same final weights. The
# kill comes within the first half of the uninterrupted run's time after that checkpoint (the
# end of epoch 1 of 30), so it lands mid-run however fast the machine trains.
"$OCELOT" train "${T8[@]}" --out "$TMP/k.ocm" &
PID=$!
for _ in $(seq 400); do [ -s "$TMP/k.ocm.ckpt" ] && break; sleep 0.02; done
delay_ms=$((RANDOM % (run_ms / 2 + 1)))
sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
if kill -9 $PID 2>/dev/null; then pass "killed -9 while training"; else fail "killed -9 while training" "the run had already ended: make it longer"; fi
wait $PID 2>/dev/null
if [ -s "$TMP/k.ocm.ckpt" ]; then
    check "resume after kill -9" "$OCELOT" train --resume "$TMP/k.ocm.ckpt" --out "$TMP/k.ocm" --threads 2 --quiet
    check "kill -9 + resume = uninterrupted (checkpoint)" $PY tests/e2e/same_weights.py "$TMP/u.ocm.ckpt" "$TMP/k.ocm.ckpt"
    check "kill -9 + resume = uninterrupted (best model)" $PY tests/e2e/same_weights.py "$TMP/u.ocm" "$TMP/k.ocm"
else
    fail "a checkpoint existed before kill -9"
fi

# SIGINT mid-epoch: checkpoint of the exact position, exit 130, resume completes identically
# (bash starts background jobs with SIGINT ignored; ocelot installs its own handler)
"$OCELOT" train "${T8[@]}" --out "$TMP/s.ocm" > "$TMP/sig.out" 2>&1 &
PID=$!
for _ in $(seq 400); do [ -s "$TMP/s.ocm.ckpt" ] && break; sleep 0.02; done
kill -INT $PID; wait $PID; rc=$?
[ $rc = 130 ] && pass "SIGINT exits 130 after checkpointing" || fail "SIGINT exits 130" "rc=$rc $(tail -2 "$TMP/sig.out")"
grep -q "stopped at epoch" "$TMP/sig.out" && pass "SIGINT message says where it stopped" || fail "SIGINT message" "$(tail -2 "$TMP/sig.out")"
check "resume after SIGINT" "$OCELOT" train --resume "$TMP/s.ocm.ckpt" --out "$TMP/s.ocm" --threads 2 --quiet
check "SIGINT + resume = uninterrupted" $PY tests/e2e/same_weights.py "$TMP/s.ocm.ckpt" "$TMP/u.ocm.ckpt"

# limit, EMA, label smoothing, mixup, adamw and a step schedule run and learn
check "train --limit --ema --label-smoothing --augment mixup" "$OCELOT" train --data "idx:$D" \
    --model "$NET" --epochs 3 --batch 16 --limit 120 --ema 0.9 --label-smoothing 0.1 \
    --augment "flip,mixup:0.2" --optimizer adamw --schedule step --quiet --out "$TMP/l.ocm"

# a folder dataset without a test split: the recorded 20% split is what eval scores
mkdir -p "$TMP/folder"
$PY - "$TMP/folder" <<'PY'
import os, struct, sys, zlib
def png(path, w, h, rgb):
    raw = b"".join(b"\0" + bytes(rgb) * w for _ in range(h))
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for c, rgb in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
    os.makedirs(os.path.join(sys.argv[1], c), exist_ok=True)
    for i in range(20):
        png(os.path.join(sys.argv[1], c, f"{i}.png"), 10 + i, 12, [max(0, v - 3 * i) for v in rgb])
PY
check "train on a folder (80/20 split)" "$OCELOT" train --data "folder:$TMP/folder" --model "$NET" \
    --input 12x12x3 --epochs 2 --batch 8 --quiet --out "$TMP/f.ocm"
check "eval scores the held-out part" "$OCELOT" eval "$TMP/f.ocm" --data "folder:$TMP/folder" --json
$PY -c "import json,sys; sys.exit(0 if json.load(open('$TMP/last.out'))['count'] == 8 else 1)" \
    && pass "held-out part is 8 of 40 images" || fail "held-out part is 8 of 40" "$(head -c 200 "$TMP/last.out")"
check "predict a folder" "$OCELOT" predict "$TMP/f.ocm" "$TMP/folder" --top 2 --csv
[ "$(awk -F, '$2 == 1' "$TMP/last.out" | wc -l)" = 40 ] && pass "40 images predicted" || fail "40 images predicted"

# a CIFAR-10 model classifies every decodable photo: grey, RGBA, 1x1 and 4638x3072 included
check "init a CIFAR-10 model" "$OCELOT" init --model resnet20 --classes 10 \
    --class-names airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck --out "$TMP/c10.ocm"
check "predict every shared photo" "$OCELOT" predict "$TMP/c10.ocm" "$SHARED/data/photos" --json
n_photos=$(ls "$SHARED/data/photos" | grep -c -i -E '\.(jpe?g|png)$')
$PY -c "import json,sys; j=json.load(open('$TMP/last.out')); sys.exit(0 if len(j) == $n_photos and all(len(r['predictions']) == 5 for r in j) else 1)" \
    && pass "all $n_photos photos classified" || fail "all photos classified" "$(head -c 300 "$TMP/last.out")"
printf 'not a jpeg' > "$TMP/bad.jpg"
"$OCELOT" predict "$TMP/c10.ocm" "$SHARED/data/photos/cat_chelsea.png" "$TMP/bad.jpg" > "$TMP/p.out" 2> "$TMP/p.err"
rc=$?
[ $rc = 3 ] && grep -q "bad.jpg" "$TMP/p.err" && grep -q "cat_chelsea" "$TMP/p.out" \
    && pass "a corrupt file is reported and skipped, exit 3" || fail "corrupt file in predict" "rc=$rc $(cat "$TMP/p.err")"

# bad input: clear messages, non-zero exits, no crash
check_fails "train without --data" "$OCELOT" train --out "$TMP/x.ocm"
check_fails "train a missing directory" "$OCELOT" train --data "idx:$TMP/nothing" --out "$TMP/x.ocm"
check_fails "train an unknown model" "$OCELOT" train --data "idx:$D" --model resnet999 --out "$TMP/x.ocm"
check_fails "train a bad flag" "$OCELOT" train --data "idx:$D" --epochs zero
"$OCELOT" train --data "idx:$D" --precision fp64 --out "$TMP/x.ocm" > "$TMP/p.out" 2>&1
rc=$?
[ $rc = 2 ] && grep -q "fp32 or bf16" "$TMP/p.out" && pass "an unknown --precision is a usage error (exit 2)" \
    || fail "unknown --precision" "rc=$rc $(cat "$TMP/p.out")"
check_fails "resume a corrupt checkpoint" "$OCELOT" train --resume tests/e2e/tiny_net.json --out "$TMP/x.ocm"
check_fails "a loss that diverges stops with a message" "$OCELOT" train --data "idx:$D" \
    --model "$NET" --epochs 2 --lr 1e6 --optimizer sgd --quiet --out "$TMP/nan.ocm"
grep -q -E "NaN|infinite" "$TMP/last.out" && pass "divergence message names NaN" || fail "divergence message" "$(tail -2 "$TMP/last.out")"
check_fails "eval a missing model" "$OCELOT" eval "$TMP/none.ocm" --data "idx:$D"
check_fails "eval with the wrong class count" "$OCELOT" eval "$TMP/f.ocm" --data "idx:$D"
finish
