"""pareto_report/report.md: the front's table, the test-split pictures (natural and deployment mix), the
sentences saying who beats whom, the trials tied with the front, the per-class table and per-trial plots."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from sweep.files import markdown_table, md_text, write_atomic, write_csv
from sweep.models.metrics import per_class_f1
from sweep.report.columns import REPORT
from sweep.report.deploy import ADJUSTED
from sweep.report.labels import LABELS, meeting_rows
from sweep.report.per_class import most_changed, per_class_table
from sweep.report.plots import plot_front, plot_per_class
from sweep.report.table import load_predictions
from sweep.search.pareto import reference_trial


def statements(table: pd.DataFrame) -> list[str]:
    """The comparison columns in plain words, one sentence per front point and per baseline beating one."""
    if "beaten_by_baseline" not in table:
        return []

    def text(v) -> str:
        return v if isinstance(v, str) else ""  # a point without logged predictions has no comparison

    lines = []
    for r in table.itertuples():
        for entry in filter(None, text(r.beaten_by_baseline).split("; ")):
            name, _, how = entry.partition(" on ")
            lines.append(f"On test, baseline {name} beats trial {r.trial} on {how}.")
    if not lines:
        lines.append(
            "On test, no baseline beats a Pareto point, neither beyond noise on one metric nor on both metrics."
        )
    for r in table.itertuples():
        if text(r.beats_beyond_noise):
            lines.append(f"On test, trial {r.trial} beats beyond noise: {r.beats_beyond_noise}.")
        elif isinstance(r.beats_beyond_noise, str):
            lines.append(f"On test, trial {r.trial} beats no other Pareto point and no baseline beyond noise.")
    return lines


def write_per_class(folder: Path, reference: dict, points: dict[str, dict]) -> tuple[list[Path], str]:
    """per_class.md and per_class.csv in `folder` (per_class.per_class_table of the reference's and each
    point's logged predictions, label -> predictions); returns the files and the Markdown table."""
    table = per_class_table(reference, points)
    text = markdown_table(table, floatfmt=".2f")
    return [write_atomic(folder / "per_class.md", text), write_csv(table, folder / "per_class.csv")], text


def unique_labels(labels: dict[int, str]) -> dict[int, str]:
    """Trial -> label, a label two trials share (they round alike: alpha 0.751 and 0.749) given the trial number,
    so that each point keeps its own per-class column and plot title."""
    values = list(labels.values())
    return {t: f"{n} (trial {t})" if values.count(n) > 1 else n for t, n in labels.items()}


def _plot_split(
    study: optuna.Study,
    table: pd.DataFrame,
    baselines: pd.DataFrame,
    path: Path,
    split: str = "test",
    p_front: dict[int, float] | None = None,
    mix: str | None = None,
) -> Path:
    """One test-split picture of the front: `split` "test" (the natural mix: the points a baseline beats
    ringed and said in the title) or "deploy" (the figures re-weighted to the mix `mix`)."""
    acc, f1 = f"{split}_accuracy", f"{split}_macro_f1"
    scored = table.dropna(subset=[acc, f1])
    points = {int(r["trial"]): (r[acc], r[f1]) for r in scored.to_dict("records")}
    intervals = {
        int(r["trial"]): {m: (r[f"{split}_{m}_ci_low"], r[f"{split}_{m}_ci_high"]) for m in ("accuracy", "macro_f1")}
        for r in scored.to_dict("records")
        if f"{split}_accuracy_ci_low" in r
    }
    beaten = {
        int(r.trial): [e.partition(" on ")[0] for e in r.beaten_by_baseline.split("; ")]
        for r in scored.itertuples()
        if split == "test" and isinstance(getattr(r, "beaten_by_baseline", None), str) and r.beaten_by_baseline
    }
    flagged = {t: "beaten by " + ", ".join(LABELS.get(b, b) for b in bs) for t, bs in beaten.items()}
    note = None
    if beaten:
        who = sorted({LABELS.get(b, b) for bs in beaten.values() for b in bs})
        many = len(who) > 1
        note = (
            f"On test, the baseline{'s' if many else ''} {' and '.join(who)} beat{'' if many else 's'} "
            f"{len(beaten)} of the {len(points)} validation-chosen front point{'s' if len(points) > 1 else ''} "
            "(ringed)."
        )
    marks = {}
    for r in baselines.dropna(subset=[acc, f1]).to_dict("records") if acc in baselines else []:
        name = f"unweighted + tau 1 for the {mix} mix" if r["baseline"] == ADJUSTED else r["baseline"]
        marks[LABELS.get(name, name)] = (r[acc], r[f1])
        if pd.notna(r.get("trial")):  # a scored point too: the zoom keeps it in view
            points.setdefault(int(r["trial"]), (r[acc], r[f1]))
    return plot_front(
        study,
        path,
        marks,
        split="test",
        intervals=intervals,
        points=points,
        flagged=flagged,
        note=note,
        p_front=p_front,
        mix=mix if split == "deploy" else "natural",
    )


def write_report(
    study: optuna.Study,
    table: pd.DataFrame,
    client,
    folder: Path,
    baselines: pd.DataFrame | None = None,
    p_front: dict[int, float] | None = None,
    mix: str | None = None,
    tied: pd.DataFrame | None = None,
    lines_after: list[str] = (),
) -> list[Path]:
    """report.md with the table and the pictures: the test-split Pareto plot with intervals and baselines
    (the points a baseline beats ringed, and said in its title; marker size: p_front), with a deployment mix
    the same on that mix, the trials tied with the front, the per-class table (per_class.md / .csv), and per
    front trial the per-class F1 histogram and F1 against class frequency, the classes that moved most named
    (also logged to that trial's MLflow run). `baselines`: scored_tables' baseline rows, whose test figures
    are drawn as they are (not recomputed). lines_after: what the intervals are and which mix (meeting's
    context_lines). Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    baselines = pd.DataFrame(columns=["baseline", "trial"]) if baselines is None else baselines
    rows = meeting_rows(table, baselines)
    names = unique_labels({int(t): n for t, n in zip(rows["trial"], rows["label"], strict=True) if pd.notna(t)})
    files = [_plot_split(study, table, baselines, folder / "pareto_test.png", "test", p_front, mix)]
    pictures = ["![Pareto front on the test split](pareto_test.png)", ""]
    if mix and "deploy_accuracy" in table:
        files.append(_plot_split(study, table, baselines, folder / "pareto_deploy.png", "deploy", p_front, mix))
        pictures += [f"![The same front on the {mix} class mix](pareto_deploy.png)", ""]
    ref = reference_trial(study)
    ref_pred = load_predictions(client, ref.user_attrs.get("mlflow_run_id", "")) if ref else None
    ref_f1 = per_class_f1(ref_pred) if ref_pred is not None else None
    lines = [
        f"# Pareto front of study `{md_text(study.study_name)}`",
        "",
        "Chosen on validation; every point re-scored on the held-out test split (from the predictions each "
        "trial logged) with 95% bootstrap intervals. `within_noise`: the paired interval of the "
        "change against the reference (unweighted) trial contains 0 for both accuracy and macro-F1. "
        "`beats_beyond_noise`: the other Pareto points and baselines this point beats on test, the 95% paired "
        "interval of the difference above 0. `beaten_by_baseline`: the baselines that beat it on test "
        "(beyond noise on a metric, or better on both metrics even within noise); ringed in the plot. "
        "Head: the largest classes holding 80% of the training examples; tail: the others; both measured "
        "by accuracy and macro-F1. The marker size of a front point is its p_front. The table for a meeting: "
        "the `_meeting.md` file beside the CSV.",
        "",
        *[f"{line}\n" for line in lines_after],
        *pictures,
    ]
    said = statements(table)
    if said:
        lines += ["## On test, in words", "", *[f"- {s}" for s in said], ""]
    cols = [c for c in REPORT if c in table.columns]
    lines += [markdown_table(table[cols]), ""]
    if tied is not None and not tied.empty:
        lines += ["## Trials tied with the front (validation)", "", markdown_table(tied), ""]
    preds = {int(r.trial): p for r in table.itertuples() if (p := load_predictions(client, r.mlflow_run_id))}
    if ref_pred is not None:
        written, text = write_per_class(folder, ref_pred, {names[t]: p for t, p in preds.items() if t != ref.number})
        files += written
        lines += [
            "## Per class, largest training count first",
            "",
            "Test F1 of the unweighted reference and of each front point; the classes whose F1 moved most "
            "(by 0.05 or more, at most five) are marked with their largest change.",
            "",
            text,
            "",
        ]
    for r in table.itertuples():
        if (pred := preds.get(int(r.trial))) is None:
            continue
        f1 = per_class_f1(pred)
        moved = most_changed(ref_f1, [f1], top=6) if ref_f1 is not None else []
        png = plot_per_class(
            f1,
            pred["counts"],
            names[int(r.trial)],
            folder / f"per_class_f1_trial_{r.trial}.png",
            reference=ref_f1,
            names=[_short(n) for n in pred["names"]],
            marked=moved,
        )
        client.log_artifact(r.mlflow_run_id, str(png))
        files.append(png)
        lines += [
            f"## Trial {r.trial}: {md_text(names[int(r.trial)])}",
            "",
            f"![per-class F1 of trial {r.trial}]({png.name})",
            "",
        ]
    report = write_atomic(folder / "report.md", "\n".join(lines))
    return [report, *files]


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 1].rstrip() + "…"
