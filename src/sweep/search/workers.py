"""Local worker processes on one study (`make sweep WORKERS=n`): the cores split between them, a GPU each
(round-robin), URLs with passwords passed through the environment, one progress bar for all of them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
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


def run_workers(n: int, overrides: list[str], study: optuna.Study, total: int, gpus: list[str] | None = None) -> int:
    """Start n local worker processes on the same study; show one progress bar for all of them."""
    from tqdm import tqdm

    envs = worker_envs(n, visible_gpus(gpus))
    faults = Path(tempfile.mkdtemp(prefix="sweep-workers-")) / "faults"
    args, env = split_secrets(overrides)
    env[FAULT_ENV] = str(faults)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sweep",
                "sweep",
                *args,
                "sweep.workers=1",
                f"sweep.worker_index={i}",
                "sweep.progress=false",
            ],
            env={**envs[i], **env},
        )
        for i in range(n)
    ]
    start_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))
    try:
        with tqdm(total=total, desc=f"{n} workers", unit="trial") as bar:
            while [p.poll() for p in procs].count(None):  # poll every one: a dead worker is reaped at once
                time.sleep(1.0)
                done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))
                bar.n = min(total, done - start_done)
                bar.set_postfix(front=len(front(study)) if bar.n else 0)
                bar.refresh()
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    codes = [p.returncode for p in procs]
    lines = faults.read_text().splitlines() if faults.exists() else []
    shutil.rmtree(faults.parent, ignore_errors=True)
    if lines:  # the workers' own line, once, from the launcher: the service or the path, and the fix
        raise Stopped(f"{lines[0]} ({codes.count(1)} of {n} workers stopped)")
    return next((c for c in codes if c < 0), max(codes))  # a worker killed by a signal first
