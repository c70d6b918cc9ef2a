"""The post-hoc tau curve of one fit: validation accuracy and macro-F1 at every tau of a fine grid, from the
fit's logits (no refit: post-hoc adjustment only moves the argmax).

Each point of the curve is a candidate to ship, so a front read off many curves is optimistic on the split
it was chosen on (the winner's curse): its test intervals, not its validation values, say what holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sweep.models.metrics import _scores_from_confusion

TAU_GRID = np.round(np.arange(0.0, 2.0 + 1e-9, 0.02), 2)  # the default search range of loss.posthoc_tau


def tau_curve(logits: np.ndarray, y: np.ndarray, log_prior: np.ndarray, taus: np.ndarray = TAU_GRID) -> pd.DataFrame:
    """One row per tau: accuracy and macro-F1 of argmax(logits - tau * log_prior), from one confusion
    matrix per tau (the metrics module's formula). The argmax runs over each row's candidates only (the classes
    that can win somewhere in the grid's range, _candidates), with the same float operations as
    posthoc_predict, so the predictions are the same ones (tests/models/test_posthoc.py)."""
    logits, log_prior, taus = np.asarray(logits, np.float64), np.asarray(log_prior, np.float64), np.asarray(taus)
    n, k = logits.shape
    keep = _candidates(logits, log_prior, float(taus.min()), float(taus.max()))
    m = int(keep.sum(1).max())
    order = np.argsort(~keep, axis=1, kind="stable")[:, :m]  # each row's candidates first, in class order
    zc = np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(logits, order, 1), -np.inf)
    pc, rows = log_prior[order], np.arange(n)
    conf = np.stack(
        [np.bincount(y * k + order[rows, (zc + (-t) * pc).argmax(1)], minlength=k * k).reshape(k, k) for t in taus]
    )
    scores = _scores_from_confusion(conf)
    return pd.DataFrame({"posthoc_tau": taus, "val_accuracy": scores["accuracy"], "val_macro_f1": scores["macro_f1"]})


def _candidates(logits: np.ndarray, log_prior: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(n, k) bool: the classes that can be a row's argmax of logits - tau * log_prior for some tau in [lo, hi].
    Every winner is at or above L(tau), the upper envelope of the two endpoint winners' lines; a class's gap to
    L is concave and piecewise linear in tau, so it is largest at lo, at hi or where those two lines cross:
    a class below L at all three points never wins. (A 1e-9 relative slack keeps rounding ties in.)"""
    rows = np.arange(len(logits))
    v_lo, v_hi = logits + (-lo) * log_prior, logits + (-hi) * log_prior
    a, b = v_lo.argmax(1), v_hi.argmax(1)
    za, zb, pa, pb = logits[rows, a], logits[rows, b], log_prior[a], log_prior[b]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.clip(np.nan_to_num(np.where(pa != pb, (za - zb) / (pa - pb), lo), nan=lo), lo, hi)
    keep = np.zeros(logits.shape, dtype=bool)
    for v in (v_lo, v_hi, logits + (-cross[:, None]) * log_prior):
        envelope = np.maximum(v[rows, a], v[rows, b])[:, None]
        keep |= v >= envelope - 1e-9 * (1.0 + np.abs(envelope))
    return keep
