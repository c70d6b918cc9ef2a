"""Local worker processes on one study (`make sweep WORKERS=n`): forked from one server that imported the
harness once, the cores split between them, a GPU each (round-robin), URLs with passwords passed through the
environment, one progress bar for all of them."""

from __future__ import annotations

import multiprocessing
import os
import runpy
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweep.search.loop import Stopped
from sweep.search.pareto import front

MANAGED_ENV = "SWEEP_MANAGED_WORKER"  # set for workers started by run_workers: the launcher finalizes
FAULT_ENV = "SWEEP_FAULT_FILE"  # where a managed worker writes the line of the fault that stopped it (cli)
SECRET_ENV = {"sweep.storage": "SWEEP_STORAGE", "tracking.tracking_uri": "MLFLOW_TRACKING_URI"}
# what a worker imports before its first trial (~5 s of CPU each: torch, mlflow, scikit-learn, optuna, hydra):
# imported once by multiprocessing's fork server, which forks every worker from there; `sweep` first, so that
# sweep/determinism.py sets torch's and numpy's CPU path before they load. Nothing in them starts a thread or CUDA.
PRELOAD = [
    "sweep", "sweep.cli", "sweep.config", "sweep.allocator", "sweep.tracking", "sweep.data.splits",
    "sweep.data.features", "sweep.data.encoders", "sweep.models.train", "sweep.search.study", "sweep.search.loop",
    "sweep.search.objective", "sweep.report.finish", "hydra._internal.hydra", "mlflow",
    "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.db.utils", "sklearn.feature_extraction.text",
]  # fmt: skip


def managed() -> bool:
    """This process is a worker that a launcher started (run_workers, or the Ray launcher's worker_task)."""
    return os.environ.get(MANAGED_ENV) == "1"


def split_secrets(overrides: list[str]) -> tuple[list[str], dict[str, str]]:
    """The overrides for a worker's command line, and the URLs (with their passwords) for its environment:
    `ps` shows a command line, not an environment."""
    args, env = [], {}
    for o in overrides:
        key, _, value = o.lstrip("+").partition("=")
        if key in SECRET_ENV:
            env[SECRET_ENV[key]] = value
        else:
            args.append(o)
    return args, env


def visible_gpus(gpus: list[str] | None, environ=os.environ) -> list[str]:
    """The GPU ids workers share: sweep.gpus, else CUDA_VISIBLE_DEVICES, else every GPU torch sees (none: [])."""
    if gpus is not None:
        return list(gpus)
    if environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_envs(n: int, gpus: list[str], environ=os.environ) -> list[dict[str, str]]:
    """Each worker's environment: its share of the cores (oversubscribed torch threads spin and slow everyone
    down) and, with G GPUs, its own GPU: worker i gets GPU i mod G (N > G: round-robin, workers share)."""
    threads = str(max(1, (os.cpu_count() or 1) // n))
    base = {**environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, MANAGED_ENV: "1"}
    return [{**base, "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} if gpus else dict(base) for i in range(n)]


def run_workers(
    n: int, overrides: list[str], study: optuna.Study, total: int, gpus: list[str] | None = None, show: bool = True
) -> int:
    """Start n local worker processes on the same study; one progress bar for all of them (show: sweep.progress)."""
    from tqdm import tqdm

    envs = worker_envs(n, visible_gpus(gpus))
    faults = Path(tempfile.mkdtemp(prefix="sweep-workers-")) / "faults"
    args, env = split_secrets(overrides)
    env[FAULT_ENV] = str(faults)
    procs = _start([[*args, "sweep.workers=1", f"sweep.worker_index={i}", "sweep.progress=false"] for i in range(n)],
                   [{**e, **env} for e in envs])  # fmt: skip
    start_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))
    try:
        with tqdm(total=total, desc=f"{n} workers", unit="trial", disable=not show) as bar:
            while [p.exitcode for p in procs].count(None):  # poll every one: a dead worker is reaped at once
                time.sleep(1.0)
                done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))
                bar.n = min(total, done - start_done)
                bar.set_postfix(front=len(front(study)) if bar.n else 0)
                bar.refresh()
    except KeyboardInterrupt:
        for p in procs:
            if p.exitcode is None:
                os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join()
        raise
    codes = [p.exitcode for p in procs]
    lines = faults.read_text().splitlines() if faults.exists() else []
    shutil.rmtree(faults.parent, ignore_errors=True)
    if lines:  # the workers' own line, once, from the launcher: the service or the path, and the fix
        raise Stopped(f"{lines[0]} ({codes.count(1)} of {n} workers stopped)")
    return next((c for c in codes if c < 0), max(codes))  # a worker killed by a signal first


def _start(argvs: list[list[str]], envs: list[dict[str, str]]) -> list[multiprocessing.process.BaseProcess]:
    """One worker per argv, each `python -m sweep sweep <argv>` in the environment given: forked from the fork
    server (started here with the workers' thread counts, which torch and OpenMP read when they load)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    threads = {k: envs[0][k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    saved = {k: os.environ.get(k) for k in threads}
    os.environ.update(threads)
    try:
        pairs = enumerate(zip(argvs, envs, strict=True))
        procs = [ctx.Process(target=_worker, args=(a, e), name=f"sweep-worker-{i}") for i, (a, e) in pairs]
        for p in procs:
            p.start()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return procs


def _worker(argv: list[str], env: dict[str, str]) -> None:
    """A worker's process: its environment (GPU, threads, URLs) in place before any CUDA or thread pool starts."""
    os.environ.clear()
    os.environ.update(env)
    import torch

    torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    sys.argv = ["sweep", "sweep", *argv]  # then exactly `python -m sweep sweep <argv>` (the cli layer, by name)
    runpy.run_module("sweep", run_name="__main__", alter_sys=True)
