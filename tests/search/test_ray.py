"""sweep.launcher=ray on a real Ray cluster of several nodes on this host (ray.cluster_utils.Cluster): GPUs
declared on CPU nodes, so that placement is tested without GPUs; every worker its own CUDA_VISIBLE_DEVICES, every
trial run tagged where it ran, no trial over sweep.total_trials, a node removed mid-sweep, Ctrl-C. Trials are tiny
(synthetic data); the checks on the study and its runs are faults.check_whole's."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import sys
import time
from collections import Counter

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from faults import (
    Sweep,
    check_whole,
    counts,
    journal_storage,
    left_after,
    live_pids,
    one_error_line,
    run,
    study,
    tiny,
    wait_for_complete,
)
from sweep.cli import main
from sweep.config import ConfigError, load_config
from sweep.search.cluster import RAY_MISSING, shared_paths
from sweep.search.placement import NODE_ENV, node_summary, placement_tags

# each fit runs its whole max_iter, ~2 s a trial on 2 cores: a node removal or a signal lands mid-trial
SLOW = ["data.n_max=6000", "data.ratio=30", "model.head.max_iter=800", "model.head.l2=1e-9", "model.head.gtol=1e-15"]


def test_placement_tags_say_where_a_trial_ran():
    assert placement_tags({}) == {"host": socket.gethostname()}
    tags = placement_tags({NODE_ENV: "ab12", "CUDA_VISIBLE_DEVICES": "3"})
    assert tags == {"host": socket.gethostname(), "ray_node_id": "ab12", "cuda_visible_devices": "3"}
    assert placement_tags({"CUDA_VISIBLE_DEVICES": ""})["cuda_visible_devices"] == ""  # a CPU worker, a GPU node
    counts_ = {("n1", "a"): Counter(complete=3, fail=1), ("n2", "b"): Counter(complete=5)}
    assert node_summary(counts_) == "trials by Ray node: node n2 (b): 5 complete; node n1 (a): 3 complete, 1 failed"


def test_without_ray_the_ray_launcher_is_one_line(synthetic, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    assert main(["sweep", *synthetic, "sweep.launcher=ray"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {RAY_MISSING}"


def test_what_every_host_must_share(root):
    base = [f"paths.root={root}", "data=synthetic"]
    with pytest.raises(ConfigError, match="MLflow store sqlite.*tracking.tracking_uri=http"):  # the default
        shared_paths(load_config(base))
    paths = shared_paths(load_config([*base, "tracking.tracking_uri=http://mlflow:5000"]))
    assert paths == {"sweep.storage (the Optuna journal)": root / "mlruns" / "optuna"}
    with pytest.raises(ConfigError, match="sweep.storage is SQLite.*postgresql"):
        shared_paths(load_config([*base, f"sweep.storage=sqlite:///{root}/o.db"]))
    pg = [*base, "sweep.storage=postgresql://u@db/optuna", f"tracking.tracking_uri={root}/store"]
    assert shared_paths(load_config(pg)) == {"tracking.tracking_uri": root / "store"}


needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the Ray launcher's tests need Ray: make install-ray"
)


def _cluster(*nodes: dict):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    added = [cluster.add_node(**n) for n in nodes]
    cluster.wait_for_nodes()
    return cluster, added


@pytest.fixture(scope="module")
def two_gpu_nodes():
    if importlib.util.find_spec("ray") is None:
        pytest.skip("the Ray launcher's tests need Ray: make install-ray")
    """A head that runs no worker and two nodes of 2 CPUs and 2 (declared) GPUs each."""
    cluster, nodes = _cluster({"num_cpus": 2, "num_gpus": 2}, {"num_cpus": 2, "num_gpus": 2})
    yield cluster, nodes
    cluster.shutdown()


def _runs(cfg, name):
    client = MlflowClient(cfg.tracking.tracking_uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment).experiment_id
    return client.search_runs([exp], f"tags.kind = 'trial' and tags.study_name = '{name}'", max_results=1000)


@pytest.mark.slow
@pytest.mark.system
@needs_ray
@pytest.mark.ray
def test_one_gpu_per_worker_each_trial_tagged_where_it_ran_and_none_over_total(two_gpu_nodes, synthetic, root, capsys):
    """4 workers on 4 declared GPUs: every worker sees its own device, the study ends with exactly
    sweep.total_trials complete, every trial's run names its host, node and GPU, the end counts them by node."""
    cluster, nodes = two_gpu_nodes
    name, total = "ray-gpus", 10
    args = [*synthetic, f"sweep.study_name={name}", "sweep.baselines=null", "sweep.sampler=random"]
    args += ["sweep.launcher=ray", f"sweep.ray.address={cluster.address}", "sweep.workers=4"]
    args += ["sweep.ray.gpus_per_worker=1", f"sweep.total_trials={total}", "sweep.progress=false"]
    assert main(["sweep", *args]) == 0
    out = capsys.readouterr().out
    cfg = load_config(args)
    s = study(journal_storage(root), name)
    check_whole(s, cfg.tracking.tracking_uri, total)
    assert counts(s) == {"COMPLETE": total}  # none over the total, none failed
    runs = _runs(cfg, name)
    assert len(runs) == total
    worker_nodes = {n.node_id for n in nodes}
    gpus_of: dict[str, set[str]] = {}  # a worker (host:pid) -> the devices its trials saw
    node_of: dict[str, str] = {}
    by_trial = {t.number: t for t in s.trials}
    for r in runs:
        tags = r.data.tags
        assert tags["host"] == socket.gethostname()
        assert tags["ray_node_id"] in worker_nodes  # never the head: it has no CPU to give
        worker = by_trial[int(tags["trial"])].user_attrs["worker"]
        gpus_of.setdefault(worker, set()).add(tags["cuda_visible_devices"])
        node_of[worker] = tags["ray_node_id"]
    assert all(len(g) == 1 and g <= {"0", "1"} for g in gpus_of.values()), gpus_of  # one device per worker
    for node in set(node_of.values()):  # workers sharing a node hold different devices
        devices = [next(iter(gpus_of[w])) for w, n in node_of.items() if n == node]
        assert len(devices) == len(set(devices)), (node, devices)
    per_node = Counter(r.data.tags["ray_node_id"] for r in runs)
    line = next(x for x in out.splitlines() if x.startswith("trials by Ray node: "))
    for node, k in per_node.items():
        assert f"node {node[:12]} ({socket.gethostname()}): {k} complete" in line, line


@pytest.mark.slow
@pytest.mark.system
@needs_ray
@pytest.mark.ray
def test_half_a_gpu_per_worker_two_workers_share_one(two_gpu_nodes, synthetic):
    """sweep.ray.gpus_per_worker=0.5, sweep.workers=2, what the GPU machine runs: Ray packs both on one GPU of
    one node (it fills a device before the next), and the trials complete."""
    cluster, _ = two_gpu_nodes
    name, total = "ray-half", 4
    args = [*synthetic, f"sweep.study_name={name}", "sweep.baselines=null", "sweep.sampler=random"]
    args += ["sweep.launcher=ray", f"sweep.ray.address={cluster.address}", "sweep.workers=2"]
    args += ["sweep.ray.gpus_per_worker=0.5", "sweep.ray.cpus_per_worker=0.5", f"sweep.total_trials={total}"]
    assert main(["sweep", *args]) == 0
    cfg = load_config(args)
    runs = _runs(cfg, name)
    assert len(runs) == total and all(r.data.tags["cuda_visible_devices"] in {"0", "1"} for r in runs)
    assert len({(r.data.tags["ray_node_id"], r.data.tags["cuda_visible_devices"]) for r in runs}) == 1


def _running_trial(storage, name, sweep, cfg, timeout=240.0):
    """A RUNNING trial whose MLflow run exists (mid-trial), and that run's tags."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert sweep.proc.poll() is None, sweep.stderr[-3000:]
        s = study(storage, name)
        for t in s.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if s else []:
            if "mlflow_run_id" in t.user_attrs:  # the sweep made the MLflow store: a client here races nothing
                client = MlflowClient(cfg.tracking.tracking_uri)
                return t, client.get_run(t.user_attrs["mlflow_run_id"]).data.tags
        time.sleep(0.2)
    raise AssertionError(f"no trial running after {timeout}s:\n{sweep.stderr[-3000:]}")


@pytest.mark.slow
@pytest.mark.system
@needs_ray
@pytest.mark.ray
def test_a_node_lost_mid_sweep_its_trial_fails_its_worker_restarts_and_the_study_completes(root):
    """Two one-worker nodes; the node of a running trial is removed (its raylet and workers killed): that trial
    is FAIL (not RUNNING), its run not RUNNING, the worker starts again on a node added meanwhile, and the study
    still ends with exactly sweep.total_trials complete."""
    cluster, nodes = _cluster({"num_cpus": 1}, {"num_cpus": 1})
    try:
        name, total = "ray-lost", 6
        args = tiny(root, name, *SLOW, "sweep.launcher=ray", f"sweep.ray.address={cluster.address}")
        args += ["sweep.workers=2", f"sweep.total_trials={total}", "sweep.baselines=null"]
        storage, cfg = journal_storage(root), load_config(args)
        sweep = Sweep(args, root)
        victim, tags = _running_trial(storage, name, sweep, cfg)
        lost = next(n for n in nodes if n.node_id == tags["ray_node_id"])
        cluster.add_node(num_cpus=1)  # where the lost worker starts again
        cluster.remove_node(lost)
        assert sweep.wait(400) == 0, sweep.stderr[-4000:]
        s = study(storage, name)
        check_whole(s, cfg.tracking.tracking_uri, total)
        assert s.trials[victim.number].state == TrialState.FAIL
        assert "lost" in sweep.stderr and "starting it again" in sweep.stderr, sweep.stderr[-3000:]
        run = MlflowClient(cfg.tracking.tracking_uri).get_run(victim.user_attrs["mlflow_run_id"])
        assert run.info.status in ("KILLED", "FAILED")
    finally:
        cluster.shutdown()


def _worker_argv(name: str) -> tuple[str, ...]:
    """What the command line of this study's Ray workers holds (faults.live_pids): the module and the study."""
    return ("sweep.search.ray_workers", f"sweep.study_name={name}")


@pytest.mark.slow
@pytest.mark.system
@needs_ray
@pytest.mark.ray
def test_ctrl_c_stops_the_ray_workers_as_local_workers_stop(two_gpu_nodes, root):
    """SIGINT to the driver mid-trial: exit 130 without a traceback; each worker failed its trial and marked
    its run KILLED, the parent run is KILLED, nothing is RUNNING, no worker process is left."""
    cluster, _ = two_gpu_nodes
    name = "ray-int"
    args = tiny(root, name, *SLOW, "sweep.launcher=ray", f"sweep.ray.address={cluster.address}")
    args += ["sweep.workers=2", "sweep.total_trials=20", "sweep.baselines=null"]
    storage, cfg = journal_storage(root), load_config(args)
    sweep = Sweep(args, root, ignore_int=True)  # as a script's `make sweep &` starts it: Ctrl-C still stops it
    victim, _ = _running_trial(storage, name, sweep, cfg)
    os.kill(sweep.proc.pid, signal.SIGINT)
    assert sweep.wait(180) == 130, sweep.stderr[-4000:]
    assert "Traceback" not in sweep.stderr, sweep.stderr[-4000:]
    assert "Ray workers:" not in sweep.stderr  # sweep.progress=false: no bar
    s = study(storage, name)
    assert counts(s)["RUNNING"] == 0 and s.trials[victim.number].state == TrialState.FAIL
    client = MlflowClient(cfg.tracking.tracking_uri)
    assert client.get_run(victim.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert client.get_run(s.user_attrs["mlflow_parent_run_id"]).info.status == "KILLED"
    assert not [r for r in _runs(cfg, name) if r.info.status == "RUNNING"]
    assert not left_after(30, argv=_worker_argv(name))


@pytest.mark.slow
@pytest.mark.system
@pytest.mark.integration
@needs_ray
@pytest.mark.ray
def test_a_worker_that_loses_the_storage_stops_in_the_line_a_local_worker_gives(pg, root):
    """PostgreSQL stopped mid-sweep, past sweep.storage_retry_window_s: the workers fail their trials and stop,
    the sweep ends with the local launcher's one line (exit 1: the storage named, its fix, "N of M workers
    stopped"); with the database back, the same command ends the left-over trials and completes the study."""
    from servers import PASSWORD

    cluster, _ = _cluster({"num_cpus": 2, "num_gpus": 2}, {"num_cpus": 2, "num_gpus": 2})  # none left by others
    try:
        name, total = "ray-pg", 6
        args = tiny(root, name, *SLOW, "sweep.launcher=ray", f"sweep.ray.address={cluster.address}")
        args += ["sweep.workers=2", f"sweep.total_trials={total}", "sweep.baselines=null"]
        args += [f"sweep.storage={pg.url()}", "sweep.storage_retry_window_s=3", "sweep.heartbeat_interval=2"]
        sweep = Sweep(args, root)
        wait_for_complete(pg.url(), name, 1, sweep)
        pg._ctl("-m", "fast", "-w", "stop", timeout=60)  # its data kept: started again below
        assert sweep.wait(240) == 1, sweep.stderr[-4000:]
        line = one_error_line(sweep.stderr)
        assert "Optuna storage" in line and "unreachable for" in line and "run the same command" in line, line
        assert "of 2 workers stopped" in line and PASSWORD not in sweep.stderr, line
        pg.start()
        try:
            resume = run(args, root, timeout=400)
        except AssertionError as exc:  # a stalled resume: what the study held, for the next reader of CI's log
            s = study(pg.url(), name)
            running = [(t.number, t.user_attrs.get("worker")) for t in s.get_trials(states=(TrialState.RUNNING,))]
            raise AssertionError(f"{counts(s)}, RUNNING (trial, worker): {running}, workers alive: "
                                 f"{live_pids(argv=_worker_argv(name))}\n{exc}") from None  # fmt: skip
        assert resume.proc.returncode == 0, resume.stderr[-4000:]
        check_whole(study(pg.url(), name), f"sqlite:///{root}/mlruns/mlflow.db", total)
    finally:
        cluster.shutdown()
        pg.up()  # the session's cluster: up for the tests after this one
