"""`make export`: the Pareto front for decision meetings, as a CSV written atomically and a report (table,
test-split plots, sentences), both logged to the study's parent run; seeds=K re-splits and re-seeds each point."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pandas as pd

from sweep.config import ConfigError, load_config, split_args
from sweep.models.metrics import per_class_f1
from sweep.report.links import link_or_reason
from sweep.report.meeting import LABELS, meeting_rows, most_changed, per_class_table, write_meeting
from sweep.report.plots import plot_front, plot_per_class
from sweep.report.reseed import resplit_reseed
from sweep.report.table import load_predictions, scored_tables, write_atomic
from sweep.search.pareto import reference_trial
from sweep.search.storage import load_study, running_warning
from sweep.tracking import open_client


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


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write to a temporary file beside the target, then rename: never a half-written CSV."""
    return write_atomic(path, lambda tmp: table.to_csv(tmp, index=False))


def unique_labels(labels: dict[int, str]) -> dict[int, str]:
    """Trial -> label, a label two trials share (they round alike: alpha 0.751 and 0.749) given the trial number,
    so that each point keeps its own per-class column and plot title."""
    values = list(labels.values())
    return {t: f"{n} (trial {t})" if values.count(n) > 1 else n for t, n in labels.items()}


def write_report(
    study: optuna.Study, table: pd.DataFrame, client, folder: Path, baselines: pd.DataFrame | None = None
) -> list[Path]:
    """report.md with the table and the pictures: the test-split Pareto plot with intervals and baselines
    (the points a baseline beats ringed, and said in its title), the per-class table (per_class.md / .csv),
    and per front trial the per-class F1 histogram and F1 against class frequency, the classes that moved
    most named (also logged to that trial's MLflow run). `baselines`: scored_tables' baseline rows, whose
    test figures are drawn as they are (not recomputed). Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    baselines = pd.DataFrame(columns=["baseline", "trial"]) if baselines is None else baselines
    rows = meeting_rows(table, baselines)
    names = unique_labels({int(t): n for t, n in zip(rows["trial"], rows["label"], strict=True) if pd.notna(t)})
    scored = table.dropna(subset=["test_accuracy", "test_macro_f1"])
    points = {int(r.trial): (r.test_accuracy, r.test_macro_f1) for r in scored.itertuples()}
    intervals = {
        int(r.trial): {
            "accuracy": (r.test_accuracy_ci_low, r.test_accuracy_ci_high),
            "macro_f1": (r.test_macro_f1_ci_low, r.test_macro_f1_ci_high),
        }
        for r in scored.itertuples()
        if hasattr(r, "test_accuracy_ci_low")
    }
    beaten = {
        int(r.trial): [e.partition(" on ")[0] for e in r.beaten_by_baseline.split("; ")]
        for r in scored.itertuples()
        if isinstance(getattr(r, "beaten_by_baseline", None), str) and r.beaten_by_baseline
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
    for r in baselines.dropna(subset=["test_accuracy", "test_macro_f1"]).itertuples():
        marks[LABELS.get(r.baseline, r.baseline)] = (r.test_accuracy, r.test_macro_f1)
        if pd.notna(r.trial):  # a scored point too: the zoom keeps it in view
            points.setdefault(int(r.trial), (r.test_accuracy, r.test_macro_f1))
    files = [
        plot_front(
            study,
            folder / "pareto_test.png",
            marks,
            split="test",
            intervals=intervals,
            points=points,
            flagged=flagged,
            note=note,
        )
    ]
    ref = reference_trial(study)
    ref_pred = load_predictions(client, ref.user_attrs.get("mlflow_run_id", "")) if ref else None
    ref_f1 = per_class_f1(ref_pred) if ref_pred is not None else None
    lines = [
        f"# Pareto front of study `{study.study_name}`",
        "",
        "Chosen on validation; every point re-scored on the held-out test split (from the predictions each "
        "trial logged) with 95% stratified bootstrap intervals. `within_noise`: the paired interval of the "
        "change against the reference (unweighted) trial contains 0 for both accuracy and macro-F1. "
        "`beats_beyond_noise`: the other Pareto points and baselines this point beats on test, the 95% paired "
        "interval of the difference above 0. `beaten_by_baseline`: the baselines that beat it on test "
        "(beyond noise on a metric, or better on both metrics even within noise); ringed in the plot. "
        "Head: the largest classes holding 80% of the training examples; tail: the others; both measured "
        "by accuracy and macro-F1. The table for a meeting: the `_meeting.md` file beside the CSV.",
        "",
        "![Pareto front on the test split](pareto_test.png)",
        "",
    ]
    said = statements(table)
    if said:
        lines += ["## On test, in words", "", *[f"- {s}" for s in said], ""]
    cols = [
        c
        for c in (
            "trial",
            "alpha",
            "tau",
            "posthoc_tau",
            "test_accuracy",
            "test_accuracy_ci_low",
            "test_accuracy_ci_high",
            "test_macro_f1",
            "test_macro_f1_ci_low",
            "test_macro_f1_ci_high",
            "delta_test_accuracy",
            "delta_test_macro_f1",
            "within_noise",
            "delta_head_accuracy",
            "delta_head_macro_f1",
            "delta_tail_accuracy",
            "delta_tail_macro_f1",
            "zero_f1_classes",
            "classes_gained",
            "classes_lost",
            "beats_beyond_noise",
            "beaten_by_baseline",
            "mlflow_run_id",
        )
        if c in table.columns
    ]
    lines += [table[cols].to_markdown(index=False), ""]
    preds = {int(r.trial): p for r in table.itertuples() if (p := load_predictions(client, r.mlflow_run_id))}
    if ref_pred is not None:
        others = {names[t]: p for t, p in preds.items() if t != ref.number}
        per_class = per_class_table(ref_pred, others)
        text = per_class.to_markdown(index=False, floatfmt=".2f")
        md = write_atomic(folder / "per_class.md", lambda tmp: tmp.write_text(text))
        files += [md, write_csv(per_class, folder / "per_class.csv")]
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
            f"## Trial {r.trial}: {names[int(r.trial)]}",
            "",
            f"![per-class F1 of trial {r.trial}]({png.name})",
            "",
        ]
    report = write_atomic(folder / "report.md", lambda tmp: tmp.write_text("\n".join(lines)))
    return [report, *files]


def export_command(argv: list[str]) -> None:
    args, overrides = split_args(argv, ("study", "out", "seeds", "n_boot"))
    seeds = _count(args, "seeds", 1)
    n_boot = _count(args, "n_boot", 2000)
    cfg = load_config(overrides)
    study = load_study(cfg, args.get("study"))
    client = open_client(str(cfg.tracking.tracking_uri))
    table, baselines = scored_tables(study, client, n_boot=n_boot)
    if table.empty:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet: run `make sweep` first")
    if seeds > 1:
        table = table.join(resplit_reseed(study, table, seeds), on="trial")
    out = write_csv(table, Path(args.get("out", Path(cfg.paths.root) / "pareto.csv")))
    meeting, meeting_md = write_meeting(table, baselines, out)
    report = out.with_name(f"{out.stem}_report")
    files = write_report(study, table, client, report, baselines)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent:
        for f in [out, *meeting, *files]:
            client.log_artifact(parent, str(f), "export")
    print(f"wrote {out} ({len(table)} Pareto-optimal trials of study {study.study_name!r}) and {report}/report.md")
    show = [
        c
        for c in (
            "trial",
            "alpha",
            "posthoc_tau",
            "tau",
            "val_accuracy",
            "val_macro_f1",
            "test_accuracy",
            "test_accuracy_ci_low",
            "test_accuracy_ci_high",
            "test_macro_f1",
            "test_macro_f1_ci_low",
            "test_macro_f1_ci_high",
            "within_noise",
            "classes_gained",
            "classes_lost",
        )
        if c in table
    ]
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 40):
        print(table[show].to_string(index=False))
    for line in statements(table):
        print(line)
    print(f"\nfor the meeting: {meeting[0]} (and {meeting[1].name})\n")
    print(meeting_md)
    print(f"the front in MLflow (make ui, then open): {link_or_reason(cfg, study)}")
    warning = running_warning(study)  # last, where it is seen: the table above may already be out of date
    if warning:
        print(warning, file=sys.stderr)


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 1].rstrip() + "…"


def _count(args: dict[str, str], key: str, default: int) -> int:
    text = args.get(key, str(default))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{key}={text!r} must be a whole number >= 1, e.g. {key}={default}")
    return value
