"""The Ray cluster a sweep runs on (sweep.launcher=ray): Ray imported or one line, joined or started, its hosts,
what every host must share (the study's storage, the MLflow store) checked, and the trials of a lost host failed."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweep.config import ConfigError
from sweep.search.storage import fail_stale_trials, storage_location

log = logging.getLogger(__name__)
RAY_MISSING = "sweep.launcher=ray needs Ray: make install-ray"


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def ray_settings(cfg) -> dict:
    """sweep.ray, checked: the address, and what one worker asks of Ray (a GPU share below 1, whole GPUs above)."""
    r = cfg.sweep.ray
    gpus, cpus = float(r.gpus_per_worker), float(r.cpus_per_worker)
    if gpus > 1 and not gpus.is_integer():
        raise ConfigError(
            f"sweep.ray.gpus_per_worker={gpus:g}: Ray gives a worker a share of one GPU (< 1) or whole GPUs; "
            f"use {int(gpus)} or {int(gpus) + 1}"
        )
    return {"address": str(r.address or "auto"), "num_gpus": gpus, "num_cpus": cpus}


def connect(ray, address: str) -> bool:
    """Join the cluster at `address` (auto: a running one, else start one on this host). False: this process
    was connected already (it must not disconnect)."""
    if ray.is_initialized():
        return False
    if address == "auto":
        try:
            ray.init(address="auto", log_to_driver=True)
        except ConnectionError:
            log.info("no running Ray cluster: starting one on this host")
            ray.init(include_dashboard=False, log_to_driver=True)
        return True
    try:
        ray.init(address=address, log_to_driver=True)
    except (ConnectionError, RuntimeError) as exc:
        raise ConfigError(
            f"no Ray cluster at sweep.ray.address={address} ({str(exc).splitlines()[0][:200]}): start one "
            "(ray start --head) or use sweep.ray.address=auto"
        ) from None
    return True


def hosts(ray) -> set[str]:
    return {n["NodeManagerHostname"] for n in ray.nodes() if n["Alive"]}


def check_room(ray, settings: dict, started: bool) -> None:
    """A cluster with no node that can hold one worker: one line when this process started it (nothing will
    join), a warning on a joined one (an autoscaler may still add the node)."""
    need = {"CPU": settings["num_cpus"], "GPU": settings["num_gpus"]}
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if any(all(res.get(k, 0.0) >= v for k, v in need.items() if v) for res in nodes):
        return
    line = (
        f"no Ray node has {need['CPU']:g} CPU and {need['GPU']:g} GPU for a worker (sweep.ray.cpus_per_worker, "
        "sweep.ray.gpus_per_worker): lower them (0 GPU on CPU) or add such a node"
    )
    if started:
        raise ConfigError(line)
    log.warning("%s; the workers wait for one", line)


def shared_paths(cfg) -> dict[str, Path]:
    """What every host must see, by its config key: the journal file's folder, a file-based MLflow store's. A
    SQLite database is refused outright: SQLite over a network filesystem loses writes under concurrency."""
    out = {}
    storage, tracking = storage_location(cfg), str(cfg.tracking.tracking_uri)
    if storage.startswith("sqlite"):
        raise ConfigError(
            "sweep.storage is SQLite and the Ray cluster spans several hosts: use "
            "sweep.storage=postgresql://user@host/db, or leave it unset with paths.root on a shared filesystem"
        )
    if "://" not in storage:
        out["sweep.storage (the Optuna journal)"] = Path(storage).parent
    if tracking.startswith("sqlite"):
        raise ConfigError(
            f"the MLflow store {tracking} is SQLite and the Ray cluster spans several hosts: run an MLflow "
            "server (mlflow server --backend-store-uri postgresql://...) and set tracking.tracking_uri=http://host:5000"
        )
    if "://" not in tracking or tracking.startswith("file:"):
        out["tracking.tracking_uri"] = Path(tracking.removeprefix("file://").removeprefix("file:"))
    return out


def check_shared(ray, cfg, others: list[str], args: list[str], env: dict[str, str]) -> None:
    """On each host but this one: the storage and the MLflow store are where this process sees them (a token
    file written here, read there), and the data is fetched and split once (its workers never race to)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    marks = {}
    for key, folder in shared_paths(cfg).items():
        folder.mkdir(parents=True, exist_ok=True)
        marks[key] = folder / f".sweep-shared-{token}"
        marks[key].write_text(token)
    try:
        node_of = {}
        for n in ray.nodes():
            if n["Alive"] and n["NodeManagerHostname"] in others:
                node_of.setdefault(n["NodeManagerHostname"], n["NodeID"])
        probe = ray.remote(num_cpus=0, max_retries=0)(prepare_host)
        refs = {
            h: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
                {k: str(p) for k, p in marks.items()}, token, args, env
            )
            for h, node in node_of.items()
        }
        for h, ref in refs.items():
            unseen, error = ray.get(ref)
            if unseen:
                raise ConfigError(
                    f"host {h} of the Ray cluster does not see {unseen[0]} where this host does ("
                    f"{marks[unseen[0]].parent}): put paths.root on a filesystem every node mounts at the same "
                    "path, or use sweep.storage=postgresql://... and tracking.tracking_uri=http://<mlflow server>"
                )
            if error:
                raise ConfigError(f"on host {h}: {error}")
    finally:
        for mark in marks.values():
            mark.unlink(missing_ok=True)


def prepare_host(marks: dict[str, str], token: str, args: list[str], env: dict[str, str]) -> tuple[list, str]:
    """A Ray task on one host: the keys whose token file it cannot read, and the error line of `sweep data`
    there (None: the data is in place)."""
    import os

    unseen = [k for k, p in marks.items() if not (Path(p).is_file() and Path(p).read_text() == token)]
    if unseen:
        return unseen, None
    proc = subprocess.run([sys.executable, "-m", "sweep", "data", *args], env={**os.environ, **env},
                          capture_output=True, text=True)  # fmt: skip
    errors = [line.removeprefix("error: ") for line in proc.stderr.splitlines() if line.startswith("error: ")]
    if proc.returncode:
        return [], errors[-1] if errors else f"`sweep data` exited with {proc.returncode}"
    return [], None


def fail_lost_trials(ray, study: optuna.Study) -> int:
    """Fail the trials whose worker was on a lost node: this host's by their worker's pid (storage.py), another
    host's when Ray reports it dead and no node of it alive. Returns how many of the latter."""
    fail_stale_trials(study)
    nodes = ray.nodes()
    alive = {n["NodeManagerHostname"] for n in nodes if n["Alive"]}
    gone = {n["NodeManagerHostname"] for n in nodes if not n["Alive"]} - alive - {socket.gethostname()}
    failed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        host = t.user_attrs.get("worker", "").rpartition(":")[0]
        if host in gone:
            try:
                study._storage.set_trial_user_attr(t._trial_id, "error", f"Ray node on {host} lost during the trial")
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                failed += 1
            except optuna.exceptions.UpdateFinishedTrialError:  # it ended meanwhile: not lost after all
                pass
    return failed
