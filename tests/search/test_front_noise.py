"""How sure the front is: p_front (the share of paired validation resamples on which a trial is non-dominated)
against a slow plain-Python computation on the same resamples, the tied trials, and the constrained front."""

import numpy as np
import optuna
import pandas as pd
import pytest

from slow_front import slow_p_front
from sweep.models.metrics import bootstrap, resample_indices
from sweep.report.confidence import FrontNoise, tied_sentence, tied_trials
from sweep.search.pareto import front, p_front


def _predictions(seed: int = 0, n: int = 150, k: int = 6):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=np.geomspace(1, 0.03, k) / np.geomspace(1, 0.03, k).sum())  # a class of ~2
    preds = {}
    for i, right in enumerate((0.9, 0.85, 0.8, 0.75, 0.6)):
        preds[i] = np.where(rng.random(n) < right, y, rng.integers(0, k, n))
    preds[5] = preds[1].copy()  # a duplicate: always tied with trial 1
    preds[6] = np.where(np.arange(n) % 2 == 0, preds[0], y)  # better than trial 0 on every example: dominates it
    preds[7] = np.where(y == 0, y, rng.integers(0, k, n))  # the largest class right, the others guessed
    return y, preds, k


@pytest.mark.parametrize("metrics", [["accuracy", "macro_f1"], ["accuracy", "macro_f1", "coverage"]])
def test_p_front_agrees_with_a_slow_plain_python_computation(metrics):
    y, preds, k = _predictions()
    n_boot = 60
    samples = bootstrap(y, preds, k, n_boot=n_boot, seed=4)
    names = list(preds)
    scores = np.stack([np.stack([samples[n][m] for m in metrics], axis=-1) for n in names], axis=1)
    fast = dict(zip(names, p_front(scores, block=16), strict=True))
    slow = slow_p_front(y, preds, k, resample_indices(y, n_boot, seed=4), metrics)
    assert fast == pytest.approx(slow, abs=1e-12)
    assert fast[5] == fast[1]  # identical predictions: tied, never dominating each other
    assert fast[0] < 0.05  # dominated by trial 6 wherever the resample holds an example trial 6 corrects
    assert 0 < fast[6] <= 1


def _study(points: list[tuple[float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "maximize"])
    study.set_metric_names(["val_accuracy", "val_macro_f1"])
    for i, v in enumerate(points):
        study.add_trial(
            optuna.trial.create_trial(values=list(v), user_attrs={"config": {"alpha": i / 10, "posthoc_tau": 0.0}})
        )
    return study


def test_the_tied_trials_are_those_off_the_front_above_the_threshold_and_said_in_one_sentence():
    study = _study([(0.9, 0.5), (0.8, 0.6), (0.85, 0.48), (0.7, 0.4), (0.89, 0.49)])
    assert [t.number for t in front(study)] == [1, 0]
    noise = FrontNoise(pd.Series({0: 0.95, 1: 1.0, 2: 0.4, 3: 0.0, 4: 0.1}), n_boot=1000)
    tied = tied_trials(study, noise, 0.1)
    assert list(tied["trial"]) == [2, 4] and list(tied["p_front"]) == [0.4, 0.1]
    assert list(tied["val_accuracy"]) == [0.85, 0.89]
    said = tied_sentence(study, noise, tied, 0.1)
    assert said.startswith("2 trials off the front are statistically tied with it (non-dominated on at least 10%")
    assert "trials 2, 4" in said and "in 95% to 100% of the resamples" in said
    assert tied_trials(study, noise, 0.5).empty
    assert tied_sentence(study, noise, tied_trials(study, noise, 0.5), 0.5).startswith("No trial off the front")
    assert "not computed: folds" in tied_sentence(study, FrontNoise(pd.Series(dtype=float), reason="folds"), tied, 0.1)


def test_the_front_honors_the_constraints_of_the_sweep():
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    study = optuna.create_study(directions=["maximize", "maximize"])
    for values, c in (([0.9, 0.5], -0.1), ([0.7, 0.8], 0.05), ([0.85, 0.6], 0.0)):
        study.add_trial(optuna.trial.create_trial(values=values, system_attrs={f"{_CONSTRAINTS_KEY}:min_accuracy": c}))
    assert [t.number for t in front(study)] == [2, 0]  # trial 1 breaks the floor: off the front


def test_the_dense_front_is_the_non_dominated_set_of_the_pooled_tau_curves():
    from sweep.report.dense import dense_front

    rng = np.random.default_rng(5)
    taus = np.round(np.arange(0, 2.01, 0.02), 2)
    rows = []
    for trial in range(6):
        acc = np.round(0.8 - 0.05 * taus**2 + rng.normal(0, 0.004, len(taus)), 3)  # coarse: ties happen
        f1 = np.round(0.6 + 0.08 * taus - 0.03 * taus**2 + rng.normal(0, 0.004, len(taus)), 3)
        rows += [
            {"trial": trial, "posthoc_tau": t, "val_accuracy": a, "val_macro_f1": f, "alpha": trial / 10}
            for t, a, f in zip(taus, acc, f1, strict=True)
        ]
    curves = pd.DataFrame(rows)
    dense = dense_front(curves)
    pts = curves[["val_accuracy", "val_macro_f1"]].to_numpy()
    brute = {(a, f) for a, f in pts if not any(a2 >= a and f2 >= f and (a2 > a or f2 > f) for a2, f2 in pts)}
    assert set(zip(dense["val_accuracy"], dense["val_macro_f1"], strict=True)) == brute
    assert len(dense) == len(brute)  # one row per distinct point
    for r in dense.itertuples():  # the first trial, then the smallest tau reaching it; how many reach it
        reach = curves[(curves["val_accuracy"] == r.val_accuracy) & (curves["val_macro_f1"] == r.val_macro_f1)]
        assert (r.trial, r.posthoc_tau) == min(zip(reach["trial"], reach["posthoc_tau"], strict=True))
        assert r.candidates == len(reach)
    assert list(dense["val_accuracy"]) == sorted(dense["val_accuracy"], reverse=True)
