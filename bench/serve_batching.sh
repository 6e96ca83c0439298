#!/usr/bin/env bash
# What dynamic batching buys `ocelot serve`: the same wrk load (CONNECTIONS concurrent clients
# POSTing a 32x32 CIFAR-10 PNG) against a server that runs every request alone (--max-batch 1)
# and against servers that batch concurrent requests (--max-batch 32 with a 5 ms and a 2 ms
# window). The configurations are interleaved RUNS times (a fresh server each time, so a busy
# machine's noise spreads over all of them) and the median requests/s of each is compared.
#
#   bench/serve_batching.sh [MODEL.ocm]   default: an untrained CIFAR-10 resnet20
#
# Environment: OCELOT, CONNECTIONS (32), DURATION (20 s per run), WARMUP (3 s), RUNS (3),
# WRK_THREADS (2), SERVE_ARGS, BENCH_IMAGE: as for bench/serve_load.sh.
source "$(dirname "${BASH_SOURCE[0]}")/serve_load.sh"

CONFIGS=("--max-batch 1" "--max-batch 32 --max-delay-ms 5" "--max-batch 32 --max-delay-ms 2")

serve_batching_main() {
    local conns=${CONNECTIONS:-32} dur=${DURATION:-20} warm=${WARMUP:-3} runs=${RUNS:-3}
    local i r out
    make_image "$BT/body.png"
    make_model "$BT/model.ocm" "${1:-}"
    write_lua
    echo "ocelot serve batching benchmark: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
    echo "model: ${1:-untrained resnet20 (CIFAR-10)}; wrk: $conns connections, ${dur}s x $runs runs ${SERVE_ARGS:-}"
    printf '%-34s %4s %10s %10s %10s %8s %7s\n' "server options" run "req/s" "p50" "p99" \
        "errors" "batch"
    for r in $(seq "$runs"); do
        for i in "${!CONFIGS[@]}"; do
            # shellcheck disable=SC2086
            start_server "$BT/model.ocm" ${CONFIGS[$i]}
            run_wrk "$conns" "$warm" "$BT/warm.txt"
            out=$BT/run_${i}_$r.txt
            run_wrk "$conns" "$dur" "$out" --latency
            printf '%-34s %4s %10s %10s %10s %8s %7s\n' "${CONFIGS[$i]}" "$r" "$(wrk_rps "$out")" \
                "$(wrk_pct "$out" 50)" "$(wrk_pct "$out" 99)" \
                "$(($(wrk_non2xx "$out") + $(wrk_sockerr "$out")))" "$(mean_batch)"
            stop_server
        done
    done
    echo
    echo "== median requests/s over $runs runs"
    local base=
    for i in "${!CONFIGS[@]}"; do
        local med
        med=$(for r in $(seq "$runs"); do wrk_rps "$BT/run_${i}_$r.txt"; done | median)
        [ -n "$base" ] || base=$med
        printf '  %-34s %10s   x%s vs --max-batch 1\n' "${CONFIGS[$i]}" "$med" \
            "$(awk -v a="$med" -v b="$base" 'BEGIN {printf "%.2f", a / b}')"
    done
}

serve_batching_main "$@"
