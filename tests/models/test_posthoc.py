"""The post-hoc tau curve: every tau of the grid scored from one fit's logits, equal to scikit-learn's
metrics on the adjusted argmax and to the trial's own numbers at its tau, and logged with each trial (a CSV
and metric histories that the MLflow UI draws)."""

import numpy as np
import pytest

from sweep.models.losses import log_prior, posthoc_predict
from sweep.models.metrics import evaluate
from sweep.models.posthoc import TAU_GRID, tau_curve


def test_each_row_equals_scikit_learn_on_the_adjusted_argmax():
    rng = np.random.default_rng(0)
    n, k = 2000, 9
    y = rng.choice(k, size=n, p=np.geomspace(1, 0.02, k) / np.geomspace(1, 0.02, k).sum())
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y] + np.log(np.bincount(y, minlength=k) + 1)
    lp = log_prior(np.bincount(y, minlength=k) + 1)
    curve = tau_curve(logits, y, lp)
    assert list(curve["posthoc_tau"]) == list(TAU_GRID) and len(curve) == 101
    names = [str(c) for c in range(k)]
    for tau in (0.0, 0.5, 1.0, 2.0):
        row = curve[curve["posthoc_tau"] == tau].iloc[0]
        ref, _ = evaluate(y, posthoc_predict(logits, lp, tau), names)
        assert row["val_accuracy"] == pytest.approx(ref["accuracy"], abs=1e-12)
        assert row["val_macro_f1"] == pytest.approx(ref["macro_f1"], abs=1e-12)
    # the trade-off the curve exists to show: adjusting for the prior moves accuracy and macro-F1 apart
    assert curve["val_macro_f1"].idxmax() != curve["val_accuracy"].idxmax()


@pytest.mark.slow  # a whole sweep in-process: make test's, not the edit loop's
def test_a_trials_curve_holds_its_own_numbers_and_is_logged_with_its_run(synthetic, root):
    from mlflow.tracking import MlflowClient

    from sweep.cli import main
    from sweep.config import load_config
    from sweep.models.train import run

    cfg = load_config([*synthetic, "weighting.alpha=0.5", "loss.posthoc_tau=0.6"])
    result = run(cfg)
    at = result.tau_curve[np.isclose(result.tau_curve["posthoc_tau"], 0.6)].iloc[0]
    assert at["val_accuracy"] == pytest.approx(result.metrics["val_accuracy"], abs=1e-12)
    assert at["val_macro_f1"] == pytest.approx(result.metrics["val_macro_f1"], abs=1e-12)
    assert main(["sweep", *synthetic, "sweep.n_trials=2", "sweep.progress=false"]) == 0
    client = MlflowClient(f"sqlite:///{root}/mlruns/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.kind = 'trial'")
    assert runs
    for r in runs:
        assert "tau_curve.csv" in {a.path for a in client.list_artifacts(r.info.run_id)}
        history = client.get_metric_history(r.info.run_id, "tau_curve_val_macro_f1")
        assert sorted(m.step for m in history) == [int(round(100 * t)) for t in TAU_GRID]


@pytest.mark.parametrize("k, spread", [(113, 1.0), (113, 8.0), (5, 0.3)])
def test_the_candidate_argmax_gives_the_plain_argmax_at_every_tau(k, spread):
    # tau_curve looks only at each row's possible winners; here every tau's predictions are rebuilt the plain
    # way (argmax over all classes), on logits with exact ties and rows where many classes cross
    rng = np.random.default_rng(k)
    n = 3000
    y = rng.integers(0, k, n)
    logits = spread * rng.normal(size=(n, k))
    logits[:50] = logits[:50].round(0)  # ties
    logits[50:100] = 0.0  # all tied: the lowest class index wins, as np.argmax says
    lp = log_prior(rng.integers(1, 500, k))
    taus = np.round(np.linspace(0, 2, 41), 2)
    curve = tau_curve(logits, y, lp, taus)
    names = [str(c) for c in range(k)]
    for tau, row in zip(taus, curve.itertuples(), strict=True):
        ref, _ = evaluate(y, posthoc_predict(logits, lp, tau), names)
        assert row.val_accuracy == ref["accuracy"] and row.val_macro_f1 == pytest.approx(ref["macro_f1"], abs=1e-15)
