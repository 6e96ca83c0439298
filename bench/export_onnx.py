#!/usr/bin/python3
"""Exports ocelot zoo models, as PyTorch builds them (tests/ref/torch_zoo.py), to ONNX (opset 13,
eval mode, dynamic batch axis) for the ONNX Runtime peer of the inference benchmark.

    /usr/bin/python3 bench/export_onnx.py OUT_DIR NAME:HxWxC:CLASSES [...]

writes OUT_DIR/NAME_HxW.onnx for each and prints each path. Needs torch only (torch.onnx ships
its own serializer; the `onnx` package is not required).
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import torch_zoo  # noqa: E402


def parse_case(text):
    """'mobilenetv2:224x224x3:1000' -> ('mobilenetv2', 224, 224, 3, 1000)."""
    try:
        name, size, classes = text.rsplit(":", 2)
        h, w, c = (int(v) for v in size.split("x"))
        return name, h, w, c, int(classes)
    except ValueError:
        raise argparse.ArgumentTypeError("expected NAME:HxWxC:CLASSES, not %r" % text)


def onnx_path(out_dir, name, h, w):
    return os.path.join(out_dir, "%s_%dx%d.onnx" % (name.replace(":", "_"), h, w))


def export(out_dir, name, h, w, c, classes):
    torch.manual_seed(0)
    model = torch_zoo.build(name, h, w, c, classes).eval()
    path = onnx_path(out_dir, name, h, w)
    x = torch.randn(1, c, h, w)
    with torch.no_grad():
        torch.onnx.export(model, x, path, opset_version=13, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("cases", nargs="+", type=parse_case, metavar="NAME:HxWxC:CLASSES")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for case in args.cases:
        print(export(args.out_dir, *case))


if __name__ == "__main__":
    main()
