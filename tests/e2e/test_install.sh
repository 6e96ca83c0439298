#!/usr/bin/env bash
# The installed library as a user gets it: `make install` into a temporary prefix, then
# examples/classify.c built against the INSTALLED header, shared library and static archive via
# pkg-config, run on a model made by the installed `ocelot`. Also the soname, the exported
# symbols, DESTDIR staging and `make uninstall`.
source "$(dirname "$0")/lib.sh"
PREFIX=$TMP/prefix
BUILD_DIR=${OC_BUILD:-build}
CIFAR_CLASSES=airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck
CAT=$SHARED/data/photos/cat_chelsea.png
CC=${CC:-cc}

# reuses the build the test runner made (only relinks/rebuilds what is out of date)
check "make install PREFIX=tmp" make -s -j2 BUILD="$BUILD_DIR" install PREFIX="$PREFIX"

L=$PREFIX/lib
installed_files() {
    [ -f "$L/libocelot.so.0.1.0" ] && [ ! -L "$L/libocelot.so.0.1.0" ] || { echo "no real $L/libocelot.so.0.1.0"; return 1; }
    [ "$(readlink "$L/libocelot.so.0")" = libocelot.so.0.1.0 ] || { echo "libocelot.so.0 -> $(readlink "$L/libocelot.so.0")"; return 1; }
    [ "$(readlink -f "$L/libocelot.so")" = "$(readlink -f "$L/libocelot.so.0.1.0")" ] || { echo "libocelot.so dangles"; return 1; }
    [ -f "$L/libocelot.a" ] && [ -f "$PREFIX/include/ocelot.h" ] && [ -x "$PREFIX/bin/ocelot" ] &&
        [ -f "$L/pkgconfig/ocelot.pc" ] || { ls -lR "$PREFIX"; return 1; }
    cmp -s include/ocelot.h "$PREFIX/include/ocelot.h" || { echo "installed header differs"; return 1; }
}
check "installed: .so.0.1.0, .so.0 and .so links, .a, header, binary, .pc" installed_files

soname_is() {
    local got
    got=$(readelf -d "$L/libocelot.so.0.1.0" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$got" = libocelot.so.0 ] || { echo "SONAME '$got', want libocelot.so.0"; return 1; }
}
check "SONAME is libocelot.so.0" soname_is

# -fvisibility=hidden + OC_API: the shared library exports the public API and nothing else
only_oc_exported() {
    local bad n
    n=$(nm -D --defined-only "$L/libocelot.so.0.1.0" | awk '$2 ~ /^[TDBRVW]$/' | wc -l)
    bad=$(nm -D --defined-only "$L/libocelot.so.0.1.0" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
          grep -v '^oc_' | head -n 5)
    [ "$n" -gt 50 ] && [ -z "$bad" ] || { echo "$n exported; not oc_: $bad"; return 1; }
}
check "the .so exports only oc_* symbols" only_oc_exported

export PKG_CONFIG_PATH=$L/pkgconfig
pc_fields() {
    [ "$(pkg-config --modversion ocelot)" = 0.1.0 ] || { echo "modversion $(pkg-config --modversion ocelot)"; return 1; }
    [ "$(pkg-config --variable=prefix ocelot)" = "$PREFIX" ] || { echo "prefix $(pkg-config --variable=prefix ocelot)"; return 1; }
    pkg-config --cflags ocelot | grep -q -- "-I$PREFIX/include" || { pkg-config --cflags ocelot; return 1; }
    pkg-config --libs ocelot | grep -q -- "-L$L -locelot" || { pkg-config --libs ocelot; return 1; }
    pkg-config --static --libs ocelot | grep -q -- '-lmicrohttpd' || { pkg-config --static --libs ocelot; return 1; }
}
check "pkg-config: version, prefix, Cflags, Libs, static Libs" pc_fields

EX_CFLAGS="-std=c11 -O1 -Wall -Wextra -Werror"
# shellcheck disable=SC2046,SC2086
check "example builds against the installed shared library" \
    $CC $EX_CFLAGS $(pkg-config --cflags ocelot) examples/classify.c -o "$TMP/classify" \
    $(pkg-config --libs ocelot)
# The static link takes libocelot.a explicitly (-l:libocelot.a) and the private dependencies from
# `pkg-config --static`: Debian has no libcjson.a, so a fully -static binary is not possible.
static_libs=$(pkg-config --static --libs ocelot | sed 's/-locelot\b/-l:libocelot.a/')
# shellcheck disable=SC2086
check "example builds against the installed static archive (pkg-config --static)" \
    $CC $EX_CFLAGS $(pkg-config --cflags ocelot) examples/classify.c -o "$TMP/classify_static" \
    $static_libs

links() { # BINARY yes|no: whether it needs libocelot.so.0
    local has=no
    [ -x "$1" ] || { echo "no $1"; return 1; }
    readelf -d "$1" | grep -q 'NEEDED.*\[libocelot\.so\.0\]' && has=yes
    [ "$has" = "$2" ] || { readelf -d "$1" | grep NEEDED; return 1; }
}
check "shared example needs libocelot.so.0" links "$TMP/classify" yes
check "static example does not" links "$TMP/classify_static" no
resolves_to_prefix() {
    LD_LIBRARY_PATH=$L ldd "$TMP/classify" | grep -q "libocelot.so.0 => $L/libocelot.so.0" ||
        { LD_LIBRARY_PATH=$L ldd "$TMP/classify"; return 1; }
}
check "shared example loads the installed library" resolves_to_prefix

check "installed ocelot writes a model" "$PREFIX/bin/ocelot" init --model resnet20 --classes 10 \
    --class-names $CIFAR_CLASSES --out "$TMP/m.ocm"

top5_ok() { # FILE: five ranked lines "N. label  P%", labels distinct CIFAR classes, P descending
    awk -v names="$CIFAR_CLASSES" '
        BEGIN { n = split(names, a, ","); for (i = 1; i <= n; i++) ok[a[i]] = 1 }
        /^[0-9]+\. / { rows++; rank = $1 + 0; p = $3; sub(/%/, "", p); p += 0
                       if (rank != rows || !($2 in ok) || seen[$2]++ || p < 0 || p > 100 ||
                           (rows > 1 && p > prev + 1e-9)) bad = 1
                       prev = p; sum += p }
        END { exit !(rows == 5 && !bad && sum <= 100.01) }' "$1" || { cat "$1"; return 1; }
}
run_example() { # BINARY OUT [env...]
    local bin=$1 out=$2; shift 2
    env "$@" "$bin" "$TMP/m.ocm" "$CAT" > "$out" 2> "$out.err" || { cat "$out.err"; return 1; }
    top5_ok "$out"
}
check "shared example prints the top 5 with class names" \
    run_example "$TMP/classify" "$TMP/shared.out" LD_LIBRARY_PATH="$L"
check "static example prints the top 5 with class names" \
    run_example "$TMP/classify_static" "$TMP/static.out"
check "shared and static examples agree" cmp "$TMP/shared.out" "$TMP/static.out"

# the same labels and percentages as `ocelot predict` on the same model and image
agrees_with_cli() {
    "$PREFIX/bin/ocelot" predict "$TMP/m.ocm" "$CAT" --top 5 > "$TMP/cli.out" || return 1
    diff <(awk '/^ *[0-9]+\. / {print $1, $2, $3}' "$TMP/cli.out") \
         <(awk '/^[0-9]+\. / {print $1, $2, $3}' "$TMP/shared.out")
}
check "example agrees with ocelot predict" agrees_with_cli

fails_with() { # PATTERN CMD...: exits 1 (not a crash), says PATTERN on stderr, prints nothing
    local pat=$1 rc; shift
    "$@" > "$TMP/f.out" 2> "$TMP/f.err"; rc=$?
    [ "$rc" -eq 1 ] && grep -q -- "$pat" "$TMP/f.err" && [ ! -s "$TMP/f.out" ] ||
        { echo "rc=$rc stderr: $(cat "$TMP/f.err") stdout: $(head -c 200 "$TMP/f.out")"; return 1; }
}
export LD_LIBRARY_PATH=$L
check "missing image: clean error" \
    fails_with "cannot classify '$TMP/nope.png'" "$TMP/classify" "$TMP/m.ocm" "$TMP/nope.png"
head -c 3000 "$CAT" > "$TMP/trunc.png"
check "truncated image: clean error" \
    fails_with "cannot classify" "$TMP/classify" "$TMP/m.ocm" "$TMP/trunc.png"
head -c "$(($(stat -c %s "$TMP/m.ocm") / 2))" "$TMP/m.ocm" > "$TMP/trunc.ocm"
check "truncated model: clean error" \
    fails_with "cannot load model '$TMP/trunc.ocm'" "$TMP/classify" "$TMP/trunc.ocm" "$CAT"
head -c 4096 /dev/urandom > "$TMP/garbage.ocm"
check "garbage model: clean error" \
    fails_with "cannot load model" "$TMP/classify_static" "$TMP/garbage.ocm" "$CAT"
check "missing model: clean error" \
    fails_with "cannot load model" "$TMP/classify" "$TMP/none.ocm" "$CAT"
check_fails "no arguments: usage error" "$TMP/classify"
unset LD_LIBRARY_PATH

# packagers stage with DESTDIR: files land under it, the .pc names the real prefix
staged() {
    make -s BUILD="$BUILD_DIR" install DESTDIR="$TMP/stage" PREFIX=/opt/ocelot > /dev/null || return 1
    [ -f "$TMP/stage/opt/ocelot/lib/libocelot.so.0.1.0" ] || { find "$TMP/stage"; return 1; }
    grep -qx 'prefix=/opt/ocelot' "$TMP/stage/opt/ocelot/lib/pkgconfig/ocelot.pc" ||
        { cat "$TMP/stage/opt/ocelot/lib/pkgconfig/ocelot.pc"; return 1; }
}
check "DESTDIR staging keeps the real prefix in ocelot.pc" staged

uninstalled() {
    make -s BUILD="$BUILD_DIR" uninstall PREFIX="$PREFIX" || return 1
    local left
    left=$(find "$PREFIX" \( -type f -o -type l \) | head -n 5)
    [ -z "$left" ] || { echo "left behind: $left"; return 1; }
}
check "make uninstall removes every installed file" uninstalled
finish
