"""Evaluation with scikit-learn's metrics. Micro-F1 equals accuracy on single-label data: we report accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    precision_recall_fscore_support,
)


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
    return {"accuracy": tp.sum(-1) / conf.sum((-2, -1)), "macro_f1": f1.mean(-1),
            "balanced_accuracy": np.nanmean(recall, -1)}


def bootstrap(y_true: np.ndarray, preds: dict[str, np.ndarray], num_classes: int, n_boot: int = 2000,
              seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Stratified bootstrap over test examples (resampled within each true class), vectorized: one
    bincount builds all n_boot confusion matrices. The same resamples serve every prediction vector, so
    differences between two models are paired. Returns name -> metric -> (n_boot,) samples."""
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot} must be >= 1")
    rng = np.random.default_rng(seed)
    idx = np.concatenate([members[rng.integers(0, len(members), size=(n_boot, len(members)))]
                          for c in range(num_classes) if len(members := np.flatnonzero(y_true == c))], axis=1)
    offset = (np.arange(n_boot) * num_classes * num_classes)[:, None]
    truth = y_true[idx] * num_classes
    out = {}
    for name, pred in preds.items():
        codes = offset + truth + pred[idx]
        conf = np.bincount(codes.ravel(), minlength=n_boot * num_classes ** 2).reshape(n_boot, num_classes,
                                                                                       num_classes)
        out[name] = _scores_from_confusion(conf)
    return out


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)
