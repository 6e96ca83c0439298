#!/usr/bin/python3
"""Inference: ocelot against PyTorch and ONNX Runtime, in one run, on the same models.

Batch-1 latency and large-batch throughput (eval mode, seeded random input) of
  resnet20     32x32x3,     10 classes, throughput batch 256
  mobilenetv2  224x224x3, 1000 classes, throughput batch 256
  resnet18     224x224x3, 1000 classes, throughput batch 8: the zoo's resnet18 is the CIFAR
               variant (3x3 stem, no early down-sampling), 54.5 GFLOP per 224x224 image, so a
               batch of 256 would take minutes per iteration on 2 cores
for `ocelot bench`, PyTorch (torch_zoo.py models, torch.set_num_threads, inference_mode) and ONNX
Runtime (onnxruntime-node, intraOpNumThreads = threads) on the PyTorch models exported by
export_onnx.py (opset 13) into a temporary directory. Each framework runs `--reps` times per
case (a fresh process each, in rotating order), each run `--iters` timed calls after `--warmup`;
a run's latency is its median call, and the tables give the median over runs. The batch-1 ratio
ocelot / ORT (> 1: ocelot slower) is the headline figure.

    /usr/bin/python3 bench/bench_infer.py [--quick] [--cases resnet20,mobilenetv2,resnet18]
        [--reps 3] [--threads 2] [--throughput-batch NAME=N,...] [--no-throughput]
        [--ocelot build/ocelot] [--json FILE]

Needs bench/node_modules (cd bench && npm install --ignore-scripts) and node on PATH.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import bench_train as bt

# name -> (input (h, w, c), classes, throughput batch)
CASES = {
    "resnet20": ((32, 32, 3), 10, 256),
    "mobilenetv2": ((224, 224, 3), 1000, 256),
    "resnet18": ((224, 224, 3), 1000, 8),
}


def run_ort(path, batch, hwc, threads, iters, warmup):
    h, w, c = hwc
    node = shutil.which("node")
    if not node:
        sys.exit("bench_infer: node is not on PATH (ONNX Runtime runs under node)")
    return bt.run_json([node, os.path.join(bt.HERE, "ort_latency.mjs"), path, "--shape",
                        "%d,%d,%d,%d" % (batch, c, h, w), "--threads", str(threads), "--iters",
                        str(iters), "--warmup", str(warmup), "--runs", "1"])


def latency_ms(fw, r):
    """A run's median call latency in ms."""
    return r["median_ms"] if fw == "ort" else r["latency_ms"]["p50"]


def measure(args, case, batch, iters, warmup, onnx_path):
    hwc, classes, _ = CASES[case]
    runs = {"ocelot": [], "torch": [], "ort": []}
    fws = ["ocelot", "torch", "ort"]
    for rep in range(args.reps):
        for fw in fws[rep % 3:] + fws[:rep % 3]:
            if fw == "ocelot":
                r = bt.run_ocelot(args.ocelot, case, "infer", batch, args.threads, iters, warmup,
                                  hwc, classes)
            elif fw == "torch":
                r = bt.run_torch(case, "infer", batch, args.threads, iters, warmup, hwc, classes,
                                 args.channels_last)
            else:
                r = run_ort(onnx_path, batch, hwc, args.threads, iters, warmup)
            runs[fw].append(r)
            print("  %-12s batch %-3d %-6s %9.2f ms  %8.1f img/s  %6.0f MiB" % (
                case, batch, fw, latency_ms(fw, r), r["images_per_s"], r["peak_rss_mib"]),
                flush=True)
    return runs


def parse_batches(text):
    out = {}
    for item in filter(None, (text or "").split(",")):
        name, _, n = item.partition("=")
        if name not in CASES or not n.isdigit() or int(n) < 1:
            sys.exit("bench_infer: --throughput-batch wants NAME=N with NAME in %s" %
                     ", ".join(CASES))
        out[name] = int(n)
    return out


def main():
    ap = argparse.ArgumentParser(description="ocelot vs PyTorch vs ONNX Runtime inference")
    ap.add_argument("--cases", default=",".join(CASES), help="default: %(default)s")
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a few minutes)")
    ap.add_argument("--reps", type=int, default=3, help="runs per framework and case (>= 3)")
    ap.add_argument("--iters", type=int, help="timed batch-1 calls per run (default 30, quick 10)")
    ap.add_argument("--warmup", type=int, help="untimed batch-1 calls per run (default 3, quick 1)")
    ap.add_argument("--tp-iters", type=int,
                    help="timed large-batch calls per run (default 3, quick 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--throughput-batch", metavar="NAME=N,...",
                    help="override throughput batches (defaults: resnet20=256, "
                         "mobilenetv2=256, resnet18=8)")
    ap.add_argument("--no-throughput", action="store_true", help="batch-1 latency only")
    ap.add_argument("--channels-last", action="store_true", help="PyTorch in channels_last")
    ap.add_argument("--ocelot", default=bt.default_ocelot(), help="the ocelot binary")
    ap.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            sys.exit("bench_infer: unknown case %r (known: %s)" % (c, ", ".join(CASES)))
    tp_batch = {c: CASES[c][2] for c in CASES}
    tp_batch.update(parse_batches(args.throughput_batch))
    iters = args.iters or (10 if args.quick else 30)
    tp_iters = args.tp_iters or (1 if args.quick else 3)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)

    print("inference, %d threads; %d runs per framework; batch 1: %d calls (+%d warm-up) per run; "
          "throughput: %d calls (+1 warm-up) per run" % (args.threads, args.reps, iters, warmup,
                                                          tp_iters))
    print(bt.machine_note(args.threads), flush=True)
    tmp = tempfile.mkdtemp(prefix="ocelot-onnx-")
    results = {}
    try:
        specs = ["%s:%dx%dx%d:%d" % ((c,) + CASES[c][0] + (CASES[c][1],)) for c in cases]
        p = subprocess.run([sys.executable, os.path.join(bt.HERE, "export_onnx.py"), tmp] + specs,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit("bench_infer: ONNX export failed:\n" + p.stderr[-2000:])
        paths = dict(zip(cases, p.stdout.split()))
        for c in cases:
            results[c] = {"latency": measure(args, c, 1, iters, warmup, paths[c])}
            if not args.no_throughput:
                results[c]["throughput"] = measure(args, c, tp_batch[c], tp_iters, 1, paths[c])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = lambda runs, fw, f: statistics.median(f(fw, r) for r in runs[fw])
    rows = []
    for c in cases:
        L = results[c]["latency"]
        o, t, x = (med(L, fw, latency_ms) for fw in ("ocelot", "torch", "ort"))
        rows.append([c, "%.2f" % o, "%.2f" % t, "%.2f" % x, "%.2fx" % (o / x), "%.2fx" % (o / t)])
    print("\nbatch-1 latency, ms (median over runs of each run's median call)")
    print(bt.fmt_table(["model", "ocelot", "torch", "ORT", "ocelot/ORT", "ocelot/torch"], rows))
    print("(latency ratios: < 1 means ocelot is faster)")
    if not args.no_throughput:
        rows = []
        ips = lambda fw, r: r["images_per_s"]
        for c in cases:
            T = results[c]["throughput"]
            o, t, x = (med(T, fw, ips) for fw in ("ocelot", "torch", "ort"))
            orss, trss, xrss = (med(T, fw, lambda _, r: r["peak_rss_mib"])
                                for fw in ("ocelot", "torch", "ort"))
            rows.append([c, str(tp_batch[c]), "%.1f" % o, "%.1f" % t, "%.1f" % x,
                         "%.2fx" % (o / x), "%.2fx" % (o / t),
                         "%.0f/%.0f/%.0f" % (orss, trss, xrss)])
        print("\nthroughput, images/s (median over runs)")
        print(bt.fmt_table(["model", "batch", "ocelot", "torch", "ORT", "ocelot/ORT",
                            "ocelot/torch", "peak RSS MiB o/t/ORT"], rows))
        print("(throughput ratios: > 1 means ocelot is faster)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema": "ocelot.bench.compare/1", "kind": "infer",
                       "threads": args.threads, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
