"""make pick: the best validation macro-F1 under an accuracy constraint; impossible constraints are one-line
errors, and "no point qualifies" is exit code 1 so that scripts can tell."""

import optuna
import pytest

from sweep.cli import main
from sweep.config import load_config
from sweep.search.pareto import front
from sweep.search.storage import open_storage


@pytest.mark.parametrize(
    ("argument", "says"),
    [
        ("min_accuracy=1.5", "min_accuracy=1.5 is outside [0, 1]"),
        ("min_accuracy=-0.2", "min_accuracy=-0.2 is outside [0, 1]"),
        ("min_accuracy=80%", "min_accuracy='80%' is not a number"),
        ("min_accuracy=nan", "min_accuracy='nan' is not a number"),
        ("max_accuracy_loss=-0.01", "max_accuracy_loss=-0.01 is negative"),
        ("max_accuracy_loss=one", "max_accuracy_loss='one' is not a number"),
    ],
)
def test_an_impossible_constraint_is_a_one_line_error_naming_the_value_and_the_fix(synthetic, capsys, argument, says):
    assert main(["pick", *synthetic, argument]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "e.g. " in err[0], err


def test_pick_picks_or_says_plainly_that_nothing_qualifies_with_exit_code_1(shared_sweep, capsys):
    args = shared_sweep("choose")
    study = optuna.load_study(study_name="choose", storage=open_storage(load_config(args)))
    points = sorted((t.values for t in front(study)), key=lambda v: v[1], reverse=True)
    capsys.readouterr()

    floor = min(v[0] for v in points)  # every point qualifies: the best validation macro-F1 wins
    assert main(["pick", *args, "study=choose", f"min_accuracy={floor}"]) == 0
    said = capsys.readouterr().out
    best = next(t for t in front(study) if t.values[1] == points[0][1])
    assert f"trial {best.number} (MLflow run {best.user_attrs['mlflow_run_id']})" in said
    assert "test: accuracy" in said and "(95% bootstrap)" in said

    top = max(v[0] for v in points)
    assert top < 1
    assert main(["pick", *args, "study=choose", f"min_accuracy={(top + 1) / 2}"]) == 1
    out = capsys.readouterr().out
    assert f"no Pareto point of study 'choose' meets validation accuracy >= {(top + 1) / 2:.4f}" in out
    assert f"the most accurate reaches {top:.4f}" in out
    assert main(["pick", *args, "study=choose", "max_accuracy_loss=0"]) == 0  # the most accurate point qualifies

    assert main(["pick", *args, "study=choose"]) == 2
    assert "give a constraint" in capsys.readouterr().err


def test_a_pick_with_confidence_holds_for_the_lower_bound_and_is_recorded(shared_sweep, capsys):
    import numpy as np
    from mlflow import MlflowClient

    from sweep.models.metrics import resample_indices

    args = shared_sweep("sure")
    cfg = load_config(args)
    study = optuna.load_study(study_name="sure", storage=open_storage(cfg))
    client = MlflowClient(cfg.tracking.tracking_uri)

    def lower_bound(t) -> float:  # independent: numpy on the logged validation predictions, the same resamples
        with np.load(client.download_artifacts(t.user_attrs["mlflow_run_id"], "predictions.npz")) as z:
            y, p = z["val_true"].astype(int), z["val_pred"].astype(int)
        idx = resample_indices(y, 1000)
        return float(np.quantile((p[idx] == y[idx]).mean(axis=1), 0.05))

    best = front(study)
    bounds = {t.number: lower_bound(t) for t in best}
    floor = max(bounds.values()) - 1e-9
    expected = max((t for t in best if bounds[t.number] >= floor), key=lambda t: t.values[1])
    capsys.readouterr()
    assert main(["pick", *args, "study=sure", f"min_accuracy={floor}", "confidence=0.95"]) == 0
    said = capsys.readouterr().out
    assert f"on 95% of 1,000 validation bootstrap resamples: trial {expected.number} (MLflow run" in said
    assert f"accuracy >= {bounds[expected.number]:.4f}" in said and "classes detected" in said
    run = client.get_run(expected.user_attrs["mlflow_run_id"]).data.tags
    assert run["decision"] == "picked" and run["decision.confidence"] == "0.95"
    assert run["decision.constraint"].startswith(f"validation accuracy >= {floor:.4f} on 95% of 1,000")
    assert run["decision.date"][:4].isdigit() and "recorded in MLflow" in said
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"]).data.tags
    assert parent["decision.trial"] == str(expected.number)
    assert parent["decision.run_id"] == expected.user_attrs["mlflow_run_id"]

    # a later pick of another point supersedes the first, on the record
    other = max(best, key=lambda t: t.values[1])
    if other.number != expected.number:
        assert main(["pick", *args, "study=sure", "min_accuracy=0"]) == 0
        assert client.get_run(expected.user_attrs["mlflow_run_id"]).data.tags["decision"] == "superseded"
        assert client.get_run(other.user_attrs["mlflow_run_id"]).data.tags["decision.confidence"].startswith("none")
    too_high = max(bounds.values()) + 0.001
    assert main(["pick", *args, "study=sure", f"min_accuracy={too_high}", "confidence=0.95"]) == 1
    assert main(["pick", *args, "study=sure", "min_accuracy=0.5", "confidence=1.2"]) == 2
    assert "confidence=1.2 is outside [0.5, 1)" in capsys.readouterr().err
