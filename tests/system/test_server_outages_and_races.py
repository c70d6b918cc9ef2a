"""Faults of a long sweep on shared infrastructure, injected into real servers with real signals: PostgreSQL
restarted under 2 and 4 workers, the MLflow tracking server SIGKILLed for 20 s and for longer than its retry
window, 8 workers racing on a new study (the journal; PostgreSQL from two "hosts": two process groups). After each,
the run itself or a resume completes the study: no trial lost, doubled or left RUNNING, no MLflow run left
RUNNING, one parent run (faults.check_whole). Trials are tiny (synthetic data): a fault lands mid-study."""

from __future__ import annotations

import time

import optuna
import pytest

from faults import (
    Sweep,
    check_whole,
    counts,
    journal_storage,
    one_error_line,
    run,
    study,
    tiny,
    wait_for_complete,
    wait_for_trial_in_flight,
)
from servers import MlflowServer

# real servers and signals on 2 shared cores: a timing loss is rerun once (both runs are in the log)
pytestmark = [
    pytest.mark.system,
    pytest.mark.faults,
    pytest.mark.integration,
    pytest.mark.flaky(reruns=1, reruns_delay=2),
]


@pytest.fixture
def sqlite_mlflow(tmp_path, mlflow_store):
    """`mlflow server` on SQLite in tmp_path (an empty store: conftest.py), for a test to kill."""
    server = MlflowServer(f"sqlite:///{mlflow_store(tmp_path / 'server')}", tmp_path / "server", workers=1).start()
    yield server
    server.stop()


def outage(pg, sweep: Sweep, said: int) -> None:
    """PostgreSQL down until a worker has said it waits for the storage (a restart alone can fall between two
    storage calls, and a pooled connection is re-made without a word), or 60 s; then up again."""
    pg.down()
    deadline = time.monotonic() + 60
    while sweep.stderr.count("unreachable") <= said and sweep.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    pg.start()


@pytest.mark.parametrize("workers", [2, 4])
def test_postgres_restarted_mid_sweep_the_workers_reconnect(workers, pg, pg_mlflow, tmp_path):
    """PostgreSQL stopped (`pg_ctl stop -m fast`) and started again, twice, while the workers run: they wait and
    reconnect (storage calls retried within sweep.storage_retry_window_s, 120 s by default), no traceback, the
    study ends with exactly the trials asked for; the MLflow server on the same database rides through on its
    own 5xx retries."""
    name, total = f"pg-restart-{workers}", 4 * workers
    args = tiny(tmp_path, name, f"sweep.workers={workers}", f"sweep.total_trials={total}")
    args += [f"sweep.storage={pg.url()}", f"tracking.tracking_uri={pg_mlflow.url}"]
    sweep = Sweep(args, tmp_path)
    wait_for_complete(pg.url(), name, 2, sweep)
    outage(pg, sweep, said=0)
    first = sweep.stderr.count("unreachable")
    assert first >= 1, sweep.stderr[-4000:]  # a worker said what it waited for
    wait_for_complete(pg.url(), name, 2 + workers, sweep)
    outage(pg, sweep, said=sweep.stderr.count("unreachable"))
    assert sweep.wait(300) == 0, sweep.stderr[-4000:]
    assert "Traceback" not in sweep.stderr, sweep.stderr[-4000:]
    assert sweep.stderr.count("unreachable") > first, sweep.stderr[-4000:]  # and again after the second outage
    print(name, check_whole(study(pg.url(), name), pg_mlflow.url, total))


def test_mlflow_server_killed_and_restarted_is_ridden_through(sqlite_mlflow, root):
    """The tracking server SIGKILLed and started again once a worker has said it waits for it, plus 3 s (a crash
    and a supervisor's restart): the trial in flight waits (tracking.retry_window_s, 120 s by default) and the
    sweep finishes; nothing lost. A remote server prints no "View run ..." banner per run under the bar."""
    name, total = "mlflow-restart", 8
    args = tiny(root, name, "sweep.workers=2", f"sweep.total_trials={total}", "sweep.progress=true")
    args += [f"tracking.tracking_uri={sqlite_mlflow.url}"]
    sweep = Sweep(args, root)
    storage = journal_storage(root)
    wait_for_complete(storage, name, 2, sweep)
    sqlite_mlflow.kill()
    deadline = time.monotonic() + 60
    while "unreachable" not in sweep.stderr and sweep.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    sqlite_mlflow.start()
    assert sweep.wait(300) == 0, sweep.stderr[-4000:]
    assert "Traceback" not in sweep.stderr and "unreachable" in sweep.stderr, sweep.stderr[-4000:]
    assert "View run" not in sweep.stdout + sweep.stderr and "View experiment" not in sweep.stdout + sweep.stderr
    print(name, check_whole(study(storage, name), sqlite_mlflow.url, total))


def test_mlflow_server_away_past_the_window_stops_the_sweep_in_one_line(sqlite_mlflow, root):
    """The server killed and left down longer than the retry window. The 5-minute outage of the issue is the
    same path with a 3 s window (tracking.retry_window_s=3), so that CI does not wait 5 minutes: the trial in
    flight fails in Optuna with the reason, the sweep stops with one line (exit 1), nothing stays RUNNING in
    Optuna; after the server is back, the same command resumes, ends the left-over runs and completes."""
    name, total = "mlflow-long", 8
    args = tiny(root, name, "sweep.workers=2", f"sweep.total_trials={total}", "tracking.retry_window_s=3")
    args += [f"tracking.tracking_uri={sqlite_mlflow.url}"]
    storage = journal_storage(root)
    sweep = Sweep(args, root)
    wait_for_complete(storage, name, 2, sweep)
    in_flight = wait_for_trial_in_flight(storage, name, sweep)  # not the pause between trials: none in flight
    sqlite_mlflow.kill()
    assert sweep.wait(120) == 1, sweep.stderr[-4000:]
    line = one_error_line(sweep.stderr)
    assert "MLflow tracking server" in line and "unreachable for" in line and "run the same command" in line, line
    s = study(storage, name)
    stopped = counts(s)
    assert stopped["RUNNING"] == 0, stopped
    failed = {t.number: t.user_attrs.get("error", "") for t in s.get_trials(deepcopy=False) if t.state.name == "FAIL"}
    assert in_flight in failed and all("unreachable" in e for e in failed.values()), (
        in_flight,
        failed,
        sweep.stderr[-6000:],
    )
    sqlite_mlflow.start()
    resume = run(args, root)
    assert resume.proc.returncode == 0, resume.stderr[-4000:]
    assert "2 workers:" not in resume.stderr  # sweep.progress=false: no bar for the workers either
    print(name, dict(stopped), check_whole(study(storage, name), sqlite_mlflow.url, total))


def test_eight_workers_racing_on_a_new_journal_study(root):
    """8 local workers start at once on a new study: one study, one parent run, unique trial numbers, and
    sweep.total_trials=N ends with exactly N complete trials (none handed out once N are complete or running)."""
    name, total = "race-journal", 12
    args = tiny(root, name, "sweep.workers=8", f"sweep.total_trials={total}")
    sweep = run(args, root, timeout=400)
    assert sweep.proc.returncode == 0, sweep.stderr[-4000:]
    s = study(journal_storage(root), name)
    assert counts(s) == {"COMPLETE": total}
    print(name, check_whole(s, f"sqlite:///{root}/mlruns/mlflow.db", total))


def test_two_hosts_racing_on_a_new_postgres_study(pg, pg_mlflow, tmp_path):
    """Two "hosts" (two `make sweep WORKERS=4`, each its own process group) start at once on one new study in
    PostgreSQL with one MLflow server: 8 workers, one study, one parent run, exactly N complete trials."""
    name, total = "race-pg", 12
    args = tiny(tmp_path, name, "sweep.workers=4", f"sweep.total_trials={total}")
    args += [f"sweep.storage={pg.url()}", f"tracking.tracking_uri={pg_mlflow.url}"]
    hosts = [Sweep(args, tmp_path / "host-a"), Sweep(args, tmp_path / "host-b")]
    for host in hosts:
        assert host.wait(400) == 0, host.stderr[-4000:]
        assert "Traceback" not in host.stderr
    s = study(pg.url(), name)
    assert counts(s) == {"COMPLETE": total}
    print(name, check_whole(s, pg_mlflow.url, total))


def test_a_worker_started_during_an_outage_waits_for_its_services_a_users_command_does_not(pg, sqlite_mlflow, root):
    """A launcher's workers start after it reached both services, and may start during an outage (4 workers on
    2 cores: the last one seconds later). A worker (wait=True) waits through it within the retry window; the
    user's own command (wait=False) fails at once in one line naming the service and the fix."""
    import threading

    from sweep.config import ConfigError, load_config
    from sweep.search.storage import open_storage
    from sweep.tracking import Tracker, TrackingError

    cfg = load_config(tiny(root, "late", f"sweep.storage={pg.url()}", f"tracking.tracking_uri={sqlite_mlflow.url}"))
    cases = [
        (pg.down, pg.start, lambda w: open_storage(cfg, wait=w), ConfigError, "Optuna storage.*not reachable"),
        (sqlite_mlflow.kill, sqlite_mlflow.start, lambda w: Tracker(cfg.tracking, wait=w), TrackingError,
         "MLflow tracking server.*not reachable"),
    ]  # fmt: skip
    try:
        for stop, start, connect, error, line in cases:
            stop()
            began = time.monotonic()
            with pytest.raises(error, match=line):
                connect(False)
            assert time.monotonic() - began < 15  # at once, not after a retry window
            back = threading.Timer(3, start)
            back.start()
            try:
                began = time.monotonic()
                connected = connect(True)
                waited = time.monotonic() - began
            finally:
                back.join()
            assert waited >= 3 and connected is not None, waited
    finally:
        pg.up()  # the session's cluster: up for the tests after this one
    assert optuna.create_study(study_name="late", storage=open_storage(cfg)).study_name == "late"
    assert Tracker(cfg.tracking).experiment_id
