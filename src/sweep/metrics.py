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
