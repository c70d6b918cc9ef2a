"""The end of a sweep (`make sweep`, through cli.sweep_command): the parent run's artifacts (the front as a
table with test figures, its plot, the trial counts) and the front printed with its link into the MLflow UI."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from sweep.report.links import link_or_reason
from sweep.report.plots import plot_front
from sweep.report.table import front_table
from sweep.search.pareto import baseline_points, converged, front, sync_pareto_tags
from sweep.tracking import Tracker


def finalize(study: optuna.Study, tracker: Tracker, parent: str, cfg: DictConfig) -> Path | None:
    """Parent-run artifacts: the Pareto CSV and plot, the tags synced to the final front."""
    from sweep.data.splits import load_splits

    sync_pareto_tags(study, tracker)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    from sweep.models.baselines import majority

    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    maj = majority(splits)["val"]
    marks = {"majority class": (maj["accuracy"], maj["macro_f1"])}
    marks.update({name.replace("_", " "): tuple(t.values) for name, t in baseline_points(study).items()})
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_front(study, Path(tmp) / "pareto.png", marks)
        tracker.client.log_artifact(parent, str(png))
        table = front_table(study, tracker.client)
        tracker.log_table(parent, table, "pareto.csv")
    tracker.log_metrics(
        parent,
        {
            "n_complete": len(study.get_trials(states=(TrialState.COMPLETE,))),
            "n_failed": len(study.get_trials(states=(TrialState.FAIL,))),
            "front_size": len(front(study)),
        },
    )
    return png


def print_front(study: optuna.Study, cfg: DictConfig) -> None:
    """What `make sweep` prints at the end: the trial counts, the validation front, the link to it in MLflow."""
    best = front(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    unconverged = sum(not converged(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    print(
        f"study {study.study_name}: {states.count(TrialState.COMPLETE)} complete, "
        f"{states.count(TrialState.FAIL)} failed, {unconverged} not converged (kept off the front); "
        f"Pareto front ({len(best)} trials, validation):"
    )
    for t in best:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        print(f"  trial {t.number:4d}  accuracy {t.values[0]:.4f}  macro-F1 {t.values[1]:.4f}  {params}")
    print(f"the front in MLflow (make ui, then open): {link_or_reason(cfg, study)}")
    print("Optuna Dashboard: make dashboard; the table: make export")
