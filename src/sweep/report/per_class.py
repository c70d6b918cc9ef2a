"""The per-class F1 table (pareto_report/per_class.md / .csv): per class, largest training count first, the
test F1 of the unweighted model and of each front point, and the classes that moved most."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sweep.models.metrics import per_class_f1


def most_changed(reference: np.ndarray, f1s: list[np.ndarray], top: int = 5, at_least: float = 0.05) -> np.ndarray:
    """The classes whose test F1 moved most against the reference (largest |change| over the points): at most
    `top`, each by `at_least` or more (a smaller move is not worth a name); largest first."""
    change = np.max(np.abs(np.stack([f - reference for f in f1s])), axis=0) if f1s else np.zeros_like(reference)
    order = np.argsort(-change, kind="stable")[:top]
    return order[change[order] >= at_least]


def per_class_table(reference: dict, points: dict[str, dict], top: int = 5) -> pd.DataFrame:
    """Per class, largest training count first: training and test examples, test F1 of the reference
    (unweighted) and of each point (label -> logged predictions), and the `top` classes whose F1 moved most
    marked with their largest change (see most_changed)."""
    ref_f1 = per_class_f1(reference)
    f1s = {name: per_class_f1(p) for name, p in points.items()}
    table = pd.DataFrame(
        {
            "class": reference["names"],
            "training examples": reference["counts"],
            "test examples": np.bincount(reference["y"], minlength=len(reference["names"])),
            "F1 unweighted": ref_f1.round(2),
        }
    )
    for name, f in f1s.items():
        table[f"F1 {name}"] = f.round(2)
    marked = [""] * len(ref_f1)
    for i in most_changed(ref_f1, list(f1s.values()), top):
        deltas = {name: f[i] - ref_f1[i] for name, f in f1s.items()}
        name = max(deltas, key=lambda k: abs(deltas[k]))
        marked[i] = f"{'up' if deltas[name] > 0 else 'down'} {deltas[name]:+.2f}" + (
            f" ({name})" if len(f1s) > 1 else ""
        )
    table["moved most (F1 change)"] = marked
    return table.sort_values("training examples", ascending=False, kind="stable").reset_index(drop=True)
