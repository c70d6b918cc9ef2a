"""The Pareto front of (validation accuracy, validation macro-F1), from Optuna, and its picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState


def front(study: optuna.Study) -> list[FrozenTrial]:
    """Non-dominated complete trials (Optuna's own helper), sorted by validation accuracy."""
    return sorted(study.best_trials, key=lambda t: (t.values[0], t.values[1]))


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_front(study: optuna.Study, path: Path, baselines: dict[str, tuple[float, float]],
               split: str = "val", intervals: dict[int, dict] | None = None) -> Path:
    """Accuracy vs macro-F1: every complete trial a point, the front drawn, the baselines marked.

    split "val" plots the objectives; "test" plots the held-out re-scores stored with each trial.
    intervals: trial number -> {"accuracy": (lo, hi), "macro_f1": (lo, hi)} drawn as error bars.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def xy(t: FrozenTrial) -> tuple[float, float]:
        if split == "val":
            return t.values[0], t.values[1]
        m = t.user_attrs.get("metrics", {})
        return m.get("test_accuracy", np.nan), m.get("test_macro_f1", np.nan)

    trials, best = complete_trials(study), front(study)
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=110)
    if trials:
        pts = np.array([xy(t) for t in trials])
        ax.scatter(pts[:, 0], pts[:, 1], s=18, c="#9aa5b1", label=f"trials ({len(trials)})", zorder=2)
    if best:
        fp = np.array([xy(t) for t in best])
        order = np.argsort(fp[:, 0])
        ax.plot(fp[order, 0], fp[order, 1], "-o", c="#d1495b", ms=6, label=f"Pareto front ({len(best)})", zorder=3)
        for t, (x, y) in zip(best, fp, strict=True):
            ax.annotate(str(t.number), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if intervals:
            for t, (x, y) in zip(best, fp, strict=True):
                ci = intervals.get(t.number)
                if ci:
                    ax.errorbar(x, y, xerr=[[x - ci["accuracy"][0]], [ci["accuracy"][1] - x]],
                                yerr=[[y - ci["macro_f1"][0]], [ci["macro_f1"][1] - y]], c="#d1495b",
                                alpha=0.35, lw=1, zorder=1)
    # Zoom on the trials; a baseline far outside (the majority class, usually) is named in a note instead,
    # so that it does not squash the front into a corner.
    markers = iter(["s", "^", "D", "v", "P"])
    if trials:
        lo, hi = np.nanmin(pts, axis=0), np.nanmax(pts, axis=0)
        pad = np.maximum((hi - lo) * 0.15, 0.01)
        lo, hi = lo - pad, hi + pad
    off_chart = []
    for name, (x, y) in baselines.items():
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        near = np.all((lo - 3 * pad <= (x, y)) & ((x, y) <= hi + 3 * pad)) if trials else True
        if not near:
            off_chart.append(f"{name}: accuracy {x:.3f}, macro-F1 {y:.3f} (off the chart)")
            continue
        ax.scatter([x], [y], marker=next(markers, "X"), s=70, edgecolor="black", label=name, zorder=4)
    if off_chart:
        ax.text(0.99, 0.01, "\n".join(off_chart), transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#9aa5b1"})
    ax.set_xlabel(f"{'validation' if split == 'val' else 'test'} accuracy")
    ax.set_ylabel(f"{'validation' if split == 'val' else 'test'} macro-F1")
    ax.set_title(f"{study.study_name}: accuracy vs macro-F1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def plot_per_class(f1: np.ndarray, counts: np.ndarray, title: str, path: Path,
                   reference: np.ndarray | None = None) -> Path:
    """Left: the per-class F1 histogram (the spike at zero and how it shrinks); right: per-class F1 against
    the class's training frequency (log scale). The reference run in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 - NullFormatter below

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    bins = np.linspace(0, 1, 11)
    if reference is not None:
        left.hist(reference, bins=bins, color="#9aa5b1", alpha=0.6, label="reference (unweighted)")
        right.scatter(counts, reference, c="#9aa5b1", s=18, label="reference (unweighted)")
    left.hist(f1, bins=bins, color="#d1495b", alpha=0.6, label=title)
    left.set_xlabel("per-class test F1")
    left.set_ylabel("classes")
    left.set_title(f"F1 = 0: {int((f1 == 0).sum())} of {len(f1)} classes")
    right.scatter(counts, f1, c="#d1495b", s=22, label=title)
    right.set_xscale("log")
    right.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    right.set_xlabel("training examples of the class (log)")
    right.set_ylabel("per-class test F1")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)
