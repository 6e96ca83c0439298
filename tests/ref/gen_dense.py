"""PyTorch reference for the dense layer (ops.h oc_dense_fwd / oc_dense_bwd).

For each case: a torch.nn.Linear(I, O) with PyTorch's default initialisation, an input x[N][I]
and a random upstream gradient gy[N][O]; records y = F.linear(x, w, b) and the gradients of
sum(gy * y) with respect to x, w and b. Writes tests/fixtures/dense.bin.
"""
import torch
import torch.nn.functional as F

import fixture

# (N, I, O): the odd small shapes of the spec, a single-unit layer, and one large enough
# (N*I*O >= 32k multiply-adds) that oc_gemm takes its blocked path.
CASES = [(2, 37, 19), (5, 128, 10), (3, 1, 1), (7, 300, 33)]


def main():
    torch.manual_seed(20240611)
    arrays = {"cases": torch.tensor([list(c) for c in CASES], dtype=torch.int32)}
    for k, (n, i, o) in enumerate(CASES):
        lin = torch.nn.Linear(i, o)
        x = torch.randn(n, i, requires_grad=True)
        gy = torch.randn(n, o)
        y = F.linear(x, lin.weight, lin.bias)
        y.backward(gy)
        p = "c%d_" % k
        arrays[p + "x"] = x
        arrays[p + "w"] = lin.weight
        arrays[p + "b"] = lin.bias
        arrays[p + "gy"] = gy
        arrays[p + "y"] = y
        arrays[p + "gx"] = x.grad
        arrays[p + "gw"] = lin.weight.grad
        arrays[p + "gb"] = lin.bias.grad
    print(fixture.write("dense", arrays))


if __name__ == "__main__":
    main()
