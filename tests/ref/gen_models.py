"""Whole-model PyTorch references for tests/unit/test_models.c: one training step of every zoo
model, computed in float64.

Weights are not stored (resnet18 alone is 45 MB): both sides compute the same deterministic
weights from a recipe reproduced in C (CASES names it per model):
  "sincos"  torch_zoo.recipe_tensor; input x ~ N(0, 1) from numpy, stored in the fixture
  "hash"    torch_zoo.hash_tensor (an integer hash, uniform, kaiming-like 1/sqrt(fan_in) scale);
            input x = torch_zoo.sym_uniform(XSEED) computed on both sides, not stored; plus
            "kink clearance" (see clear_kinks): the batch-norm shifts feeding a ReLU6 are moved
            by at most CLEAR_WINDOW, per channel, so that no ReLU6 input lies within
            CLEAR_TARGET of a kink (0 or 6) in the float64 forward; those shifts are stored.
The MobileNets use "hash": with the sin*cos recipe their near-periodic depthwise kernels leave
near-duplicate, low-variance channels, and with ~1e6 ReLU6 inputs some always sit within float32
rounding of a kink, where the gradient jumps (a flipped mask moves a whole channel's batch-norm
gradient by percents). Cleared that way, PyTorch float32 itself lands within ~2e-4 of float64.
Each fixture model_<name>.bin holds:
  dims      int32 [N, H, W, C, classes]
  x         float32 [N][H][W][C] input (NHWC; torch gets it as NCHW), "sincos" only
  xseed     int32 [1]: x[i] = (float)sym_uniform(xseed, i) in NHWC order, "hash" only
  labels    int32 [N]
  w:NAME    float32: tensor NAME's values replacing the recipe's (the cleared shifts), "hash" only
  logits    float32 [N][classes], training mode (batch statistics), dropout off
  loss      float32 [1], mean cross-entropy
  g:NAME    the full gradient of parameter NAME (ocelot layout), when it has <= FULL_MAX entries
  gs:NAME   otherwise 256 entries at i_j = (j * 7919 + 13) mod numel, j = 0..255,
  gn:NAME   and [max |g|, ||g||_2] of the whole gradient
  s:NAME    batch-norm running statistics after the step
  e:NAME    PyTorch float32's own error against this float64 reference on the same entries:
            [max |diff| of the stored entries, |diff| of ||g||_2] for gradients; e:logits, e:loss.
            Informational (the C test prints the worst one): the conditioning of the case.
            The C test's criterion is 1e-3 relative for every model, whatever these say.
Usage: gen_models.py [FIXTURE...] regenerates the named fixtures (model_mobilenetv2 ...), or all.
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

FULL_MAX = 4096
SAMPLES = 256

# fixture name, zoo name, batch, height, width, channels, classes, recipe
# (mobilenetv2: batch 8 so its last 2x2 maps still give batch norm 32 positions per channel)
CASES = [
    ("model_cnn", "cnn", 4, 32, 32, 3, 10, "sincos"),
    ("model_resnet20", "resnet20", 4, 32, 32, 3, 10, "sincos"),
    ("model_resnet56", "resnet56", 4, 32, 32, 3, 10, "sincos"),
    ("model_resnet18", "resnet18", 4, 16, 16, 3, 10, "sincos"),
    ("model_mobilenetv2", "mobilenetv2", 8, 64, 64, 3, 5, "hash"),
    ("model_mobilenetv2_cifar", "mobilenetv2_cifar:width=0.5", 4, 32, 32, 3, 10, "hash"),
    ("model_airnet", "airnet", 4, 32, 32, 3, 10, "hash"),
]
XSEED = 12345
CLEAR_TARGET = 1e-3  # float32 rounding of these unit-scale values is ~1e-6
CLEAR_WINDOW = 0.05
CLEAR_STEPS = 401


KINK_MARGIN = 1e-5
SMALL_BATCH_STATS = 64  # N*H*W at or below which one flipped mask moves a channel's statistics


def kink_margin(model, x):
    """Smallest distance to a kink (0, 6) of the inputs of ReLU / ReLU6 modules whose maps have
    at most SMALL_BATCH_STATS positions (N*H*W), in one forward."""
    margin = [float("inf")]

    def hook(mod, inputs, output):
        v = inputs[0].detach()
        if v.dim() == 4 and v.shape[0] * v.shape[2] * v.shape[3] > SMALL_BATCH_STATS:
            return
        d = v.abs().min().item()
        if isinstance(mod, nn.ReLU6):
            d = min(d, (v - 6).abs().min().item())
        margin[0] = min(margin[0], d)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.ReLU, nn.ReLU6))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return margin[0]


def build_reference(name, h, w, c, k, dtype, recipe, overrides=None):
    """The model with the recipe's weights (then `overrides`, {name: array}), in `dtype`,
    training mode with dropout off."""
    model = torch_zoo.build(name, h, w, c, k)
    kinds = torch_zoo.ocelot_tensor_kinds(model)
    shapes = {key: a.shape for key, a in torch_zoo.to_ocelot(model).items()}
    fn = torch_zoo.recipe_tensor if recipe == "sincos" else torch_zoo.hash_tensor
    tensors = {key: fn(key, shapes[key], kind) for key, kind in kinds.items()}
    tensors.update(overrides or {})
    torch_zoo.from_ocelot(model, tensors)
    model.to(dtype).train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


def clear_kinks(model, x):
    """Kink clearance for a float64 model: in one forward, each batch norm that feeds a ReLU6
    gets, per channel, the shift nearest the recipe's (within CLEAR_WINDOW, CLEAR_STEPS
    candidates) for which every ReLU6 input of the channel is at least CLEAR_TARGET from 0 and
    from 6 (or, if none is, the best candidate), rounded to float32. The batch statistics do not
    depend on the shift, so later layers see exactly the cleared values. Returns
    ({"<bn>.bias": float32 shifts}, smallest margin)."""
    new, worst = {}, [float("inf")]
    steps = np.linspace(-CLEAR_WINDOW, CLEAR_WINDOW, CLEAR_STEPS)
    order = np.argsort(np.abs(steps), kind="stable")

    def hook_for(bn_name, bn):
        def hook(mod, inputs, out):
            b0 = bn.bias.detach().double()
            s = (out.detach().double() - b0.view(1, -1, 1, 1)).transpose(0, 1)
            s = s.reshape(s.shape[0], -1).numpy()  # gamma * xhat, [C][N*H*W]
            b1 = np.empty(s.shape[0], dtype=np.float32)
            for ch in range(s.shape[0]):
                v = np.sort(s[ch])
                cand = b0[ch].item() + steps

                def dist(t):
                    i = np.clip(np.searchsorted(v, t), 1, len(v) - 1)
                    return np.minimum(np.abs(v[i] - t), np.abs(v[i - 1] - t))

                margin = np.minimum(dist(-cand), dist(6.0 - cand))
                ok = order[margin[order] >= CLEAR_TARGET]
                j = ok[0] if len(ok) else int(np.argmax(margin))
                b1[ch] = cand[j]
                worst[0] = min(worst[0], np.minimum(np.abs(v + float(b1[ch])),
                                                    np.abs(v + float(b1[ch]) - 6.0)).min())
            new[bn_name + ".bias"] = b1
            bn.bias.data.copy_(torch.from_numpy(b1.astype(np.float64)))
            return (torch.from_numpy(s).reshape(s.shape[0], out.shape[0], *out.shape[2:])
                    .transpose(0, 1) + bn.bias.detach().view(1, -1, 1, 1)).to(out.dtype)
        return hook

    handles = []
    for name, mod in model.named_modules():
        if (isinstance(mod, nn.Sequential) and len(mod) == 3
                and isinstance(mod[1], nn.BatchNorm2d) and isinstance(mod[2], nn.ReLU6)):
            handles.append(mod[1].register_forward_hook(hook_for(name + ".1", mod[1])))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return new, worst[0]


def sample_indices(numel):
    return (np.arange(SAMPLES, dtype=np.int64) * 7919 + 13) % numel


def to_nchw(x, dtype):
    return torch.from_numpy(x).to(dtype).permute(0, 3, 1, 2).contiguous()


def sincos_inputs(seed, name, n, h, w, c, k):
    """Inputs whose ReLU / ReLU6 inputs on small maps stay KINK_MARGIN away from a kink, so
    float32 rounding cannot flip a mask there (one flip moves a whole per-channel batch-norm
    gradient when a channel has only N*H*W = 16 values)."""
    for attempt in range(64):
        rng = np.random.default_rng(100 + seed + 1000 * attempt)
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        labels = rng.integers(0, k, size=n).astype(np.int32)
        probe = build_reference(name, h, w, c, k, torch.float64, "sincos")
        margin = kink_margin(probe, to_nchw(x, torch.float64))
        if margin >= KINK_MARGIN:
            break
    return x, labels, margin, "kink margin %.2g (attempt %d)" % (margin, attempt)


def main(wanted):
    torch.manual_seed(0)
    for seed, (fname, name, n, h, w, c, k, recipe) in enumerate(CASES):
        if wanted and fname not in wanted:
            continue
        arrays = {"dims": np.array([n, h, w, c, k], dtype=np.int32)}
        overrides = {}
        if recipe == "sincos":
            x, labels, margin, how = sincos_inputs(seed, name, n, h, w, c, k)
            arrays["x"] = x
        else:
            x = torch_zoo.sym_uniform(XSEED, n * h * w * c).astype(np.float32)
            x = x.reshape(n, h, w, c)
            labels = np.array([(i * 3 + 1) % k for i in range(n)], dtype=np.int32)
            probe = build_reference(name, h, w, c, k, torch.float64, recipe)
            overrides, margin = clear_kinks(probe, to_nchw(x, torch.float64))
            how = "ReLU6 inputs >= %.2g from a kink" % margin
            arrays["xseed"] = np.array([XSEED], dtype=np.int32)
        arrays["labels"] = labels
        runs = {}
        for dtype in (torch.float64, torch.float32):
            model = build_reference(name, h, w, c, k, dtype, recipe, overrides)
            logits = model(to_nchw(x, dtype))
            loss = F.cross_entropy(logits, torch.from_numpy(labels).long())
            loss.backward()
            runs[dtype] = (model, logits.detach().double().numpy(), loss.item(),
                           torch_zoo.grads_to_ocelot(model))
        model, logits64, loss64, grads64 = runs[torch.float64]
        _, logits32, loss32, grads32 = runs[torch.float32]

        for key, a in overrides.items():
            arrays["w:" + key] = a
        arrays["logits"] = logits64.astype(np.float32)
        arrays["loss"] = np.array([loss64], dtype=np.float32)
        arrays["e:logits"] = np.array([np.abs(logits32 - logits64).max()], dtype=np.float32)
        arrays["e:loss"] = np.array([abs(loss32 - loss64)], dtype=np.float32)
        gmax = max(np.abs(g).max() for g in grads64.values())
        r32 = 0.0
        for key, g in grads64.items():
            g = g.reshape(-1).astype(np.float64)
            g32 = grads32[key].reshape(-1).astype(np.float64)
            norm_err = abs(np.linalg.norm(g32) - np.linalg.norm(g))
            if g.size <= FULL_MAX:
                arrays["g:" + key] = g.astype(np.float32)
                err = np.abs(g32 - g).max()
            else:
                idx = sample_indices(g.size)
                arrays["gs:" + key] = g[idx].astype(np.float32)
                arrays["gn:" + key] = np.array([np.abs(g).max(), np.linalg.norm(g)],
                                               dtype=np.float32)
                err = np.abs(g32[idx] - g[idx]).max()
            arrays["e:" + key] = np.array([err, norm_err], dtype=np.float32)
            r32 = max(r32, err / max(np.abs(g).max(), 1e-3 * gmax))
        for key, a in torch_zoo.to_ocelot(model).items():
            if key.endswith("running_mean") or key.endswith("running_var"):
                arrays["s:" + key] = a.reshape(-1)
        path = fixture.write(fname, arrays)
        print("%s: %s, %d arrays, %d bytes, loss %.6f, %s; torch float32: logits %.1e, worst "
              "gradient %.1e" % (path, name, len(arrays), os.path.getsize(path), loss64, how,
                                 np.abs(logits32 - logits64).max() / np.abs(logits64).max(), r32))


if __name__ == "__main__":
    main(sys.argv[1:])
