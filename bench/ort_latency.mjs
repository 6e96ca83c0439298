// ONNX Runtime (CPU, onnxruntime-node) peer of `ocelot bench`: times inference of an ONNX model
// on seeded random input and prints one JSON object.
//
//   node bench/ort_latency.mjs MODEL.onnx --shape N,C,H,W [--threads 2] [--iters 20]
//        [--warmup 3] [--runs 3]
//
// Each of --runs runs times --iters calls of session.run after --warmup untimed ones; the result
// holds every call's latency (ms), each run's median, and images/s from the mean latency.
// intraOpNumThreads = --threads, interOpNumThreads = 1, sequential execution, all graph
// optimisations: the configuration that matches a 2-thread ocelot run.
import * as ort from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';

function usage(msg) {
    process.stderr.write(`ort_latency: ${msg}\nusage: node ort_latency.mjs MODEL.onnx ` +
        '--shape N,C,H,W [--threads N] [--iters N] [--warmup N] [--runs N]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const o = { model: null, shape: null, threads: 2, iters: 20, warmup: 3, runs: 3 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        const int = (lo) => {
            const s = val();
            const v = Number(s);
            if (!Number.isInteger(v) || v < lo) usage(`${a} must be an integer >= ${lo}, not '${s}'`);
            return v;
        };
        if (a === '--shape') {
            o.shape = val().split(',').map(Number);
            if (o.shape.length !== 4 || o.shape.some((d) => !Number.isInteger(d) || d < 1))
                usage('--shape must be N,C,H,W');
        } else if (a === '--threads') o.threads = int(1);
        else if (a === '--iters') o.iters = int(1);
        else if (a === '--warmup') o.warmup = int(0);
        else if (a === '--runs') o.runs = int(1);
        else if (a.startsWith('--')) usage(`unknown option ${a}`);
        else if (o.model) usage(`unexpected argument ${a}`);
        else o.model = a;
    }
    if (!o.model || !o.shape) usage('MODEL.onnx and --shape are required');
    return o;
}

// xorshift32 -> roughly normal values (sum of uniforms); the input's values do not change the
// time of a dense CNN, only its being finite and non-constant matters.
function fillRandom(a, seed) {
    let s = seed >>> 0 || 1;
    const u = () => {
        s ^= s << 13; s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5; s >>>= 0;
        return s / 4294967296;
    };
    for (let i = 0; i < a.length; i++) a[i] = u() + u() + u() - 1.5;
}

const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const o = parseArgs(process.argv.slice(2));
const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
});
const data = new Float32Array(o.shape.reduce((a, b) => a * b, 1));
fillRandom(data, 12345);
const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, o.shape) };

for (let i = 0; i < o.warmup; i++) await session.run(feeds);
const runMedians = [];
const all = [];
for (let r = 0; r < o.runs; r++) {
    const lat = [];
    for (let i = 0; i < o.iters; i++) {
        const t0 = performance.now();
        await session.run(feeds);
        lat.push(performance.now() - t0);
    }
    runMedians.push(median(lat));
    all.push(...lat);
}
const mean = all.reduce((a, b) => a + b, 0) / all.length;
process.stdout.write(JSON.stringify({
    schema: 'ocelot.bench.peer/1',
    framework: 'onnxruntime-node',
    version: ort.env.versions?.common ?? 'unknown',
    model: o.model,
    batch: o.shape[0],
    threads: o.threads,
    iters: o.iters,
    runs: o.runs,
    warmup: o.warmup,
    run_median_ms: runMedians,
    median_ms: median(runMedians),
    images_per_s: (o.shape[0] * 1000) / mean,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
}) + '\n');
