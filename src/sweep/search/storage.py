"""The Optuna storage: where it is, opening it (the journal file of journal.py, or an RDB URL whose calls are
retried through a database restart), loading a study by name, failing the trials a dead worker left RUNNING, and
the lock under which a worker claims a trial. Imports no module above it; MLflow stays in tracking."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import socket
import warnings
from contextlib import contextmanager
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from sweep.config import ConfigError
from sweep.retry import Retrying
from sweep.search.journal import Journal
from sweep.tracking import redact, sqlalchemy_url

log = logging.getLogger(__name__)


def db_transient(exc: BaseException) -> bool:
    """A database that is away or restarting: SQLAlchemy's connection errors, as such or inside Optuna's."""
    from sqlalchemy import exc as sa

    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, sa.OperationalError | sa.InterfaceError | sa.TimeoutError | sa.PendingRollbackError):
            return True
        if isinstance(e, sa.DBAPIError) and e.connection_invalidated:
            return True
    return False


class RetryingRDB(optuna.storages.RDBStorage):
    """Optuna's RDB storage with every storage call retried through a database restart (self.retry: the window
    sweep.storage_retry_window_s, then one error). Retrying a write is safe: Optuna's are upserts or checked
    (a trial already finished raises UpdateFinishedTrialError); a heartbeat that fails is skipped, not raised."""

    retry: Retrying

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.retry.call(_attempt, self, optuna.storages.RDBStorage.record_heartbeat, trial_id)
        except Exception as exc:  # noqa: BLE001 - the heartbeat thread must outlive an outage
            log.warning("heartbeat of trial id %d skipped: %s", trial_id, redact(str(exc).splitlines()[0])[:200])


def _attempt(self: RetryingRDB, method, *args, **kwargs):
    try:
        return method(self, *args, **kwargs)
    except Exception as exc:
        if db_transient(exc):  # the session holds a dead connection: the next attempt gets a new one
            self.scoped_session.remove()
        raise


def _retried(name: str):
    method = getattr(optuna.storages.RDBStorage, name)
    return functools.wraps(method)(lambda self, *a, **k: self.retry.call(_attempt, self, method, *a, **k))


for _name in (
    *("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name"),
    *("get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs"),
    *("get_all_studies", "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param"),
    *("get_trial_id_from_study_id_trial_number", "set_trial_state_values", "set_trial_intermediate_value"),
    *("set_trial_user_attr", "set_trial_system_attr", "get_trial", "get_all_trials", "_get_trials"),
    *("get_best_trial", "_get_best_trial_id", "_get_stale_trial_ids"),
):
    setattr(RetryingRDB, _name, _retried(_name))


def storage_location(cfg: DictConfig) -> str:
    """The storage URL (or journal file path), unredacted: never log it without redact()."""
    if cfg.sweep.storage:
        return str(cfg.sweep.storage)
    return str(Path(cfg.paths.mlruns_dir) / "optuna" / "journal.log")


def open_storage(cfg: DictConfig, wait: bool = False) -> optuna.storages.BaseStorage:
    """Journal file by default (safe for several local processes); an RDB URL (PostgreSQL) for many machines.
    An RDB that cannot be reached is one error at once, or with `wait` (a launcher's worker: the launcher reached
    it), an outage waited for within sweep.storage_retry_window_s, as a running worker waits."""
    location = storage_location(cfg)
    if "://" not in location:
        from optuna.storages.journal import JournalStorage

        path = Path(location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK):
                raise PermissionError(13, "not writable")
            return JournalStorage(Journal(str(path)))
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
    retry = Retrying(
        f"Optuna storage {redact(location)}",
        float(cfg.sweep.get("storage_retry_window_s", 120)),
        db_transient,
        "start the database, then run the same command to resume (the study is intact)",
        redact,
    )
    hb = int(cfg.sweep.get("heartbeat_interval", 30))

    def connect() -> RetryingRDB:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RetryingRDB(
                sqlalchemy_url(location), engine_kwargs=engine_kwargs, heartbeat_interval=hb, grace_period=2 * hb
            )
        storage.retry = retry
        return storage

    if wait:
        return retry.call(connect)
    try:
        return connect()
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
    try:  # a zombie (killed, not yet reaped by its parent) is dead
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the trials left RUNNING by a dead worker. RDB storages use Optuna's heartbeat; the journal file
    (one machine) checks the recorded worker pid."""
    storage = study._storage
    if isinstance(getattr(storage, "_backend", storage), optuna.storages.RDBStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a no-op without a heartbeat
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        w_host, _, w_pid = worker.rpartition(":")
        if w_host == host and w_pid.isdigit() and not _pid_alive(int(w_pid)):
            storage.set_trial_user_attr(t._trial_id, "error", "worker died (killed) during the trial")
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)


@contextmanager
def trial_lock(study: optuna.Study):
    """Held while a worker counts the study's trials and claims one, so that N racing workers never start more
    than sweep.total_trials: PostgreSQL's advisory lock on the study name (every host), a file lock beside the
    journal (one host). Other RDBs (SQLite): no lock, the count may overshoot by a trial per racing worker."""
    storage = getattr(study._storage, "_backend", study._storage)
    if isinstance(storage, Journal):
        fd = os.open(storage._file_path + ".trials.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
    elif isinstance(storage, RetryingRDB) and storage.engine.dialect.name == "postgresql":
        from sqlalchemy import text

        key = int.from_bytes(hashlib.sha256(study.study_name.encode()).digest()[:8], "big", signed=True)

        def locked():
            conn = storage.engine.connect()
            try:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                return conn
            except Exception:
                conn.close()
                raise

        conn = storage.retry.call(locked)
        try:
            yield
        finally:
            try:  # a connection lost meanwhile took its lock with it
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            except Exception:  # noqa: BLE001
                pass
            conn.close()
    else:
        yield
