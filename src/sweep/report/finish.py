"""The end of a sweep (`make sweep`, through cli.sweep_command): the parent run's artifacts (the front as a
table with test figures, its plot, the trial counts) and the front printed with its link into the MLflow UI."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from sweep.report.confidence import front_noise
from sweep.report.links import link_or_reason
from sweep.report.plots import plot_front
from sweep.report.table import front_table
from sweep.search.pareto import baseline_points, complete_trials, converged, feasible, front, sync_pareto_tags
from sweep.tracking import Tracker


def finalize(study: optuna.Study, tracker: Tracker, parent: str, cfg: DictConfig) -> Path | None:
    """Parent-run artifacts: the Pareto CSV and plot (marker size: p_front), the tags synced to the final front,
    p_front as a metric of every scored trial's run."""
    from sweep.data.splits import load_splits

    sync_pareto_tags(study, tracker)
    counts = {
        "n_complete": len(complete_trials(study)),
        "n_failed": len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
        "n_pruned": len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))),
        "front_size": len(front(study)),
    }
    if not counts["front_size"]:  # nothing converged (or met the constraints): the counts, no front to draw
        if counts["n_complete"]:
            tracker.log_metrics(parent, counts)
        return None
    from sweep.models.baselines import majority

    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    maj = majority(splits)["val"]
    marks = {"majority class": (maj["accuracy"], maj["macro_f1"])}
    marks.update({name.replace("_", " "): tuple(t.values[:2]) for name, t in baseline_points(study).items()})
    noise = front_noise(study, tracker.client, int(cfg.sweep.get("front_boot", 1000)))
    p_front = {int(n): float(v) for n, v in noise.p_front.items()}
    for t in complete_trials(study):
        if t.number in p_front and t.user_attrs.get("mlflow_run_id"):
            tracker.log_metrics(t.user_attrs["mlflow_run_id"], {"p_front": p_front[t.number]})
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_front(study, Path(tmp) / "pareto.png", marks, p_front=p_front)
        tracker.client.log_artifact(parent, str(png))
        table = front_table(study, tracker.client)
        table["p_front"] = table["trial"].map(noise.p_front)
        tracker.log_table(parent, table, "pareto.csv")
    tracker.log_metrics(parent, counts)
    return png


def print_front(study: optuna.Study, cfg: DictConfig) -> None:
    """What `make sweep` prints at the end: the trial counts, the validation front, the link to it in MLflow."""
    best = front(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    done = complete_trials(study)
    unconverged = sum(not converged(t) for t in done)
    below = sum(not feasible(t) for t in done)
    floor = f", {below} below sweep.constraints (kept off the front)" if below else ""
    print(
        f"study {study.study_name}: {states.count(TrialState.COMPLETE)} complete, "
        f"{states.count(TrialState.FAIL)} failed, {unconverged} not converged (kept off the front){floor}"
        + (f", {states.count(TrialState.PRUNED)} pruned (sweep.pruner)" if TrialState.PRUNED in states else "")
        + "; "
        f"Pareto front ({len(best)} trials, validation):"
    )
    for t in best:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        cov = f"  classes detected {t.values[2]:.0f}" if len(t.values) > 2 else ""
        print(f"  trial {t.number:4d}  accuracy {t.values[0]:.4f}  macro-F1 {t.values[1]:.4f}{cov}  {params}")
    print(f"the front in MLflow (make ui, then open): {link_or_reason(cfg, study)}")
    print("Optuna Dashboard: make dashboard; the table: make export")
