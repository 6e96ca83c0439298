"""PyTorch reference fixtures for conv2d (tests/unit/test_conv2d.c reads tests/fixtures/conv2d.bin).

Each case i stores, with prefix "c<i>_":
  shape  int32 [N, H, W, C, K, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, has_bias]
  x [N][H][W][C], w [K][R][S][C/g], b [K] (zeros when has_bias == 0), g = upstream gradient
  [N][P][Q][K], y = forward output, dx, dw, db = gradients of sum(g * y).
Tensors are converted from PyTorch's NCHW / OIHW to ocelot's NHWC / OHWI here.
"""
import torch
import torch.nn.functional as F

import fixture

# N, H, W, C, K, R, S, sh, sw, ph, pw, dh, dw, groups, has_bias
CASES = [
    (2, 9, 11, 3, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),    # odd sizes, stride 2, C=3, K=17
    (2, 8, 7, 17, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1, 1),     # dilation 2
    (2, 9, 11, 17, 17, 3, 3, 2, 2, 1, 1, 1, 1, 17, 1),  # depthwise, stride 2
    (2, 9, 9, 6, 4, 5, 5, 2, 2, 2, 2, 1, 1, 2, 0),      # groups 2, 5x5 stride 2, no bias
    (2, 5, 6, 17, 16, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1),    # 1x1 (direct GEMM path)
    (1, 7, 10, 5, 3, 1, 3, 1, 2, 0, 1, 1, 1, 1, 1),     # 1x3, mixed strides
    (2, 10, 9, 8, 8, 5, 3, 1, 1, 4, 2, 2, 2, 8, 1),     # depthwise 5x3, dilation 2
    (2, 7, 7, 4, 12, 3, 3, 1, 1, 1, 1, 1, 1, 4, 1),     # channel multiplier 3 (grouped path)
]


def main():
    torch.manual_seed(1234)
    arrays = {}
    for i, (N, H, W, C, K, R, S, sh, sw, ph, pw, dh, dw, G, hb) in enumerate(CASES):
        x = torch.randn(N, C, H, W, dtype=torch.float64, requires_grad=True)
        w = torch.randn(K, C // G, R, S, dtype=torch.float64) / (R * S * C // G) ** 0.5
        w.requires_grad_(True)
        b = (torch.randn(K, dtype=torch.float64) if hb else torch.zeros(K, dtype=torch.float64))
        b.requires_grad_(True)
        # round inputs to float32 first so C sees exactly what PyTorch used
        with torch.no_grad():
            x.copy_(x.float().double())
            w.copy_(w.float().double())
            b.copy_(b.float().double())
        y = F.conv2d(x, w, b if hb else None, stride=(sh, sw), padding=(ph, pw),
                     dilation=(dh, dw), groups=G)
        g = torch.randn_like(y).float().double()
        (y * g).sum().backward()
        p = "c%d_" % i
        arrays[p + "shape"] = torch.tensor([N, H, W, C, K, R, S, sh, sw, ph, pw, dh, dw, G, hb],
                                           dtype=torch.int32)
        arrays[p + "x"] = x.detach().permute(0, 2, 3, 1).float()
        arrays[p + "w"] = w.detach().permute(0, 2, 3, 1).float()
        arrays[p + "b"] = b.detach().float()
        arrays[p + "g"] = g.permute(0, 2, 3, 1).float()
        arrays[p + "y"] = y.detach().permute(0, 2, 3, 1).float()
        arrays[p + "dx"] = x.grad.permute(0, 2, 3, 1).float()
        arrays[p + "dw"] = w.grad.permute(0, 2, 3, 1).float()
        arrays[p + "db"] = (b.grad if hb else torch.zeros(K, dtype=torch.float64)).float()
    arrays["count"] = torch.tensor([len(CASES)], dtype=torch.int32)
    print(fixture.write("conv2d", arrays))


if __name__ == "__main__":
    main()
