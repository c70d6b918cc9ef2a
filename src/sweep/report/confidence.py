"""How sure the front is, on validation: every candidate trial re-scored on the same paired bootstrap resamples
of the validation split (from its logged predictions), p_front per trial, the trials tied with the front."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import optuna
import pandas as pd

from sweep.models.metrics import bootstrap, evaluate
from sweep.report.columns import TIED
from sweep.report.table import load_predictions
from sweep.search.objective import OBJECTIVES
from sweep.search.pareto import candidates, front, p_front

log = logging.getLogger(__name__)


@dataclass
class FrontNoise:
    """p_front per trial number (NaN: not scored), the resamples' scores behind it, and why it is missing."""

    p_front: pd.Series
    samples: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # trial -> metric -> (n_boot,)
    n_boot: int = 0
    reason: str = ""  # empty when p_front was computed


def objective_metrics(study: optuna.Study) -> list[str]:
    """The study's objectives as bootstrap metric names: accuracy, macro_f1[, coverage]."""
    return [m.removeprefix("val_") for m in (study.metric_names or OBJECTIVES)]


def validation_samples(study: optuna.Study, client, trials: list, n_boot: int, seed: int = 0) -> tuple[dict, str]:
    """Each trial's objectives on the same n_boot plain bootstrap resamples of the validation split (from the
    validation predictions its MLflow run logged). Returns trial number -> metric -> samples, and a reason
    when none can be computed (no logged predictions; objectives that are not this split's, e.g. cv_folds)."""
    preds = {
        t.number: p for t in trials if (p := load_predictions(client, t.user_attrs.get("mlflow_run_id", ""), "val"))
    }
    if not preds:
        return {}, "no trial logged its validation predictions"
    first = next(iter(preds.values()))
    for n in [n for n, p in preds.items() if not np.array_equal(p["y"], first["y"])]:
        log.warning("trial %d was scored on another validation split: left out of p_front", n)
        del preds[n]
    metrics, by_number = objective_metrics(study), {t.number: t for t in trials}
    y, names = first["y"], first["names"]
    for n, p in preds.items():
        scores = evaluate(y, p["pred"], names)[0]
        if any(abs(scores[m] - v) > 1e-6 for m, v in zip(metrics, by_number[n].values, strict=True)):
            return {}, (
                f"trial {n}'s objectives are not the scores of its validation predictions (cross-validation "
                "folds?): p_front needs the split the objectives were measured on"
            )
    return bootstrap(y, {n: p["pred"] for n, p in preds.items()}, len(names), n_boot=n_boot, seed=seed), ""


def front_noise(study: optuna.Study, client, n_boot: int = 1000, seed: int = 0) -> FrontNoise:
    """p_front of every candidate trial (complete, converged, feasible): the share of n_boot paired bootstrap
    resamples of the validation split on which it is non-dominated on the study's objectives."""
    trials = candidates(study)
    samples, reason = validation_samples(study, client, trials, n_boot, seed)
    if reason:
        return FrontNoise(pd.Series(dtype=float), reason=reason)
    numbers, metrics = list(samples), objective_metrics(study)
    scores = np.stack([np.stack([samples[n][m] for m in metrics], axis=-1) for n in numbers], axis=1)
    return FrontNoise(pd.Series(p_front(scores), index=numbers, name="p_front"), samples, n_boot)


def tied_trials(study: optuna.Study, noise: FrontNoise, threshold: float) -> pd.DataFrame:
    """The trials off the front that are statistically tied with it: p_front >= threshold, highest first."""
    on_front = {t.number for t in front(study)}
    trials = {t.number: t for t in candidates(study)}
    rows = []
    for n, p in noise.p_front.items():
        if n in on_front or not p >= threshold:
            continue
        t, c = trials[n], trials[n].user_attrs.get("config", {})
        rows.append(
            {
                "trial": n,
                "p_front": p,
                "alpha": c.get("alpha"),
                "posthoc_tau": c.get("posthoc_tau"),
                "loss": c.get("loss"),
                **{f"val_{m}": v for m, v in zip(objective_metrics(study), t.values, strict=True)},
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""),
            }
        )
    table = pd.DataFrame(rows, columns=list(dict.fromkeys([*TIED, *(k for r in rows for k in r)])))
    return table.sort_values(["p_front", "trial"], ascending=[False, True], kind="stable").reset_index(drop=True)


def tied_sentence(study: optuna.Study, noise: FrontNoise, tied: pd.DataFrame, threshold: float) -> str:
    """How many trials are tied with the front, in one sentence (or why p_front is missing)."""
    if noise.reason:
        return f"p_front not computed: {noise.reason}."
    on = noise.p_front.reindex([t.number for t in front(study)])
    rule = (
        f"non-dominated on at least {threshold:.0%} of {noise.n_boot:,} paired bootstrap resamples of the "
        "validation split"
    )
    if len(on) == 1:
        stay = f"the front point stays on the front in {on.iloc[0]:.0%} of the resamples"
    else:
        stay = f"the {len(on)} front points stay on the front in {on.min():.0%} to {on.max():.0%} of the resamples"
    if tied.empty:
        return f"No trial off the front is statistically tied with it ({rule}); {stay}."
    many = len(tied) != 1
    names = ", ".join(str(int(t)) for t in tied["trial"][:12]) + (", ..." if len(tied) > 12 else "")
    return (
        f"{len(tied)} trial{'s' if many else ''} off the front {'are' if many else 'is'} statistically tied with "
        f"it ({rule}: trial{'s' if many else ''} {names}); {stay}."
    )
