"""End to end: a sweep of a few trials on synthetic data, in a real Optuna journal and a real MLflow store."""

import csv

import numpy as np
import optuna
from mlflow import MlflowClient

from sweep.cli import main
from sweep.config import load_config
from sweep.study import open_storage


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Independent of Optuna: i is on the front unless some j is >= in both objectives and > in one."""
    keep = []
    for p in points:
        dominated = np.any(np.all(points >= p, axis=1) & np.any(points > p, axis=1))
        keep.append(not dominated)
    return np.array(keep)


def children(client, parent_id):
    exp = client.get_run(parent_id).info.experiment_id
    return client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)


def test_sweep_tracks_every_trial_tags_the_front_exports_it_and_resumes(synthetic, root, capsys):
    args = [*synthetic, "sweep.n_trials=6", "sweep.study_name=e2e"]
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="e2e", storage=open_storage(cfg))
    assert len(study.trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # the baselines were enqueued first
    assert study.trials[0].params == {"weighting.alpha": 0.0, "loss.posthoc_tau": 0.0}
    assert study.trials[1].params["weighting.alpha"] == 0.5

    client = MlflowClient(cfg.tracking.tracking_uri)
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    parent = client.get_run(parent_id)
    assert parent.info.run_name == "e2e" and parent.data.tags["kind"] == "sweep"
    assert {f.path for f in client.list_artifacts(parent_id)} >= {"pareto.csv", "pareto.png"}
    kids = children(client, parent_id)
    assert len(kids) == 6 and all(k.info.status == "FINISHED" for k in kids)
    by_trial = {int(k.data.tags["trial"]): k for k in kids}
    assert set(by_trial) == {t.number for t in study.trials}
    for t in study.trials:
        k = by_trial[t.number]
        assert float(k.data.params["weighting.alpha"]) == t.params["weighting.alpha"]
        assert k.data.metrics["val_accuracy"] == t.values[0]
        assert "test_macro_f1" in k.data.metrics
    # pareto tags == Optuna's best_trials == an independent non-dominance check
    front = {t.number for t in study.best_trials}
    tagged = {n for n, k in by_trial.items() if k.data.tags.get("pareto") == "true"}
    assert tagged == front
    pts = np.array([t.values for t in study.trials])
    assert front == {study.trials[i].number for i in np.flatnonzero(non_dominated(pts))}
    found = client.search_runs([parent.info.experiment_id], "tags.pareto = 'true'")
    assert {int(r.data.tags["trial"]) for r in found} == front

    out = root / "front.csv"
    assert main(["export", *synthetic, "study=e2e", f"out={out}"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {int(r["trial"]) for r in rows} == front
    assert [float(r["val_accuracy"]) for r in rows] == sorted((float(r["val_accuracy"]) for r in rows), reverse=True)
    for col in ("mlflow_run_id", "alpha", "tau", "loss", "model", "test_accuracy", "test_macro_f1",
                "test_balanced_accuracy", "zero_f1_classes", "delta_test_accuracy", "delta_test_macro_f1"):
        assert col in rows[0]
    ref = study.trials[0].user_attrs["metrics"]
    for r in rows:
        assert float(r["delta_test_accuracy"]) == round(float(r["test_accuracy"]) - ref["test_accuracy"], 4) or \
            abs(float(r["delta_test_accuracy"]) - (float(r["test_accuracy"]) - ref["test_accuracy"])) < 2e-4

    # a second invocation resumes: trials add up, same parent run, no duplicated baselines
    assert main(["sweep", *args, "sweep.n_trials=3"]) == 0
    study = optuna.load_study(study_name="e2e", storage=open_storage(cfg))
    assert len(study.trials) == 9 and study.user_attrs["mlflow_parent_run_id"] == parent_id
    assert len(children(client, parent_id)) == 9
    assert len(client.search_runs([parent.info.experiment_id], "tags.kind = 'sweep'")) == 1


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(synthetic, root):
    # l2 = -1 is rejected by the trial's config validation: a real error inside a trial
    args = [*synthetic, "sweep.n_trials=5", "sweep.study_name=failing", "sweep.sampler=random",
            "++sweep.params.model.head.l2='choice(1e-6,-1.0)'", "sweep.baselines=null"]
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="failing", storage=open_storage(cfg))
    states = [t.state for t in study.trials]
    assert len(states) == 5
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and len(failed) < 5, "random sampling with seed 0 draws both choices"
    assert all("model.head.l2=-1.0" in t.user_attrs["error"] for t in failed)
    client = MlflowClient(cfg.tracking.tracking_uri)
    for t in failed:
        r = client.get_run(t.user_attrs["mlflow_run_id"])
        assert r.info.status == "FAILED" and "model.head.l2" in r.data.tags["error"]


def test_sweep_config_errors_are_one_line(synthetic, capsys):
    cases = {
        "sweep.params.weighting.alpha='interval(0.8,0.2)'": "low > high",
        "sweep.params.weighting.alpha=interval(0,1)": "quote the search range",
        "++sweep.params.model.head.l2='interval(1e-3,1'": "not valid sweep syntax",
        "sweep.sampler=grid": "sweep.sampler='grid' is unknown",
        "sweep.params.weighting.alpha='interval(0,5)'": "outside the allowed",
        "weighting=none": "searches 'weighting.alpha', which this config does not have",
        "sweep.storage=postgresql://u:hunter2@127.0.0.1:9/db": "is not reachable",
    }
    for override, message in cases.items():
        assert main(["sweep", *synthetic, override]) == 2, override
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (override, err)
        assert "hunter2" not in err[0]
