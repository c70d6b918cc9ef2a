"""Evaluation by scikit-learn's metric definitions, from confusion matrices (micro-F1 equals accuracy on
single-label data: we report accuracy), coverage (classes with F1 > 0), the paired bootstrap (plain or
stratified, any class mix) and its intervals, head / tail figures, and who beats whom beyond noise."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd

COMPARED = ("accuracy", "macro_f1")  # the two objectives: what "beats" and "better on both" refer to
WORDS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> tuple[dict, pd.DataFrame]:
    """Scalar metrics and the per-class table (precision, recall, F1, support) over all training classes, from
    one confusion matrix: scikit-learn's definitions (zero_division=0; balanced accuracy over the classes the
    split holds), checked against scikit-learn in tests/models/test_metrics.py. scikit-learn's five calls took ~20 ms
    a split at 113 classes, each trial scores two splits."""
    k = len(class_names)
    conf = confusion(np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64), k)
    tp, support, predicted = np.diagonal(conf).astype(float), conf.sum(1), conf.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(predicted > 0, tp / predicted, 0.0)
        r = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    f = _scores_from_confusion(conf[None])  # the same F1 formula, and accuracy, balanced accuracy
    per_class = pd.DataFrame({"class": class_names, "precision": p, "recall": r, "f1": f1, "support": support})
    scalars = {
        "accuracy": f["accuracy"][0],
        "macro_f1": f["macro_f1"][0],
        "balanced_accuracy": f["balanced_accuracy"][0],
        "weighted_f1": float(f1 @ support / support.sum()) if support.sum() else 0.0,
        "zero_f1_classes": int((f1 == 0).sum()),
        "coverage": int((f1 > 0).sum()),  # the seed's "classes detected": 64 of 113
    }
    return {k: float(v) for k, v in scalars.items()}, per_class


def _scores_from_confusion(conf: np.ndarray, macro: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1, balanced accuracy and coverage (classes with F1 > 0) of a stack of confusion matrices
    (..., C, C), rows = truth, counts or weights: evaluate's definitions. Macro-F1 and coverage run over every
    class, so a bootstrap resample without a class gives it F1 0, as evaluate does on a split without it (the
    class-count noise of the plain bootstrap); balanced accuracy over the classes the split holds, as
    scikit-learn's. `macro`: a boolean mask of the classes averaged over (default: all; a class mix without
    some classes leaves them out)."""
    tp = np.diagonal(conf, axis1=-2, axis2=-1).astype(float)
    support, predicted = conf.sum(-1), conf.sum(-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        recall = np.where(support > 0, tp / support, np.nan)
    if macro is not None:
        f1, recall = f1[..., macro], recall[..., macro]
    return {
        "accuracy": tp.sum(-1) / conf.sum((-2, -1)),
        "macro_f1": f1.mean(-1),
        "balanced_accuracy": np.nanmean(recall, -1),
        "coverage": (f1 > 0).sum(-1).astype(float),
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, class_weight: np.ndarray | None = None):
    """The confusion matrix (rows = truth); with class_weight, each example counts class_weight[its class]."""
    w = None if class_weight is None else np.asarray(class_weight, dtype=float)[y_true]
    codes = y_true * num_classes + y_pred
    return np.bincount(codes, weights=w, minlength=num_classes**2).reshape(num_classes, num_classes)


def mix_weights(y_true: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Importance weight per class for another class mix: share(c) / the split's share of c (0 for a class the
    split lacks): weighted by it, the split's examples have the mix's class shares."""
    split_share = np.bincount(y_true, minlength=len(share)) / len(y_true)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(split_share > 0, np.asarray(share, dtype=float) / split_share, 0.0)


def resample_indices(y_true: np.ndarray, n_boot: int, seed: int = 0, stratified: bool = False) -> np.ndarray:
    """(n_boot, n) indices of the bootstrap resamples. Plain (default): n examples drawn with replacement, so
    each class's count varies as on another split of the same size (a 1-example class is absent from ~37% of
    the resamples). Stratified: drawn within each true class, every class keeping its count."""
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot} must be >= 1")
    rng = np.random.default_rng(seed)
    if not stratified:
        return rng.integers(0, len(y_true), size=(n_boot, len(y_true)))
    return np.concatenate(
        [
            members[rng.integers(0, len(members), size=(n_boot, len(members)))]
            for c in range(int(y_true.max()) + 1)
            if len(members := np.flatnonzero(y_true == c))
        ],
        axis=1,
    )


def bootstrap(
    y_true: np.ndarray,
    preds: dict[str, np.ndarray],
    num_classes: int,
    n_boot: int = 2000,
    seed: int = 0,
    stratified: bool = False,
    class_weight: np.ndarray | None = None,
    macro: np.ndarray | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Paired bootstrap over examples (resample_indices: plain by default, or stratified), vectorized: one
    bincount builds a block of resamples' confusion matrices. The same resamples serve every prediction vector,
    so differences between two models are paired. class_weight (per true class) re-weights the examples, for
    another class mix; macro: see _scores_from_confusion. Returns name -> metric -> (n_boot,) samples."""
    idx = resample_indices(y_true, n_boot, seed, stratified)
    k2 = num_classes * num_classes
    truth = y_true[idx] * num_classes
    weights = None if class_weight is None else np.asarray(class_weight, dtype=float)[y_true][idx]
    block = max(1, 2_000_000 // max(k2, idx.shape[1]))  # bounded memory at 100+ classes
    out = {}
    for name, pred in preds.items():
        parts = []
        for b in range(0, n_boot, block):
            rows = slice(b, b + block)
            codes = (np.arange(idx[rows].shape[0]) * k2)[:, None] + truth[rows] + pred[idx[rows]]
            w = None if weights is None else weights[rows].ravel()
            conf = np.bincount(codes.ravel(), weights=w, minlength=codes.shape[0] * k2)
            parts.append(_scores_from_confusion(conf.reshape(-1, num_classes, num_classes), macro))
        out[name] = {m: np.concatenate([p[m] for p in parts]) for m in parts[0]}
    return out


def interval(samples: np.ndarray, level: float = 0.95, discrete: bool = False) -> tuple[float, float]:
    """The percentile interval; discrete (counts): the nearest sample values outward."""
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    if discrete:
        return float(np.quantile(samples, q[0], method="lower")), float(np.quantile(samples, q[1], method="higher"))
    lo, hi = np.quantile(samples, q)
    return float(lo), float(hi)


def coverage_interval(samples: np.ndarray, observed: float, level: float = 0.95) -> tuple[float, float]:
    """Whole classes, and never excluding the observed count. Resampling only takes hits away (a class with one
    or two correct test predictions loses them in many resamples; one with none never gains any), so the
    resamples sit at or under the observed count: the lower end is what a same-size test set may show, the
    upper end the observed count (or above it where the resamples are)."""
    lo, hi = np.quantile(samples, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(min(np.floor(lo), observed)), float(max(np.round(hi), observed))


def point_scores(point: dict) -> dict[str, float]:
    """Test accuracy, macro-F1, balanced accuracy, weighted F1 and zero-F1 classes of logged predictions."""
    return evaluate(point["y"], point["pred"], point["names"])[0]


def per_class_f1(point: dict) -> np.ndarray:
    return evaluate(point["y"], point["pred"], point["names"])[1]["f1"].to_numpy()


def majority_point(point: dict) -> dict:
    """The majority-class baseline on the same test split: every example gets the largest training class."""
    return {**point, "pred": np.full_like(point["y"], int(np.argmax(point["counts"])))}


def head_classes(counts: np.ndarray) -> np.ndarray:
    """The largest classes that together hold 80% of the training volume."""
    order = np.argsort(-counts, kind="stable")
    share = np.cumsum(counts[order]) / counts.sum()
    return order[: int(np.searchsorted(share, 0.8) + 1)]


def head_tail(point: dict, head: np.ndarray) -> dict[str, float]:
    """The same two metrics on the head classes and on the tail (the other classes). Accuracy: the share of
    the group's test examples predicted correctly. Macro-F1: the mean over the group's classes of each
    class's F1 on the whole test split (a tail example predicted as a head class counts against that head
    class's precision)."""
    y, pred, f1 = point["y"], point["pred"], per_class_f1(point)
    groups = {"head": np.asarray(head), "tail": np.setdiff1d(np.arange(len(point["names"])), head)}
    out = {}
    for group, classes in groups.items():
        member = np.isin(y, classes)
        out[f"{group}_accuracy"] = float((pred[member] == y[member]).mean()) if member.any() else float("nan")
        out[f"{group}_macro_f1"] = float(f1[classes].mean()) if len(classes) else float("nan")
    return out


def comparisons(samples: dict, scores: dict, front_keys: list, baselines: dict[str, Hashable]) -> dict:
    """Who beats whom on the test split, per front point (from paired bootstrap samples: `samples[key][metric]`
    share their resamples). A beats B on a metric beyond noise when the 95% interval of A - B lies above 0.

    beats_beyond_noise: the other front points and the baselines it beats beyond noise, with the metrics,
    e.g. "sqrt_inverse (macro-F1); trial 12 (accuracy and macro-F1)".
    beaten_by_baseline: each baseline that beats it beyond noise on a metric, or has the higher point
    estimate on both metrics (then both are named, each tagged beyond / within noise), e.g.
    "sqrt_inverse on accuracy and macro-F1 (within noise)". Empty: no baseline does."""

    def above(a, b, metric: str) -> bool:
        return interval(samples[a][metric] - samples[b][metric])[0] > 0

    def named(metrics: list[str]) -> str:
        return " and ".join(WORDS[m] for m in metrics)

    # a baseline that is also on the front is named as the baseline
    others = [(f"trial {k}", k) for k in front_keys if k not in baselines.values()] + list(baselines.items())
    out = {}
    for a in front_keys:
        beats = [
            f"{label} ({named(won)})"
            for label, b in others
            if b != a and (won := [m for m in COMPARED if above(a, b, m)])
        ]
        beaten = []
        for name, b in baselines.items():
            if b == a:
                continue
            beyond = [m for m in COMPARED if above(b, a, m)]
            both = all(scores[b][m] > scores[a][m] for m in COMPARED)
            within = [m for m in COMPARED if both and m not in beyond]
            parts = [f"{named(ms)} ({tag})" for ms, tag in ((beyond, "beyond noise"), (within, "within noise")) if ms]
            if parts:
                beaten.append(f"{name} on {' and '.join(parts)}")
        out[a] = {"beats_beyond_noise": "; ".join(beats), "beaten_by_baseline": "; ".join(beaten)}
    return out
