"""The env.* tags of this machine against independent readings (the packages' own __version__, sys, /proc),
what env_differences names and leaves out, and a real sweep's parent run carrying them, export warning."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sweep.cli import main
from sweep.config import load_config
from sweep.environment import PACKAGES, env_differences, env_tags, env_warning
from sweep.search.storage import open_storage

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _in_subprocess(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    environ.update(env, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True).stdout


def test_env_tags_are_this_machines_versions_python_cpu_and_gpu():
    import numpy
    import scipy
    import sklearn

    tags = env_tags()
    assert set(tags) >= {f"env.{p}" for p in PACKAGES} | {"env.python", "env.cpu", "env.threads", "env.gpu"}
    assert tags["env.numpy"] == numpy.__version__ and tags["env.scipy"] == scipy.__version__
    assert tags["env.scikit-learn"] == sklearn.__version__ and tags["env.optuna"] == optuna.__version__
    assert tags["env.python"] == ".".join(map(str, sys.version_info[:3]))
    if Path("/proc/cpuinfo").exists():
        text = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        assert tags["env.cpu"].startswith(model)
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        assert ("avx512f" in tags["env.cpu"]) == ("avx512f" in flags)
        assert (" avx2" in tags["env.cpu"] or "(avx2" in tags["env.cpu"]) == ("avx2" in flags)
    if shutil.which("nvidia-smi") is None:
        assert tags["env.gpu"] == "none"
    assert tags["env.blas"]  # numpy is loaded here: its BLAS is named
    assert all(isinstance(v, str) and v for v in tags.values())


@pytest.mark.slow  # a fresh interpreter: make test's, not the edit loop's
def test_env_tags_import_no_package_and_read_threads_as_torch_will_use_them():
    code = "import sys; from sweep.environment import env_tags as e; print(e()['env.threads'], 'torch' in sys.modules)"
    assert _in_subprocess(code, OMP_NUM_THREADS="3").split() == ["3", "False"]
    assert _in_subprocess(code, MKL_NUM_THREADS="5").split() == ["5", "False"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert _in_subprocess(code).split() == [str(cores), "False"]
    # torch loaded: its own count, here as torch itself reports it after set_num_threads
    with_torch = (
        "import torch; torch.set_num_threads(1); from sweep.environment import env_tags as e; print(e()['env.threads'])"
    )
    assert _in_subprocess(with_torch).strip() == "1"
    # several local workers: each gets cores // workers (search/workers.py worker_envs)
    assert env_tags(workers=2)["env.threads"] == str(max(1, (os.cpu_count() or 1) // 2))


def test_env_differences_names_what_changes_results_and_not_the_rest():
    now = env_tags()
    major, minor, _ = platform.python_version_tuple()
    then = dict(now)
    then.update(
        {
            "env.optuna": "4.0.0",
            "env.numpy": "1.26.4",
            "env.python": f"{major}.{minor}.999",  # another patch release: not a difference
            "env.threads": "64",
            "env.gpu": "NVIDIA H200",
            "env.cpu": "Some Other CPU (no avx)",  # none of avx512f, avx2, fma
            "code_version": "abc",  # not an env tag
        }
    )
    diff = env_differences(then, now)
    assert f"optuna 4.0.0 -> {now['env.optuna']}" in diff and f"numpy 1.26.4 -> {now['env.numpy']}" in diff
    assert f"threads 64 -> {now['env.threads']}" in diff and f"gpu NVIDIA H200 -> {now['env.gpu']}" in diff
    assert not [d for d in diff if d.startswith(("python", "code_version", "scipy", "torch"))]
    if Path("/proc/cpuinfo").exists():  # the flags read independently
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
        have = " ".join(f for f in ("avx512f", "avx2", "fma") if f in line.split(":", 1)[1].split())
        assert [d for d in diff if d.startswith("cpu")] == ([f"cpu no avx -> {have}"] if have else [])
    # only the CPU's model differs, the same flags: no difference; a tag recorded before tags existed: none
    model_only = {"env.cpu": "Another Model " + now["env.cpu"][now["env.cpu"].rfind("(") :]}
    assert env_differences(model_only, now) == [] and env_differences({}, now) == []
    assert env_differences({"env.python": "2.7.18"}, now) == [f"python 2.7 -> {major}.{minor}"]
    assert env_warning(now, now) is None
    line = env_warning({"env.optuna": "4.0.0"}, now)
    assert line == f"this study was run with optuna 4.0.0; now optuna {now['env.optuna']}: the front may differ " + (
        "(the parent run's env.* tags)"
    )


@pytest.mark.slow  # a whole sweep in-process and its export: make test's, not the edit loop's
def test_a_sweeps_parent_run_carries_the_env_tags_and_export_warns_when_one_differs(synthetic, root, capsys):
    args = [*synthetic, "sweep.n_trials=3", "sweep.study_name=env", "sweep.progress=false"]
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="env", storage=open_storage(cfg))
    client = MlflowClient(cfg.tracking.tracking_uri)
    parent = study.user_attrs["mlflow_parent_run_id"]
    tags = client.get_run(parent).data.tags
    now = env_tags()
    for key in [f"env.{p}" for p in PACKAGES] + ["env.python", "env.cpu", "env.gpu", "env.threads"]:
        assert tags[key] == now[key], key
    capsys.readouterr()
    assert main(["export", *synthetic, "study=env", f"out={root / 'front.csv'}"]) == 0
    assert "the front may differ" not in capsys.readouterr().err  # same machine, same packages: no warning

    client.set_tag(parent, "env.optuna", "4.0.0")  # as if the study had been run with another optuna
    assert main(["sweep", *args, "sweep.n_trials=1"]) == 0  # a resumed study keeps its parent's tags
    assert client.get_run(parent).data.tags["env.optuna"] == "4.0.0"
    capsys.readouterr()
    assert main(["export", *synthetic, "study=env", f"out={root / 'front.csv'}"]) == 0
    err = capsys.readouterr().err
    want = f"this study was run with optuna 4.0.0; now optuna {optuna.__version__}: the front may differ"
    assert want in err, err


@pytest.mark.parametrize("recorded", [{"env.optuna": optuna.__version__}, {"env.gpu": "none", "mlflow.user": "x"}])
def test_env_warning_is_silent_when_nothing_that_matters_differs(recorded):
    now = {**env_tags(), "env.gpu": "none"}
    assert env_warning(recorded, now) is None
