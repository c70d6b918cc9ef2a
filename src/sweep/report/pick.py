"""`make pick`: the Pareto point with the best validation macro-F1 under an accuracy constraint (on the point
estimate, or with confidence= on the lower bound of the validation bootstrap), shown with its test figures and
MLflow run id and recorded as a decision (tags on its run and the parent run); exit status 1 when none qualifies."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from sweep.config import ConfigError, load_config, split_args
from sweep.report.confidence import validation_samples
from sweep.report.table import front_table
from sweep.search.pareto import front, no_front_reason, reference_trial
from sweep.search.storage import load_study, running_warning
from sweep.tracking import open_client

EXAMPLES = {
    "min_accuracy": "min_accuracy=0.8",
    "max_accuracy_loss": "max_accuracy_loss=0.01",
    "confidence": "confidence=0.95",
}


def _constraint(args: dict[str, str], key: str) -> float | None:
    """A pick constraint as a number, or a one-line error naming the value and the fix."""
    if key not in args:
        return None
    text = args[key]
    example = EXAMPLES[key]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        what = "a confidence level as a fraction" if key == "confidence" else "a validation accuracy as a fraction"
        raise ConfigError(f"{key}={text!r} is not a number: give {what}, e.g. {example}")
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
    if key == "confidence" and not 0.5 <= value < 1:
        raise ConfigError(
            f"confidence={text} is outside [0.5, 1): give the share of validation resamples on which the "
            f"constraint must hold, e.g. {example}"
        )
    return value


def lower_bounds(samples: dict, ref: int | None, confidence: float) -> dict[int, dict[str, float]]:
    """Per trial, the one-sided lower bounds at `confidence` of its validation accuracy and of its paired
    accuracy change against the reference (the constraint holds on `confidence` of the resamples)."""
    q = 1 - confidence
    out = {}
    for n, s in samples.items():
        out[n] = {"accuracy": float(np.quantile(s["accuracy"], q))}
        if ref is not None and ref in samples:
            out[n]["change"] = float(np.quantile(s["accuracy"] - samples[ref]["accuracy"], q))
    return out


def record_decision(client, study, trial, rule: str, confidence: float | None) -> dict[str, str]:
    """The pick as a decision in MLflow: decision=picked and what it was picked under, on the trial's run, and
    the same with the trial and run on the study's parent run; an earlier pick's run becomes superseded."""
    run_id = trial.user_attrs.get("mlflow_run_id", "")
    tags = {
        "decision.constraint": rule,
        "decision.confidence": f"{confidence:g}" if confidence is not None else "none (point estimates)",
        "decision.date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent:
        earlier = client.get_run(parent).data.tags.get("decision.run_id")
        if earlier and earlier != run_id:
            client.set_tag(earlier, "decision", "superseded")
        for k, v in {**tags, "decision.trial": str(trial.number), "decision.run_id": run_id}.items():
            client.set_tag(parent, k, v)
    if run_id:
        for k, v in {"decision": "picked", **tags}.items():
            client.set_tag(run_id, k, v)
    return {"decision": "picked", **tags}


def pick_command(argv: list[str]) -> int:
    """The Pareto point with the best validation macro-F1 that meets an accuracy constraint (on validation:
    the choice never peeks at the test split), shown with its test figures and MLflow run id. With
    confidence=, the constraint must hold for the one-sided lower bound of the plain paired bootstrap of the
    validation split (sweep.front_boot resamples). The pick is recorded (record_decision). Returns 1 when no
    point meets the constraint (the sentence says so), 0 otherwise."""
    args, overrides = split_args(argv, ("study", "min_accuracy", "max_accuracy_loss", "confidence"))
    if "min_accuracy" not in args and "max_accuracy_loss" not in args:
        raise ConfigError(
            "give a constraint: min_accuracy=<x> and/or max_accuracy_loss=<x> (against the "
            "unweighted reference, validation accuracy)"
        )
    min_accuracy, max_loss = _constraint(args, "min_accuracy"), _constraint(args, "max_accuracy_loss")
    confidence = _constraint(args, "confidence")
    cfg = load_config(overrides)
    study = load_study(cfg, args.get("study"))
    warning = running_warning(study)
    if warning:
        print(warning, file=sys.stderr)
    client = open_client(str(cfg.tracking.tracking_uri))
    table = front_table(study, client)
    if table.empty:
        raise ConfigError(no_front_reason(study))
    best, ref = front(study), reference_trial(study)
    if max_loss is not None and ref is None:
        raise ConfigError(
            "max_accuracy_loss needs the unweighted reference trial, which this study lacks: use min_accuracy"
        )
    accuracy = {t.number: t.values[0] for t in best}  # unrounded, unlike the table
    bounds, how = {}, ""
    if confidence is not None:
        n_boot = int(cfg.sweep.get("front_boot", 1000))
        samples, reason = validation_samples(study, client, [*best, *([ref] if ref else [])], n_boot)
        if reason:
            raise ConfigError(f"confidence= needs the validation bootstrap, which is not available: {reason}")
        bounds = lower_bounds(samples, ref.number if ref else None, confidence)
        how = f" on {confidence:.0%} of {n_boot:,} validation bootstrap resamples"
    ok = pd.Series(True, index=table.index)
    low = table["trial"].map(lambda n: bounds.get(n, {}).get("accuracy", accuracy[n]))
    rules = []
    if min_accuracy is not None:
        ok &= low >= min_accuracy
        rules.append(f"validation accuracy >= {min_accuracy:.4f}")
    if max_loss is not None:
        floor = ref.values[0] - max_loss
        if confidence is None:
            ok &= table["trial"].map(accuracy) >= floor
        else:  # paired: the change against the reference, resample by resample
            ok &= table["trial"].map(lambda n: bounds[n].get("change", -np.inf)) >= -max_loss
        rules.append(f"validation accuracy >= {floor:.4f} (reference {ref.values[0]:.4f} - {max_loss})")
    rule = " and ".join(rules) + how
    if not ok.any():
        top = table.loc[low.idxmax()]
        said = (
            f"the highest lower bound is {low.max():.4f} (trial {top.trial})"
            if confidence is not None
            else f"the most accurate reaches {low.max():.4f} (trial {top.trial})"
        )
        print(f"no Pareto point of study {study.study_name!r} meets {rule}: {said}")
        return 1
    macro_f1 = table["trial"].map({t.number: t.values[1] for t in best})
    row = table.loc[macro_f1[ok].idxmax()]
    print(f"pick for {rule}: trial {row.trial} (MLflow run {row.mlflow_run_id})")
    print(f"  alpha {row.alpha}, loss {row.loss}, tau {row.tau}, post-hoc tau {row.posthoc_tau}, model {row.model}")
    print(f"  validation: accuracy {row.val_accuracy:.4f}, macro-F1 {row.val_macro_f1:.4f}")
    if confidence is not None:
        b = bounds[row.trial]
        change = f", change vs the reference >= {b['change']:+.4f}" if "change" in b else ""
        print(f"  validation, one-sided {confidence:.0%} lower bounds: accuracy >= {b['accuracy']:.4f}{change}")
    if "test_accuracy_ci_low" in row and pd.notna(row.test_accuracy_ci_low):
        print(
            f"  test: accuracy {row.test_accuracy:.4f} [{row.test_accuracy_ci_low:.4f}, "
            f"{row.test_accuracy_ci_high:.4f}], macro-F1 {row.test_macro_f1:.4f} [{row.test_macro_f1_ci_low:.4f}, "
            f"{row.test_macro_f1_ci_high:.4f}] (95% bootstrap), classes detected {row.test_coverage:.0f} of "
            f"{row.n_classes:.0f}"
        )
    elif pd.notna(row.test_accuracy):
        print(f"  test: accuracy {row.test_accuracy:.4f}, macro-F1 {row.test_macro_f1:.4f}")
    else:
        print("  test: no logged predictions for this trial's MLflow run")
    if isinstance(row.get("beaten_by_baseline"), str) and row.beaten_by_baseline:
        print(f"  on test, beaten by baseline: {row.beaten_by_baseline}")
    picked = next(t for t in best if t.number == row.trial)
    tags = record_decision(client, study, picked, rule, confidence)
    print(
        "  recorded in MLflow (the trial's run; the parent run names it): "
        + ", ".join(f"{k}={v}" for k, v in tags.items())
    )
    return 0
