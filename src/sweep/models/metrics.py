"""Evaluation with scikit-learn's metrics (micro-F1 equals accuracy on single-label data: we report accuracy),
the stratified bootstrap and its intervals, head / tail figures, and who beats whom beyond noise."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_recall_fscore_support,
)

COMPARED = ("accuracy", "macro_f1")  # the two objectives: what "beats" and "better on both" refer to
WORDS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> tuple[dict, pd.DataFrame]:
    """Scalar metrics and the per-class table (precision, recall, F1, support) over all training classes."""
    labels = np.arange(len(class_names))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = pd.DataFrame({"class": class_names, "precision": p, "recall": r, "f1": f, "support": s})
    scalars = {
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        "weighted_f1": f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0),
        "zero_f1_classes": int((f == 0).sum()),
    }
    return {k: float(v) for k, v in scalars.items()}, per_class


def _scores_from_confusion(conf: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1, balanced accuracy of a stack of confusion matrices (..., C, C), rows = truth."""
    tp = np.diagonal(conf, axis1=-2, axis2=-1).astype(float)
    support, predicted = conf.sum(-1), conf.sum(-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        recall = np.where(support > 0, tp / support, np.nan)
    return {
        "accuracy": tp.sum(-1) / conf.sum((-2, -1)),
        "macro_f1": f1.mean(-1),
        "balanced_accuracy": np.nanmean(recall, -1),
    }


def bootstrap(
    y_true: np.ndarray, preds: dict[str, np.ndarray], num_classes: int, n_boot: int = 2000, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """Stratified bootstrap over test examples (resampled within each true class), vectorized: one
    bincount builds all n_boot confusion matrices. The same resamples serve every prediction vector, so
    differences between two models are paired. Returns name -> metric -> (n_boot,) samples."""
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot} must be >= 1")
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [
            members[rng.integers(0, len(members), size=(n_boot, len(members)))]
            for c in range(num_classes)
            if len(members := np.flatnonzero(y_true == c))
        ],
        axis=1,
    )
    offset = (np.arange(n_boot) * num_classes * num_classes)[:, None]
    truth = y_true[idx] * num_classes
    out = {}
    for name, pred in preds.items():
        codes = offset + truth + pred[idx]
        conf = np.bincount(codes.ravel(), minlength=n_boot * num_classes**2).reshape(n_boot, num_classes, num_classes)
        out[name] = _scores_from_confusion(conf)
    return out


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


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
