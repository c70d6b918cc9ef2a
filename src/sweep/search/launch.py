"""Which launcher runs a study's workers: local processes on this host (workers.py) or Ray tasks on a cluster
(sweep.launcher=ray: ray_workers.py), and the one line a worker's fault or death ends the sweep with."""

from __future__ import annotations

import optuna

from sweep.config import ConfigError, gpu_list
from sweep.search.loop import Stopped
from sweep.search.workers import run_workers

LAUNCHERS = ("local", "ray")


def check_launcher(cfg) -> None:
    """sweep.launcher and, for ray, its settings and Ray itself: one line before anything is opened."""
    launcher = str(cfg.sweep.get("launcher", "local"))
    if launcher not in LAUNCHERS:
        raise ConfigError(f"sweep.launcher={launcher!r} is unknown: use local (this host) or ray (a Ray cluster)")
    if launcher == "ray":
        from sweep.search.ray_workers import import_ray, ray_settings

        import_ray()
        ray_settings(cfg)


def launch(cfg, overrides: list[str], study: optuna.Study, done: int, tracker, reconcile) -> int:
    """Run the study's trials in sweep.workers local processes, or in Ray tasks (sweep.launcher=ray, which ends
    what a lost node left with `reconcile`). A worker stopped on a fault or killed: Stopped, resumable.
    Returns the workers' highest exit status otherwise (0: all done)."""
    workers, total = int(cfg.sweep.workers), cfg.sweep.get("total_trials")
    if str(cfg.sweep.get("launcher", "local")) == "ray":
        from sweep.search.ray_workers import run_ray_workers

        rc = run_ray_workers(cfg, overrides, study, done, tracker, reconcile)
    else:  # each worker stops once the study holds `total` complete trials
        todo = max(0, int(total) - done) if total else int(cfg.sweep.n_trials) * workers
        rc = run_workers(workers, overrides, study, todo, gpu_list(cfg.sweep.get("gpus")), bool(cfg.sweep.progress))
    if rc == 1 or rc < 0:  # a worker stopped on a fault (its line is above) or was killed: resumable
        why = f"was killed (signal {-rc})" if rc < 0 else "stopped (see its error above)"
        raise Stopped(f"{workers} workers: a worker {why}: run the same command again to resume")
    return rc
