"""Reference metrics from scikit-learn for tests/unit/test_metrics.c.

Each case writes labels, scores (probabilities or logits) and what scikit-learn 1.2 computes
from them with labels=range(K), zero_division=0: accuracy_score, top_k_accuracy_score for every
k, confusion_matrix, precision_recall_fscore_support (average None / macro / weighted). ECE,
mean confidence, NLL, the most confident mistakes and the top confusions have no sklearn
function; they are computed here with numpy from their textbook definitions (ECE: Guo et al.
2017, 15 equal-width bins (lo, hi]).
"""
import warnings

import numpy as np
from sklearn.metrics import (accuracy_score, confusion_matrix,
                             precision_recall_fscore_support, top_k_accuracy_score)

import fixture

warnings.simplefilter("ignore")  # sklearn warns about the zero_division cases on purpose

N_MISTAKES = 12
N_CONFUSIONS = 10


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def make_case(rng, n, k, signal, never_predicted=(), absent=(), logits=False):
    labels = rng.choice([c for c in range(k) if c not in absent], size=n)
    z = rng.normal(size=(n, k)) * 1.5
    z[np.arange(n), labels] += signal
    for c in never_predicted:
        z[:, c] -= 50.0  # never the arg-max
    z = z.astype(np.float32)
    if logits:
        scores = z
    else:
        scores = softmax(z.astype(np.float64)).astype(np.float32)
    return labels.astype(np.int32), scores


def reference(labels, scores, k, logits):
    s64 = scores.astype(np.float64)
    probs = softmax(s64) if logits else s64
    pred = s64.argmax(axis=1)
    labs = list(range(k))
    out = {}
    out["accuracy"] = np.array([accuracy_score(labels, pred)])
    out["topk"] = np.array([top_k_accuracy_score(labels, s64, k=kk, labels=labs)
                            for kk in range(1, k + 1)])
    out["top5"] = np.array([top_k_accuracy_score(labels, s64, k=5, labels=labs)])
    out["confusion"] = confusion_matrix(labels, pred, labels=labs)
    p, r, f, sup = precision_recall_fscore_support(labels, pred, labels=labs, zero_division=0)
    out["precision"], out["recall"], out["f1"], out["support"] = p, r, f, sup
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(labels, pred, labels=labs,
                                                        average=avg, zero_division=0)
        out[avg] = np.array([ap, ar, af])

    conf = probs.max(axis=1)
    correct = pred == labels
    edges = np.linspace(0.0, 1.0, 16)
    ece = 0.0
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        inb = (conf > lo) & (conf <= hi)
        if i == 0:
            inb |= conf == 0.0
        if inb.any():
            ece += inb.mean() * abs(correct[inb].mean() - conf[inb].mean())
    out["ece"] = np.array([ece])
    out["mean_conf"] = np.array([conf.mean()])
    p_true = probs[np.arange(len(labels)), labels]
    out["nll"] = np.array([np.mean(-np.log(np.maximum(p_true, 1e-12)))])

    wrong = np.flatnonzero(~correct)
    # probability rounded to float32 as the C side keeps it; stable sort keeps index order on ties
    wconf = conf[wrong].astype(np.float32)
    order = np.argsort(-wconf, kind="stable")
    out["mistakes"] = wrong[order][:N_MISTAKES]

    cm = out["confusion"].copy()
    np.fill_diagonal(cm, 0)
    cells = [(-cm[t, q], t, q) for t in range(k) for q in range(k) if cm[t, q] > 0]
    cells.sort()
    out["confusions"] = np.array([[t, q, -c] for c, t, q in cells[:N_CONFUSIONS]],
                                 dtype=np.int64).reshape(-1, 3)
    return out


def main():
    rng = np.random.default_rng(20240611)
    cases = [
        # name, n, k, signal, never predicted, absent from truth, logits
        ("k10_probs", 300, 10, 2.0, (7,), (3,), False),
        ("k10_logits", 157, 10, 1.0, (2,), (), True),
        ("k10_sparse", 37, 10, 1.5, (4,), (4, 9), False),  # class 4 neither true nor predicted
        ("k3_logits", 64, 3, 1.0, (2,), (), True),
        ("k3_probs", 45, 3, 0.5, (), (0,), False),
    ]
    arrays = {"n_cases": np.array([len(cases)], dtype=np.int32)}
    for i, (name, n, k, signal, never, absent, logits) in enumerate(cases):
        labels, scores = make_case(rng, n, k, signal, never, absent, logits)
        ref = reference(labels, scores, k, logits)
        pred = scores.argmax(axis=1)
        assert all((pred != c).all() for c in never)
        assert all((labels != c).all() for c in absent)
        pre = f"c{i}_"
        arrays[pre + "k"] = np.array([k], dtype=np.int32)
        arrays[pre + "logits"] = np.array([1 if logits else 0], dtype=np.int32)
        arrays[pre + "labels"] = labels
        arrays[pre + "scores"] = scores
        for key, value in ref.items():
            arrays[pre + key] = value
        print(f"{name}: n={n} k={k} accuracy={ref['accuracy'][0]:.4f} "
              f"macro_f1={ref['macro'][2]:.4f} ece={ref['ece'][0]:.4f}")
    path = fixture.write("metrics", arrays)
    print("wrote", path)


if __name__ == "__main__":
    main()
