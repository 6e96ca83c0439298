"""Whole-model optimizer parity references for tests/unit/test_model_steps.c.

For each model: torch_zoo's twin with the deterministic recipe weights (torch_zoo.recipe_tensor,
which the C test reproduces, so no weights are stored), a fixed batch from an integer hash (also
reproduced in C), training mode with batch statistics, dropout off. Then 5 steps of
  sgd:   torch.optim.SGD(lr 0.01, momentum 0.9, nesterov, weight_decay 5e-4), constant lr
  adamw: torch.optim.AdamW(lr 1e-3, weight_decay 5e-2) + CosineAnnealingLR(T_max=5) per step
computed in float64 (so the reference carries no float32 rounding of its own).

tests/fixtures/model_steps.bin holds, per model KEY and optimizer OPT:
  KEY.OPT.loss     float32 [5], the mean cross-entropy of each step's forward
  KEY.OPT.NAME     float32 [k], tensor NAME after the 5 steps (ocelot layout), sampled at
                   i_j = j * numel // k, k = min(numel, 128): parameters and BN running stats.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402
import torch_zoo  # noqa: E402

STEPS = 5
SAMPLES = 128
INPUT_SEED = 12345
SGD_LR = 0.01
ADAMW_LR = 1e-3

# key, zoo name, height, width, channels, classes, batch (must match MODELS in the C test)
MODELS = [
    ("cnn", "cnn", 16, 16, 3, 10, 8),
    ("resnet20", "resnet20", 32, 32, 3, 10, 8),
    ("resnet56", "resnet56", 16, 16, 3, 10, 4),
    ("resnet18", "resnet18", 16, 16, 3, 10, 4),
    ("mnv2", "mobilenetv2_cifar:width=0.5", 32, 32, 3, 10, 4),
]


def hash32(x):
    """lowbias32 on uint32 arrays (C: hash32 in the test)."""
    x = np.asarray(x, dtype=np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7feb352d)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846ca68b)
        x = x ^ (x >> np.uint32(16))
    return x


def sym_uniform(seed, n):
    """Element i of stream seed: uniform in [-1, 1), as float64 (C: sym_uniform)."""
    i = np.arange(n, dtype=np.uint64).astype(np.uint32)
    u = hash32(i ^ hash32(np.uint32(seed)))
    return 2.0 * (u.astype(np.float64) / 4294967296.0) - 1.0


def make_model(name, h, w, c, k):
    model = torch_zoo.build(name, h, w, c, k)
    kinds = torch_zoo.ocelot_tensor_kinds(model)
    shapes = {key: a.shape for key, a in torch_zoo.to_ocelot(model).items()}
    torch_zoo.from_ocelot(model, {key: torch_zoo.recipe_tensor(key, shapes[key], kind)
                                  for key, kind in kinds.items()})
    model.double().train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


def train(model, opt_name, xt, labels):
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        sched = None
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=ADAMW_LR, weight_decay=5e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)
    losses = []
    for _ in range(STEPS):
        loss = F.cross_entropy(model(xt), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched:
            sched.step()
        losses.append(loss.item())
    return losses


def main():
    torch.manual_seed(0)
    arrays = {}
    for key, name, h, w, c, k, n in MODELS:
        x = sym_uniform(INPUT_SEED, n * h * w * c).reshape(n, h, w, c).astype(np.float32)
        xt = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor([(i * 3 + 1) % k for i in range(n)], dtype=torch.long)
        for opt_name in ("sgd", "adamw"):
            model = make_model(name, h, w, c, k)
            losses = train(model, opt_name, xt, labels)
            arrays["%s.%s.loss" % (key, opt_name)] = np.array(losses, np.float32)
            for tname, a in torch_zoo.to_ocelot(model).items():
                flat = a.reshape(-1)
                m = min(flat.size, SAMPLES)
                idx = np.arange(m, dtype=np.int64) * flat.size // m
                arrays["%s.%s.%s" % (key, opt_name, tname)] = flat[idx]
            print("%-9s %-5s loss %.5f -> %.5f" % (key, opt_name, losses[0], losses[-1]))
    path = fixture.write("model_steps", arrays)
    print("%s: %d arrays, %d bytes" % (path, len(arrays), os.path.getsize(path)))


if __name__ == "__main__":
    main()
