"""Scalar metrics, coverage, and the bootstrap (plain and stratified, any class mix) against scikit-learn and SciPy."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score

from sweep.models.metrics import evaluate


def test_micro_f1_equals_accuracy_on_single_label_data():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    scalars, _ = evaluate(y, p, [f"c{i}" for i in range(7)])
    assert f1_score(y, p, average="micro") == scalars["accuracy"]


def test_zero_f1_classes_and_per_class_table():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 1, 0, 0])  # class 2 never predicted correctly
    scalars, table = evaluate(y, p, ["a", "b", "c"])
    assert scalars["zero_f1_classes"] == 1
    assert table["support"].tolist() == [3, 2, 1]
    assert table.loc[2, "f1"] == 0.0
    assert scalars["accuracy"] == 3 / 6
    # macro-F1 by hand: a: P=2/4 R=2/3 ; b: P=1/2 R=1/2 ; c: 0
    f_a = 2 * (0.5 * 2 / 3) / (0.5 + 2 / 3)
    assert np.isclose(scalars["macro_f1"], (f_a + 0.5 + 0) / 3)


def test_coverage_counts_the_classes_with_f1_above_zero():
    y = np.array([0, 0, 1, 1, 2, 3])
    p = np.array([0, 0, 1, 0, 0, 0])  # classes 2 and 3 never right
    scalars, table = evaluate(y, p, list("abcd"))
    f1 = f1_score(y, p, labels=range(4), average=None, zero_division=0)
    assert scalars["coverage"] == int((f1 > 0).sum()) == 2 == 4 - scalars["zero_f1_classes"]


def _long_tail(n: int = 1500, k: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    share = np.geomspace(1, 0.03, k)
    y = rng.choice(k, size=n, p=share / share.sum())
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    return y, pred, k


def test_the_plain_bootstrap_interval_agrees_with_scipy():
    from scipy.stats import bootstrap as scipy_bootstrap

    from sweep.models.metrics import bootstrap, interval

    y, pred, k = _long_tail()
    ours = bootstrap(y, {"p": pred}, k, n_boot=4000, seed=1)["p"]
    ref = scipy_bootstrap(
        ((pred == y).astype(float),), np.mean, n_resamples=4000, method="percentile", random_state=2
    ).confidence_interval
    lo, hi = interval(ours["accuracy"])
    assert abs(lo - ref.low) < 0.004 and abs(hi - ref.high) < 0.004  # Monte Carlo error of both: ~0.0007

    def macro(a, b):
        return f1_score(a, b, labels=range(k), average="macro", zero_division=0)

    ref = scipy_bootstrap(
        (y, pred), macro, paired=True, vectorized=False, n_resamples=1000, method="percentile", random_state=3
    ).confidence_interval
    lo, hi = interval(ours["macro_f1"])
    assert abs(lo - ref.low) < 0.008 and abs(hi - ref.high) < 0.008


def test_the_plain_bootstrap_lets_class_counts_vary_the_stratified_one_does_not():
    from sweep.models.metrics import bootstrap, resample_indices

    y, pred, k = _long_tail(n=800)
    y = np.append(y, k)  # one example of a new class, predicted right
    pred = np.append(pred, k)
    plain = resample_indices(y, 3000, seed=0)  # what bootstrap() draws with seed 0
    absent = np.mean(~(plain == len(y) - 1).any(axis=1))
    assert abs(absent - (1 - 1 / len(y)) ** len(y)) < 0.03  # ~37% of the resamples lack the one example
    strat = resample_indices(y, 300, seed=0, stratified=True)
    assert all((np.bincount(y[row], minlength=k + 1) == np.bincount(y, minlength=k + 1)).all() for row in strat)
    full = evaluate(y, pred, [str(c) for c in range(k + 1)])[0]["coverage"]
    cov_plain = bootstrap(y, {"p": pred}, k + 1, n_boot=3000)["p"]["coverage"]
    cov_strat = bootstrap(y, {"p": pred}, k + 1, n_boot=300, stratified=True)["p"]["coverage"]
    assert cov_strat.min() == full  # the one-example class always detected: the interval hides its noise
    lacking = ~(plain == len(y) - 1).any(axis=1)
    assert (cov_plain[lacking] == full - 1).all() and (cov_plain[~lacking] <= full).all()  # ... the plain one shows it
    plain_f1 = bootstrap(y, {"p": pred}, k + 1, n_boot=3000)["p"]["macro_f1"]
    strat_f1 = bootstrap(y, {"p": pred}, k + 1, n_boot=3000, stratified=True)["p"]["macro_f1"]
    assert plain_f1.std() > 1.5 * strat_f1.std()


def test_a_class_mix_reweights_like_scikit_learns_sample_weight():
    from sklearn.metrics import accuracy_score

    from sweep.models.metrics import _scores_from_confusion, bootstrap, confusion, mix_weights

    y, pred, k = _long_tail()
    for share in (np.full(k, 1 / k), np.array([0.5, 0.2, 0.1, 0.1, 0.1, 0.0])):
        w = mix_weights(y, share)
        present = share > 0
        got = _scores_from_confusion(confusion(y, pred, k, w), present)
        assert got["accuracy"] == pytest.approx(accuracy_score(y, pred, sample_weight=w[y]))
        assert got["macro_f1"] == pytest.approx(
            f1_score(y, pred, labels=np.flatnonzero(present), average="macro", sample_weight=w[y], zero_division=0)
        )
        # the weighted test split has the mix's class shares
        assert np.bincount(y, weights=w[y], minlength=k) / w[y].sum() == pytest.approx(share)
        samples = bootstrap(y, {"p": pred}, k, n_boot=500, class_weight=w, macro=present)["p"]
        assert samples["accuracy"].mean() == pytest.approx(got["accuracy"], abs=0.01)


@pytest.mark.parametrize("seed", range(4))
def test_evaluate_matches_scikit_learn_with_absent_and_unpredicted_classes(seed):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, precision_recall_fscore_support

    rng = np.random.default_rng(seed)
    k = 9
    y = rng.choice(k - 2, 300, p=np.geomspace(1, 0.02, k - 2) / np.geomspace(1, 0.02, k - 2).sum())  # 2 absent
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, k - 1, 300))  # class k-1 never predicted
    scalars, table = evaluate(y, p, [f"c{i}" for i in range(k)])
    labels = list(range(k))
    pr, rc, f1, sup = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    assert table["precision"].tolist() == pytest.approx(pr, abs=1e-15)
    assert table["recall"].tolist() == pytest.approx(rc, abs=1e-15)
    assert table["f1"].tolist() == pytest.approx(f1, abs=1e-15)
    assert table["support"].tolist() == sup.tolist()
    assert scalars["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-15)
    assert scalars["macro_f1"] == pytest.approx(
        f1_score(y, p, labels=labels, average="macro", zero_division=0), abs=1e-15
    )
    weighted = f1_score(y, p, labels=labels, average="weighted", zero_division=0)
    assert scalars["weighted_f1"] == pytest.approx(weighted, abs=1e-15)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
        warnings.simplefilter("ignore")
        assert scalars["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p), abs=1e-15)
    assert scalars["coverage"] == int((f1 > 0).sum()) == k - scalars["zero_f1_classes"]
