"""make bench ARGS=grid=1: one cell of the cost grid on a small Zipf fixture (real sweep, real stores)."""

import math

import pytest

from sweep.bench.cost import _cell


@pytest.mark.slow  # a bench cell: the harness's sweep: make test's, not the edit loop's
def test_cost_cell_reports_the_sweeps_own_fits(tmp_path):
    r = _cell([f"paths.root={tmp_path}"], str(tmp_path / "data"), classes=8, texts=1000, trials=4)
    assert (r["classes"], r["texts"], r["trials"]) == (8, 1000, 4)
    assert r["unconverged"] == 0 and r["features"] > 0 and r["featurize_s"] > 0
    # the first fit starts cold; the warm ones start from a fitted solution and need fewer iterations
    assert r["cold_it"] > 0 and not math.isnan(r["warm_it"]) and r["warm_it"] < r["cold_it"]
    # 4 trials: unweighted (cold fit), sqrt-inverse (warm fit), post-hoc tau 1 (reused logits), one TPE trial
    assert r["trial_s"] <= r["wall_s"]


@pytest.mark.slow  # a whole bench: both sides' sweeps and the idea table: make test's, not the edit loop's
def test_bench_runs_both_sides_and_checks_the_same_answer(tmp_path, capsys):
    """A real bench on small data: harness sweep, naive scikit-learn side, the idea table; exit 0 when the
    answers agree."""
    from sweep.cli import main

    code = main(
        ["bench", f"paths.root={tmp_path}", "data=synthetic", "data.n=1500", "trials=5", "naive_every=2", "ideas=3"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "same answer" in out and "must be < 0.001: ok" in out and "bench FAILED" not in out
    for idea in ("torch.optim.LBFGS", "float64 products", "float32 products", "quadratic through the 3 nearest"):
        assert idea in out
    assert "NOT converged" not in out


def test_a_failed_same_answer_check_says_so_and_exits_1(capsys):
    """The check itself: naive values 0.002 away from the harness's on the same parameters fail the bench."""
    import datetime
    from types import SimpleNamespace

    import numpy as np
    from omegaconf import OmegaConf

    from sweep.bench.bench import report

    t0 = datetime.datetime(2026, 1, 1)
    trial = SimpleNamespace(
        values=[0.8, 0.5],
        user_attrs={"fit_converged": True},
        datetime_start=t0,
        datetime_complete=t0 + datetime.timedelta(seconds=1),
    )
    cfg = OmegaConf.create(
        {"data": {"name": "x"}, "model": {"name": "tfidf_linear", "head": {"l2": 1e-4, "gtol": 1e-6}}}
    )
    splits = SimpleNamespace(info={}, num_classes=3, labels={"val": np.zeros(500)})
    run = SimpleNamespace(featurize_s=1.0, wall_s=2.0, n_features=10)
    naive = [{"values": [0.802, 0.5], "seconds": 3.0, "converged": True}]
    assert report({}, cfg, splits, run, [trial], [], [trial], naive, 3.0, []) == 1
    out = capsys.readouterr().out
    assert "must be < 0.001: FAILED" in out and "bench FAILED: not the same answer" in out


@pytest.mark.slow  # the bench's naive sweep: make test's, not the edit loop's
def test_the_naive_side_leaves_no_tracking_uri_behind(tmp_path, monkeypatch):
    """optuna-integration's MLflowCallback sets MLFLOW_TRACKING_URI for the whole process; the bench puts it
    back, so that later runs (conf/tracking/local.yaml reads it) do not write into the bench's store."""
    import os

    from sweep.bench.bench import naive_sweep
    from sweep.config import load_config

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config([f"paths.root={tmp_path}", "data=synthetic", "data.n=800"])
    rows, _ = naive_sweep(cfg, [{"weighting.alpha": 0.0, "loss.posthoc_tau": 0.0}], tmp_path)
    assert len(rows) == 1 and rows[0]["converged"]
    assert "MLFLOW_TRACKING_URI" not in os.environ
