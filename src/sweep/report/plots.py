"""The pictures of a front: accuracy vs macro-F1 (trials, the front, the baselines; validation or test) and
per-class F1 against class size, each written to a temporary file and renamed into place."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from sweep.files import write_atomic
from sweep.report.annotate import label_without_overlap, legend_below
from sweep.search.pareto import complete_trials, front


def _save(fig, path: Path, layout: bool = True) -> Path:
    import matplotlib.pyplot as plt

    if layout:
        fig.tight_layout()
    path = Path(path)
    try:  # renamed into place: never a half-written picture
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png"))
    finally:
        plt.close(fig)


def _sizes(numbers: list[int], p_front: dict[int, float] | None, small: float, large: float) -> np.ndarray:
    """Marker areas: p_front 0 -> small, 1 -> large (a trial without p_front: the midpoint)."""
    p = np.array([(p_front or {}).get(n, np.nan) for n in numbers], dtype=float)
    return small + (large - small) * np.where(np.isfinite(p), p, 0.5 if p_front else 1.0)


def plot_front(
    study: optuna.Study,
    path: Path,
    baselines: dict[str, tuple[float, float]],
    split: str = "val",
    intervals: dict[int, dict] | None = None,
    points: dict[int, tuple[float, float]] | None = None,
    flagged: dict[int, str] | None = None,
    note: str | None = None,
    p_front: dict[int, float] | None = None,
    mix: str | None = None,
) -> Path:
    """Accuracy vs macro-F1: the trials as points, the front drawn, the baselines marked.

    split "val" plots every complete trial's objectives. "test" plots the trials in `points` (trial number ->
    (test accuracy, test macro-F1)), which the caller computes from the logged predictions: trials store no
    test metrics. intervals: trial number -> {"accuracy": (lo, hi), "macro_f1": (lo, hi)} drawn as error bars.
    flagged: trial number -> a short note (e.g. "beaten by sqrt_inverse"): the point ringed, the note beside it.
    note: a sentence under the title (e.g. that a baseline beats the front on test). p_front: trial number ->
    its p_front, drawn as marker size. mix: the class mix the test figures are for (default "natural").
    A study with a third objective (coverage) shows its front unjoined, each label with its coverage. No
    label covers a marker or another label; the legend sits under the axes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if split not in ("val", "test"):
        raise ValueError(f"split={split!r} is unknown: use 'val' or 'test'")
    if split == "test" and points is None:
        raise ValueError(
            "split='test' needs points= (trial number -> test accuracy, macro-F1), computed from the "
            "logged predictions: trials store no test metrics"
        )

    def xy(t: FrozenTrial) -> tuple[float, float]:
        return (t.values[0], t.values[1]) if split == "val" else points.get(t.number, (np.nan, np.nan))

    def shown(ts: list[FrozenTrial]) -> list[FrozenTrial]:
        return [t for t in ts if np.all(np.isfinite(xy(t)))]

    three = len(study.directions) > 2
    trials, best = shown(complete_trials(study)), shown(front(study))
    fig = plt.figure(figsize=(9, 6.2), dpi=110)
    ax = fig.add_axes((0.09, 0.31, 0.69, 0.56))  # the legend under it, the right margin for crowded labels
    if trials:
        pts = np.array([xy(t) for t in trials])
        what = "trials" if split == "val" else "scored trials"
        size = _sizes([t.number for t in trials], p_front, 8, 60) if split == "val" else 18
        ax.scatter(pts[:, 0], pts[:, 1], s=size, c="#9aa5b1", label=f"{what} ({len(trials)})", zorder=2)
    if best:
        fp = np.array([xy(t) for t in best])
        order = np.argsort(fp[:, 0])
        kind = "Pareto front, 3 objectives; label: classes detected" if three else "Pareto front"
        name = f"{kind} ({len(best)}{', size: p_front' if p_front else ''})"
        if not three:  # with a third objective the 2-D projection of the front is no line
            ax.plot(fp[order, 0], fp[order, 1], "-", c="#d1495b", lw=1.2, zorder=3, label=name)
        size = _sizes([t.number for t in best], p_front, 20, 90)
        ax.scatter(fp[:, 0], fp[:, 1], s=size, c="#d1495b", label=name if three else None, zorder=3)
        notes = flagged or {}
        same_place: dict[tuple[float, float], list[FrozenTrial]] = {}  # tied trials: one label, not two on top
        for t, (x, y) in zip(best, fp, strict=True):
            same_place.setdefault((x, y), []).append(t)
        labels = {}
        for (x, y), ts in same_place.items():
            said = list(dict.fromkeys(notes[t.number] for t in ts if t.number in notes))
            cov = f" (cov {ts[0].values[2]:.0f})" if three else ""
            text = ", ".join(str(t.number) for t in ts) + cov + (f": {'; '.join(said)}" if said else "")
            labels[(x, y)] = textwrap.fill(text, 34)
        ringed = [(x, y) for t, (x, y) in zip(best, fp, strict=True) if t.number in notes]
        if ringed:
            r = np.array(ringed)
            ax.scatter(
                r[:, 0],
                r[:, 1],
                s=170,
                facecolors="none",
                edgecolors="black",
                linewidths=1.4,
                label=f"beaten by a baseline ({len(ringed)})",
                zorder=5,
            )
        if intervals:
            legend = "95% bootstrap interval"
            for t, (x, y) in zip(best, fp, strict=True):
                ci = intervals.get(t.number)
                if ci:
                    ax.errorbar(
                        x,
                        y,
                        xerr=[[x - ci["accuracy"][0]], [ci["accuracy"][1] - x]],
                        yerr=[[y - ci["macro_f1"][0]], [ci["macro_f1"][1] - y]],
                        c="#d1495b",
                        alpha=0.35,
                        lw=1,
                        zorder=1,
                        label=legend,
                    )
                    legend = None  # once in the legend
    # Zoom on the trials; a baseline far outside (the majority class, usually) is named in the legend instead,
    # so that it does not squash the front into a corner.
    markers = iter(["s", "^", "D", "v", "P", "X"])
    if trials:
        lo, hi = np.nanmin(pts, axis=0), np.nanmax(pts, axis=0)
        pad = np.maximum((hi - lo) * 0.15, 0.01)
        lo, hi = lo - pad, hi + pad
    for name, (x, y) in baselines.items():
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        near = np.all((lo - 3 * pad <= (x, y)) & ((x, y) <= hi + 3 * pad)) if trials else True
        if not near:
            ax.plot([], [], ls="none", label=f"{name}: accuracy {x:.3f}, macro-F1 {y:.3f} (off the chart)")
            continue
        ax.scatter([x], [y], marker=next(markers, "*"), s=70, edgecolor="black", label=name, zorder=4)
    words = "validation" if split == "val" else "test"
    mix = (mix or "natural") if split == "test" else None
    on = f" ({mix} class mix)" if mix and mix != "natural" else ""
    ax.set_xlabel(f"{words} accuracy{on}")
    ax.set_ylabel(f"{words} macro-F1{on}")
    where = f"the {words} split" + (" (natural class mix)" if mix == "natural" else "")
    if mix and mix != "natural":
        where = f"the test split re-weighted to the {mix} class mix"
    title = f"Accuracy vs macro-F1 on {where}" + (
        ": the front chosen on validation, and the baselines" if split == "test" else ": every trial and the front"
    )
    title = textwrap.fill(title, 95)
    if note:
        title += "\n" + textwrap.fill(note, 95)
    ax.set_title(title, fontsize=9 if note else 10, color="#8b0000" if note else "black")
    ax.grid(alpha=0.3)
    legend_below(ax, ncol=2, gap=0.12)
    if best:
        label_without_overlap(ax, list(labels), list(labels.values()))
    return _save(fig, path, layout=False)


def plot_per_class(
    f1: np.ndarray,
    counts: np.ndarray,
    title: str,
    path: Path,
    reference: np.ndarray | None = None,
    names: list[str] | None = None,
    marked: list[int] | np.ndarray = (),
) -> Path:
    """Left: the per-class F1 histogram (the spike at zero and how it shrinks), whole classes on its y axis;
    right: per-class F1 against the class's training frequency (log scale), the `marked` classes (those that
    moved most) named, a line from the reference's F1 to this one. The reference run (unweighted) in grey.
    title: what the point is, in words (e.g. "alpha 0.75 + post-hoc tau 0.33")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.0), dpi=100)
    fig.subplots_adjust(left=0.06, right=0.86, bottom=0.27, top=0.85, wspace=0.22)  # legends under, labels right
    bins = np.linspace(0, 1, 11)
    if reference is not None:
        left.hist(reference, bins=bins, color="#9aa5b1", alpha=0.6, label="unweighted (reference)")
        right.scatter(counts, reference, c="#9aa5b1", s=18, label="unweighted (reference)")
    left.hist(f1, bins=bins, color="#d1495b", alpha=0.6, label=title)
    left.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    left.set_xlabel("per-class test F1")
    left.set_ylabel("number of classes")
    left.set_title(f"How many classes reach each F1 (F1 = 0: {int((f1 == 0).sum())} of {len(f1)})", fontsize=10)
    right.scatter(counts, f1, c="#d1495b", s=22, label=title)
    marked = [int(i) for i in marked]
    if reference is not None:
        for i in marked:
            right.plot([counts[i], counts[i]], [reference[i], f1[i]], c="#d1495b", lw=0.8, alpha=0.6)
    right.set_xscale("log")
    right.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    right.set_xlabel("training examples of the class (log)")
    right.set_ylabel("per-class test F1")
    right.set_title("Per-class F1 against class size; the classes that moved most named", fontsize=10)
    fig.suptitle(
        f"Per-class test F1: {title}" + (" vs the unweighted model" if reference is not None else ""), fontsize=11
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
        legend_below(ax, ncol=1, gap=0.16)
    if names is not None and marked:
        right.set_ylim(-0.05, 1.05)
        label_without_overlap(right, [(counts[i], f1[i]) for i in marked], [names[i] for i in marked])
    return _save(fig, path, layout=False)
