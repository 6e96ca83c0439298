"""Writer for the binary fixtures the C tests read (tests/unit/harness.c documents the layout).

Used only to generate reference data with PyTorch; the C tests never need Python.
"""
import os
import struct

import numpy as np

FIXTURE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def write(name, arrays):
    """arrays: dict name -> numpy array / torch tensor (float -> f32, integer -> i32)."""
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    path = os.path.join(FIXTURE_DIR, name + ".bin")
    with open(path + ".tmp", "wb") as f:
        f.write(b"OCFX")
        f.write(struct.pack("<II", 1, len(arrays)))
        for key, value in arrays.items():
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            is_int = np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_
            data = value.astype("<i4" if is_int else "<f4")
            enc = key.encode()
            f.write(struct.pack("<H", len(enc)))
            f.write(enc)
            f.write(struct.pack("<BB", 1 if is_int else 0, data.ndim))
            for d in data.shape:
                f.write(struct.pack("<q", d))
            f.write(np.ascontiguousarray(data).tobytes())
    os.replace(path + ".tmp", path)
    return path
