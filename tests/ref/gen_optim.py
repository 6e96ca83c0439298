"""Reference fixtures for tests/unit/test_optim.c and test_schedule.c: torch.optim SGD / AdamW
trajectories over a few parameter tensors of different kinds, timm-style EMA, and
torch.optim.lr_scheduler values at every step.

Writes tests/fixtures/optim.bin and tests/fixtures/schedule.bin. The case tables here and in the
C tests must agree (same order, same hyper-parameters).
"""
import warnings

import numpy as np
import torch

import fixture

# SequentialLR steps its schedulers with an explicit epoch, which torch 1.13 flags as deprecated
warnings.filterwarnings("ignore", category=UserWarning, module="torch.optim.lr_scheduler")

torch.manual_seed(1234)
np.random.seed(1234)

STEPS = 6

# (name, kind, shape); kinds follow oc_param_kind: 0 weight, 1 bias, 2 norm scale, 3 norm shift
TENSORS = [
    ("conv.weight", 0, (4, 3, 3, 2)),
    ("conv.bias", 1, (4,)),
    ("bn.weight", 2, (4,)),
    ("bn.bias", 3, (4,)),
    ("fc.weight", 0, (5, 7)),
    ("fc.bias", 1, (5,)),
]
ALIGN = 16  # offsets rounded up to 16 floats, leaving gaps no tensor covers

NO_DECAY_NONE = 0
NO_DECAY_NORM = (1 << 2) | (1 << 3)
NO_DECAY_NORM_BIAS = NO_DECAY_NORM | (1 << 1)

# name, optimizer, kwargs, no_decay mask, per-step learning rates
CASES = [
    ("sgd_plain", "sgd", dict(), NO_DECAY_NONE, [0.1] * STEPS),
    ("sgd_momentum", "sgd", dict(momentum=0.9), NO_DECAY_NONE, [0.05] * STEPS),
    ("sgd_dampening", "sgd", dict(momentum=0.8, dampening=0.3, weight_decay=0.01), NO_DECAY_NONE,
     [0.05] * STEPS),
    ("sgd_nesterov_wd", "sgd", dict(momentum=0.9, nesterov=True, weight_decay=5e-2), NO_DECAY_NONE,
     [0.1, 0.08, 0.06, 0.04, 0.02, 0.01]),
    ("sgd_nesterov_nodecay", "sgd", dict(momentum=0.9, nesterov=True, weight_decay=5e-2),
     NO_DECAY_NORM_BIAS, [0.1] * STEPS),
    ("adamw", "adamw", dict(weight_decay=0.1), NO_DECAY_NONE, [1e-2] * STEPS),
    ("adamw_betas", "adamw", dict(betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05), NO_DECAY_NORM,
     [3e-3, 6e-3, 9e-3, 6e-3, 3e-3, 1e-3]),
    ("adamw_nowd", "adamw", dict(weight_decay=0.0, eps=1e-3), NO_DECAY_NONE, [2e-2] * STEPS),
]


def layout():
    offsets, off = [], 0
    for _, _, shape in TENSORS:
        off = (off + ALIGN - 1) // ALIGN * ALIGN
        offsets.append(off)
        off += int(np.prod(shape))
    return offsets, off + 3  # a tail no tensor covers


def run_case(p0, grads, offsets, opt_name, kwargs, no_decay, lrs):
    params = [torch.tensor(p0[o:o + int(np.prod(s))].reshape(s), requires_grad=True)
              for o, (_, _, s) in zip(offsets, TENSORS)]
    wd = kwargs.get("weight_decay", 0.0)
    decay = [p for p, (_, k, _) in zip(params, TENSORS) if not (no_decay >> k) & 1]
    nodecay = [p for p, (_, k, _) in zip(params, TENSORS) if (no_decay >> k) & 1]
    groups = [dict(params=decay, weight_decay=wd)]
    if nodecay:
        groups.append(dict(params=nodecay, weight_decay=0.0))
    kw = {k: v for k, v in kwargs.items() if k != "weight_decay"}
    if opt_name == "sgd":
        opt = torch.optim.SGD(groups, lr=lrs[0], **kw)
    else:
        opt = torch.optim.AdamW(groups, lr=lrs[0], **kw)
    out = np.zeros((STEPS, p0.size), np.float32)
    flat = p0.copy()
    for step in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = lrs[step]
        for p, o, (_, _, s) in zip(params, offsets, TENSORS):
            p.grad = torch.tensor(grads[step, o:o + int(np.prod(s))].reshape(s))
        opt.step()
        for p, o in zip(params, offsets):
            flat[o:o + p.numel()] = p.detach().numpy().ravel()
        out[step] = flat
    return out


def gen_optim():
    offsets, n = layout()
    p0 = np.random.randn(n).astype(np.float32)
    grads = np.random.randn(STEPS, n).astype(np.float32)
    grads *= np.float32(0.5) * (np.arange(1, STEPS + 1, dtype=np.float32)[:, None])  # growing scale
    grads[2, offsets[1]:offsets[1] + 4] = 0.0  # a step with zero gradient on one tensor
    arrays = {
        "offsets": np.array(offsets, np.int32),
        "numels": np.array([int(np.prod(s)) for _, _, s in TENSORS], np.int32),
        "kinds": np.array([k for _, k, _ in TENSORS], np.int32),
        "params0": p0,
        "grads": grads,
    }
    for name, opt_name, kwargs, no_decay, lrs in CASES:
        arrays[name + ".lrs"] = np.array(lrs, np.float32)
        arrays[name + ".params"] = run_case(p0, grads, offsets, opt_name, kwargs, no_decay, lrs)

    # EMA as timm ModelEmaV2: ema = d * ema + (1 - d) * current, over a sequence of weights and
    # batch-norm state; once with a fixed decay, once with the TF num_updates warm-up rule.
    seq = torch.tensor(arrays["sgd_nesterov_wd.params"])
    state_seq = torch.rand(STEPS, 9) + 0.5
    p_init, s_init = torch.tensor(p0), torch.rand(9) + 0.5
    arrays["ema.state0"] = s_init
    arrays["ema.state_seq"] = state_seq
    for tag, decay, warmup in (("fixed", 0.9, False), ("warmup", 0.999, True)):
        ep, es = p_init.clone(), s_init.clone()
        outp, outs = [], []
        for t in range(STEPS):
            d = min(decay, (1 + t) / (10 + t)) if warmup else decay
            ep = d * ep + (1.0 - d) * seq[t]
            es = d * es + (1.0 - d) * state_seq[t]
            outp.append(ep.clone())
            outs.append(es.clone())
        arrays["ema." + tag + ".params"] = torch.stack(outp)
        arrays["ema." + tag + ".state"] = torch.stack(outs)
    return fixture.write("optim", arrays)


# ---------------------------------------------------------------- schedules

def torch_lrs(make, total, lr):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out, np.float64)


def with_warmup(main, warmup, start):
    def make(opt):
        lin = torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0,
                                                total_iters=warmup)
        return torch.optim.lr_scheduler.SequentialLR(opt, [lin, main(opt)], milestones=[warmup])
    return make


def gen_schedule():
    S = torch.optim.lr_scheduler
    # name -> (lr values, total steps); the C test rebuilds each config by name
    cases = {}
    cases["constant"] = torch_lrs(lambda o: S.LambdaLR(o, lambda t: 1.0), 20, 0.1)
    cases["step"] = torch_lrs(lambda o: S.StepLR(o, step_size=7, gamma=0.5), 30, 0.2)
    cases["multistep"] = torch_lrs(lambda o: S.MultiStepLR(o, milestones=[5, 12, 12, 20],
                                                           gamma=0.3), 30, 0.1)
    cases["cosine"] = torch_lrs(lambda o: S.CosineAnnealingLR(o, T_max=40, eta_min=1e-4), 41,
                                0.05)
    cases["onecycle"] = torch_lrs(lambda o: S.OneCycleLR(o, max_lr=0.4, total_steps=50,
                                                         pct_start=0.25, div_factor=10,
                                                         final_div_factor=100,
                                                         cycle_momentum=False), 50, 0.4)
    cases["onecycle_default"] = torch_lrs(lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=37,
                                                                 cycle_momentum=False), 37, 1.0)
    cases["warmup_cosine"] = torch_lrs(
        with_warmup(lambda o: S.CosineAnnealingLR(o, T_max=25, eta_min=0.0), 5, 0.1), 30, 0.1)
    cases["warmup_step"] = torch_lrs(
        with_warmup(lambda o: S.StepLR(o, step_size=4, gamma=0.5), 3, 0.25), 20, 0.08)
    cases["onecycle_total1"] = torch_lrs(lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=1,
                                                                cycle_momentum=False), 1, 0.5)
    cases["cosine_total1"] = torch_lrs(lambda o: S.CosineAnnealingLR(o, T_max=1, eta_min=0.01), 2,
                                       0.1)
    # airbench's triangle: np.interp(t, [0, int(0.2 * T), T], [0.2, 1, 0]) times the peak
    T = 45
    cases["triangular"] = 0.3 * np.interp(np.arange(T + 1), [0, int(0.2 * T), T], [0.2, 1.0, 0.0])
    arrays = {}
    for name, values in cases.items():
        arrays[name] = np.asarray(values, np.float32)
        # float32 loses digits; keep the exact value as hi + lo
        arrays[name + ".lo"] = (np.asarray(values, np.float64) -
                                np.asarray(values, np.float32).astype(np.float64)).astype(np.float32)
    return fixture.write("schedule", arrays)


if __name__ == "__main__":
    print(gen_optim())
    print(gen_schedule())
