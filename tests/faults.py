"""What the fault tests share: a sweep started as a user starts it (a real process, its own process group), waiting
on the study, and the checks every fault ends with: no trial lost, doubled or left RUNNING, no MLflow run left
RUNNING, one parent run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]


def tiny(root: Path, name: str, *extra: str) -> list[str]:
    """A sweep whose trials take well under a second: the small synthetic set, random sampler."""
    return [f"paths.root={root}", "data=synthetic", "task_name=faults", f"sweep.study_name={name}",
            "sweep.sampler=random", "sweep.progress=false", *extra]  # fmt: skip


class Sweep:
    """`python -m sweep <command> ...` in its own process group, output to files (a pipe could fill and block)."""

    def __init__(
        self, args: list[str], folder: Path, command: str = "sweep", env: dict | None = None, ignore_int: bool = False
    ):
        """ignore_int: started with SIGINT ignored, as a shell script's `cmd &` starts it."""
        folder.mkdir(parents=True, exist_ok=True)
        self.out = folder / f"{command}-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sweep", command, *args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_int else None,
            )

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"still running after {timeout}s:\n{self.stderr[-3000:]}") from None

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


def live_pids(group: int | None = None, argv: tuple[str, ...] = ()) -> list[int]:
    """The processes still running (a zombie is dead) of process group `group`, or whose command line holds each
    of `argv` as a whole argument."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if fields[0] != "Z" and (group is None or int(fields[2]) == group) and all(a in cmd for a in argv):
            alive.append(int(pid))
    return alive


def left_after(timeout: float, **which) -> list[int]:
    """live_pids(**which) once none is left, or what is still left after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (alive := live_pids(**which)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def run(args: list[str], folder: Path, command: str = "sweep", timeout: float = 300) -> Sweep:
    s = Sweep(args, folder, command)
    s.wait(timeout)
    return s


def journal_storage(root: Path) -> optuna.storages.JournalStorage:
    """The sweep's default storage under root (the journal file, made if the sweep has not made it yet)."""
    try:
        from sweep.search.journal import Journal
    except ImportError:  # the code before the journal was made safe: what the fault table's "before" ran
        from optuna.storages.journal import JournalFileBackend as Journal

    path = root / "mlruns" / "optuna" / "journal.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(Journal(str(path)))


def study(storage, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _wait_for(storage, name: str, sweep: Sweep, timeout: float, poll_s: float, found, what: str):
    """Poll the study until found(study) is not None (the sweep still running); returns that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert sweep.proc.poll() is None, f"the sweep ended early ({sweep.proc.returncode}):\n{sweep.stderr[-3000:]}"
        s = study(storage, name)
        if s is not None and (value := found(s)) is not None:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"{what} after {timeout}s:\n{sweep.stderr[-3000:]}")


def wait_for_complete(storage, name: str, n: int, sweep: Sweep, timeout: float = 180) -> None:
    """Until the study holds n complete trials (the sweep is then mid-study: trials of the others running)."""

    def complete(s: optuna.Study) -> bool | None:
        return len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= n or None

    _wait_for(storage, name, sweep, timeout, 0.2, complete, f"no {n} complete trials")


def wait_for_trial_in_flight(storage, name: str, sweep: Sweep, timeout: float = 60) -> int:
    """Until a trial is RUNNING with its MLflow run started (its worker is inside the trial, between the run's
    start and its result); returns its number. A fault injected then meets that trial, not the pause between two
    trials (where a worker syncs the front's tags and no trial is in flight)."""

    def started(s: optuna.Study) -> int | None:
        running = s.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return next((t.number for t in running if "mlflow_run_id" in t.user_attrs), None)

    return _wait_for(storage, name, sweep, timeout, 0.02, started, "no trial in flight")


def counts(s: optuna.Study) -> Counter:
    return Counter(t.state.name for t in s.get_trials(deepcopy=False))


def check_whole(s: optuna.Study, tracking_uri: str, complete: int) -> dict:
    """The study and its runs after the fault and the resume: exactly `complete` complete trials, numbers unique
    and gap-free, none RUNNING; one parent run, FINISHED; no run RUNNING; each complete trial's run FINISHED.
    Returns what the fault's table reports: trials and runs by state."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    trials = s.get_trials(deepcopy=False)
    by_state = counts(s)
    assert by_state["COMPLETE"] == complete, by_state
    assert by_state["RUNNING"] == 0, by_state
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    client = MlflowClient(tracking_uri)
    parent = client.get_run(s.user_attrs["mlflow_parent_run_id"])
    exp = parent.info.experiment_id
    parents = client.search_runs([exp], f"tags.kind = 'sweep' and tags.study_name = '{s.study_name}'",
                                 run_view_type=ViewType.ALL)  # fmt: skip
    assert [p.info.run_id for p in parents] == [parent.info.run_id]
    assert parent.info.status == "FINISHED", parent.info.status
    runs = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=5000)
    runs_by_status = Counter(r.info.status for r in runs)
    assert runs_by_status["RUNNING"] == 0, runs_by_status
    status = {r.info.run_id: r.info.status for r in runs}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert status[t.user_attrs["mlflow_run_id"]] == "FINISHED", t.number
    return {"trials": dict(by_state), "runs": dict(runs_by_status)}


def one_error_line(stderr: str) -> str:
    """The sweep's stderr holds no traceback and ends with one `error:` line; returns it."""
    assert "Traceback" not in stderr, stderr[-4000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]
