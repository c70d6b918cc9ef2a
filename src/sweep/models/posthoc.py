"""The post-hoc tau curve of one fit: validation accuracy and macro-F1 at every tau of a fine grid, from the
fit's logits (no refit: post-hoc adjustment only moves the argmax).

Each point of the curve is a candidate to ship, so a front read off many curves is optimistic on the split
it was chosen on (the winner's curse): its test intervals, not its validation values, say what holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sweep.models.losses import posthoc_predict
from sweep.models.metrics import _scores_from_confusion

TAU_GRID = np.round(np.arange(0.0, 2.0 + 1e-9, 0.02), 2)  # the default search range of loss.posthoc_tau


def tau_curve(logits: np.ndarray, y: np.ndarray, log_prior: np.ndarray, taus: np.ndarray = TAU_GRID) -> pd.DataFrame:
    """One row per tau: accuracy and macro-F1 of argmax(logits - tau * log_prior), from one confusion
    matrix per tau (the metrics module's formula)."""
    k = logits.shape[1]
    conf = np.stack(
        [np.bincount(y * k + posthoc_predict(logits, log_prior, t), minlength=k * k).reshape(k, k) for t in taus]
    )
    scores = _scores_from_confusion(conf)
    return pd.DataFrame({"posthoc_tau": taus, "val_accuracy": scores["accuracy"], "val_macro_f1": scores["macro_f1"]})
