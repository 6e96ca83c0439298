"""Writes a tiny, learnable IDX dataset (standard library only) for the training tests:
three classes of 12x12 grey images — horizontal stripes, vertical stripes, a centred blob —
with noise; DIR/train-*-ubyte.gz (N_TRAIN images) and DIR/t10k-*-ubyte.gz (N_TEST).
Usage: make_tiny_idx.py DIR [N_TRAIN N_TEST]"""
import gzip
import os
import random
import struct
import sys

SIZE = 12


def image(cls, rng):
    px = []
    phase = rng.randrange(4)
    for y in range(SIZE):
        for x in range(SIZE):
            if cls == 0:
                v = 200 if (y + phase) % 4 < 2 else 40
            elif cls == 1:
                v = 200 if (x + phase) % 4 < 2 else 40
            else:
                d = (x - 5.5) ** 2 + (y - 5.5) ** 2
                v = 220 if d < 10 + 4 * phase else 30
            v += rng.randint(-40, 40)
            px.append(max(0, min(255, v)))
    return bytes(px)


def write(path_prefix, n, rng):
    labels = [i % 3 for i in range(n)]
    rng.shuffle(labels)
    with gzip.open(path_prefix + "-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x00000803, n, SIZE, SIZE))
        for c in labels:
            f.write(image(c, rng))
    with gzip.open(path_prefix + "-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x00000801, n))
        f.write(bytes(labels))


if __name__ == "__main__":
    out = sys.argv[1]
    n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 384
    n_test = int(sys.argv[3]) if len(sys.argv) > 3 else 96
    os.makedirs(out, exist_ok=True)
    rng = random.Random(7)
    write(os.path.join(out, "train"), n_train, rng)
    write(os.path.join(out, "t10k"), n_test, rng)
