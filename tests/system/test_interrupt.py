"""A sweep killed in the middle of a trial (SIGINT, SIGTERM, SIGKILL) resumes without losing or double
counting work: the interrupted trial is failed in Optuna, its MLflow run is KILLED, the parent is reused."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweep.config import load_config
from sweep.search.storage import open_storage

pytestmark = pytest.mark.system  # sweeps in subprocesses, killed by real signals

# every fit runs its whole max_iter (gtol 1e-15 is out of float64's reach: a capped fit, not converged), so a
# trial takes ~2 s on 2 cores however fast the solver and its warm starts get, and the signal lands mid-trial
# (with gtol 1e-6 the warm fits converged in 2 iterations, ~0.1 s a trial, and the poll below missed them)
SLOW = ["data.n_max=6000", "data.ratio=30", "model.head.max_iter=800", "model.head.l2=1e-9", "model.head.gtol=1e-15"]


def _study(cfg, name):
    try:
        return optuna.load_study(study_name=name, storage=open_storage(cfg))
    except KeyError:
        return None


def _wait_for_running_trial(cfg, name, proc, timeout=120.0):
    """Until a trial is RUNNING with its MLflow run created (that is: mid-trial)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        study = _study(cfg, name)
        if study:
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if t.number >= 1 and "mlflow_run_id" in t.user_attrs:
                    return t
        time.sleep(0.1)
    raise AssertionError("no trial started in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["INT", "TERM", "KILL"])
def test_interrupted_sweep_resumes_without_losing_or_double_counting(sig, synthetic, root):
    name = f"interrupt-{sig.name}"
    args = [
        *synthetic,
        *SLOW,
        f"sweep.study_name={name}",
        "sweep.total_trials=3",
        "sweep.baselines=null",
        "sweep.sampler=random",
        "sweep.progress=false",
    ]
    cfg = load_config(args)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep", "sweep", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = _wait_for_running_trial(cfg, name, proc)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out
    if sig != signal.SIGKILL:
        assert proc.returncode == 130 and "Traceback" not in out, out

    # restart with the same study name: reconciles, then completes the 3 trials asked for
    rerun = subprocess.run(
        [sys.executable, "-m", "sweep", "sweep", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    study = _study(cfg, name)
    states = {t.number: t.state for t in study.trials}
    assert states[victim.number] == TrialState.FAIL
    assert sum(s == TrialState.COMPLETE for s in states.values()) == 3
    assert not any(s == TrialState.RUNNING for s in states.values())
    assert sorted(states) == list(range(len(states)))  # unique, gap-free trial numbers

    client = MlflowClient(cfg.tracking.tracking_uri)
    parent = study.user_attrs["mlflow_parent_run_id"]
    exp = client.get_run(parent).info.experiment_id
    assert len(client.search_runs([exp], "tags.kind = 'sweep'")) == 1
    kids = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent}'")
    assert len(kids) == len(study.trials)
    status = {int(k.data.tags["trial"]): k.info.status for k in kids}
    assert status[victim.number] == "KILLED"
    assert sorted(v for v in status.values()) == sorted(["KILLED"] + ["FINISHED"] * 3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_service_call_waits_for_it_and_a_second_one_does_not(sig):
    """The sweep's handler (search/objective.py) inside a Retrying call (an MLflow or storage write): the first
    signal lets the call finish, so that no SQLite transaction is left open, then raises; a second one raises
    at once (a call that hangs stays interruptible)."""
    from sweep.retry import Retrying
    from sweep.search.objective import INTERRUPTED, raise_interrupt

    retry = Retrying("a store", 10, lambda exc: False, "fix it")
    finished = []

    def write(signals: int) -> str:
        for _ in range(signals):
            os.kill(os.getpid(), sig)
            time.sleep(0.05)  # the handler runs here, between bytecodes
        finished.append(signals)
        return "written"

    previous = signal.signal(sig, raise_interrupt)
    try:
        with pytest.raises(KeyboardInterrupt, match=f"signal {int(sig)}"):
            retry.call(write, 1)
        assert finished == [1]  # the write finished before the interrupt
        with pytest.raises(KeyboardInterrupt):
            retry.call(write, 2)
        assert finished == [1]  # the second signal stopped it inside
        assert retry.call(write, 0) == "written"  # nothing left pending
    finally:
        signal.signal(sig, previous)
        INTERRUPTED.clear()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT-started-ignored", "TERM"])
def test_two_workers_stop_on_a_signal_to_their_launcher(sig, root):
    """`kill` (SIGTERM) of a 2-worker sweep, or Ctrl-C of one that a script started with `&` (SIGINT ignored at
    start): exit 130 without a traceback, as one worker stops; the trials in flight failed, none RUNNING, and no
    worker left running."""
    from faults import Sweep, counts, journal_storage, left_after, study, tiny, wait_for_trial_in_flight

    name = f"two-{sig.name}"
    args = tiny(root, name, *SLOW, "sweep.workers=2", "sweep.total_trials=200", "sweep.baselines=null")
    storage = journal_storage(root)
    sweep = Sweep(args, root, ignore_int=True)
    wait_for_trial_in_flight(storage, name, sweep, timeout=120)
    os.kill(sweep.proc.pid, sig)
    assert sweep.wait(120) == 130, sweep.stderr[-3000:]
    assert "Traceback" not in sweep.stderr, sweep.stderr[-3000:]
    stopped = counts(study(storage, name))
    assert stopped["RUNNING"] == 0 and stopped["FAIL"] >= 1 and stopped["COMPLETE"] < 200, stopped
    assert not left_after(10, group=sweep.proc.pid)
