"""sweep.pruner=halving: the rule (non-dominated sorting, then crowding, top 1/eta) checked against independent
computations; TPE's good set never holds a pruned trial; a real fine-tune sweep (tiny BERT on the CPU) prunes,
keeps pruned trials off the front, tracks one prefix run and its branches; a worker killed mid-rung resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.samplers._tpe.sampler import _split_trials
from optuna.study._multi_objective import _fast_non_domination_rank
from optuna.trial import TrialState, create_trial

from sweep.cli import main
from sweep.config import ConfigError, load_config
from sweep.search.halving import CompleteGamma, Halving, crowding, halving, keeps, nondominated_ranks
from sweep.search.pareto import complete_trials, front
from sweep.search.storage import open_storage
from tiny_model import finetune_overrides


def test_ranks_are_optunas_non_domination_ranks():
    rng = np.random.default_rng(0)
    for _ in range(100):
        v = rng.integers(0, 6, (rng.integers(1, 25), rng.integers(2, 4))).astype(float)
        np.testing.assert_array_equal(nondominated_ranks(v), _fast_non_domination_rank(-v))


def test_crowding_is_nsga2s_distance():
    v = np.array([[0.0, 1.0], [0.2, 0.7], [0.5, 0.5], [1.0, 0.0]])
    d = crowding(v)
    assert np.isinf(d[0]) and np.isinf(d[3])
    assert d[1] == pytest.approx((0.5 - 0.0) / 1.0 + (1.0 - 0.5) / 1.0)
    assert d[2] == pytest.approx((1.0 - 0.2) / 1.0 + (0.7 - 0.0) / 1.0)


def test_keeps_the_top_third_by_front_then_crowding():
    """Brute force: a point goes on iff fewer than max(1, n // eta) points sort strictly before it."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        v = np.round(rng.random((rng.integers(1, 14), 2)), 1)
        ranks = nondominated_ranks(v)
        crowd = np.zeros(len(v))
        for r in set(ranks):
            crowd[ranks == r] = crowding(v[ranks == r])
        for me in range(len(v)):
            before = sum((ranks[j], -crowd[j]) < (ranks[me], -crowd[me]) for j in range(len(v)))
            assert keeps(v, me, 3) == (before < max(1, len(v) // 3))
    # a dominated point among three is stopped, a non-dominated one goes on
    pts = np.array([[0.8, 0.5], [0.6, 0.7], [0.5, 0.4]])
    assert keeps(pts, 0, 3) and keeps(pts, 1, 3) and not keeps(pts, 2, 3)


def test_rungs_and_settings():
    assert Halving(3, 1 / 9).fractions == pytest.approx([1 / 9, 1 / 3])
    assert Halving(2, 0.25).fractions == pytest.approx([0.25, 0.5])
    for eta, low in ((1, 0.1), (2.5, 0.1), (3, 0.0), (3, 1.0)):
        with pytest.raises(ConfigError, match="sweep.halving"):
            Halving(eta, low)
    head = load_config(["sweep.pruner=halving"])  # the default model is a linear head: nothing to stop
    with pytest.raises(ConfigError, match="sweep.pruner=halving stops fine-tunes"):
        halving(head)
    with pytest.raises(ConfigError, match="sweep.pruner='asha' is unknown"):
        halving(load_config(["sweep.pruner=asha", "model=minilm_finetune"]))


def test_tpe_never_counts_a_pruned_trial_as_good():
    """Optuna's default share (10% of complete + pruned) fills TPE's good set with pruned trials once the complete
    ones run out: they carry no values in a multi-objective study, so all tie, and a trial stopped at its first
    rung would count as good. CompleteGamma takes the share of the complete trials only."""
    dist = {"x": FloatDistribution(0, 1)}
    study = optuna.create_study(directions=["maximize", "maximize"])
    for i, x in enumerate(np.linspace(0, 1, 40)):
        if i % 20 == 0:  # 2 complete, 38 pruned: fewer complete than the default good share (4)
            study.add_trial(create_trial(params={"x": x}, distributions=dist, values=[x, 1 - x]))
        else:
            study.add_trial(create_trial(params={"x": x}, distributions=dist, state=TrialState.PRUNED))
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    default_below, _ = _split_trials(study, trials, int(np.ceil(0.1 * len(trials))))
    assert any(t.state == TrialState.PRUNED for t in default_below)  # the failure mode, with the default
    gamma = CompleteGamma()
    gamma.study = study
    below, above = _split_trials(study, trials, gamma(len(trials)))
    assert below and all(t.state == TrialState.COMPLETE for t in below)
    assert len(below) + len(above) == len(trials)
    sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, n_startup_trials=5, gamma=gamma)
    study.sampler = sampler
    trial = study.ask()  # samples without error from pruned trials that have no values
    assert 0 <= trial.suggest_float("x", 0, 1) <= 1


HALVING = ["model.reweight_from=0.5", "sweep.pruner=halving", "sweep.sampler=random"]


@pytest.mark.slow  # a whole halving sweep of fine-tunes: make test's, not the edit loop's
def test_a_halving_sweep_prunes_keeps_pruned_trials_off_the_front_and_branches_from_one_prefix(tiny_bert, root):
    args = finetune_overrides(root, tiny_bert, *HALVING, "sweep.n_trials=12", "sweep.study_name=halving")
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="halving", storage=open_storage(cfg))
    states = [t.state for t in study.trials]
    assert len(states) == 12 and TrialState.PRUNED in states and TrialState.COMPLETE in states
    assert TrialState.FAIL not in states
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    on_front = {t.number for t in front(study)}
    assert on_front and not on_front & {t.number for t in pruned}
    assert {t.number for t in complete_trials(study)} == {t.number for t in study.trials if t.values is not None}

    client = MlflowClient(cfg.tracking.tracking_uri)
    parent = study.user_attrs["mlflow_parent_run_id"]
    runs = client.search_runs([client.get_run(parent).info.experiment_id], max_results=100)
    prefixes = [r for r in runs if r.data.tags.get("kind") == "prefix"]
    assert len(prefixes) == 1 and prefixes[0].data.tags["mlflow.parentRunId"] == parent
    trials = {int(r.data.tags["trial"]): r for r in runs if r.data.tags.get("kind") == "trial"}
    assert len(trials) == 12 and all(r.info.status == "FINISHED" for r in trials.values())
    assert all(r.data.tags["branched_from"] == prefixes[0].info.run_id for r in trials.values())
    for t in pruned:
        run = trials[t.number]
        assert run.data.tags["pruned_at"] == str(t.user_attrs["pruned_at"])
        history = client.get_metric_history(run.info.run_id, "val_macro_f1")
        rungs = sorted(v["step"] for k, v in t.user_attrs.items() if k.startswith("rung_"))
        assert sorted(m.step for m in history) == rungs and rungs[-1] == t.user_attrs["pruned_at"]
        last = t.user_attrs[f"rung_{len(rungs)}"]["values"]
        assert [m.value for m in history if m.step == rungs[-1]] == [pytest.approx(last[1])]
    # each pruned trial was outside the top third of the trials that had reached its rung before it
    for t in pruned:
        k = len([a for a in t.user_attrs if a.startswith("rung_")])
        earlier = [u for u in study.trials[: t.number] if f"rung_{k}" in u.user_attrs]
        values = np.array(
            [*[u.user_attrs[f"rung_{k}"]["values"] for u in earlier], t.user_attrs[f"rung_{k}"]["values"]]
        )
        assert not keeps(values, len(earlier), 3)


def _study(cfg, name):
    try:
        return optuna.load_study(study_name=name, storage=open_storage(cfg))
    except KeyError:
        return None


# `python -m sweep` whose trials stop for good once scored at a rung, so that the kill finds one between its rungs
# at once (the trials themselves as fast as the other tests'; the resume runs the real code, in this process)
STALLS_AFTER_A_RUNG = """
import sys, time
from sweep.search.halving import Halving
decide = Halving.decide
def stalled(self, trial, rung, step, values):
    keep = decide(self, trial, rung, step, values)
    time.sleep(3600)
    return keep
Halving.decide = stalled
from sweep.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.system  # a sweep in a subprocess, SIGKILLed
def test_a_worker_killed_mid_rung_then_resumed_loses_and_double_counts_nothing(tiny_bert, root):
    name = "halving-kill"
    args = finetune_overrides(root, tiny_bert, *HALVING, "sweep.baselines=null", "sweep.total_trials=5")
    args += [f"sweep.study_name={name}"]
    cfg = load_config(args)
    proc = subprocess.Popen(
        [sys.executable, "-c", STALLS_AFTER_A_RUNG, "sweep", *args], env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    deadline, victim = time.time() + 240, None
    while victim is None and time.time() < deadline:
        assert proc.poll() is None, "the sweep ended before a trial was caught between its rungs"
        study = _study(cfg, name)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if study else ():
            if "rung_1" in t.user_attrs:  # scored at its first rung, not yet at its end
                victim = t.number
        time.sleep(0.05)
    assert victim is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert main(["sweep", *args]) == 0  # the same command resumes
    study = _study(cfg, name)
    by_state = {s: [t.number for t in study.trials if t.state == s] for s in TrialState}
    assert by_state[TrialState.FAIL] == [victim] and not by_state[TrialState.RUNNING]
    assert len(by_state[TrialState.COMPLETE]) + len(by_state[TrialState.PRUNED]) == 5
    client = MlflowClient(cfg.tracking.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id], max_results=100)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if r.data.tags.get("trial") == str(victim)]
    assert [r.info.status for r in killed] == ["KILLED"]
    assert len([r for r in runs if r.data.tags.get("kind") == "prefix"]) == 1  # the resume branched from it too
