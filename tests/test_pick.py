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


def test_pick_picks_or_says_plainly_that_nothing_qualifies_with_exit_code_1(synthetic, capsys):
    args = [*synthetic, "sweep.n_trials=6", "sweep.study_name=choose"]
    assert main(["sweep", *args]) == 0
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
