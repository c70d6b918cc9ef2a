"""Decision-ready export: intervals, classes gained / lost, head vs tail, the report, make pick."""

import csv

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from sweep.cli import main
from sweep.config import load_config
from sweep.metrics import _scores_from_confusion, bootstrap, interval


def test_scores_from_confusion_match_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 400)
    p = np.where(rng.random(400) < 0.6, y, rng.integers(0, 6, 400))
    s = _scores_from_confusion(confusion_matrix(y, p, labels=range(6)))
    assert s["accuracy"] == pytest.approx((y == p).mean())
    assert s["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p))


def test_bootstrap_intervals_behave():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 2000)
    noisy = np.where(rng.random(2000) < 0.7, y, rng.integers(0, 4, 2000))
    b = bootstrap(y, {"perfect": y, "noisy": noisy, "same": noisy.copy()}, 4, n_boot=1000)
    assert interval(b["perfect"]["accuracy"]) == (1.0, 1.0)
    lo, hi = interval(b["noisy"]["accuracy"])
    assert lo < (noisy == y).mean() < hi and 0.01 < hi - lo < 0.06  # about +-2 standard errors
    assert interval(b["noisy"]["macro_f1"] - b["same"]["macro_f1"]) == (0.0, 0.0)  # paired resamples
    # stratified: every resample keeps the class supports
    small = bootstrap(y[:200], {"p": noisy[:200]}, 4, n_boot=50)
    assert small["p"]["accuracy"].shape == (50,)


def test_export_writes_intervals_gained_lost_and_the_report(synthetic, root, capsys):
    args = [*synthetic, "sweep.n_trials=8", "sweep.study_name=decide", "data.ratio=40", "data.n_max=300"]
    assert main(["sweep", *args]) == 0
    out = root / "decide.csv"
    assert main(["export", *args, "study=decide", f"out={out}", "n_boot=500"]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
        assert (table[f"test_{metric}_ci_low"] <= table[f"test_{metric}"] + 1e-4).all()
        assert (table[f"test_{metric}"] <= table[f"test_{metric}_ci_high"] + 1e-4).all()
    cfg = load_config(args)
    client = MlflowClient(cfg.tracking.tracking_uri)
    ref_run = client.search_runs([client.get_experiment_by_name("test").experiment_id],
                                 f"tags.trial = '{int(table['reference_trial'][0])}'")[0]

    def f1_table(run_id):
        return pd.read_csv(client.download_artifacts(run_id, "per_class_test.csv")).set_index("class")["f1"]

    ref_f1 = f1_table(ref_run.info.run_id)
    for row in table.itertuples():
        f1 = f1_table(row.mlflow_run_id)
        gained = sorted(c for c in f1.index if ref_f1[c] == 0 and f1[c] > 0)
        lost = sorted(c for c in f1.index if ref_f1[c] > 0 and f1[c] == 0)
        assert sorted(filter(None, row.classes_gained.split("; "))) == gained
        assert sorted(filter(None, row.classes_lost.split("; "))) == lost
        noisy = row.delta_test_accuracy_ci_low <= 0 <= row.delta_test_accuracy_ci_high and \
            row.delta_test_macro_f1_ci_low <= 0 <= row.delta_test_macro_f1_ci_high
        assert row.within_noise == noisy
    report = root / "decide_report"
    assert (report / "report.md").read_text().count("![") == 1 + len(table)
    assert (report / "pareto_test.png").stat().st_size > 10_000
    parent = client.search_runs([ref_run.info.experiment_id], "tags.kind = 'sweep'")[0]
    logged = {f.path for f in client.list_artifacts(parent.info.run_id, "export")}
    assert "export/decide.csv" in logged and "export/pareto_test.png" in logged
    front_run = table["mlflow_run_id"][0]
    assert any(f.path.startswith("per_class_f1_trial_") for f in client.list_artifacts(front_run))
    capsys.readouterr()

    # make pick: the best validation macro-F1 among points meeting the constraint
    floor = float(table["val_accuracy"].median())
    assert main(["pick", *args, "study=decide", f"min_accuracy={floor}"]) == 0
    said = capsys.readouterr().out
    best = table[table.val_accuracy >= floor].sort_values("val_macro_f1", ascending=False).iloc[0]
    assert f"trial {best.trial} (MLflow run {best.mlflow_run_id})" in said
    assert main(["pick", *args, "study=decide", "min_accuracy=1.01"]) == 0
    assert "no Pareto point" in capsys.readouterr().out
    assert main(["pick", *args, "study=decide"]) == 2
    assert "give a constraint" in capsys.readouterr().err
    rows = list(csv.reader(out.open()))
    assert len(rows) == len(table) + 1  # one header line
