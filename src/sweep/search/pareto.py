"""The Pareto front of (validation accuracy, validation macro-F1) from Optuna: the non-dominated set, the
baseline and reference trials, and the `pareto` tags on the MLflow child runs (its pictures: report/plots.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep.config import dotted

if TYPE_CHECKING:
    from sweep.tracking import Tracker

REFERENCE_NAME = "unweighted"


def converged(t: FrozenTrial) -> bool:
    """False only for a trial whose fit stopped before its convergence criterion (not a result)."""
    return t.user_attrs.get("fit_converged", True) is not False


def front(study: optuna.Study, include_unconverged: bool = False) -> list[FrozenTrial]:
    """Non-dominated complete trials among the converged ones (Optuna's own Pareto helper), sorted by
    validation accuracy. A trial whose fit hit its iteration cap is not a result: left out by default."""
    from optuna.study._multi_objective import _get_pareto_front_trials_by_trials

    trials = [t for t in complete_trials(study) if include_unconverged or converged(t)]
    best = _get_pareto_front_trials_by_trials(trials, study.directions)
    return sorted(best, key=lambda t: (t.values[0], t.values[1]))


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
