"""One worker per GPU, on CPU: the environment each local worker gets. Worker i sees GPU i mod G
(CUDA_VISIBLE_DEVICES), from sweep.gpus, else the launcher's CUDA_VISIBLE_DEVICES, else every GPU torch sees;
each trial records the GPU it ran on (an Optuna user attr, an MLflow tag)."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from mlflow import MlflowClient

from sweep.cli import main
from sweep.config import ConfigError, gpu_list, load_config
from sweep.search.storage import open_storage
from sweep.search.workers import MANAGED_ENV, PRELOAD, _start, visible_gpus, worker_envs


def test_each_worker_gets_its_own_gpu_round_robin():
    envs = worker_envs(6, ["0", "1", "2", "3"], environ={"PATH": "/bin"})
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "2", "3", "0", "1"]
    assert all(e[MANAGED_ENV] == "1" and e["PATH"] == "/bin" for e in envs)
    assert {e["OMP_NUM_THREADS"] for e in envs} == {str(max(1, (os.cpu_count() or 1) // 6))}


def test_one_gpu_two_workers_share_device_0_and_no_gpu_sets_nothing():
    assert [e["CUDA_VISIBLE_DEVICES"] for e in worker_envs(2, ["0"], environ={})] == ["0", "0"]
    assert all("CUDA_VISIBLE_DEVICES" not in e for e in worker_envs(3, [], environ={}))


@pytest.mark.system  # a fresh interpreter
def test_the_fork_servers_imports_start_no_thread_and_no_cuda_and_sweep_loads_first():
    """Workers fork from a process that imported PRELOAD: a thread there would be lost in the fork (with any
    lock it held), CUDA there could not be set per worker; `sweep` first sets torch's CPU path (determinism)."""
    code = (
        "import importlib, sys, threading; from sweep.search.workers import PRELOAD\n"
        "[importlib.import_module(m) for m in PRELOAD]\n"
        "import torch; print(threading.active_count(), torch.cuda.is_initialized())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "False"], out
    assert PRELOAD[0] == "sweep" and {"mlflow", "sweep.models.train", "sweep.search.study"} <= set(PRELOAD)


@pytest.mark.system  # the fork server and two workers
def test_a_forked_workers_exit_status_is_its_commands():
    """A worker from the fork server exits as `python -m sweep sweep <args>` would: 0, or 2 for a bad override
    (its one error line on the launcher's stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = _start([["--help"], ["sweep.no_such_key=1"]], [env, env])
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 2]


def test_which_gpus_the_workers_share():
    assert visible_gpus(["2", "3"], environ={"CUDA_VISIBLE_DEVICES": "0"}) == ["2", "3"]  # sweep.gpus first
    assert visible_gpus(None, environ={"CUDA_VISIBLE_DEVICES": "4, 5"}) == ["4", "5"]  # a launcher given GPUs
    assert visible_gpus(None, environ={"CUDA_VISIBLE_DEVICES": ""}) == []  # told to use none
    import torch

    assert visible_gpus(None, environ={}) == [str(i) for i in range(torch.cuda.device_count())]


def test_sweep_gpus_is_parsed_or_one_error():
    assert gpu_list(None) is None and gpu_list("0,1,2,3") == ["0", "1", "2", "3"] and gpu_list(3) == ["3"]
    assert load_config(["sweep.gpus=[0,1,2,3]"]).sweep.gpus == [0, 1, 2, 3]
    assert gpu_list(load_config(["sweep.gpus=[0,1,2,3]"]).sweep.gpus) == ["0", "1", "2", "3"]
    with pytest.raises(ConfigError, match="sweep.gpus"):
        load_config(["sweep.gpus=[a,b]"])


@pytest.mark.system  # two forked workers sweeping
def test_each_trial_records_the_gpu_its_worker_was_given(synthetic, root):
    """Two local workers on two (pretend) GPUs: CUDA_VISIBLE_DEVICES is only an environment variable here,
    so on CPU the trials run as usual and record the device each worker was given."""
    args = [*synthetic, "sweep.workers=2", "sweep.n_trials=2", "sweep.study_name=gpus", "sweep.gpus=[0,1]"]
    args += ["sweep.baselines=null", "sweep.sampler=random"]
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="gpus", storage=open_storage(cfg))
    by_worker = {}
    for t in study.trials:
        by_worker.setdefault(t.user_attrs["worker"], set()).add(t.user_attrs["cuda_visible_devices"])
    assert sorted(map(sorted, by_worker.values())) == [["0"], ["1"]]
    client = MlflowClient(cfg.tracking.tracking_uri)
    for t in study.trials:
        tags = client.get_run(t.user_attrs["mlflow_run_id"]).data.tags
        assert tags["cuda_visible_devices"] == t.user_attrs["cuda_visible_devices"]
