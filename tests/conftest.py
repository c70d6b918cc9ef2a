"""Shared fixtures: every test writes under its own tmp_path (data cache, MLflow store, Optuna journal)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> Callable[[Path], Path]:
    """mlflow_store(folder): folder/mlflow.db, a copy of an MLflow SQLite store as MLflow makes it (its schema
    migrated, no experiment of the harness's), made once per test session: a new store costs ~3 s of Alembic
    migrations on this 2-core machine, per test and per subprocess sweep otherwise. The tests that check a store
    made from nothing use tmp_path, not root."""
    from mlflow import MlflowClient

    template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{template}").search_experiments()

    def copy(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copyfile(template, folder / "mlflow.db"))

    return copy


@pytest.fixture(scope="session")
def pg():
    """One throwaway PostgreSQL cluster for the session (tests/servers.py), databases `optuna` and `mlflow`: the
    tests that restart it leave it up; each test names its own study and MLflow experiment."""
    from servers import postgres_or_skip

    server = postgres_or_skip()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_mlflow(pg, tmp_path_factory):
    """One `mlflow server` on that cluster's `mlflow` database, proxied artifacts in a temp folder; a PostgreSQL
    restart reaches it too (it rides through on its own retries). The driver named: SQLAlchemy 2.1 maps a bare
    postgresql:// to psycopg 3, the project ships psycopg2."""
    from servers import MlflowServer

    server = MlflowServer(pg.url("mlflow", "postgresql+psycopg2"), tmp_path_factory.mktemp("pg-mlflow")).start()
    yield server
    server.stop()


@pytest.fixture
def root(tmp_path: Path, mlflow_store) -> Path:
    """A test's paths.root: empty but for an empty MLflow store at mlruns/mlflow.db (the default tracking URI
    under paths.root), which the harness opens as it opens a store it made itself."""
    mlflow_store(tmp_path / "mlruns")
    return tmp_path


@pytest.fixture
def synthetic(root: Path) -> list[str]:
    """Overrides for a fast run on the generated long-tailed data, isolated under tmp_path."""
    return [f"paths.root={root}", "data=synthetic", "task_name=test"]


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The real CFPB sample (downloaded once per test session with pip, checksum verified)."""
    from sweep.config import load_config
    from sweep.data.sources import fetch_cfpb_sample

    root = tmp_path_factory.mktemp("sample")
    cfg = load_config([f"paths.root={root}"])
    try:
        fetch_cfpb_sample(cfg.data, Path(cfg.paths.data_dir))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"CFPB sample not downloadable here: {exc}")
    return root


# Caches keyed by a hash of everything their value depends on (config, data fingerprint, file path + mtime): a
# hit is what computing again gives, so they stay across tests. Clearing them too made tests/models/test_train,
# test_posthoc, search/test_objectives and data/test_precomputed 39 s instead of 27 s (2-core machine).
CONTENT_KEYED = {
    "config.composed",
    "data.features.memory",
    "data.precomputed.digests",
    "data.precomputed.logits",
    "data.splits._load_cached",
    "models.train.logits",
}


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Each test starts without what earlier tests left in the process (sweep.memo.CACHE): warm starts, reused
    fine-tune models and prefixes, tensors on the device, the git version, read predictions; a test that needs
    the content-keyed caches empty too calls CACHE.clear() itself."""
    from sweep.memo import CACHE

    stale = [name for name in CACHE.names() if name not in CONTENT_KEYED]
    if stale:
        CACHE.clear(*stale)


@pytest.fixture(autouse=True)
def _no_leaked_stores(monkeypatch):
    """Each test starts without a process-wide MLflow URI or Optuna storage (conf/tracking/local.yaml and
    conf/sweep/default.yaml read them): a test that set one cannot send later tests' runs into its store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SWEEP_STORAGE", raising=False)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A 2-layer BERT of width 32 (random init) with the packaged MiniLM's tokenizer (tests/tiny_model.py)."""
    from tiny_model import write_tiny_bert

    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


SERIAL = ("system", "faults", "integration", "browser")


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist's --dist loadgroup (make test), the tests that start servers, subprocess sweeps, workers
    or signals run one after another on one worker: they time outages and share the session's PostgreSQL; the
    rest spread over the other workers."""
    for item in items:
        if any(item.get_closest_marker(m) for m in SERIAL):
            item.add_marker(pytest.mark.xdist_group("serial"))
