"""Faults a long shared sweep meets: several local workers on one study, an unusable store, a lost CSV."""

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from sweep.cli import main
from sweep.config import load_config
from sweep.search.storage import open_storage

pytestmark = pytest.mark.system  # whole sweeps: several workers, a blocked store, export


def test_local_workers_share_one_study_and_one_parent_run(synthetic):
    n, m = 3, 2
    args = [
        *synthetic,
        f"sweep.n_trials={m}",
        f"sweep.workers={n}",
        "sweep.study_name=workers",
        "sweep.baselines=null",
        "sweep.sampler=random",
    ]
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="workers", storage=open_storage(cfg))
    numbers = [t.number for t in study.trials]
    assert len(numbers) == n * m and sorted(numbers) == list(range(n * m))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({t.user_attrs["worker"] for t in study.trials}) == n  # every worker did trials
    client = MlflowClient(cfg.tracking.tracking_uri)
    exp = client.get_experiment_by_name("test").experiment_id
    parents = client.search_runs([exp], "tags.kind = 'sweep'")
    assert len(parents) == 1 and parents[0].info.run_id == study.user_attrs["mlflow_parent_run_id"]
    kids = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert sorted(int(k.data.tags["trial"]) for k in kids) == list(range(n * m))


def test_unwritable_mlruns_is_a_clear_error_and_leaves_the_study_intact(synthetic, root, capsys):
    args = [*synthetic, "sweep.n_trials=2", "sweep.study_name=intact"]
    assert main(["sweep", *args]) == 0
    capsys.readouterr()
    journal = root / "mlruns" / "optuna" / "journal.log"
    before = journal.read_bytes()
    # the MLflow store's folder is replaced by a file: a folder nothing can be written into (even as root)
    blocked = [*args, f"paths.mlruns_dir={root}/blocked/mlruns"]
    (root / "blocked").write_text("not a folder")
    assert main(["sweep", *blocked, f"sweep.storage={journal}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create" in err[0] and "paths.mlruns_dir" in err[0], err
    assert journal.read_bytes() == before  # the study was not touched
    study = optuna.load_study(study_name="intact", storage=open_storage(load_config(args)))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2


def test_export_never_leaves_a_half_written_csv(synthetic, root, capsys):
    args = [*synthetic, "sweep.n_trials=2", "sweep.study_name=csv"]
    assert main(["sweep", *args]) == 0
    capsys.readouterr()
    out = root / "front.csv"
    out.write_text("previous export\n")
    # the target is a directory's child that cannot be created: the old file stays, no temp file is left
    assert main(["export", *synthetic, "study=nope", f"out={out}"]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert out.read_text() == "previous export\n"
    assert main(["export", *synthetic, "study=csv", f"out={out}"]) == 0
    assert out.read_text().startswith("trial,mlflow_run_id,")
    assert [p.name for p in root.iterdir() if p.name.startswith(".front")] == []


def test_a_planted_password_is_never_written(synthetic, root, capsys):
    """A URL with a password in the config (a storage or tracking URL, or any value) is redacted in MLflow
    params, tags, artifacts, the Optuna journal, the CSV and the logs."""
    from sweep.tracking import redact

    assert redact("postgresql://user:pl4nted-pw@db:5432/optuna") == "postgresql://user:***@db:5432/optuna"
    assert redact("http://a:b@h/x?password=pl4nted-pw&x=1") == "http://a:***@h/x?password=***&x=1"
    planted = "pl4nted-pw"
    args = [
        *synthetic,
        "sweep.n_trials=3",
        "sweep.study_name=secret",
        f"++notes.results_db=postgresql://analyst:{planted}@db.internal:5432/results",
    ]
    assert main(["sweep", *args]) == 0
    assert main(["export", *args, "study=secret", f"out={root}/secret.csv"]) == 0
    out = capsys.readouterr()
    assert planted not in out.out + out.err
    written = [p for p in root.rglob("*") if p.is_file() and "cache" not in p.parts]
    assert any(p.name == "mlflow.db" for p in written) and any(p.name == "secret.csv" for p in written)
    for path in written:
        assert planted.encode() not in path.read_bytes(), path
    client = MlflowClient(load_config(args).tracking.tracking_uri)
    parent = client.search_runs([client.get_experiment_by_name("test").experiment_id], "tags.kind = 'sweep'")[0]
    assert parent.data.params["notes.results_db"] == "postgresql://analyst:***@db.internal:5432/results"


def test_a_sqlite_store_held_by_another_writer_past_mlflows_busy_wait_is_waited_for(root, caplog):
    """Another process's write transaction holding the local MLflow store longer than the 20 s busy wait MLflow
    gives SQLite (PRAGMA busy_timeout = 20000):
    MLflow raises "database is locked"; the tracker retries it within tracking.retry_window_s, so a trial's log
    or, at Ctrl-C, the KILLED mark of a run goes through instead of a traceback (two Ray workers marking their
    runs KILLED at once on a loaded machine met this)."""
    import logging
    import sqlite3
    import threading

    from sweep.tracking import Tracker

    cfg = load_config([f"paths.root={root}"])
    tracker = Tracker(cfg.tracking)
    run = tracker.start_run("held")
    holder = sqlite3.connect(root / "mlruns" / "mlflow.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # what a writer in another process holds
    release = threading.Timer(22.0, holder.rollback)
    release.start()
    try:
        with caplog.at_level(logging.WARNING, logger="sweep.retry"):
            tracker.end_run(run, "KILLED")
    finally:
        release.join()
        holder.close()
    assert "database is locked" in caplog.text and "is back after" in caplog.text, caplog.text
    assert MlflowClient(cfg.tracking.tracking_uri).get_run(run).info.status == "KILLED"
