"""Workers as Ray tasks (sweep.launcher=ray): each task starts one `sweep` worker process where Ray's scheduler
puts it (sweep.ray.gpus_per_worker, cpus_per_worker) and a lost node's worker is started again; Optuna's study
stays the source of truth. `import ray` happens here only; cluster.py checks what every node must share."""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweep.config import ConfigError
from sweep.search.cluster import check_room, check_shared, connect, fail_lost_trials, hosts, import_ray, ray_settings
from sweep.search.loop import Stopped, fatal
from sweep.search.pareto import front
from sweep.search.placement import NODE_ENV
from sweep.search.storage import storage_location
from sweep.search.workers import FAULT_ENV, MANAGED_ENV, split_secrets

log = logging.getLogger(__name__)
RESTARTS = 3  # a worker slot is started again this many times after its node (or its process) was lost
STOP_WAIT_S = 90.0  # Ctrl-C: how long a worker's trial in flight gets to be failed and its run KILLED
PARENT_ENV = "SWEEP_RAY_TASK_PID"  # the Ray task's pid: the worker stops when that process is gone

__all__ = ["import_ray", "ray_settings", "run_ray_workers"]


def worker_task(args: list[str], env: dict[str, str], index: int, settings: dict) -> dict:
    """The body of one Ray task: a `sweep` worker process with this node's id, its GPU(s) as Ray assigned them
    (none: CUDA_VISIBLE_DEVICES empty) and its share of the cores. Ctrl-C (ray.cancel) reaches it as SIGINT:
    it fails its trial, marks its run KILLED and exits 130. Returns its exit status, fault and error lines."""
    import ray

    if threading.current_thread() is threading.main_thread():  # ray.cancel's SIGINT, even where the raylet's
        signal.signal(signal.SIGINT, signal.default_int_handler)  # shell started it with SIGINT ignored
    node, host = ray.get_runtime_context().get_node_id(), socket.gethostname()
    threads = str(max(1, math.ceil(settings["num_cpus"])))
    faults = Path(tempfile.mkdtemp(prefix="sweep-ray-")) / "faults"
    child = {**os.environ, **env, NODE_ENV: node, MANAGED_ENV: "1", FAULT_ENV: str(faults)}
    child.update({PARENT_ENV: str(os.getpid()), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
    if not settings["num_gpus"]:  # Ray leaves a CPU task the node's every GPU: it was given none
        child["CUDA_VISIBLE_DEVICES"] = ""
    extra = [f"sweep.worker_index={index}"]
    if settings.get("cache_per_host"):  # hosts never write one cache directory together
        extra.append(f"paths.cache_dir={settings['cache_dir']}/hosts/{host}")
    cmd = [sys.executable, "-m", "sweep.search.ray_workers", "sweep", *args, *extra]
    proc = subprocess.Popen(cmd, env=child, stderr=subprocess.PIPE, text=True, errors="replace")
    errors: list[str] = []
    pump = threading.Thread(target=_pump, args=(proc.stderr, errors), daemon=True)
    pump.start()
    try:
        while proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:  # ray.cancel
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    pump.join(5)
    lines = faults.read_text().splitlines() if faults.exists() else []
    shutil.rmtree(faults.parent, ignore_errors=True)
    return {"rc": proc.returncode, "fault": lines[0] if lines else None, "error": errors[-1] if errors else None,
            "node": node, "host": host}  # fmt: skip


def _pump(stream, errors: list[str]) -> None:
    """The worker's stderr on to the task's (Ray shows it in the driver), keeping its `error:` lines."""
    for line in stream:
        sys.stderr.write(line)
        if line.startswith("error: "):
            errors.append(line.strip().removeprefix("error: "))


def run_ray_workers(cfg, overrides: list[str], study: optuna.Study, done: int, tracker, reconcile) -> int:
    """sweep.workers Ray tasks on one study until it holds sweep.total_trials complete trials (without it:
    sweep.n_trials per worker, as a total, so that a restarted worker does not run its share twice). A task
    lost with its node: that node's running trials are failed and the worker starts again (RESTARTS times,
    a new sampler seed). Returns the workers' highest exit status, as run_workers does."""
    ray = import_ray()
    settings = ray_settings(cfg)
    n = int(cfg.sweep.workers)
    target = int(cfg.sweep.total_trials or done + int(cfg.sweep.n_trials) * n)
    args, env = split_secrets(overrides)
    if cfg.sweep.get("storage"):  # what this process resolved, the same for every node
        env["SWEEP_STORAGE"] = storage_location(cfg)
    env["MLFLOW_TRACKING_URI"] = str(cfg.tracking.tracking_uri)
    args += ["sweep.launcher=local", "sweep.workers=1", "sweep.progress=false", f"paths.root={cfg.paths.root}"]
    args += [f"sweep.total_trials={target}"]
    started = connect(ray, settings["address"])
    try:
        remote = ray.remote(num_cpus=settings["num_cpus"], num_gpus=settings["num_gpus"], max_retries=0)
        task = remote(worker_task)
        check_room(ray, settings, started)
        others = hosts(ray) - {socket.gethostname()}
        if others:
            check_shared(ray, cfg, sorted(others), args, env)
            settings.update(cache_per_host=True, cache_dir=str(cfg.paths.cache_dir))
        each = f"{settings['num_cpus']:g} CPU, {settings['num_gpus']:g} GPU each"
        log.info("Ray: %d workers (%s) until the study holds %d complete trials", n, each, target)
        results, away = _run(ray, task, study, n, args, env, settings, target - done, bool(cfg.sweep.progress))
    except KeyboardInterrupt:
        _end_quietly(reconcile, study, tracker)
        raise
    finally:
        if started:
            ray.shutdown()
    faults = [r["fault"] for r in results if r["fault"]]
    if faults:  # the workers' own line, once: the service or the path, and the fix
        raise Stopped(f"{faults[0]} ({sum(r['rc'] == 1 for r in results)} of {n} workers stopped)")
    errors = [r["error"] for r in results if r["rc"] == 2 and r["error"]]
    if errors:  # a worker's bad input or unreachable storage: its one line (a local worker prints the same)
        raise ConfigError(errors[0])
    if away is not None:
        raise away
    reconcile(study, tracker)  # the runs of trials a lost node left RUNNING
    codes = [r["rc"] for r in results]
    return next((c for c in codes if c < 0), max(codes, default=0))


def _run(ray, task, study: optuna.Study, n: int, args, env, settings, todo: int, show: bool) -> tuple[list, object]:
    """Submit n tasks and wait for them, one progress bar; a lost task's slot is started again; Ctrl-C cancels
    them all and waits for their workers to stop. Returns the workers' results and the storage's fault, if the
    storage went away meanwhile (this process stops watching it, the workers' lines say more)."""
    from tqdm import tqdm

    pending: dict = {}

    def submit(slot: int, attempt: int) -> None:  # a restart draws with another sampler seed
        pending[task.remote(args, env, slot + n * attempt, settings)] = (slot, attempt)

    for slot in range(n):
        submit(slot, 0)
    results: list[dict] = []
    ended = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    start = len(study.get_trials(deepcopy=False, states=ended))
    checked, away = time.monotonic(), []

    def watch(bar=None) -> None:  # the storage away: the workers say so, in their line; stop watching it
        if away:
            return
        try:
            if bar is None:
                fail_lost_trials(ray, study)
            else:
                bar.n = min(todo, len(study.get_trials(deepcopy=False, states=ended)) - start)
                bar.set_postfix(front=len(front(study)) if bar.n else 0)
                bar.refresh()
        except Exception as exc:  # noqa: BLE001 - a fault is kept for after the workers; anything else raised
            if fatal(exc) is None:
                raise
            away.append(fatal(exc))
            log.warning("the study's storage is away (%s): waiting for the workers", str(exc).splitlines()[0][:200])

    try:
        with tqdm(total=todo, desc=f"{n} Ray workers", unit="trial", disable=not show) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    slot, attempt = pending.pop(ref)
                    try:
                        results.append(ray.get(ref))
                    except ray.exceptions.RayTaskError:  # the task's own code failed: a bug, shown as such
                        raise
                    except ray.exceptions.RayError as exc:  # its node or its process died
                        why = str(exc).strip().splitlines()[0][:200]
                        watch()
                        if attempt >= RESTARTS:
                            line = f"worker {slot} was lost {attempt + 1} times (last: {why}): check the Ray nodes, "
                            results.append({"rc": 1, "fault": line + "then run the same command to resume",
                                            "error": None, "node": "", "host": ""})  # fmt: skip
                        else:
                            log.warning("Ray worker %d lost (%s): starting it again", slot, why)
                            submit(slot, attempt + 1)
                if time.monotonic() - checked > 5:  # a node gone: its trials free their room at once
                    watch()
                    checked = time.monotonic()
                watch(bar)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)  # each worker gets SIGINT: its trial failed, its run KILLED
        ray.wait(list(pending), num_returns=len(pending), timeout=STOP_WAIT_S)
        raise
    return results, (away or [None])[0]


def _end_quietly(reconcile, study, tracker) -> None:
    """After Ctrl-C: end what the workers left (a second Ctrl-C or a store away must not hide the first)."""
    try:
        reconcile(study, tracker)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not end the interrupted trials' runs (%s): the next run does", exc)


def _worker_main(argv: list[str]) -> None:
    """`python -m sweep.search.ray_workers sweep ...`: the worker process of a Ray task. It gets SIGTERM when
    the task's process dies (a lost raylet: it fails its trial rather than run on unwatched), and SIGINT and
    SIGTERM unblocked: a Ray worker blocks them, and a child inherits the mask."""
    import ctypes
    import runpy

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker outlives a lost raylet, as a local one would
        pass
    if os.environ.get(PARENT_ENV) and str(os.getppid()) != os.environ[PARENT_ENV]:
        sys.exit(1)  # the task died before the death signal was set
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = ["sweep", *argv]
    runpy.run_module("sweep", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])
