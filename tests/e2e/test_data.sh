#!/usr/bin/env bash
# ocelot data info / preview / bench / fetch, driven as a user would.
source "$(dirname "$0")/lib.sh"
PHOTOS="$SHARED/data/photos"
CIFAR="$SHARED/data/cifar10/cifar10-bin.tar.xz"

# a small folder dataset with one corrupt file, built from the shared photos
mkdir -p "$TMP/f/cat" "$TMP/f/horse" "$TMP/empty"
cp "$PHOTOS/cat_chelsea.png" "$PHOTOS/cat_manasa.jpeg" "$TMP/f/cat/"
cp "$PHOTOS/horse_darknet_horses.jpg" "$PHOTOS/awkward_rgba_horse_silhouette.png" "$TMP/f/horse/"
echo "not an image" > "$TMP/f/horse/broken.jpg"

check "info --help" "$OCELOT" data info --help
check "info folder (text)" bash -c "'$OCELOT' data info folder:$TMP/f > $TMP/info.txt; [ \$? -eq 3 ] && grep -q 'unreadable 1' $TMP/info.txt && grep -q 'broken.jpg' $TMP/info.txt"
check "info folder --json" bash -c "'$OCELOT' data info folder:$TMP/f --json > $TMP/info.json; /usr/bin/python3 -c \"import json; d=json.load(open('$TMP/info.json')); assert d['count']==5 and d['num_classes']==2 and d['unreadable_count']==1, d\""
check "info csv photos" bash -c "'$OCELOT' data info csv:$PHOTOS/labels.csv --json | /usr/bin/python3 -c \"import json,sys; d=json.load(sys.stdin); assert d['count']==18 and d['image_sizes']['max_width']==4638, d['image_sizes']\""
check "info fashion-mnist" bash -c "'$OCELOT' data info fashion-mnist | grep -q '60000 train, 10000 test'"
check_fails "info empty folder" "$OCELOT" data info "folder:$TMP/empty"
check_fails "info bad spec" "$OCELOT" data info "nosuch:thing"
check "preview grid" "$OCELOT" data preview fashion-mnist --augment "crop:pad=4,flip,rotate:15,cutout:8" --out "$TMP/grid.png" --n 36
check "preview is a PNG" bash -c "head -c 8 '$TMP/grid.png' | od -An -tx1 | grep -q '89 50 4e 47'"
check "preview names a corrupt file" bash -c "if '$OCELOT' data preview folder:$TMP/f --out $TMP/g.png --n 5 > $TMP/p.log 2>&1; then exit 1; fi; grep -q broken.jpg $TMP/p.log"
rm "$TMP/f/horse/broken.jpg"
check "preview folder resized" "$OCELOT" data preview "folder:$TMP/f" --out "$TMP/grid2.png" --n 4 --size 48
check_fails "preview bad augment" "$OCELOT" data preview fashion-mnist --augment "blur:3" --out "$TMP/x.png"
check "bench fashion-mnist" bash -c "'$OCELOT' data bench fashion-mnist --augment crop:pad=4,flip --batch 128 --batches 50 | grep -q 'images/s'"
check "fetch --help" "$OCELOT" data fetch --help
# fetch from local files: the Debian Fashion-MNIST .gz files are repacked (md5 differs)
check_fails "fetch fashion-mnist refuses unofficial md5" "$OCELOT" data fetch fashion-mnist --from /usr/share/datasets/fashion-mnist --to "$TMP/dl"
check "fetch fashion-mnist --no-verify" bash -c "'$OCELOT' data fetch fashion-mnist --from /usr/share/datasets/fashion-mnist --to '$TMP/dl' --no-verify 2>&1 | grep -q '60000 train + 10000 test'"
check_fails "fetch without network fails cleanly" "$OCELOT" data fetch cifar10 --to "$TMP/net"
check_fails "fetch unknown dataset" "$OCELOT" data fetch imagenet
check "export 12 test images" "$OCELOT" data export fashion-mnist --n 12 --out "$TMP/export"
n_png=$(ls "$TMP/export" | grep -c '^[0-9]*_.*\.png$')
[ "$n_png" = 12 ] && pass "export wrote 12 INDEX_CLASS.png files" || fail "export file count" "$n_png"
[ "$(ls "$TMP/export" | sed 's/^[0-9]*_//' | sort -u | wc -l)" = 10 ] && pass "export covers every class" || fail "export covers every class"
check "exported PNG is 28x28 8-bit grey" python3 -c "
import glob, struct, sys
f = open(sorted(glob.glob('$TMP/export/*.png'))[0], 'rb').read()
w, h, depth, ctype = struct.unpack('>IIBB', f[16:26])
sys.exit(0 if f[:8] == b'\\x89PNG\\r\\n\\x1a\\n' and (w, h, depth, ctype) == (28, 28, 8, 0) else 1)"
check_fails "export without --out" "$OCELOT" data export fashion-mnist
check_fails "export test split of a folder without one" "$OCELOT" data export "folder:$TMP/export" --out "$TMP/x" --split test
if [ "${OC_SAN:-0}" != 1 ] && [ -f "$CIFAR" ]; then
    # the shared archive is not the official one and its test batch is JPEG-derived: refused
    # without --no-verify, accepted (with a warning) with it
    check_fails "fetch cifar10 refuses modified test batch" "$OCELOT" data fetch cifar10 --from "$CIFAR" --to "$TMP/c10"
    check "fetch cifar10 --no-verify" bash -c "'$OCELOT' data fetch cifar10 --from '$CIFAR' --to '$TMP/c10' --no-verify 2>&1 | tee $TMP/fetch.log | grep -q '50000 train + 10000 test' && grep -q 'test_batch.bin: md5' $TMP/fetch.log"
    check "bench cifar10 crop+flip" bash -c "'$OCELOT' data bench cifar10:$TMP/c10/cifar-10-batches-bin --augment crop:pad=4,flip --batch 128 | tee $TMP/bench.log | grep -q 'images/s'"
    cat "$TMP/bench.log" 2>/dev/null
fi
finish
