"""Concurrency against real servers: 4 local workers share one Optuna study in PostgreSQL and log to an MLflow
tracking server whose backend store is PostgreSQL too. Counts must be exact (no lost or duplicated trial,
one parent run) and the database password must not leak into MLflow, artifacts, logs or the exported CSV.

The session's fixtures (tests/conftest.py) start a throwaway PostgreSQL cluster (Debian's `postgresql` package;
as root it runs the server as the `postgres` user) on a free port of 127.0.0.1 with password authentication, and
an `mlflow server` from this venv on top of it. Skipped only where PostgreSQL's binaries cannot be found.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from servers import PASSWORD, USER

pytestmark = [pytest.mark.system, pytest.mark.integration]

WORKERS, TRIALS = 4, 3  # sweep.workers, sweep.n_trials (per worker)
REPO = Path(__file__).resolve().parents[2]
SCHEME = "postgresql"  # what users type in sweep.storage; SQLAlchemy picks the driver


# ---------------------------------------------------------------- servers (tests/servers.py)


@pytest.fixture
def postgres(pg):
    """The session's PostgreSQL cluster (tests/conftest.py): (host, port); databases `optuna` and `mlflow`."""
    return pg.host, pg.port


@pytest.fixture
def mlflow_server(pg_mlflow):
    """The session's `mlflow server` on that PostgreSQL, proxied artifacts: its http URL."""
    return pg_mlflow.url


# ---------------------------------------------------------------- helpers


def _sweep_cli(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sweep", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def _walk_files(root: Path):
    for p in sorted(root.rglob("*")):
        if p.is_file():
            yield p


# ---------------------------------------------------------------- tests


def test_four_workers_share_one_postgres_study_and_one_mlflow_parent(postgres, mlflow_server, tmp_path):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    host, pg_port = postgres
    study_name = "pg-concurrency"
    storage_url = f"{SCHEME}://{USER}:{PASSWORD}@{host}:{pg_port}/optuna"
    overrides = [
        f"paths.root={tmp_path}",
        "data=synthetic",
        "task_name=pg",
        f"sweep.study_name={study_name}",
        f"sweep.workers={WORKERS}",
        f"sweep.n_trials={TRIALS}",
        "sweep.sampler=random",
        f"sweep.storage={storage_url}",
        f"tracking.tracking_uri={mlflow_server}",
    ]
    # The three default baselines stay: they are enqueued once, and 4 workers racing for the WAITING trials
    # must run each exactly once, within the 4 x 3 trials.
    proc = _sweep_cli(["sweep", *overrides], timeout=240)
    assert proc.returncode == 0, f"sweep failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    # ---- Optuna: exactly 4 x 3 trials, all complete, numbers unique, baselines once each
    study = optuna.load_study(study_name=study_name, storage=storage_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == WORKERS * TRIALS, [(t.number, t.state) for t in trials]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [(t.number, t.state) for t in trials]
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(WORKERS * TRIALS))
    baseline_params = [
        {"weighting.alpha": 0.0, "loss.posthoc_tau": 0.0},
        {"weighting.alpha": 0.5, "loss.posthoc_tau": 0.0},
        {"weighting.alpha": 0.0, "loss.posthoc_tau": 1.0},
    ]
    for want in baseline_params:
        assert sum(t.params == want for t in trials) == 1, (want, [t.params for t in trials])
    per_worker = Counter(t.user_attrs["worker"] for t in trials)  # study.optimize(n_trials) in each process
    assert sorted(per_worker.values()) == [TRIALS] * WORKERS, per_worker

    # ---- MLflow: one parent (kind=sweep), 4 x 3 children under it, trial tags unique and == Optuna's
    client = MlflowClient(mlflow_server)
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    parent = client.get_run(parent_id)
    exp_id = parent.info.experiment_id
    assert parent.data.tags["kind"] == "sweep" and parent.info.run_name == study_name
    assert parent.info.status == "FINISHED"
    parents = client.search_runs([exp_id], "tags.kind = 'sweep'", run_view_type=ViewType.ALL, max_results=100)
    assert [r.info.run_id for r in parents] == [parent_id], [(r.info.run_id, r.info.lifecycle_stage) for r in parents]
    kids = client.search_runs(
        [exp_id], f"tags.mlflow.parentRunId = '{parent_id}'", run_view_type=ViewType.ALL, max_results=1000
    )
    assert len(kids) == WORKERS * TRIALS
    assert all(k.info.status == "FINISHED" and k.info.lifecycle_stage == "active" for k in kids)
    kid_trials = [int(k.data.tags["trial"]) for k in kids]
    assert len(set(kid_trials)) == len(kid_trials) == WORKERS * TRIALS
    assert set(kid_trials) == set(numbers)
    by_run = {k.info.run_id: k for k in kids}
    for t in trials:
        k = by_run[t.user_attrs["mlflow_run_id"]]
        assert int(k.data.tags["trial"]) == t.number
        assert k.data.params["trial"] == str(t.number)
        assert float(k.data.params["weighting.alpha"]) == t.params["weighting.alpha"]
        assert abs(k.data.metrics["val_accuracy"] - t.values[0]) <= 1e-6  # Optuna gets it rounded to 6 places
        assert abs(k.data.metrics["val_macro_f1"] - t.values[1]) <= 1e-6
    all_runs = client.search_runs([exp_id], "", run_view_type=ViewType.ALL, max_results=1000)
    assert {r.info.run_id for r in all_runs} == {parent_id, *by_run}, "stray runs in the experiment"
    front = {t.number for t in study.best_trials}
    assert {int(k.data.tags["trial"]) for k in kids if k.data.tags.get("pareto") == "true"} == front

    # ---- the password leaks nowhere: params, tags, metric names, artifacts, logs, the exported CSV
    assert parent.data.params["sweep.storage"] == f"{SCHEME}://{USER}:***@{host}:{pg_port}/optuna"
    assert parent.data.tags["optuna_storage"] == f"{SCHEME}://{USER}:***@{host}:{pg_port}/optuna"
    for r in [parent, *kids]:
        r = client.get_run(r.info.run_id)
        for where, mapping in (("params", r.data.params), ("tags", r.data.tags), ("metrics", r.data.metrics)):
            for key, value in mapping.items():
                assert PASSWORD not in f"{key}={value}", (r.info.run_name, where, key)
        assert PASSWORD not in (r.info.run_name or "")
    downloads = tmp_path / "artifacts"
    n_files = 0
    for r in [parent, *kids]:
        dst = downloads / r.info.run_id
        dst.mkdir(parents=True)
        client.download_artifacts(r.info.run_id, "", str(dst))
        for f in _walk_files(dst):
            n_files += 1
            assert PASSWORD.encode() not in f.read_bytes(), f
    assert (downloads / parent_id / "pareto.csv").is_file() and (downloads / parent_id / "pareto.png").is_file()
    assert all((downloads / k.info.run_id / "classes.json").is_file() for k in kids)
    assert n_files >= 2 + 3 * len(kids)
    assert PASSWORD not in proc.stdout, "password in the sweep's stdout"
    assert PASSWORD not in proc.stderr, "password in the sweep's stderr"

    out = tmp_path / "p.csv"
    exp = _sweep_cli(["export", *overrides, f"study={study_name}", f"out={out}"], timeout=120)
    assert exp.returncode == 0, exp.stderr[-3000:]
    text = out.read_text()
    assert PASSWORD not in text and PASSWORD not in exp.stdout and PASSWORD not in exp.stderr
    rows = list(csv.DictReader(text.splitlines()))
    assert {int(r["trial"]) for r in rows} == front
    assert {r["mlflow_run_id"] for r in rows} <= set(by_run)


def test_a_wrong_postgres_password_is_one_redacted_line_within_seconds(postgres, mlflow_server, tmp_path):
    host, pg_port = postgres
    wrong = "wr0ng-pw-4711"
    args = [
        "sweep",
        f"paths.root={tmp_path}",
        "data=synthetic",
        "task_name=pg",
        "sweep.study_name=pg-wrong",
        f"sweep.storage={SCHEME}://{USER}:{wrong}@{host}:{pg_port}/optuna",
        f"tracking.tracking_uri={mlflow_server}",
    ]
    start = time.monotonic()
    proc = _sweep_cli(args, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert elapsed < 15, f"took {elapsed:.1f}s"  # connect_timeout 5 s + interpreter and imports (2 slow cores)
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "not reachable" in err[0], err[0]
    assert f"{SCHEME}://{USER}:***@{host}:{pg_port}/optuna" in err[0], err[0]
    assert "password authentication failed" in err[0], err[0]
    assert wrong not in proc.stderr and wrong not in proc.stdout
