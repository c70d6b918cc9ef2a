"""A third objective and a constraint: sweep.objectives=[accuracy,macro_f1,coverage] and
sweep.constraints.min_accuracy go through the study (Optuna's set_constraint), the front, the tags and the export,
each checked against an independent computation on the logged predictions."""

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import accuracy_score, f1_score

from sweep.cli import main
from sweep.config import load_config
from sweep.models.metrics import resample_indices
from sweep.search.storage import open_storage


@pytest.mark.slow  # a whole sweep in-process and its export: make test's, not the edit loop's
def test_three_objectives_and_an_accuracy_floor_through_study_front_tags_and_export(synthetic, root, capsys):
    floor = 0.74
    args = [
        *synthetic,
        "sweep.n_trials=7",
        "sweep.study_name=three",
        "data.ratio=40",
        "data.n_max=300",
        "sweep.objectives=[accuracy,macro_f1,coverage]",
        f"sweep.constraints.min_accuracy={floor}",
    ]
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="three", storage=open_storage(cfg))
    assert study.metric_names == ["val_accuracy", "val_macro_f1", "val_coverage"] and len(study.directions) == 3
    client = MlflowClient(cfg.tracking.tracking_uri)

    def validation(t):
        with np.load(client.download_artifacts(t.user_attrs["mlflow_run_id"], "predictions.npz")) as z:
            return z["val_true"].astype(int), z["val_pred"].astype(int)

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    k = len(set(validation(done[0])[0]))
    values = {}
    for t in done:
        y, p = validation(t)
        f1 = f1_score(y, p, labels=range(k), average=None, zero_division=0)
        assert t.values == pytest.approx([accuracy_score(y, p), f1.mean(), (f1 > 0).sum()])
        assert t.constraints == {"min_accuracy": pytest.approx(floor - accuracy_score(y, p))}
        values[t.number] = np.array(t.values)
    feasible = [n for n in values if values[n][0] >= floor]
    assert 0 < len(feasible) < len(values)  # the floor splits the trials
    expected = {
        a
        for a in feasible
        if not any((values[b] >= values[a]).all() and (values[b] > values[a]).any() for b in feasible)
    }
    runs = {t.number: client.get_run(t.user_attrs["mlflow_run_id"]).data.tags.get("pareto") for t in done}
    assert {n for n, tag in runs.items() if tag == "true"} == expected  # infeasible trials never on the front

    out = root / "three.csv"
    assert main(["export", *args, "study=three", f"out={out}", "n_boot=200", "sweep.front_boot=50"]) == 0
    table = pd.read_csv(out)
    assert set(table["trial"]) == expected
    assert (table["val_coverage"] == [values[n][2] for n in table["trial"]]).all()
    # p_front on all three objectives, among the feasible trials, on the same resamples
    from slow_front import slow_p_front

    y = validation(done[0])[0]
    preds = {t.number: validation(t)[1] for t in done if t.number in feasible}
    slow = slow_p_front(y, preds, k, resample_indices(y, 50), ["accuracy", "macro_f1", "coverage"])
    assert list(table["p_front"]) == pytest.approx([slow[n] for n in table["trial"]])


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("sweep.objectives=[macro_f1,accuracy]", "sweep.objectives=['macro_f1', 'accuracy'] is not supported"),
        ("sweep.constraints.min_accuracy=1.5", "sweep.constraints.min_accuracy=1.5 is outside [0, 1]"),
        ("sweep.constraints.confidence=0.9", "sweep.constraints.confidence needs a floor"),
        ("++sweep.constraints.max_loss=0.1", "sweep.constraints.max_loss is unknown"),
    ],
)
def test_bad_objectives_or_constraints_are_one_line_errors_before_any_trial(synthetic, capsys, override, says):
    assert main(["sweep", *synthetic, "sweep.n_trials=1", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err


def test_the_sweep_floor_with_confidence_is_the_floor_minus_the_one_sided_lower_bound():
    from sweep.search.objective import accuracy_constraint, constraints

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 600)
    pred = np.where(rng.random(600) < 0.8, y, rng.integers(0, 4, 600))
    rule = constraints(
        load_config(["sweep.constraints.min_accuracy=0.78", "sweep.constraints.confidence=0.9", "sweep.front_boot=500"])
    )
    assert rule == {"min_accuracy": 0.78, "confidence": 0.9, "n_boot": 500}
    idx = resample_indices(y, 500)  # what make pick draws too: seed 0
    lower = np.quantile((pred[idx] == y[idx]).mean(axis=1), 0.1)
    assert accuracy_constraint(rule, float((pred == y).mean()), y, pred, 4) == pytest.approx(0.78 - lower)
    point = constraints(load_config(["sweep.constraints.min_accuracy=0.78"]))
    assert accuracy_constraint(point, 0.8, y, pred, 4) == pytest.approx(-0.02)
