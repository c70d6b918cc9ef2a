"""One worker's trials, Optuna's ask-and-tell: each trial claimed under the study's trial lock (never more than
sweep.total_trials complete or running, however many workers race), run, told; a service away past its retry
window or a full disk fails the trial and stops the worker (Stopped, one line), and the study stays whole."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep.retry import Unavailable
from sweep.search.storage import fail_stale_trials, trial_lock

log = logging.getLogger(__name__)
Callback = Callable[[optuna.Study, FrozenTrial], None]
# What sweep.total_trials counts: trials that ended with a result (a pruned trial is one: the halving pruner's
# budget is trials begun, most of them stopped early) and those running
BUDGET = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
GPU_ATTR = "cuda_visible_devices"  # the trial's user attr: the GPU(s) its worker was given (workers.py)


class Stopped(RuntimeError):
    """The sweep stopped on a fault outside it (a service away past its window, a full disk); resumable."""


def fatal(exc: BaseException) -> BaseException | None:
    """The fault that must stop the worker, from exc or the exceptions that led to it: a service away past its
    window, or a full disk (an OSError ENOSPC, SQLite's "database or disk is full"). None: a trial's own error."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 20:
        seen.append(exc)
        if isinstance(exc, Unavailable | Stopped):
            return exc
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        if "database or disk is full" in str(exc):
            return OSError(errno.ENOSPC, "database or disk is full")
        exc = exc.__cause__ or exc.__context__
    return None


def run_trials(
    study: optuna.Study,
    objective: Callable,
    n_trials: int,
    total: int | None,
    callbacks: Sequence[Callback],
    max_failures: int = 5,
) -> None:
    """Run n_trials trials here, or with `total`, trials until the study holds `total` complete ones: a worker
    claims a trial only while complete + running < total, and waits while the room is held by running trials
    (one may fail and need running again). `max_failures` trials failed in a row (0: never) stop the worker
    with the last one's error: a cause that every trial meets (a model that cannot load) would otherwise fail
    trials until the total is reached, that is, forever."""
    done = failed = 0
    while total is not None or done < n_trials:
        trial = _claim(study, total)
        if trial is None:
            return
        done += 1
        frozen = _run(study, objective, trial)
        for callback in callbacks:
            callback(study, frozen)
        failed = failed + 1 if frozen.state == TrialState.FAIL else 0
        if max_failures and failed >= max_failures:
            error = frozen.user_attrs.get("error", "see the trials' MLflow runs")
            raise Stopped(
                f"{failed} trials in a row failed, the last one with {error}: fix that, then run the same "
                "command to resume (sweep.max_failures_in_a_row sets the limit)"
            )


def _claim(study: optuna.Study, total: int | None) -> optuna.Trial | None:
    while True:
        fail_stale_trials(study)  # a dead worker's trial frees its room
        with trial_lock(study):
            trials = study.get_trials(deepcopy=False, states=BUDGET)
            complete = sum(t.state != TrialState.RUNNING for t in trials)
            if total is None or len(trials) < total:
                with warnings.catch_warnings():  # "heartbeat ... supposed to be used with optimize": we send it
                    warnings.simplefilter("ignore", UserWarning)
                    trial = study.ask()
                break
        if complete >= total:
            return None
        time.sleep(1.0)
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        trial.set_user_attr(GPU_ATTR, os.environ["CUDA_VISIBLE_DEVICES"])
    return trial


def _run(study: optuna.Study, objective: Callable, trial: optuna.Trial) -> FrozenTrial:
    with _heartbeat(study, trial):
        try:
            values = objective(trial)
        except KeyboardInterrupt:
            _tell(study, trial, state=TrialState.FAIL)
            raise
        except optuna.TrialPruned:  # sweep.pruner=halving stopped it at a rung
            return _tell(study, trial, state=TrialState.PRUNED)
        except Exception as exc:  # noqa: BLE001 - a trial's own error fails the trial, the sweep goes on
            stop = fatal(exc)
            try:
                frozen = _tell(study, trial, state=TrialState.FAIL)
            except Exception:  # noqa: BLE001 - the storage is away too: the resume fails the trial
                if stop is None:
                    raise
            if stop is not None:
                raise stop from None
            return frozen
    return _tell(study, trial, values=values)


def _tell(study: optuna.Study, trial: optuna.Trial, **kwargs) -> FrozenTrial:
    """study.tell; a write retried after it had landed (a restart in between) finds the trial finished: fine."""
    try:
        return study.tell(trial, **kwargs)
    except optuna.exceptions.UpdateFinishedTrialError:
        return study._storage.get_trial(trial._trial_id)


@contextmanager
def _heartbeat(study: optuna.Study, trial: optuna.Trial):
    """RDB storages: the trial's heartbeat, as Optuna's optimize sends it (a dead worker's trial is failed)."""
    storage = study._storage
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{trial.number}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
