"""Labels on the plots placed so that none overlap: each beside its point, spread vertically, a thin line back to
the point when it had to move (no adjustText dependency: one dimension of spreading is enough)."""

from __future__ import annotations

import numpy as np


def spread(ys: list[float], gap: float, lo: float = 0.03, hi: float = 0.97) -> list[float]:
    """Label heights (axes fraction) as close to `ys` as they can be while at least `gap` apart and inside
    [lo, hi]: labels spread in one direction never overlap, however close their points. Same order as ys."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    out = [0.0] * len(ys)
    last = lo - gap
    for i in order:  # up: push each label above the one below
        last = out[i] = max(min(max(ys[i], lo), hi), last + gap)
    ceiling = hi + gap
    for i in reversed(order):  # down: pull back under hi what the first pass pushed out
        ceiling = out[i] = min(out[i], ceiling - gap)
    return out


def label_without_overlap(ax, xy: list[tuple[float, float]], texts: list[str], fontsize: int = 7) -> None:
    """Each text beside its point, spread vertically so that no two overlap, a thin line to the point when
    it had to move. The axis limits are fixed first: the labels do not move the view."""
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    frac = (ax.transData + ax.transAxes.inverted()).transform(np.asarray(xy, dtype=float).reshape(-1, 2))
    height = fontsize * 1.6 / 72 / (ax.figure.get_figheight() * 0.8)
    ys = spread([f[1] for f in frac], height)
    for point, (fx, fy), y, text in zip(xy, frac, ys, texts, strict=True):
        right = fx < 0.7
        ax.annotate(
            text,
            xy=point,
            xytext=(fx + (0.02 if right else -0.02), y),
            textcoords="axes fraction",
            fontsize=fontsize,
            va="center",
            ha="left" if right else "right",
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#555555"} if abs(y - fy) > height / 2 else None,
        )
