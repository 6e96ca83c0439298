#!/usr/bin/env bash
# Load benchmark of `ocelot serve`: wrk POSTs a real CIFAR-10 image (32x32 PNG) to
# /predictions/{model} from CONNECTIONS connections for DURATION seconds and reports p50 / p99
# latency, requests/s and errors; then keeps the load on until TOTAL requests have been served
# and compares the server's resident memory (VmRSS) before and after (target: within 5%).
#
#   bench/serve_load.sh [MODEL.ocm]       default: an untrained CIFAR-10 resnet20 (ocelot init)
#
# Environment: OCELOT (binary, default build/ocelot), CONNECTIONS (64), DURATION (60 s),
# WARMUP (10 s, before the "before" memory reading), TOTAL (100000), WRK_THREADS (2),
# WRK_TIMEOUT (10s), SERVE_ARGS (extra `ocelot serve` options, e.g. "--threads 2"),
# BENCH_IMAGE (a PNG/JPEG body instead of the first image of the CIFAR-10 training set).
# Needs wrk, curl and python3 (standard library only, to write the PNG).
#
# bench/serve_batching.sh sources this file for its helpers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OCELOT=${OCELOT:-$PWD/build/ocelot}
SHARED=${SHARED:-$PWD/../shared}
CIFAR_CLASSES=airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck
WRK_THREADS=${WRK_THREADS:-2}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
BT=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2> /dev/null || true; wait "$SERVER_PID" 2> /dev/null || true; fi
    rm -rf "$BT"
}
trap cleanup EXIT

need() { command -v "$1" > /dev/null || { echo "bench: needs $1 (apt-get install $2)" >&2; exit 2; }; }
need wrk wrk
need curl curl
[ -x "$OCELOT" ] || { echo "bench: no ocelot binary at $OCELOT (make, or set OCELOT)" >&2; exit 2; }

# make_image OUT: the body every request sends. The first image of CIFAR-10's first training batch
# as a 32x32 RGB PNG (the binary record is a label byte, then 1024 R, 1024 G, 1024 B bytes).
make_image() {
    if [ -n "${BENCH_IMAGE:-}" ]; then cp "$BENCH_IMAGE" "$1"; return; fi
    local tarball=$SHARED/data/cifar10/cifar10-bin.tar.xz
    [ -f "$tarball" ] || { echo "bench: no $tarball; set BENCH_IMAGE" >&2; exit 2; }
    # data_batch_4.bin is the archive's first member; head closes the pipe after one record
    (tar -xJOf "$tarball" cifar-10-batches-bin/data_batch_4.bin 2> /dev/null || true) |
        head -c 3073 > "$BT/record.bin"
    [ "$(stat -c %s "$BT/record.bin")" -eq 3073 ] || { echo "bench: cannot read $tarball" >&2; exit 2; }
    python3 - "$BT/record.bin" "$1" << 'EOF'
import struct, sys, zlib
d = open(sys.argv[1], 'rb').read()[1:]
px = lambda y, x: bytes((d[y * 32 + x], d[1024 + y * 32 + x], d[2048 + y * 32 + x]))
raw = b''.join(b'\0' + b''.join(px(y, x) for x in range(32)) for y in range(32))
chunk = lambda t, b: struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b))
open(sys.argv[2], 'wb').write(b'\x89PNG\r\n\x1a\n' +
    chunk(b'IHDR', struct.pack('>IIBBBBB', 32, 32, 8, 2, 0, 0, 0)) +
    chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b''))
EOF
}

# make_model OUT [MODEL]: a copy of MODEL, or an untrained CIFAR-10 resnet20
make_model() {
    if [ -n "${2:-}" ]; then cp "$2" "$1"; return; fi
    "$OCELOT" init --model resnet20 --input 32x32x3 --classes 10 --class-names $CIFAR_CLASSES \
        --out "$1" > /dev/null
}

# start_server MODEL [serve options...]: sets SERVER_PID and URL; the model is named "bench"
start_server() {
    local model=$1 port=; shift
    # shellcheck disable=SC2086
    "$OCELOT" serve "bench=$model" --port 0 --quiet ${SERVE_ARGS:-} "$@" 2> "$BT/serve.err" &
    SERVER_PID=$!
    for _ in $(seq 200); do
        port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$BT/serve.err")
        [ -n "$port" ] && break
        kill -0 "$SERVER_PID" 2> /dev/null || break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "bench: the server did not start: $(cat "$BT/serve.err")" >&2; exit 1; }
    URL=http://127.0.0.1:$port
    curl -sf -o /dev/null -H 'Content-Type: image/png' --data-binary @"$BT/body.png" \
        "$URL/predictions/bench" || { echo "bench: a first prediction failed" >&2; exit 1; }
}

stop_server() {
    kill -TERM "$SERVER_PID" 2> /dev/null || true
    wait "$SERVER_PID" 2> /dev/null || true
    SERVER_PID=
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status"; }

# served: prediction requests the server has answered (its /metrics counter, every status)
served() {
    curl -sf "$URL/metrics" |
        awk '/^ocelot_http_requests_total\{route="predictions"/ {n += $2} END {printf "%d\n", n}'
}
# mean images per forward pass so far
mean_batch() {
    curl -sf "$URL/metrics" |
        awk '/^ocelot_batch_size_sum/ {s = $2} /^ocelot_batch_size_count/ {c = $2}
             END {printf "%.2f\n", c ? s / c : 0}'
}

# The wrk script: POST the image body to the model
write_lua() {
    cat > "$BT/post.lua" << EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
local f = assert(io.open("$BT/body.png", "rb"))
wrk.body = f:read("*a")
f:close()
EOF
}

# run_wrk CONNECTIONS SECONDS OUT [--latency]
run_wrk() {
    local c=$1 d=$2 out=$3 t=$WRK_THREADS; shift 3
    [ "$t" -le "$c" ] || t=$c
    wrk -t"$t" -c"$c" -d"${d}s" --timeout "$WRK_TIMEOUT" "$@" -s "$BT/post.lua" \
        "$URL/predictions/bench" > "$out" 2>&1 || { cat "$out" >&2; return 1; }
}

# Fields of a wrk report (units as wrk prints them: "12.34ms", "1.02s")
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
wrk_requests() { awk '/ requests in / {print $1}' "$1"; }
wrk_pct() { awk -v p="$2%" '$1 == p {print $2}' "$1"; }
wrk_non2xx() { awk '/Non-2xx or 3xx responses:/ {n = $NF} END {print n + 0}' "$1"; }
wrk_sockerr() {
    awk '/Socket errors:/ {gsub(",", ""); n = $4 + $6 + $8 + $10} END {print n + 0}' "$1"
}

median() { sort -g | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : "nan"}'; }

serve_load_main() {
    local conns=${CONNECTIONS:-64} dur=${DURATION:-60} warm=${WARMUP:-10} total=${TOTAL:-100000}
    local rss_idle rss_before rss_after hwm n rps errors=0 soak=0 chunk
    make_image "$BT/body.png"
    make_model "$BT/model.ocm" "${1:-}"
    write_lua
    start_server "$BT/model.ocm"
    echo "ocelot serve load benchmark: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
    echo "model: ${1:-untrained resnet20 (CIFAR-10)}; body: $(stat -c %s "$BT/body.png")-byte 32x32 PNG"
    echo "wrk: $conns connections, $WRK_THREADS threads, ${dur}s; server pid $SERVER_PID ${SERVE_ARGS:-}"
    rss_idle=$(rss_kb)

    run_wrk "$conns" "$warm" "$BT/warm.txt"
    rss_before=$(rss_kb)

    run_wrk "$conns" "$dur" "$BT/main.txt" --latency
    echo
    sed -n '/Latency Distribution/,/requests in/p' "$BT/main.txt" | sed 's/^/  /'
    echo

    # keep the same load on until TOTAL requests have been served
    n=$(served)
    rps=$(wrk_rps "$BT/main.txt")
    while [ "$n" -lt "$total" ]; do
        chunk=$(awk -v r="$((total - n))" -v s="$rps" \
                    'BEGIN {d = int(r / (s > 1 ? s : 1) * 1.05) + 1; print (d > 300 ? 300 : d)}')
        run_wrk "$conns" "$chunk" "$BT/soak.txt"
        soak=$((soak + $(wrk_requests "$BT/soak.txt")))
        errors=$((errors + $(wrk_non2xx "$BT/soak.txt") + $(wrk_sockerr "$BT/soak.txt")))
        n=$(served)
    done
    rss_after=$(rss_kb)
    hwm=$(hwm_kb)

    echo "== summary"
    printf '  %-34s %s\n' "requests/s (${dur}s, $conns conns)" "$(wrk_rps "$BT/main.txt")"
    printf '  %-34s %s\n' "latency p50" "$(wrk_pct "$BT/main.txt" 50)"
    printf '  %-34s %s\n' "latency p99" "$(wrk_pct "$BT/main.txt" 99)"
    printf '  %-34s %s\n' "requests in the timed run" "$(wrk_requests "$BT/main.txt")"
    printf '  %-34s %s non-2xx, %s socket errors\n' "errors in the timed run" \
        "$(wrk_non2xx "$BT/main.txt")" "$(wrk_sockerr "$BT/main.txt")"
    printf '  %-34s %s\n' "mean images per forward pass" "$(mean_batch)"
    printf '  %-34s %s (soak: %s requests, %s errors)\n' "prediction requests served" "$n" \
        "$soak" "$errors"
    printf '  %-34s %s KiB idle, %s KiB after %ss warm-up\n' "VmRSS before" "$rss_idle" \
        "$rss_before" "$warm"
    printf '  %-34s %s KiB (peak VmHWM %s KiB)\n' "VmRSS after $n requests" "$rss_after" "$hwm"
    awk -v a="$rss_before" -v b="$rss_after" 'BEGIN {
        d = (b - a) * 100 / a
        printf "  %-34s %+.2f%% %s\n", "VmRSS change (after warm-up)", d,
               (d <= 5 && d >= -5) ? "(within the 5% target)" : "(OUTSIDE the 5% target)" }'
    stop_server
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    serve_load_main "$@"
fi
