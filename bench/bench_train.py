#!/usr/bin/python3
"""Training throughput: ocelot against PyTorch, in one run, on the same models, batch and threads.

For each model, `ocelot bench MODEL --train --json` and a PyTorch worker (a fresh process: the
same architecture from tests/ref/torch_zoo.py, SGD momentum 0.9, weight decay 5e-4, softmax
cross-entropy, seeded synthetic data, torch.set_num_threads(threads)) are run in alternation,
`--reps` times each, the order flipping every repetition so slow drift of the machine's load hits
both alike. Warm-up steps are excluded on both sides. The table gives medians over repetitions:
images/s of each and their ratio (ocelot / torch, > 1 means ocelot is faster), and peak RSS of
each process (ocelot: its --json peak_rss_mib; torch: getrusage in the worker) and that ratio.

    /usr/bin/python3 bench/bench_train.py [--quick] [--models cnn,resnet20] [--reps 3]
        [--iters N] [--warmup N] [--batch 128] [--threads 2] [--ocelot build/ocelot] [--json FILE]

Also imported by bench_infer.py for its helpers and PyTorch worker (`--worker`).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TRAIN_MODELS = ("cnn", "resnet20", "resnet18", "mobilenetv2_cifar")
# torch.optim.SGD settings of the timed step; cmd_bench.c uses the same (BENCH_* there).
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------- PyTorch worker

def torch_worker(args):
    """Runs in a fresh process; prints one JSON line."""
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
    import torch_zoo

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rss_import = rss_mib()
    model = torch_zoo.build(args.model, args.height, args.width, args.channels, args.classes)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, args.channels, args.height, args.width, generator=g)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch,), generator=g)
    lat = []
    loss = float("nan")
    if args.mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM,
                              weight_decay=WEIGHT_DECAY)
        loss_fn = torch.nn.CrossEntropyLoss()
        for i in range(args.warmup + args.iters):
            t0 = time.perf_counter()
            opt.zero_grad()
            out = loss_fn(model(x), y)
            out.backward()
            opt.step()
            if i >= args.warmup:
                lat.append(time.perf_counter() - t0)
        loss = float(out)
    else:
        model.eval()
        with torch.inference_mode():
            for i in range(args.warmup + args.iters):
                t0 = time.perf_counter()
                model(x)
                if i >= args.warmup:
                    lat.append(time.perf_counter() - t0)
    mean = sum(lat) / len(lat)
    print(json.dumps({
        "framework": "torch", "version": torch.__version__, "model": args.model,
        "mode": args.mode, "batch": args.batch, "threads": torch.get_num_threads(),
        "images_per_s": args.batch / mean, "latency_ms": {"p50": 1e3 * statistics.median(lat),
                                                          "mean": 1e3 * mean},
        "peak_rss_mib": rss_mib(), "rss_after_import_mib": rss_import, "final_loss": loss}))


def run_torch(model, mode, batch, threads, iters, warmup, hwc=(32, 32, 3), classes=10,
              channels_last=False):
    h, w, c = hwc
    cmd = [sys.executable, os.path.join(HERE, "bench_train.py"), "--worker", model, "--mode",
           mode, "--batch", str(batch), "--threads", str(threads), "--iters", str(iters),
           "--warmup", str(warmup), "--input", "%dx%dx%d" % (h, w, c), "--classes", str(classes)]
    if channels_last:
        cmd.append("--channels-last")
    return run_json(cmd)


# ----------------------------------------------------------------------------- ocelot

def run_ocelot(ocelot, model, mode, batch, threads, iters, warmup, hwc=(32, 32, 3), classes=10):
    cmd = [ocelot, "bench", model, "--json", "--batch", str(batch), "--threads", str(threads),
           "--iters", str(iters), "--warmup", str(warmup), "--input", "%dx%dx%d" % hwc,
           "--classes", str(classes)]
    if mode == "train":
        cmd.append("--train")
    return run_json(cmd)


def run_json(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("bench: %s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode,
                                                       p.stderr.strip()[-2000:]))
    return json.loads(p.stdout)


def default_ocelot():
    for b in ("build", "build-bench"):
        p = os.path.join(ROOT, b, "ocelot")
        if os.access(p, os.X_OK):
            return p
    return os.path.join(ROOT, "build", "ocelot")


def fmt_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).rjust(widths[i]) if i else str(v).ljust(widths[i])
                               for i, v in enumerate(r))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def machine_note(threads):
    load = os.getloadavg()[0]
    note = "machine: %d cores, load average %.1f at start" % (os.cpu_count(), load)
    if load > 0.5 * (os.cpu_count() or 1):
        note += " (BUSY: absolute numbers are unreliable, ratios less so)"
    if os.environ.get("OMP_WAIT_POLICY"):
        note += "; OMP_WAIT_POLICY=%s" % os.environ["OMP_WAIT_POLICY"]
    return note


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="ocelot vs PyTorch training throughput")
    ap.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("train", "infer"), default="train", help=argparse.SUPPRESS)
    ap.add_argument("--input", default="32x32x3", help=argparse.SUPPRESS)
    ap.add_argument("--classes", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--channels-last", action="store_true",
                    help="run PyTorch in channels_last (NHWC) memory format")
    ap.add_argument("--models", default=",".join(TRAIN_MODELS),
                    help="comma-separated zoo names (default: %(default)s)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer steps: about 3 minutes on 2 idle cores")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per framework (>= 3)")
    ap.add_argument("--iters", type=int, help="timed steps per repetition (default 5, quick 2)")
    ap.add_argument("--warmup", type=int, help="untimed steps first (default 2, quick 1)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ocelot", default=default_ocelot(), help="the ocelot binary")
    ap.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    args = ap.parse_args()

    if args.worker:
        args.model = args.worker
        args.height, args.width, args.channels = (int(v) for v in args.input.split("x"))
        args.iters = args.iters or 5
        args.warmup = 2 if args.warmup is None else args.warmup
        torch_worker(args)
        return
    iters = args.iters or (2 if args.quick else 5)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    models = [m for m in args.models.split(",") if m]
    print("training step, batch %d, %d threads, 32x32x3, 10 classes; %d reps x %d timed steps "
          "(+%d warm-up) each" % (args.batch, args.threads, args.reps, iters, warmup))
    print(machine_note(args.threads), flush=True)
    results = {m: {"ocelot": [], "torch": []} for m in models}
    for rep in range(args.reps):
        for m in models:
            order = ("ocelot", "torch") if rep % 2 == 0 else ("torch", "ocelot")
            for fw in order:
                if fw == "ocelot":
                    r = run_ocelot(args.ocelot, m, "train", args.batch, args.threads, iters, warmup)
                else:
                    r = run_torch(m, "train", args.batch, args.threads, iters, warmup,
                                  channels_last=args.channels_last)
                results[m][fw].append(r)
                print("  rep %d  %-18s %-6s %8.1f img/s  %7.0f MiB" % (
                    rep + 1, m, fw, r["images_per_s"], r["peak_rss_mib"]), flush=True)
    rows = []
    for m in models:
        o = statistics.median(r["images_per_s"] for r in results[m]["ocelot"])
        t = statistics.median(r["images_per_s"] for r in results[m]["torch"])
        orss = statistics.median(r["peak_rss_mib"] for r in results[m]["ocelot"])
        trss = statistics.median(r["peak_rss_mib"] for r in results[m]["torch"])
        rows.append([m, "%.1f" % o, "%.1f" % t, "%.2fx" % (o / t), "%.0f" % orss, "%.0f" % trss,
                     "%.2fx" % (orss / trss)])
    print()
    print(fmt_table(["model", "ocelot img/s", "torch img/s", "speed ratio", "ocelot MiB",
                     "torch MiB", "RSS ratio"], rows))
    print("(medians of %d reps; speed ratio = ocelot/torch, > 1: ocelot faster; RSS ratio = "
          "ocelot/torch peak RSS, < 1: ocelot smaller; torch's RSS includes ~%.0f MiB of "
          "library after import)" % (args.reps, statistics.median(
              r["rss_after_import_mib"] for m in models for r in results[m]["torch"])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema": "ocelot.bench.compare/1", "kind": "train", "batch": args.batch,
                       "threads": args.threads, "iters": iters, "warmup": warmup,
                       "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
