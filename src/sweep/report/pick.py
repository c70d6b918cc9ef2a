"""`make pick`: the Pareto point with the best validation macro-F1 under an accuracy constraint, shown with its
test figures and MLflow run id; exit status 1 when no point meets the constraint."""

from __future__ import annotations

import math
import sys

import pandas as pd

from sweep.config import ConfigError, load_config, split_args
from sweep.report.table import front_table
from sweep.search.pareto import front, reference_trial
from sweep.search.storage import load_study, running_warning
from sweep.tracking import open_client


def _constraint(args: dict[str, str], key: str) -> float | None:
    """A pick constraint as a number, or a one-line error naming the value and the fix."""
    if key not in args:
        return None
    text = args[key]
    example = {"min_accuracy": "min_accuracy=0.8", "max_accuracy_loss": "max_accuracy_loss=0.01"}[key]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{key}={text!r} is not a number: give a validation accuracy as a fraction, e.g. {example}")
    if key == "min_accuracy" and not 0 <= value <= 1:
        raise ConfigError(
            f"min_accuracy={text} is outside [0, 1], so no point can meet it: give a validation "
            f"accuracy as a fraction, e.g. {example} for 80%"
        )
    if key == "max_accuracy_loss" and value < 0:
        raise ConfigError(
            f"max_accuracy_loss={text} is negative: give the validation accuracy you accept to lose "
            f"against the reference as a fraction >= 0, e.g. {example} for one point"
        )
    return value


def pick_command(argv: list[str]) -> int:
    """The Pareto point with the best validation macro-F1 that meets an accuracy constraint (on validation:
    the choice never peeks at the test split), shown with its test figures and MLflow run id. Returns 1 when
    no point meets the constraint (the sentence says so), 0 otherwise."""
    args, overrides = split_args(argv, ("study", "min_accuracy", "max_accuracy_loss"))
    if "min_accuracy" not in args and "max_accuracy_loss" not in args:
        raise ConfigError(
            "give a constraint: min_accuracy=<x> and/or max_accuracy_loss=<x> (against the "
            "unweighted reference, validation accuracy)"
        )
    min_accuracy, max_loss = _constraint(args, "min_accuracy"), _constraint(args, "max_accuracy_loss")
    cfg = load_config(overrides)
    study = load_study(cfg, args.get("study"))
    warning = running_warning(study)
    if warning:
        print(warning, file=sys.stderr)
    table = front_table(study, open_client(str(cfg.tracking.tracking_uri)))
    if table.empty:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet: run `make sweep` first")
    accuracy = table["trial"].map({t.number: t.values[0] for t in front(study)})  # unrounded, unlike the table
    ok = pd.Series(True, index=table.index)
    rules = []
    if min_accuracy is not None:
        ok &= accuracy >= min_accuracy
        rules.append(f"validation accuracy >= {min_accuracy:.4f}")
    if max_loss is not None:
        ref = reference_trial(study)
        if ref is None:
            raise ConfigError(
                "max_accuracy_loss needs the unweighted reference trial, which this study lacks: use min_accuracy"
            )
        floor = ref.values[0] - max_loss
        ok &= accuracy >= floor
        rules.append(f"validation accuracy >= {floor:.4f} (reference {ref.values[0]:.4f} - {max_loss})")
    rule = " and ".join(rules)
    if not ok.any():
        best = accuracy.max()
        print(f"no Pareto point of study {study.study_name!r} meets {rule}: the most accurate reaches {best:.4f}")
        return 1
    macro_f1 = table["trial"].map({t.number: t.values[1] for t in front(study)})
    row = table.loc[macro_f1[ok].idxmax()]
    print(f"pick for {rule}: trial {row.trial} (MLflow run {row.mlflow_run_id})")
    print(f"  alpha {row.alpha}, loss {row.loss}, tau {row.tau}, post-hoc tau {row.posthoc_tau}, model {row.model}")
    print(f"  validation: accuracy {row.val_accuracy:.4f}, macro-F1 {row.val_macro_f1:.4f}")
    if "test_accuracy_ci_low" in row and pd.notna(row.test_accuracy_ci_low):
        print(
            f"  test: accuracy {row.test_accuracy:.4f} [{row.test_accuracy_ci_low:.4f}, "
            f"{row.test_accuracy_ci_high:.4f}], macro-F1 {row.test_macro_f1:.4f} [{row.test_macro_f1_ci_low:.4f}, "
            f"{row.test_macro_f1_ci_high:.4f}] (95% bootstrap)"
        )
    elif pd.notna(row.test_accuracy):
        print(f"  test: accuracy {row.test_accuracy:.4f}, macro-F1 {row.test_macro_f1:.4f}")
    else:
        print("  test: no logged predictions for this trial's MLflow run")
    if isinstance(row.get("beaten_by_baseline"), str) and row.beaten_by_baseline:
        print(f"  on test, beaten by baseline: {row.beaten_by_baseline}")
    return 0
