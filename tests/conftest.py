"""Shared fixtures: every test writes under its own tmp_path (data cache, MLflow store, Optuna journal)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path: Path) -> Path:
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


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Each test starts with the process's in-memory caches empty (sweep.memo.CACHE: composed configs, splits,
    features, logits, warm starts), as a new process would: what one test computed cannot answer for another."""
    from sweep.memo import CACHE

    CACHE.clear()


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
