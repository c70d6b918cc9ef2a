"""The independent check of p_front that several tests share: plain Python, scikit-learn per resample and every
pair of trials compared, imported by name (tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

from sklearn.metrics import accuracy_score, f1_score


def slow_p_front(y, preds, k, idx, metrics) -> dict:
    """Plain Python: per resample, each trial scored by scikit-learn (every class, a class the resample lacks
    at F1 0, as evaluate does), then every pair compared."""
    on = dict.fromkeys(preds, 0)
    for rows in idx:
        yb = y[rows]
        scores = {}
        for name, p in preds.items():
            pb = p[rows]
            f1 = f1_score(yb, pb, labels=list(range(k)), average=None, zero_division=0)  # every class, as evaluate
            every = {"accuracy": accuracy_score(yb, pb), "macro_f1": f1.mean(), "coverage": float((f1 > 0).sum())}
            scores[name] = [round(float(every[m]), 12) for m in metrics]
        for a in preds:
            dominated = False
            for b in preds:
                if all(sb >= sa for sa, sb in zip(scores[a], scores[b], strict=True)) and any(
                    sb > sa for sa, sb in zip(scores[a], scores[b], strict=True)
                ):
                    dominated = True
            on[a] += not dominated
    return {name: count / len(idx) for name, count in on.items()}
