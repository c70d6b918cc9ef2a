"""The meeting table (pareto_meeting.md / .csv) and the per-class table: one row per baseline and per front point,
plain labels, the export's own numbers in % (as text with intervals in the Markdown, as numbers in the CSV),
names of the classes gained / lost, written atomically."""

import json
import re
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import accuracy_score, f1_score

from sweep.cli import main
from sweep.config import load_config
from sweep.report.labels import label, verdict
from sweep.report.meeting import meeting_table, write_meeting
from sweep.report.per_class import most_changed
from sweep.report.sentences import beaten_sentences
from sweep.search.pareto import baseline_points, front
from sweep.search.storage import open_storage


@pytest.fixture(scope="module")
def exported(shared_sweep, tmp_path_factory):
    """The shared sweep's export (tests/report/conftest.py: a real sweep on the synthetic long-tailed data, its
    MLflow store and Optuna journal in tmp), the export's files in a folder of their own."""
    root = tmp_path_factory.mktemp("meeting")
    args = shared_sweep("meet")
    out = root / "meet.csv"
    import contextlib
    import io

    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert main(["export", *args, "study=meet", f"out={out}", "n_boot=300"]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="meet", storage=open_storage(cfg))
    client = MlflowClient(cfg.tracking.tracking_uri)
    return {
        "root": root,
        "out": out,
        "stdout": said.getvalue(),
        "study": study,
        "client": client,
        "pareto": pd.read_csv(out, keep_default_na=False),
        "meeting": pd.read_csv(root / "meet_meeting.csv"),
        "md": (root / "meet_meeting.md").read_text(),
        "cells": _md_table((root / "meet_meeting.md").read_text()),
    }


def _md_table(md: str) -> pd.DataFrame:
    """The first GitHub table of a Markdown text, its cells split on unescaped | and unescaped."""
    rows = [
        [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in md.splitlines()
        if line.startswith("|")
    ]
    return pd.DataFrame(rows[2:], columns=rows[0])


def _artifact(client, run_id: str, name: str):
    path = client.download_artifacts(run_id, name)
    if name.endswith(".npz"):
        with np.load(path) as z:
            return z["test_true"].astype(int), z["test_pred"].astype(int)
    with open(path) as f:
        return json.load(f)["train_class_counts"]


def _cell(text: str) -> tuple[float, float, float]:
    """ "79.2 [77.8, 80.6]" -> (79.2, 77.8, 80.6)"""
    m = re.fullmatch(r"([+-]?[\d.]+) \[([+-]?[\d.]+), ([+-]?[\d.]+)\]", text)
    assert m, text
    return tuple(float(g) for g in m.groups())


def test_one_row_per_baseline_and_per_front_point_with_plain_labels(exported):
    meeting, study = exported["meeting"], exported["study"]
    named = baseline_points(study)
    assert set(named) == {"unweighted", "sqrt_inverse", "posthoc_tau_1"}
    baseline_trials = {t.number for t in named.values()}
    front_only = [t for t in front(study) if t.number not in baseline_trials]
    assert len(meeting) == 4 + len(front_only)
    assert list(meeting["model"][:4]) == ["majority class", "unweighted", "sqrt-inverse weights", "post-hoc tau 1"]
    for t, model, kind in zip(front_only, meeting["model"][4:], meeting["kind"][4:], strict=False):
        assert f"trial {t.number}" in kind
        c = t.user_attrs["config"]
        assert (
            model
            == " + ".join(
                p
                for p in (
                    f"alpha {c['alpha']:.2f}".rstrip("0").rstrip(".") if c["alpha"] else "",
                    f"post-hoc tau {c['posthoc_tau']:.2f}".rstrip("0").rstrip(".") if c["posthoc_tau"] else "",
                )
                if p
            )
            or "unweighted"
        )
    assert list(meeting["verdict"])[1] == "reference"
    assert not any("micro" in c.lower() for c in meeting.columns)  # micro-F1 is accuracy: shown once
    # the markdown is one GitHub table with the same rows
    rows = [line for line in exported["md"].splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(meeting) and rows[1].startswith("|:")
    assert list(exported["cells"]["Model"]) == list(meeting["model"])
    assert list(exported["cells"]["Beats unweighted beyond noise?"]) == list(meeting["verdict"])
    assert exported["md"] in exported["stdout"]  # printed by export


def test_the_csv_has_the_exports_numbers_as_numbers_and_the_markdown_the_same_as_text(exported):
    meeting, pareto, cells = exported["meeting"], exported["pareto"], exported["cells"]
    text = (exported["root"] / "meet_meeting.csv").read_text()
    assert "[" not in text  # no bracketed intervals: every estimate and bound is a number in its own column
    by_trial = {int(r.trial): r for r in pareto.itertuples()}
    figures = {
        "test_accuracy_pct": "Test accuracy % [95% CI]",
        "test_macro_f1_pct": "Test macro-F1 % [95% CI]",
        "delta_test_accuracy_points": "Accuracy vs unweighted, points [95% CI]",
        "delta_test_macro_f1_points": "Macro-F1 vs unweighted, points [95% CI]",
    }
    for column in figures:
        for suffix in ("", "_low", "_high"):
            assert pd.api.types.is_float_dtype(meeting[column + suffix]), column + suffix
    scored = 0
    for r, shown in zip(meeting.itertuples(), cells.itertuples(), strict=True):
        m = re.search(r"trial (\d+)", r.kind)
        if m and int(m.group(1)) in by_trial:
            p = by_trial[int(m.group(1))]
            for name in ("test_accuracy", "test_macro_f1", "delta_test_accuracy"):
                for suffix, bound in (("", ""), ("_low", "_ci_low"), ("_high", "_ci_high")):
                    unit = "points" if name.startswith("delta") else "pct"
                    got = getattr(r, f"{name}_{unit}{suffix}")
                    assert got == pytest.approx(100 * getattr(p, name + bound), abs=0.006)
            scored += 1
        for column, header in figures.items():  # the Markdown cell: the same numbers, rounded, as text
            said = cells.loc[shown.Index, header]
            if said == "0.0 (reference)":
                continue
            want = [getattr(r, column + s) for s in ("", "_low", "_high")]
            assert _cell(said) == pytest.approx(want, abs=0.051)
    assert scored == len(pareto)


def test_the_cells_are_the_exports_numbers_and_match_scikit_learn(exported):
    meeting, pareto, client, study = exported["meeting"], exported["pareto"], exported["client"], exported["study"]
    cells = exported["cells"]
    # independent of the export: scikit-learn on the logged predictions of the sqrt-inverse baseline, and the
    # majority class as the share of the largest training class in the test split
    t = baseline_points(study)["sqrt_inverse"]
    y, p = _artifact(client, t.user_attrs["mlflow_run_id"], "predictions.npz")
    counts = _artifact(client, t.user_attrs["mlflow_run_id"], "classes.json")
    rows, shown = meeting.set_index("model"), cells.set_index("Model")
    assert rows.loc["sqrt-inverse weights", "test_accuracy_pct"] == pytest.approx(100 * accuracy_score(y, p), abs=0.006)
    assert rows.loc["sqrt-inverse weights", "test_macro_f1_pct"] == pytest.approx(
        100 * f1_score(y, p, labels=range(len(counts)), average="macro", zero_division=0), abs=0.006
    )
    assert _cell(shown.loc["sqrt-inverse weights", "Test accuracy % [95% CI]"])[0] == pytest.approx(
        100 * accuracy_score(y, p), abs=0.051
    )
    top = int(np.argmax(list(counts.values())))
    assert rows.loc["majority class", "test_accuracy_pct"] == pytest.approx(100 * (y == top).mean(), abs=0.006)
    assert shown.loc["majority class", "Classes detected (F1 > 0) [95% CI]"] == f"1 of {len(counts)} [1, 1]"
    majority = rows.loc["majority class"]
    assert [majority.classes_detected, majority.classes_detected_low, majority.classes_detected_high] == [1, 1, 1]
    assert majority.n_classes == len(counts)
    assert shown.loc["majority class", "On the front in % of validation resamples"] == "n/a"
    assert pd.isna(majority.p_front_pct)  # no p_front: an empty cell, not a word, in the CSV
    by_trial = {int(r.trial): r for r in pareto.itertuples()}
    for r, detected, share in zip(
        meeting.itertuples(),
        cells["Classes detected (F1 > 0) [95% CI]"],
        cells["On the front in % of validation resamples"],
        strict=True,
    ):
        m = re.search(r"trial (\d+)", r.kind)
        if m and int(m.group(1)) in by_trial:
            p = by_trial[int(m.group(1))]
            low, high = int(p.test_coverage_ci_low), int(p.test_coverage_ci_high)
            assert detected == f"{int(p.test_coverage)} of {len(counts)} [{low}, {high}]"
            assert (r.classes_detected, r.classes_detected_low, r.classes_detected_high) == (
                int(p.test_coverage),
                low,
                high,
            )
            assert share == f"{100 * p.p_front:.0f}" and r.p_front_pct == pytest.approx(100 * p.p_front, abs=0.051)
    assert shown.loc["unweighted", "Accuracy vs unweighted, points [95% CI]"] == "0.0 (reference)"
    assert rows.loc["unweighted", "delta_test_accuracy_points"] == 0.0


def test_the_verdict_agrees_with_the_paired_intervals_in_the_csv(exported):
    meeting, pareto = exported["meeting"], exported["pareto"]
    verdicts = dict(zip(meeting["kind"], meeting["verdict"], strict=True))
    for r in pareto.itertuples():
        said = next((v for k, v in verdicts.items() if re.search(rf"trial {r.trial}\b", k)), None)
        if said in (None, "reference"):  # the reference itself on the front
            continue
        better = r.delta_test_macro_f1_ci_low > 0 or r.delta_test_accuracy_ci_low > 0
        assert said.startswith("yes") == better
        assert ("worse on accuracy" in said) == (r.delta_test_accuracy_ci_high < 0)
        assert (said == "no (within noise)") == (
            not better and r.delta_test_accuracy_ci_high >= 0 and r.delta_test_macro_f1_ci_high >= 0
        )


def test_the_footnotes_name_the_classes_gained_and_lost(exported):
    cells, md, client, study = exported["cells"], exported["md"], exported["client"], exported["study"]
    ref = baseline_points(study)["unweighted"]
    y, p = _artifact(client, ref.user_attrs["mlflow_run_id"], "predictions.npz")
    counts = _artifact(client, ref.user_attrs["mlflow_run_id"], "classes.json")
    names = list(counts)
    ref_f1 = f1_score(y, p, labels=range(len(names)), average=None, zero_division=0)
    top = int(np.argmax(list(counts.values())))
    lost = [names[i] for i in range(len(names)) if ref_f1[i] > 0 and i != top]  # what the majority class loses
    cell = cells.set_index("Model").loc["majority class", "Classes gained / lost"]
    number = re.fullmatch(rf"0 / {len(lost)} \[(\d+)\]", cell).group(1)
    note = next(line for line in md.splitlines() if line.startswith(f"[{number}] majority class:"))
    assert note.strip() == f"[{number}] majority class: gained none. Lost {'; '.join(lost)}."
    for r in exported["pareto"].itertuples():  # every front point's gained / lost as the CSV has them
        if r.classes_gained or r.classes_lost:
            assert any(
                line.startswith("[") and r.classes_gained in line and r.classes_lost in line for line in md.splitlines()
            )


def test_the_parent_run_has_the_meeting_table_and_export_prints_the_runs_view_link(exported):
    client, study = exported["client"], exported["study"]
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    logged = {f.path for f in client.list_artifacts(parent.info.run_id, "export")}
    assert {"export/meet_meeting.md", "export/meet_meeting.csv", "export/meet.csv"} <= logged
    link = (
        f"the front in MLflow (make ui, then open): http://127.0.0.1:5000/#/experiments/"
        f"{parent.info.experiment_id}/runs?workflowType=machine_learning&"
    )
    assert link in exported["stdout"]


def test_the_per_class_table_is_sorted_by_training_count_with_the_f1_of_each_point(exported):
    client, study, pareto = exported["client"], exported["study"], exported["pareto"]
    table = pd.read_csv(exported["root"] / "meet_report" / "per_class.csv", keep_default_na=False)
    ref = baseline_points(study)["unweighted"]
    counts = _artifact(client, ref.user_attrs["mlflow_run_id"], "classes.json")
    assert list(table["training examples"]) == sorted(counts.values(), reverse=True)
    assert dict(zip(table["class"], table["training examples"], strict=True)) == counts
    y, p = _artifact(client, ref.user_attrs["mlflow_run_id"], "predictions.npz")
    f1 = dict(zip(counts, f1_score(y, p, labels=range(len(counts)), average=None, zero_division=0), strict=True))
    assert [round(f1[c], 2) for c in table["class"]] == pytest.approx(list(table["F1 unweighted"]))
    assert dict(zip(table["class"], table["test examples"], strict=True)) == {
        c: int((y == i).sum()) for i, c in enumerate(counts)
    }
    points = [c for c in table.columns if c.startswith("F1 ") and c != "F1 unweighted"]
    assert len(points) == sum(int(t) != ref.number for t in pareto["trial"])
    marked = table[table["moved most (F1 change)"] != ""]
    assert len(marked) <= 5
    for r in marked.to_dict("records"):  # a mark is a real change of 0.05 or more against the reference
        direction, change = r["moved most (F1 change)"].split()[:2]
        change = float(change)
        assert direction == ("up" if change > 0 else "down")
        assert abs(change) >= 0.05 - 0.01
        assert any(abs(r[c] - r["F1 unweighted"] - change) < 0.011 for c in points)
    assert "## Per class, largest training count first" in (exported["root"] / "meet_report" / "report.md").read_text()


def test_the_meeting_files_are_written_atomically(tmp_path, monkeypatch):
    front_rows = pd.DataFrame(
        [
            {
                "trial": 3,
                "alpha": 0.75,
                "posthoc_tau": 0.33,
                "loss": "ce",
                "weighting": "power",
                "test_accuracy": 0.8,
                "test_accuracy_ci_low": 0.78,
                "test_accuracy_ci_high": 0.82,
                "test_macro_f1": 0.6,
                "test_macro_f1_ci_low": 0.55,
                "test_macro_f1_ci_high": 0.65,
                "zero_f1_classes": 0,
                "beaten_by_baseline": "",
            }
        ]
    )
    (tmp_path / "pareto_meeting.csv").write_text("the previous export\n")

    write_text = Path.write_text

    def broken(path, *args, **kwargs):
        if ".csv." not in path.name:  # the Markdown is written; then the CSV's temporary file fills the disk
            return write_text(path, *args, **kwargs)
        open(path, "w").write("model,ki")  # half a file, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(Path, "write_text", broken)
    with pytest.raises(OSError, match="No space"):
        write_meeting(front_rows, pd.DataFrame(), tmp_path / "pareto.csv")
    assert (tmp_path / "pareto_meeting.csv").read_text() == "the previous export\n"  # untouched, not half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto_meeting.csv", "pareto_meeting.md"]  # no temp left
    monkeypatch.undo()
    files, text = write_meeting(front_rows, pd.DataFrame(), tmp_path / "pareto.csv")
    assert [f.read_text() for f in files][0] == text and "alpha 0.75 + post-hoc tau 0.33" in text
    assert (
        "hold the train / validation split fixed" in text and "seeds=5" in text
    )  # what the intervals do not cover, said under them
    assert "80.0 [78.0, 82.0]" in text
    assert pd.read_csv(files[1]).loc[
        0, ["test_accuracy_pct", "test_accuracy_pct_low", "test_accuracy_pct_high"]
    ].tolist() == [
        80.0,
        78.0,
        82.0,
    ]


def test_labels_and_verdicts_in_words():
    assert (
        label({"alpha": 0.75, "posthoc_tau": 0.333, "weighting": "power", "loss": "ce"})
        == "alpha 0.75 + post-hoc tau 0.33"
    )
    assert label({"alpha": 0.0, "posthoc_tau": 0.0, "weighting": "power", "loss": "ce"}) == "unweighted"
    assert (
        label({"alpha": 0.5, "posthoc_tau": 0.0, "loss": "logit_adjusted", "tau": 1.0, "weighting": "power"})
        == "alpha 0.5 + logit-adjusted loss tau 1"
    )
    assert label({"baseline": "sqrt_inverse", "alpha": 0.5}) == "sqrt-inverse weights"

    def row(acc: tuple[float, float], f1: tuple[float, float]) -> dict:
        return {
            "delta_test_accuracy_ci_low": acc[0],
            "delta_test_accuracy_ci_high": acc[1],
            "delta_test_macro_f1_ci_low": f1[0],
            "delta_test_macro_f1_ci_high": f1[1],
        }

    assert verdict(row((-0.01, 0.01), (0.01, 0.05))) == "yes, macro-F1"
    assert verdict(row((-0.03, -0.01), (0.01, 0.05))) == "yes, macro-F1; worse on accuracy"
    assert verdict(row((-0.03, -0.01), (-0.01, 0.02))) == "worse on accuracy"
    assert verdict(row((-0.01, 0.01), (-0.01, 0.02))) == "no (within noise)"
    assert verdict(row((0.01, 0.02), (0.01, 0.05))) == "yes, accuracy and macro-F1"


def test_a_baseline_beating_the_front_is_said_under_the_table():
    base = {
        "loss": "ce",
        "weighting": "power",
        "test_accuracy": 0.8,
        "test_accuracy_ci_low": 0.78,
        "test_accuracy_ci_high": 0.82,
        "test_macro_f1": 0.6,
        "test_macro_f1_ci_low": 0.55,
        "test_macro_f1_ci_high": 0.65,
        "zero_f1_classes": 0,
    }
    front_rows = pd.DataFrame(
        [
            {
                **base,
                "trial": 7,
                "alpha": 0.75,
                "posthoc_tau": 0.33,
                "beaten_by_baseline": "sqrt_inverse on accuracy and macro-F1 (within noise)",
            },
            {**base, "trial": 9, "alpha": 0.2, "posthoc_tau": 1.5, "beaten_by_baseline": ""},
        ]
    )
    baselines = pd.DataFrame([{**base, "baseline": "sqrt_inverse", "trial": 2, "alpha": 0.5, "posthoc_tau": 0.0}])
    said = beaten_sentences(front_rows, baselines)
    assert said[0] == (
        "On test, the baseline sqrt-inverse weights beats 1 of the 2 validation-chosen front points: "
        "alpha 0.75 + post-hoc tau 0.33 on accuracy and macro-F1 (within noise)."
    )
    cells, _, sentences = meeting_table(front_rows, baselines)
    assert sentences == said and list(cells["Model"]) == [
        "sqrt-inverse weights",
        "alpha 0.75 + post-hoc tau 0.33",
        "alpha 0.2 + post-hoc tau 1.5",
    ]
    nobody = beaten_sentences(front_rows.assign(beaten_by_baseline=""), baselines)
    assert nobody == [
        "On test, no baseline beats any of the 2 validation-chosen front points, neither beyond noise "
        "on a metric nor on both metrics."
    ]


def test_most_changed_names_the_largest_moves_only():
    ref = np.array([0.5, 0.5, 0.5, 0.5])
    got = most_changed(ref, [np.array([0.5, 0.9, 0.46, 0.2]), np.array([0.52, 0.6, 0.5, 0.5])], top=2)
    assert list(got) == [1, 3]  # +0.4 and -0.3; class 2 moved 0.04, class 0 0.02: not named
    assert list(most_changed(ref, [ref.copy()])) == []


def test_the_lines_under_the_table_say_which_bootstrap_which_mix_and_which_trials_are_tied(tmp_path):
    row = {
        "trial": 3,
        "alpha": 0.75,
        "posthoc_tau": 0.33,
        "loss": "ce",
        "weighting": "power",
        "p_front": 0.914,
        "test_coverage": 7,
        "test_coverage_ci_low": 5,
        "test_coverage_ci_high": 8,
        "n_classes": 8,
        **{
            f"{s}_{m}{e}": v
            for s in ("test", "deploy")
            for m in ("accuracy", "macro_f1")
            for e, v in (("", 0.8), ("_ci_low", 0.7), ("_ci_high", 0.9))
        },
    }
    files, text = write_meeting(
        pd.DataFrame([row]),
        pd.DataFrame(),
        tmp_path / "p.csv",
        "stratified",
        "uniform",
        "2 trials off the front are statistically tied with it.",
    )
    cells = _md_table(text)
    assert list(cells.columns[2:6]) == [
        "Test accuracy % [95% CI]",
        "Test macro-F1 % [95% CI]",
        "Accuracy % on the uniform mix [95% CI]",
        "Macro-F1 % on the uniform mix [95% CI]",
    ]
    assert cells["Classes detected (F1 > 0) [95% CI]"][0] == "7 of 8 [5, 8]"
    assert cells["On the front in % of validation resamples"][0] == "91"
    numbers = pd.read_csv(files[1])
    assert list(numbers.columns[2:8]) == [
        "test_accuracy_pct",
        "test_accuracy_pct_low",
        "test_accuracy_pct_high",
        "test_macro_f1_pct",
        "test_macro_f1_pct_low",
        "test_macro_f1_pct_high",
    ]
    assert numbers.loc[0, ["deploy_accuracy_pct", "deploy_accuracy_pct_low", "deploy_accuracy_pct_high"]].tolist() == [
        80.0,
        70.0,
        90.0,
    ]
    assert numbers.loc[
        0, ["classes_detected", "classes_detected_low", "classes_detected_high", "n_classes"]
    ].tolist() == [
        7,
        5,
        8,
        8,
    ]
    assert numbers.loc[0, "p_front_pct"] == 91.4
    assert "on the natural and the uniform class mix" in text.splitlines()[0]
    assert "stratified bootstrap" in text and "understate tiny-class noise" in text
    assert "share_uniform(class) / share_test(class)" in text
    assert text.rstrip().endswith("2 trials off the front are statistically tied with it.")
    _, plain = write_meeting(pd.DataFrame([row]), pd.DataFrame(), tmp_path / "q.csv")
    assert "resampled with replacement, so each class's test count varies" in plain
    assert "the test split's own class mix (the natural one)" in plain and "deploy_prior=uniform" in plain
