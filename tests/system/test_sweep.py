"""End to end: a sweep of a few trials on synthetic data, in a real Optuna journal and a real MLflow store."""

import csv

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient

from sweep.cli import main
from sweep.config import load_config
from sweep.search.storage import open_storage

pytestmark = pytest.mark.system  # whole sweeps, end to end


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
        # converged fits only, and no test metric in the study: nobody is invited to pick by test
        assert k.data.metrics["fit_converged"] == 1.0 and k.data.tags["converged"] == "true"
        assert k.data.metrics["fit_grad_max"] <= 1e-6 and t.user_attrs["fit_converged"] is True
        assert not [m for m in k.data.metrics if m.startswith("test_")]
        assert not [m for m in t.user_attrs["metrics"] if m.startswith("test_")]
        assert "per_class_test.csv" not in {f.path for f in client.list_artifacts(k.info.run_id)}
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
    for col in (
        "mlflow_run_id",
        "alpha",
        "tau",
        "loss",
        "model",
        "test_accuracy",
        "test_macro_f1",
        "test_balanced_accuracy",
        "zero_f1_classes",
        "delta_test_accuracy",
        "delta_test_macro_f1",
    ):
        assert col in rows[0]
    with np.load(client.download_artifacts(study.trials[0].user_attrs["mlflow_run_id"], "predictions.npz")) as z:
        ref_accuracy = float((z["test_true"] == z["test_pred"]).mean())  # the reference, scored independently
    for r in rows:
        assert abs(float(r["delta_test_accuracy"]) - (float(r["test_accuracy"]) - ref_accuracy)) < 2e-4

    # a second invocation resumes: trials add up, same parent run, no duplicated baselines
    assert main(["sweep", *args, "sweep.n_trials=3"]) == 0
    study = optuna.load_study(study_name="e2e", storage=open_storage(cfg))
    assert len(study.trials) == 9 and study.user_attrs["mlflow_parent_run_id"] == parent_id
    assert len(children(client, parent_id)) == 9
    assert len(client.search_runs([parent.info.experiment_id], "tags.kind = 'sweep'")) == 1


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(synthetic, root):
    # l2 = -1 is rejected by the trial's config validation: a real error inside a trial
    args = [
        *synthetic,
        "sweep.n_trials=5",
        "sweep.study_name=failing",
        "sweep.sampler=random",
        "++sweep.params.model.head.l2='choice(1e-6,-1.0)'",
        "sweep.baselines=null",
    ]
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


def test_trials_that_all_fail_stop_the_sweep_in_one_line(synthetic, root, capsys):
    # every trial meets the same error: with a total to reach, the worker would otherwise fail trials forever
    args = [
        *synthetic,
        "sweep.total_trials=20",
        "sweep.study_name=all-failing",
        "++sweep.params.model.head.l2='choice(-1.0,-2.0)'",
        "sweep.baselines=null",
        "sweep.max_failures_in_a_row=3",
    ]
    assert main(["sweep", *args]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]  # not the bar
    assert len(err) == 1 and err[0].startswith("error: 3 trials in a row failed, the last one with ")
    assert "model.head.l2" in err[0] and "run the same command to resume" in err[0]
    study = optuna.load_study(study_name="all-failing", storage=open_storage(load_config(args)))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3


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


def test_a_capped_fit_is_tagged_and_kept_off_the_front(synthetic, root):
    # max_iter 1 cannot converge from afar; 3000 does: random sampling draws both. Forget the solutions that
    # earlier tests fitted in this process, so that the first fits start cold whatever ran before.
    import sweep.models.train

    sweep.models.train._WARM.solutions.clear()
    sweep.models.train._LOGITS.clear()
    args = [
        *synthetic,
        "sweep.n_trials=8",
        "sweep.study_name=capped",
        "sweep.sampler=random",
        "++sweep.params.model.head.max_iter='choice(1,3000)'",
        "sweep.baselines=null",
    ]
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="capped", storage=open_storage(cfg))
    one_iteration = {t.number for t in study.trials if t.params["model.head.max_iter"] == 1}
    # one iteration from a warm start near an earlier solution may be enough; from afar it is not
    capped = {t.number for t in study.trials if t.user_attrs["fit_converged"] is False}
    assert capped and capped <= one_iteration
    assert all(study.trials[n].user_attrs["fit_grad_max"] > 1e-6 for n in capped)
    from sweep.search.pareto import front

    on_front = {t.number for t in front(study)}
    assert on_front and not on_front & capped
    ok = [t for t in study.trials if t.number not in capped]
    assert on_front == {ok[i].number for i in np.flatnonzero(non_dominated(np.array([t.values for t in ok])))}
    client = MlflowClient(cfg.tracking.tracking_uri)
    for t in study.trials:
        tags = client.get_run(t.user_attrs["mlflow_run_id"]).data.tags
        assert tags["converged"] == ("false" if t.number in capped else "true")
        assert tags["pareto"] == ("true" if t.number in on_front else "false")


def test_a_sweep_whose_fits_all_stop_at_their_cap_ends_cleanly_and_export_says_why(synthetic, root, capsys):
    # gtol 1e-15 is out of float64's reach: every fit runs to max_iter and is not a result, so the front is empty
    args = [
        *synthetic,
        "sweep.n_trials=2",
        "sweep.study_name=all-capped",
        "sweep.baselines=null",
        "model.head.max_iter=5",
        "model.head.gtol=1e-15",
    ]
    assert main(["sweep", *args]) == 0
    out = capsys.readouterr().out
    assert "2 complete, 0 failed, 2 not converged (kept off the front); Pareto front (0 trials" in out
    cfg = load_config(args)
    client = MlflowClient(cfg.tracking.tracking_uri)
    parent = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id],
        "tags.study_name = 'all-capped' and tags.kind = 'sweep'",
    )
    assert len(parent) == 1 and parent[0].data.metrics["front_size"] == 0 and parent[0].data.metrics["n_complete"] == 2
    for command in ("export", "pick"):
        extra = ["min_accuracy=0.1"] if command == "pick" else []
        assert main([command, *synthetic, "study=all-capped", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "2 complete trials but no converged fit" in err[0] and "model.head.max_iter" in err[0]


def test_resuming_a_study_on_other_data_or_settings_is_a_one_line_error(synthetic, root, capsys):
    args = [*synthetic, "sweep.n_trials=2", "sweep.study_name=same"]
    assert main(["sweep", *args]) == 0
    capsys.readouterr()
    for change, named in (
        ("data.ratio=5", "data.content"),
        ("model.head.l2=1e-3", "model.head.l2"),
        ("sweep.cv_folds=3", "objectives"),
    ):
        assert main(["sweep", *args, change]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "study 'same' was run on something else" in err[0] and named in err[0], err
        assert "sweep.study_name=same-" in err[0]
    cfg = load_config(args)
    study = optuna.load_study(study_name="same", storage=open_storage(cfg))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 2 and len(study.trials) == 3  # nothing was mixed in (the 3rd baseline still waits)
    assert main(["sweep", *args, "sweep.n_trials=1"]) == 0  # the same settings resume


def test_the_parent_run_never_stays_running_after_a_crash(synthetic, root, monkeypatch):
    import sweep.report.finish

    def crash(*a, **k):
        raise RuntimeError("disk full while writing the plot")

    monkeypatch.setattr(sweep.report.finish, "finalize", crash)
    args = [*synthetic, "sweep.n_trials=1", "sweep.study_name=crash"]
    try:
        main(["sweep", *args])
    except RuntimeError:
        pass
    cfg = load_config(args)
    study = optuna.load_study(study_name="crash", storage=open_storage(cfg))
    parent = MlflowClient(cfg.tracking.tracking_uri).get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "FAILED"


def test_two_sweeps_started_by_hand_use_different_sampler_seeds(synthetic, root):
    args = [*synthetic, "sweep.n_trials=3", "sweep.study_name=twice", "sweep.baselines=null", "sweep.sampler=random"]
    assert main(["sweep", *args]) == 0
    assert main(["sweep", *args]) == 0  # joins the existing study, as a second hand-started worker would
    study = optuna.load_study(study_name="twice", storage=open_storage(load_config(args)))
    seeds = [t.user_attrs["sampler_seed"] for t in study.trials]
    assert len(set(seeds[:3])) == 1 and seeds[3] != seeds[0]
    alphas = [t.params["weighting.alpha"] for t in study.trials]
    assert len(set(alphas)) == 6  # no duplicated draws


def test_cv_folds_objectives_are_fold_means_with_standard_errors(synthetic, root):
    args = [*synthetic, "sweep.n_trials=2", "sweep.study_name=cv", "sweep.cv_folds=3"]
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="cv", storage=open_storage(cfg))
    client = MlflowClient(cfg.tracking.tracking_uri)
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        m = client.get_run(t.user_attrs["mlflow_run_id"]).data.metrics
        folds = [m[f"val_accuracy_fold{i}"] for i in range(3)]
        assert t.values[0] == pytest.approx(np.mean(folds))
        assert m["val_accuracy_se"] == pytest.approx(np.std(folds, ddof=1) / np.sqrt(3))
        assert "val_macro_f1_fold2" in m and "val_macro_f1_se" in m
    assert main(["sweep", *synthetic, "model=minilm_finetune", "sweep.cv_folds=3"]) == 2
