#!/usr/bin/python3
"""Independent reader for ocelot model files, using only json, struct and numpy.

Parses the safetensors container by hand (no safetensors package), checks it as strictly as the
reference implementation does (header length, JSON object, known dtypes, shapes, offsets packed
without gaps or overlaps from 0 to the end of the data section, sizes = numel * dtype size,
metadata strings), plus ocelot's own promises with --ocelot (data section 64-byte aligned,
format/version/graph/input/classes/preprocess metadata). Prints each tensor's name, dtype, shape
and checksums, or a JSON summary with --json. Exits 1 on any inconsistency.

usage: read_safetensors.py FILE [--json] [--ocelot]
"""
import json
import struct
import sys
import zlib

import numpy as np

DTYPES = {
    "F32": ("<f4", 4),
    "BF16": ("<u2", 2),  # widened to float32 below
    "I8": ("i1", 1),
    "U8": ("u1", 1),
    "I32": ("<i4", 4),
    "I64": ("<i8", 8),
    "F16": ("<f2", 2),
    "F64": ("<f8", 8),
}
STATE_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


class Bad(Exception):
    pass


def read(path, ocelot):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise Bad(f"file is {len(blob)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise Bad(f"header length {n} runs past the end of the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Bad(f"header is not valid JSON: {e}")
    if not isinstance(header, dict):
        raise Bad("header is not a JSON object")
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise Bad("__metadata__ is not an object of strings")

    tensors = []
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) < {"dtype", "shape", "data_offsets"}:
            raise Bad(f"tensor {name!r}: entry lacks dtype/shape/data_offsets")
        if e["dtype"] not in DTYPES:
            raise Bad(f"tensor {name!r}: unknown dtype {e['dtype']!r}")
        shape = e["shape"]
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise Bad(f"tensor {name!r}: bad shape {shape!r}")
        offs = e["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2 or
                not all(isinstance(o, int) and o >= 0 for o in offs) or offs[0] > offs[1]):
            raise Bad(f"tensor {name!r}: bad data_offsets {offs!r}")
        np_dtype, size = DTYPES[e["dtype"]]
        numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if offs[1] - offs[0] != numel * size:
            raise Bad(f"tensor {name!r}: {offs[1] - offs[0]} bytes for {numel} x {size}")
        tensors.append((offs[0], offs[1], name, e["dtype"], shape, np_dtype))

    tensors.sort()
    pos = 0
    for begin, end, name, *_ in tensors:
        if begin != pos:
            raise Bad(f"tensor {name!r} starts at {begin}, expected {pos} (gap or overlap)")
        pos = end
    if pos != len(data):
        raise Bad(f"tensors end at {pos} but the data section has {len(data)} bytes")

    out = []
    for begin, end, name, dt, shape, np_dtype in tensors:
        raw = data[begin:end]
        arr = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
        if dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        a64 = arr.astype(np.float64)
        out.append({
            "name": name, "dtype": dt, "shape": shape, "numel": int(arr.size),
            "sum": float(a64.sum()), "abs_sum": float(np.abs(a64).sum()),
            "crc32": zlib.crc32(raw) & 0xFFFFFFFF,
            "state": name.endswith(STATE_SUFFIXES),
        })

    summary = {
        "file_bytes": len(blob), "header_bytes": n, "data_offset": 8 + n,
        "tensors": out, "metadata": meta,
        "numel": sum(t["numel"] for t in out),
        "params": sum(t["numel"] for t in out if not t["state"] and
                      not t["name"].startswith("__checkpoint__.")),
        "param_sum": sum(t["sum"] for t in out if not t["state"] and
                         not t["name"].startswith("__checkpoint__.")),
    }
    if ocelot:
        if (8 + n) % 64:
            raise Bad(f"data section starts at {8 + n}, not 64-byte aligned")
        for key in ("format", "format_version", "graph", "input", "classes", "preprocess"):
            if key not in meta:
                raise Bad(f"ocelot metadata {key!r} missing")
        if meta["format"] != "ocelot":
            raise Bad(f"format is {meta['format']!r}")
        graph = json.loads(meta["graph"])
        classes = json.loads(meta["classes"])
        pre = json.loads(meta["preprocess"])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise Bad("classes is not a list of strings")
        h, w, c = (int(v) for v in meta["input"].split("x"))
        if not isinstance(pre, dict) or len(pre.get("mean", [])) != pre.get("channels"):
            raise Bad("preprocess is malformed")
        for t in out:
            if t["dtype"] != "F32":
                raise Bad(f"model tensor {t['name']!r} is {t['dtype']}, not F32")
        summary.update(graph=graph, classes=classes, input=[h, w, c], preprocess=pre)
    return summary


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    try:
        s = read(args[0], "--ocelot" in argv)
    except (Bad, OSError, ValueError) as e:
        print(f"read_safetensors: {args[0]}: {e}", file=sys.stderr)
        return 1
    if "--json" in argv:
        print(json.dumps(s))
        return 0
    for t in s["tensors"]:
        print(f"{t['name']:40s} {t['dtype']:5s} {str(t['shape']):20s} sum {t['sum']:+.6e} "
              f"crc32 {t['crc32']:08x}")
    print(f"{len(s['tensors'])} tensors, {s['numel']} values, {s['params']} parameters "
          f"(sum {s['param_sum']:+.9e}), {len(s['metadata'])} metadata keys")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
