"""The Optuna storage: where it is, opening it (journal file or RDB URL), loading a study by name, and failing
the trials a dead worker left RUNNING. Imports no module above it; MLflow stays in tracking."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from sweep.config import ConfigError
from sweep.tracking import redact, sqlalchemy_url


def storage_location(cfg: DictConfig) -> str:
    """The storage URL (or journal file path), unredacted: never log it without redact()."""
    if cfg.sweep.storage:
        return str(cfg.sweep.storage)
    return str(Path(cfg.paths.mlruns_dir) / "optuna" / "journal.log")


def open_storage(cfg: DictConfig) -> optuna.storages.BaseStorage:
    """Journal file by default (safe for several local processes); an RDB URL (PostgreSQL) for many machines."""
    location = storage_location(cfg)
    if "://" not in location:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK):
                raise PermissionError(13, "not writable")
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ConfigError(
                f"cannot use Optuna storage {path} ({exc.strerror or exc}): make {path.parent} "
                "writable or set sweep.storage"
            ) from None
    engine_kwargs = {}
    if location.startswith("postgresql"):
        engine_kwargs = {"connect_args": {"connect_timeout": 5}, "pool_pre_ping": True}
    elif location.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        hb = int(cfg.sweep.get("heartbeat_interval", 30))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                sqlalchemy_url(location), engine_kwargs=engine_kwargs, heartbeat_interval=hb, grace_period=2 * hb
            )
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for "cannot connect"
        msg = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise ConfigError(
            f"Optuna storage {redact(location)} is not reachable ({msg[:200]}): start the database or fix sweep.storage"
        ) from None


def load_study(cfg: DictConfig, name: str | None) -> optuna.Study:
    """The study named `name`, or the last one (whose latest trial started last); a one-line error if none."""
    storage = open_storage(cfg)
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    if not summaries:
        raise ConfigError(
            f"no study in {storage_location(cfg) if '@' not in storage_location(cfg) else 'the storage'}"
            ": run `make sweep` first, or set sweep.storage"
        )
    names = [s.study_name for s in summaries]
    if name is None:  # the last study: the one whose latest trial started last
        latest = max(summaries, key=lambda s: (s.datetime_start is not None, s.datetime_start or 0, s._study_id))
        name = latest.study_name
    if name not in names:
        raise ConfigError(f"no study named {name!r}; the storage has: {', '.join(names[:10])}")
    return optuna.load_study(study_name=name, storage=storage)


def running_warning(study: optuna.Study) -> str | None:
    n = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if not n:
        return None
    return (
        f"warning: study {study.study_name} has {n} RUNNING trial(s): the front may change; run export again "
        "when they finish"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the trials left RUNNING by a dead worker. RDB storages use Optuna's heartbeat; the journal file
    (one machine) checks the recorded worker pid."""
    storage = study._storage
    if isinstance(storage, optuna.storages.RDBStorage) and storage.is_heartbeat_enabled():
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        w_host, _, w_pid = worker.rpartition(":")
        if w_host == host and w_pid.isdigit() and not _pid_alive(int(w_pid)):
            storage.set_trial_user_attr(t._trial_id, "error", "worker died (killed) during the trial")
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
