"""PyTorch reference fixtures for pooling (tests/unit/test_pool.c reads tests/fixtures/pool.bin).

Window cases, prefix "p<i>_":
  shape int32 [N, H, W, C, R, S, stride_h, stride_w, pad_h, pad_w]
  x [N][H][W][C]; g upstream gradient [N][P][Q][C];
  max_y, max_idx (flat h*W + w, int32), max_dx      from max_pool2d(return_indices=True)
  avg1_y, avg1_dx  avg_pool2d(count_include_pad=True)
  avg0_y, avg0_dx  avg_pool2d(count_include_pad=False)
Global average (adaptive_avg_pool2d(1)): gap_shape [N, H, W, C], gap_x, gap_g [N][C], gap_y,
gap_dx. All tensors converted from NCHW to NHWC here.
"""
import torch
import torch.nn.functional as F

import fixture

# N, H, W, C, R, S, sh, sw, ph, pw
CASES = [
    (2, 9, 11, 17, 3, 3, 2, 2, 1, 1),  # odd sizes, stride 2, padding
    (2, 8, 7, 3, 2, 2, 2, 2, 0, 0),    # 2x2 stride 2, odd width
    (2, 7, 9, 5, 3, 2, 1, 2, 1, 1),    # rectangular window, mixed strides
    (1, 6, 6, 16, 3, 3, 3, 3, 0, 0),   # non-overlapping 3x3
    (2, 5, 5, 4, 5, 5, 1, 1, 2, 2),    # window as large as the input, maximal padding
]


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).contiguous()


def grad_of(fn, x, g):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    (y * g).sum().backward()
    return y, x.grad


def main():
    torch.manual_seed(4321)
    arrays = {}
    for i, (N, H, W, C, R, S, sh, sw, ph, pw) in enumerate(CASES):
        x = torch.randn(N, C, H, W)
        kw = dict(kernel_size=(R, S), stride=(sh, sw), padding=(ph, pw))
        y, idx = F.max_pool2d(x, return_indices=True, **kw)
        g = torch.randn_like(y)
        p = "p%d_" % i
        arrays[p + "shape"] = torch.tensor([N, H, W, C, R, S, sh, sw, ph, pw], dtype=torch.int32)
        arrays[p + "x"] = nhwc(x)
        arrays[p + "g"] = nhwc(g)
        y, dx = grad_of(lambda t: F.max_pool2d(t, **kw), x, g)
        arrays[p + "max_y"] = nhwc(y)
        arrays[p + "max_idx"] = nhwc(idx).to(torch.int32)
        arrays[p + "max_dx"] = nhwc(dx)
        for cip in (1, 0):
            y, dx = grad_of(lambda t: F.avg_pool2d(t, count_include_pad=bool(cip), **kw), x, g)
            arrays[p + "avg%d_y" % cip] = nhwc(y)
            arrays[p + "avg%d_dx" % cip] = nhwc(dx)
    arrays["count"] = torch.tensor([len(CASES)], dtype=torch.int32)

    N, H, W, C = 2, 5, 7, 17
    x = torch.randn(N, C, H, W)
    g = torch.randn(N, C, 1, 1)
    y, dx = grad_of(lambda t: F.adaptive_avg_pool2d(t, 1), x, g)
    arrays["gap_shape"] = torch.tensor([N, H, W, C], dtype=torch.int32)
    arrays["gap_x"] = nhwc(x)
    arrays["gap_g"] = g.reshape(N, C)
    arrays["gap_y"] = y.detach().reshape(N, C)
    arrays["gap_dx"] = nhwc(dx)
    print(fixture.write("pool", arrays))


if __name__ == "__main__":
    main()
