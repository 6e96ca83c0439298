"""PyTorch reference fixtures for batch norm, activations, elementwise ops and the loss.

Writes (all activations NHWC; every tensor converted from NCHW here where it matters):

tests/fixtures/norm.bin, read by tests/unit/test_norm.c. Cases, prefix "bn<i>_":
  shape int32 [N, H, W, C]; hp [momentum, eps]
  x [N][H][W][C], gamma, beta, rm0, rv0 [C] (initial running stats), g upstream gradient
  y, dx, dgamma, dbeta   training forward of nn.BatchNorm2d and backward of sum(g * y)
  mean, invstd           batch mean and 1/sqrt(biased var + eps), computed in float64
  rm, rv                 running stats after that one training forward
  yi                     eval-mode forward with rm0 / rv0
tests/fixtures/act.bin, read by tests/unit/test_act.c: x (includes the kinks -3, 0, 3, 6),
  g, and per activation "<name>_y", "<name>_dx" for relu, relu6, leaky (alpha 0.01),
  leaky2 (alpha 0.2), gelu (exact erf form), silu, sigmoid, hardswish.
tests/fixtures/elementwise.bin, read by tests/unit/test_elementwise.c:
  drop_x, drop_mask (0 or 1/(1-p), p = 0.3), drop_g, drop_y, drop_dx
  add_a, add_b, add_y
  cat_shape int32 [M, C0, C1, C2]; cat_x0..2, cat_g, cat_y, cat_dx0..2
  cm_shape int32 [N, HW, C]; cm_x, cm_s, cm_g, cm_y, cm_dx, cm_ds
tests/fixtures/loss.bin, read by tests/unit/test_loss.c. Cases, prefix "ce<i>_":
  shape int32 [N, K]; smoothing [eps]; logits; labels int32 (hard) or target [N][K] (soft;
  then soft int32 [1]); loss [1]; dlogits (gradient of the mean loss); probs.
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous()


# N, H, W, C, momentum, eps
BN_CASES = [
    (2, 5, 7, 3, 0.1, 1e-5),
    (3, 4, 6, 17, 0.1, 1e-5),
    (2, 3, 5, 35, 0.1, 1e-5),
    (2, 5, 7, 17, 0.3, 1e-3),
    (4, 3, 3, 35, 0.75, 1e-5),
]


def gen_norm():
    arrays = {}
    for i, (n, h, w, c, mom, eps) in enumerate(BN_CASES):
        p = f"bn{i}_"
        # moderate scale with a per-channel offset, so the mean matters
        x = torch.randn(n, c, h, w) * (0.5 + torch.rand(1, c, 1, 1) * 2) + torch.randn(1, c, 1, 1) * 3
        bn = torch.nn.BatchNorm2d(c, eps=eps, momentum=mom)
        with torch.no_grad():
            bn.weight.copy_(1 + 0.3 * torch.randn(c))
            bn.bias.copy_(0.5 * torch.randn(c))
            bn.running_mean.copy_(torch.randn(c))
            bn.running_var.copy_(0.5 + torch.rand(c))
        rm0 = bn.running_mean.clone()
        rv0 = bn.running_var.clone()
        g = torch.randn(n, c, h, w)
        xr = x.clone().requires_grad_(True)
        bn.train()
        y = bn(xr)
        (y * g).sum().backward()
        rm, rv = bn.running_mean.clone(), bn.running_var.clone()
        xd = x.double()
        mean = xd.mean(dim=(0, 2, 3))
        var = xd.var(dim=(0, 2, 3), unbiased=False)
        # sanity: torch's running update is the documented formula (unbiased variance)
        assert torch.allclose(rm.double(), (1 - mom) * rm0.double() + mom * mean, atol=1e-5)
        assert torch.allclose(rv.double(), (1 - mom) * rv0.double()
                              + mom * xd.var(dim=(0, 2, 3), unbiased=True), atol=1e-5)
        with torch.no_grad():
            bn.running_mean.copy_(rm0)
            bn.running_var.copy_(rv0)
            bn.eval()
            yi = bn(x)
        arrays.update({
            p + "shape": np.array([n, h, w, c], dtype=np.int32),
            p + "hp": np.array([mom, eps], dtype=np.float32),
            p + "x": nhwc(x), p + "gamma": bn.weight, p + "beta": bn.bias,
            p + "rm0": rm0, p + "rv0": rv0, p + "g": nhwc(g),
            p + "y": nhwc(y), p + "dx": nhwc(xr.grad),
            p + "dgamma": bn.weight.grad, p + "dbeta": bn.bias.grad,
            p + "mean": mean.float(), p + "invstd": (1 / torch.sqrt(var + eps)).float(),
            p + "rm": rm, p + "rv": rv, p + "yi": nhwc(yi),
        })
    return fixture.write("norm", arrays)


ACTS = {
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky": lambda t: F.leaky_relu(t, 0.01),
    "leaky2": lambda t: F.leaky_relu(t, 0.2),
    "gelu": lambda t: F.gelu(t, approximate="none"),
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "hardswish": F.hardswish,
}


def gen_act():
    # 2*5*7*17 values over [-10, 10], plus the kinks and a few large magnitudes
    x = torch.rand(2 * 5 * 7 * 17) * 20 - 10
    special = torch.tensor([-3.0, 0.0, 3.0, 6.0, -6.0, -0.0, 1e-3, -1e-3, 2.9999, 3.0001,
                            -2.9999, -3.0001, 5.9999, 6.0001, 40.0, -40.0, 95.0, -95.0])
    x[: special.numel()] = special
    g = torch.randn_like(x)
    arrays = {"x": x, "g": g}
    for name, fn in ACTS.items():
        xr = x.clone().requires_grad_(True)
        y = fn(xr)
        (y * g).sum().backward()
        arrays[name + "_y"] = y
        arrays[name + "_dx"] = xr.grad
    return fixture.write("act", arrays)


def grads(fn, inputs, g):
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    y = fn(*inputs)
    (y * g).sum().backward()
    return y, [t.grad for t in inputs]


def gen_elementwise():
    arrays = {}
    p = 0.3
    x = torch.randn(2, 5, 7, 17)
    mask = (torch.rand_like(x) >= p).float() / (1 - p)
    g = torch.randn_like(x)
    y, (dx,) = grads(lambda t: t * mask, [x], g)
    arrays.update({"drop_x": x, "drop_mask": mask, "drop_g": g, "drop_y": y, "drop_dx": dx})

    a, b = torch.randn(2, 5, 7, 35), torch.randn(2, 5, 7, 35)
    arrays.update({"add_a": a, "add_b": b, "add_y": a + b})

    chans = [3, 17, 35]
    xs = [torch.randn(2, 5, 7, c) for c in chans]
    g = torch.randn(2, 5, 7, sum(chans))
    y, dxs = grads(lambda *t: torch.cat(t, dim=-1), xs, g)
    arrays["cat_shape"] = np.array([2 * 5 * 7] + chans, dtype=np.int32)
    for k in range(3):
        arrays[f"cat_x{k}"] = xs[k]
        arrays[f"cat_dx{k}"] = dxs[k]
    arrays.update({"cat_g": g, "cat_y": y})

    n, hw, c = 3, 5 * 7, 17
    x = torch.randn(n, hw, c)
    s = torch.sigmoid(torch.randn(n, c))
    g = torch.randn(n, hw, c)
    y, (dx, ds) = grads(lambda t, u: t * u[:, None, :], [x, s], g)
    arrays.update({"cm_shape": np.array([n, hw, c], dtype=np.int32), "cm_x": x, "cm_s": s,
                   "cm_g": g, "cm_y": y, "cm_dx": dx, "cm_ds": ds})
    return fixture.write("elementwise", arrays)


# N, K, smoothing, soft targets, logit scale, logit offset
CE_CASES = [
    (7, 10, 0.0, False, 3.0, 0.0),
    (7, 10, 0.1, False, 3.0, 0.0),
    (5, 17, 0.2, False, 3.0, 0.0),
    (6, 35, 0.1, False, 30.0, 200.0),  # large logits: needs the max subtraction
    (7, 10, 0.0, True, 3.0, 0.0),      # soft targets (mixup)
    (4, 17, 0.0, True, 5.0, -100.0),
]


def gen_loss():
    arrays = {}
    for i, (n, k, eps, soft, scale, offset) in enumerate(CE_CASES):
        p = f"ce{i}_"
        logits = torch.randn(n, k) * scale + offset
        lr = logits.clone().requires_grad_(True)
        if soft:
            # a mixup of two one-hot rows
            lam = torch.rand(n, 1)
            a = F.one_hot(torch.randint(0, k, (n,)), k).float()
            b = F.one_hot(torch.randint(0, k, (n,)), k).float()
            target = lam * a + (1 - lam) * b
            loss = F.cross_entropy(lr, target)
            arrays[p + "target"] = target
        else:
            labels = torch.randint(0, k, (n,))
            loss = F.cross_entropy(lr, labels, label_smoothing=eps)
            arrays[p + "labels"] = labels.int()
        loss.backward()
        arrays.update({
            p + "shape": np.array([n, k], dtype=np.int32),
            p + "smoothing": np.array([eps], dtype=np.float32),
            p + "soft": np.array([1 if soft else 0], dtype=np.int32),
            p + "logits": logits, p + "loss": loss.reshape(1), p + "dlogits": lr.grad,
            p + "probs": torch.softmax(logits.double(), dim=1).float(),
        })
    return fixture.write("loss", arrays)


def main():
    torch.manual_seed(20240611)
    for gen in (gen_norm, gen_act, gen_elementwise, gen_loss):
        print(gen())


if __name__ == "__main__":
    main()
