"""The report tests' one sweep: 8 trials on the long-tailed synthetic data, run once per session; each test that
exports or picks takes its own copy of the study (same trials, same MLflow runs) under a name of its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from sweep.cli import main
from sweep.config import load_config
from sweep.search.storage import open_storage

SWEPT = ["data=synthetic", "task_name=test", "sweep.n_trials=8", "data.ratio=40", "data.n_max=300"]


@pytest.fixture(scope="session")
def shared_root(tmp_path_factory, mlflow_store) -> Path:
    """The store (MLflow sqlite, Optuna journal, data cache) of one real sweep, study `swept`."""
    root = tmp_path_factory.mktemp("swept")
    mlflow_store(root / "mlruns")  # the session's empty store (tests/conftest.py), as the root fixture gives
    assert main(["sweep", f"paths.root={root}", *SWEPT, "sweep.study_name=swept"]) == 0
    return root


@pytest.fixture(scope="session")
def shared_sweep(shared_root: Path) -> Callable[[str], list[str]]:
    """shared_sweep(name): the study copied to `name` (optuna.copy_study: the trials with their attributes, so
    trial numbers and MLflow run ids are the sweep's own); returns the overrides that export and pick it. A copy
    per test keeps what one test does to its study (a RUNNING trial, say) out of the others'."""

    def copy(name: str) -> list[str]:
        args = [f"paths.root={shared_root}", *SWEPT, f"sweep.study_name={name}"]
        storage = open_storage(load_config(args))
        if name in optuna.get_all_study_names(storage):
            optuna.delete_study(study_name=name, storage=storage)  # a rerun of the same test starts over
        optuna.copy_study(from_study_name="swept", from_storage=storage, to_storage=storage, to_study_name=name)
        return args

    return copy
