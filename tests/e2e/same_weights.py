"""Exits 0 when two safetensors files hold bitwise identical tensors (names, dtypes, shapes and
bytes), ignoring metadata; prints the first difference otherwise. Standard library only."""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = (t["dtype"], tuple(t["shape"]), data[base + b:base + e])
    return out


a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
if a.keys() != b.keys():
    sys.exit(f"different tensors: {sorted(a.keys() ^ b.keys())[:5]}")
for k in sorted(a):
    if a[k] != b[k]:
        sys.exit(f"tensor {k} differs")
print(f"{len(a)} tensors identical")
