"""Local worker processes on one study (`make sweep WORKERS=n`): the cores split between them, URLs with
passwords passed through the environment, one progress bar for all of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from sweep.search.pareto import front

MANAGED_ENV = "SWEEP_MANAGED_WORKER"  # set for workers started by run_workers: the launcher finalizes
SECRET_ENV = {"sweep.storage": "SWEEP_STORAGE", "tracking.tracking_uri": "MLFLOW_TRACKING_URI"}


def run_workers(n: int, overrides: list[str], study: optuna.Study, total: int) -> int:
    """Start n local worker processes on the same study; show one progress bar for all of them."""
    from tqdm import tqdm

    # Split the cores between workers: oversubscribed torch threads spin and slow everyone down.
    threads = str(max(1, (os.cpu_count() or 1) // n))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, MANAGED_ENV: "1"}
    # URLs (with their passwords) go through the environment, not the command line that `ps` shows
    args = []
    for o in overrides:
        key, _, value = o.lstrip("+").partition("=")
        if key in SECRET_ENV:
            env[SECRET_ENV[key]] = value
        else:
            args.append(o)
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
            env=env,
        )
        for i in range(n)
    ]
    start_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))
    try:
        with tqdm(total=total, desc=f"{n} workers", unit="trial") as bar:
            while any(p.poll() is None for p in procs):
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
    return max(p.returncode for p in procs)
