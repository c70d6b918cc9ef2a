"""The Pareto front of the study's objectives (validation accuracy, macro-F1, optionally coverage) from Optuna:
the non-dominated set (feasible trials only under sweep.constraints), how often each trial is non-dominated
across bootstrap resamples (p_front), the baseline and reference trials, and the `pareto` tags on the MLflow
child runs (its pictures: report/plots.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep.config import dotted

if TYPE_CHECKING:
    from sweep.tracking import Tracker

REFERENCE_NAME = "unweighted"


def converged(t: FrozenTrial) -> bool:
    """False only for a trial whose fit stopped before its convergence criterion (not a result)."""
    return t.user_attrs.get("fit_converged", True) is not False


def feasible(t: FrozenTrial) -> bool:
    """Every constraint the trial recorded (trial.set_constraint, sweep.constraints) is met: value <= 0."""
    return all(v <= 0 for v in t.constraints.values())


def candidates(study: optuna.Study, include_unconverged: bool = False) -> list[FrozenTrial]:
    """The complete trials the front is chosen from: converged (unless asked) and feasible."""
    return [t for t in complete_trials(study) if (include_unconverged or converged(t)) and feasible(t)]


def no_front_reason(study: optuna.Study) -> str:
    """Why a study has no front yet, and the fix, in one line (export and pick say it)."""
    done = complete_trials(study)
    name = study.study_name
    if not done:
        return f"study {name!r} has no complete trial yet: run `make sweep` first"
    if not any(converged(t) for t in done):
        return (
            f"study {name!r} has {len(done)} complete trials but no converged fit (a fit stopped by its cap is "
            "not a result): raise model.head.max_iter or model.head.l2 and sweep again"
        )
    return f"study {name!r}: no converged trial meets sweep.constraints: relax them or sweep further"


def front(study: optuna.Study, include_unconverged: bool = False) -> list[FrozenTrial]:
    """Non-dominated trials among the candidates (Optuna's own Pareto helper), sorted by validation accuracy.
    A trial whose fit hit its iteration cap is not a result (left out by default); nor is one that breaks a
    constraint of the sweep."""
    from optuna.study._multi_objective import _get_pareto_front_trials_by_trials

    best = _get_pareto_front_trials_by_trials(candidates(study, include_unconverged), study.directions)
    return sorted(best, key=lambda t: tuple(t.values))


def p_front(scores: np.ndarray, block: int = 64) -> np.ndarray:
    """scores (B, T, M): B resamples, T trials, M objectives, higher is better. The share of the resamples on
    which each trial is non-dominated (no other trial >= on every objective and > on one). Scores are
    rounded to 12 decimals first, so that two trials equal up to float noise tie rather than dominate."""
    s = np.round(np.asarray(scores, dtype=float), 12)
    on = np.zeros(s.shape[1])
    for b in range(0, s.shape[0], block):
        x = s[b : b + block]
        other, this = x[:, :, None, :], x[:, None, :, :]  # [b, j, i, m]: does trial j dominate trial i?
        dominated = ((other >= this).all(-1) & (other > this).any(-1)).any(1)
        on += (~dominated).sum(0)
    return on / s.shape[0]


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def baseline_points(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The enqueued baseline trials of the study (matched on their fixed params), for plot and export."""
    out = {}
    trials = complete_trials(study)
    for name, fixed in study.user_attrs.get("baselines", {}).items():
        want = dotted(fixed)
        for t in trials:
            keys = [k for k in want if k in t.params]
            if keys and all(_same(t.params[k], want[k]) for k in keys):
                out[name] = t
                break
    return out


def _same(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return str(a) == str(b)


def reference_trial(study: optuna.Study) -> FrozenTrial | None:
    """The baseline trial every change is measured against (sweep.reference, unweighted by default)."""
    return baseline_points(study).get(study.user_attrs.get("reference", REFERENCE_NAME))


def sync_pareto_tags(study: optuna.Study, tracker: Tracker, known: dict[int, bool] | None = None) -> dict[int, bool]:
    """Tag `pareto=true` on exactly the current front's child runs (`false` on the other complete ones)."""
    on_front = {t.number for t in front(study)}
    state = {} if known is None else known
    for t in complete_trials(study):
        flag = t.number in on_front
        run_id = t.user_attrs.get("mlflow_run_id")
        if run_id and state.get(t.number) is not flag:
            tracker.set_tags(run_id, {"pareto": "true" if flag else "false"})
            state[t.number] = flag
    return state
