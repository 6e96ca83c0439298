"""Whole-model PyTorch references for tests/unit/test_models.c: one training step of every zoo
model, computed in float64.

Weights are not stored (resnet18 alone is 45 MB): both sides compute the same deterministic
"recipe" weights (torch_zoo.recipe_tensor, reproduced in C). Each fixture model_<name>.bin holds:
  dims      int32 [N, H, W, C, classes]
  x         float32 [N][H][W][C] input (NHWC; torch gets it as NCHW)
  labels    int32 [N]
  logits    float32 [N][classes], training mode (batch statistics), dropout off
  loss      float32 [1], mean cross-entropy
  g:NAME    the full gradient of parameter NAME (ocelot layout), when it has <= FULL_MAX entries
  gs:NAME   otherwise 256 entries at i_j = (j * 7919 + 13) mod numel, j = 0..255,
  gn:NAME   and [max |g|, ||g||_2] of the whole gradient
  s:NAME    batch-norm running statistics after the step
  e:NAME    PyTorch float32's own error against this float64 reference on the same entries:
            [max |diff| of the stored entries, |diff| of ||g||_2] for gradients; e:logits, e:loss.
            Some models are ill-conditioned in float32 with any weights we tried (MobileNetV2's
            depthwise + batch-norm stacks amplify rounding: float32 PyTorch itself is off by up to
            ~10% on some gradients); the C test allows max(1e-3 relative, 2x PyTorch float32's
            error x 4), so ocelot must be about as accurate as PyTorch in float32.
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

# fixture name, zoo name, batch, height, width, channels, classes
CASES = [
    ("model_cnn", "cnn", 4, 32, 32, 3, 10),
    ("model_resnet20", "resnet20", 4, 32, 32, 3, 10),
    ("model_resnet56", "resnet56", 4, 32, 32, 3, 10),
    ("model_resnet18", "resnet18", 2, 16, 16, 3, 10),
    ("model_mobilenetv2", "mobilenetv2", 4, 64, 64, 3, 5),
    ("model_mobilenetv2_cifar", "mobilenetv2_cifar:width=0.5", 4, 32, 32, 3, 10),
]


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


def build_reference(name, h, w, c, k, dtype):
    model = torch_zoo.build(name, h, w, c, k)
    kinds = torch_zoo.ocelot_tensor_kinds(model)
    shapes = {key: a.shape for key, a in torch_zoo.to_ocelot(model).items()}
    recipe = {key: torch_zoo.recipe_tensor(key, shapes[key], kind) for key, kind in kinds.items()}
    torch_zoo.from_ocelot(model, recipe)
    model.to(dtype).train()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return model


def sample_indices(numel):
    return (np.arange(SAMPLES, dtype=np.int64) * 7919 + 13) % numel


def main():
    torch.manual_seed(0)
    for seed, (fname, name, n, h, w, c, k) in enumerate(CASES):
        # inputs whose ReLU / ReLU6 inputs on small maps stay KINK_MARGIN away from a kink, so
        # float32 rounding cannot flip a mask there (one flip moves a whole per-channel
        # batch-norm gradient when a channel has only N*H*W = 16 values); the real step below
        # builds fresh models
        for attempt in range(64):
            rng = np.random.default_rng(100 + seed + 1000 * attempt)
            x = rng.standard_normal((n, h, w, c)).astype(np.float32)
            labels = rng.integers(0, k, size=n).astype(np.int32)
            probe = build_reference(name, h, w, c, k, torch.float64)
            xt = torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2).contiguous()
            margin = kink_margin(probe, xt)
            if margin >= KINK_MARGIN:
                break
        runs = {}
        for dtype in (torch.float64, torch.float32):
            model = build_reference(name, h, w, c, k, dtype)
            xt = torch.from_numpy(x).to(dtype).permute(0, 3, 1, 2).contiguous()
            logits = model(xt)
            loss = F.cross_entropy(logits, torch.from_numpy(labels).long())
            loss.backward()
            runs[dtype] = (model, logits.detach().double().numpy(), loss.item(),
                           torch_zoo.grads_to_ocelot(model))
        model, logits64, loss64, grads64 = runs[torch.float64]
        _, logits32, loss32, grads32 = runs[torch.float32]
        logits = logits64
        loss = torch.tensor(loss64)

        arrays = {
            "dims": np.array([n, h, w, c, k], dtype=np.int32),
            "x": x,
            "labels": labels,
            "logits": logits.astype(np.float32),
            "loss": np.array([loss.item()], dtype=np.float32),
            "e:logits": np.array([np.abs(logits32 - logits64).max()], dtype=np.float32),
            "e:loss": np.array([abs(loss32 - loss64)], dtype=np.float32),
        }
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
        for key, a in torch_zoo.to_ocelot(model).items():
            if key.endswith("running_mean") or key.endswith("running_var"):
                arrays["s:" + key] = a.reshape(-1)
        path = fixture.write(fname, arrays)
        print("%s: %s, %d arrays, %d bytes, loss %.6f, kink margin %.2g (attempt %d)" %
              (path, name, len(arrays), os.path.getsize(path), loss.item(), margin, attempt))


if __name__ == "__main__":
    main()
