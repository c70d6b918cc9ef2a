"""The pictures: no marker is covered by the legend or by a label (bounding boxes in display space, measured on
the drawn figure), however crowded the front; marker size follows p_front; three objectives and another class mix
are said on the picture."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

import sweep.report.plots as plots  # noqa: E402


def drawn_markers(ax) -> list[tuple[Bbox, tuple[float, float]]]:
    """Every marker as drawn: scatter points (their own areas, in points^2) and line markers, each with the
    data point it marks."""
    fig, out = ax.figure, []
    for coll in ax.collections:
        if not isinstance(coll, PathCollection):
            continue
        sizes = np.resize(coll.get_sizes(), len(coll.get_offsets()))
        for (x, y), s in zip(np.asarray(coll.get_offsets()), sizes, strict=True):
            cx, cy = ax.transData.transform((x, y))
            r = np.sqrt(s) / 2 * fig.dpi / 72
            out.append((Bbox([[cx - r, cy - r], [cx + r, cy + r]]), (x, y)))
    for line in ax.lines:
        if line.get_marker() in ("", "None", None, " "):
            continue
        r = line.get_markersize() / 2 * fig.dpi / 72
        for x, y in line.get_xydata():
            cx, cy = ax.transData.transform((x, y))
            out.append((Bbox([[cx - r, cy - r], [cx + r, cy + r]]), (x, y)))
    return out


def covered(ax) -> list[str]:
    """What covers a marker: the legend or a label (its text, not its leader line)."""
    renderer = ax.figure.canvas.get_renderer()
    covers = [("legend", ax.get_legend().get_window_extent(renderer))]
    covers += [(t.get_text(), Text.get_window_extent(t, renderer)) for t in ax.texts]
    return [
        f"{name!r} covers the marker at {xy}" for box, xy in drawn_markers(ax) for name, c in covers if c.overlaps(box)
    ]


@pytest.fixture
def figures(monkeypatch):
    made = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, layout=True: made.append(fig) or path)
    yield made
    plt.close("all")


def crowded_study(seed: int = 0, n: int = 40, objectives: int = 2) -> optuna.Study:
    """A front of 7 points close together and many trials near it, the unweighted reference in the lower left
    (where a legend inside the axes used to sit)."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(directions=["maximize"] * objectives)
    points = [(0.80 + 0.004 * i, 0.70 - 0.006 * i) for i in range(7)]
    points += [(0.785 + 0.03 * rng.random(), 0.55 + 0.11 * rng.random()) for _ in range(n)]  # dominated
    points += [(0.78, 0.60)]  # the unweighted model: bottom left
    for x, y in points:
        values = [x, y] + ([float(rng.integers(20, 40))] if objectives == 3 else [])
        study.add_trial(optuna.trial.create_trial(values=values))
    return study


def test_no_marker_is_covered_by_the_legend_or_a_label_on_a_crowded_front(tmp_path, figures):
    study = crowded_study()
    points = {t.number: tuple(t.values) for t in study.trials}
    front = [t.number for t in plots.front(study)]
    plots.plot_front(
        study,
        tmp_path / "t.png",
        {"unweighted": points[len(points) - 1], "sqrt-inverse weights": (0.805, 0.69), "majority class": (0.5, 0.1)},
        split="test",
        points=points,
        intervals={
            n: {"accuracy": (x - 0.01, x + 0.01), "macro_f1": (y - 0.02, y + 0.02)} for n, (x, y) in points.items()
        },
        flagged={front[0]: "beaten by sqrt-inverse weights", front[3]: "beaten by sqrt-inverse weights"},
        note="On test, the baseline sqrt-inverse weights beats 2 of the 7 validation-chosen front points (ringed).",
        p_front=dict.fromkeys(points, 0.3) | dict.fromkeys(front, 0.9),
    )
    fig = figures[0]
    ax = fig.axes[0]
    fig.canvas.draw()
    assert not covered(ax)
    labels = [Text.get_window_extent(t) for t in ax.texts]
    assert len(labels) == len(front)  # each front point labelled, none on top of another
    assert not any(a.overlaps(b) for i, a in enumerate(labels) for b in labels[i + 1 :])
    marked = {xy for _, xy in drawn_markers(ax)}
    assert points[len(points) - 1] in marked and (0.805, 0.69) in marked  # the baselines are drawn
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "majority class: accuracy 0.500, macro-F1 0.100 (off the chart)" in legend
    assert "Pareto front (7, size: p_front)" in legend
    assert "natural class mix" in ax.get_title().replace("\n", " ")


def test_marker_size_follows_p_front_and_three_objectives_label_coverage(tmp_path, figures):
    study = crowded_study(n=10, objectives=3)
    front = [t.number for t in plots.front(study)]
    p_front = {t.number: (1.0 if t.number in front else 0.05 * (t.number % 5)) for t in study.trials}
    plots.plot_front(study, tmp_path / "v.png", {}, p_front=p_front)
    ax = figures[0].axes[0]
    figures[0].canvas.draw()
    assert not covered(ax)
    grey = next(c for c in ax.collections if c.get_label().startswith("trials ("))
    numbers = [t.number for t in study.trials]
    assert list(grey.get_sizes()) == pytest.approx([8 + 52 * p_front[n] for n in numbers])  # 0 -> 8, 1 -> 60
    assert not [line for line in ax.lines if line.get_label().startswith("Pareto front")]  # 3 objectives: no line
    assert all("(cov " in t.get_text() for t in ax.texts)
    assert any(c.get_label().startswith("Pareto front, 3 objectives") for c in ax.collections)


def test_the_deployment_mix_is_named_on_its_picture(tmp_path, figures):
    study = crowded_study(n=3)
    points = {t.number: tuple(t.values) for t in study.trials}
    plots.plot_front(study, tmp_path / "d.png", {}, split="test", points=points, mix="uniform")
    assert "re-weighted to the uniform class mix" in figures[0].axes[0].get_title().replace("\n", " ")


def test_the_per_class_plot_covers_no_marker(tmp_path, figures):
    rng = np.random.default_rng(1)
    counts = np.sort(rng.integers(3, 2000, 40))[::-1]
    reference = np.clip(np.log(counts) / 8 + rng.normal(0, 0.1, 40), 0, 1)
    f1 = np.clip(reference + rng.normal(0, 0.15, 40), 0, 1)
    plots.plot_per_class(
        f1,
        counts,
        "alpha 0.5",
        tmp_path / "p.png",
        reference=reference,
        names=[f"c{i}" for i in range(40)],
        marked=list(range(0, 40, 7)),
    )
    fig = figures[0]
    fig.canvas.draw()
    for ax in fig.axes:
        assert not covered(ax)
