"""Labels on the plots placed so that none covers a marker or another label: each tried at positions around its
point, nearest first, and moved to the margin beside the axes when no place inside is free (a thin line back to
its point); legends go outside the axes (no adjustText dependency)."""

from __future__ import annotations

import numpy as np
from matplotlib.collections import PathCollection
from matplotlib.text import Text
from matplotlib.transforms import Bbox

DIRECTIONS = [(1, 0), (-1, 0), (0, 1), (0, -1), (0.7, 0.7), (0.7, -0.7), (-0.7, 0.7), (-0.7, -0.7)]
DISTANCES = (5, 10, 18, 30, 46, 66)  # points from the marker's centre


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


def marker_boxes(ax) -> list[Bbox]:
    """Display-space boxes of every marker drawn in `ax`: scatter points (their own sizes) and line markers."""
    dpi = ax.figure.dpi
    boxes = []
    for coll in ax.collections:
        if not isinstance(coll, PathCollection) or not len(coll.get_offsets()):
            continue
        xy = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), dtype=float))
        sizes = np.broadcast_to(np.asarray(coll.get_sizes(), dtype=float) if len(coll.get_sizes()) else 36.0, len(xy))
        width = float(np.max(coll.get_linewidths())) if len(coll.get_linewidths()) else 1.0
        for (x, y), s in zip(xy, sizes, strict=True):
            r = (np.sqrt(s) / 2 + width / 2) * dpi / 72
            if np.isfinite(x) and np.isfinite(y):
                boxes.append(Bbox([[x - r, y - r], [x + r, y + r]]))
    for line in ax.lines:
        if line.get_marker() in (None, "", " ", "None", "none") or not line.get_visible():
            continue
        r = (line.get_markersize() / 2 + line.get_markeredgewidth() / 2) * dpi / 72
        for x, y in line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float)):
            if np.isfinite(x) and np.isfinite(y):
                boxes.append(Bbox([[x - r, y - r], [x + r, y + r]]))
    return boxes


def _anchor(ux: float, uy: float) -> tuple[str, str]:
    """Text alignment that puts the text on the far side of its anchor from the point."""
    return ("left" if ux > 0.1 else "right" if ux < -0.1 else "center"), (
        "bottom" if uy > 0.1 else "top" if uy < -0.1 else "center"
    )


def label_without_overlap(ax, xy: list[tuple[float, float]], texts: list[str], fontsize: int = 7) -> None:
    """Each text beside its point where it covers no marker of `ax` and no other label, inside the axes;
    else in the margin right of the axes. A thin line runs to the point from a label that sits away from it.
    Call after everything else is drawn and the layout is final: the axis limits are fixed here."""
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    renderer = ax.figure.canvas.get_renderer()
    markers, frame = marker_boxes(ax), ax.get_window_extent(renderer)
    placed: list[Bbox] = []
    stranded = []
    for point, text in zip(xy, texts, strict=True):
        ann = ax.annotate(
            text,
            xy=point,
            xytext=(0, 0),
            textcoords="offset points",
            fontsize=fontsize,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#555555", "shrinkA": 0, "shrinkB": 2},
        )
        ann.set_in_layout(False)
        for d in DISTANCES:
            for ux, uy in DIRECTIONS:
                ann.set_position((d * ux, d * uy))
                ha, va = _anchor(ux, uy)
                ann.set_ha(ha)
                ann.set_va(va)
                ann.update_positions(renderer)  # where the text goes for this offset (else measured at 0, 0)
                box = Text.get_window_extent(ann, renderer).padded(1)
                free = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                if free and not any(box.overlaps(b) for b in [*markers, *placed]):
                    placed.append(box)
                    ann.arrow_patch.set_visible(d > DISTANCES[1])
                    break
            else:
                continue
            break
        else:
            stranded.append((ann, point))
    if stranded:  # the margin right of the axes: no marker there; spread so that they do not overlap each other
        frac = (ax.transData + ax.transAxes.inverted()).transform(np.array([p for _, p in stranded], dtype=float))
        height = fontsize * 1.6 / 72 / (ax.figure.get_figheight() * ax.get_position().height)
        for (ann, _), y in zip(stranded, spread([f[1] for f in frac], height, 0.0, 1.0), strict=True):
            ann.set_position((1.02, y))
            ann.set_anncoords("axes fraction")
            ann.set_ha("left")
            ann.set_va("center")


def legend_below(ax, ncol: int = 2, fontsize: int = 8, gap: float = 0.14):
    """The legend under the axes (below the x label), where it covers no marker."""
    return ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -gap), ncol=ncol, fontsize=fontsize, frameon=False, borderaxespad=0
    )
