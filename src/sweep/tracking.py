"""MLflow at the edge, its only importer: one client, explicit run ids (safe with several workers), what a run
logs (params, metrics, predictions), and the redaction that keeps passwords out of logs, tags and params."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.environment import code_version
from sweep.files import frame_csv
from sweep.retry import Retried, Retrying

log = logging.getLogger(__name__)
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<tail>@)")
_PASSWORD_PARAM = re.compile(r"(?P<head>(?:password|passwd|pwd|token|secret)=)(?P<pw>[^&\s]+)", re.I)


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the store and the fix."""


def _mlflow_transient(exc: BaseException) -> bool:
    """A server away (no connection, a timeout, a 5xx), or a SQLite store locked past MLflow's busy wait."""
    import requests
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout | ConnectionError):
        return True
    if isinstance(exc, RestException):
        return exc.get_http_status_code() >= 500
    failed = re.search(r"API request to .* failed with (\w+ )?(exception|error code 5)|database is locked", str(exc))
    return isinstance(exc, MlflowException) and bool(failed)


def redact(text: str) -> str:
    """Replace the password of any URL (scheme://user:password@host) or password= parameter by ***."""
    text = _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", str(text))
    return _PASSWORD_PARAM.sub(r"\g<head>***", text)


def sqlalchemy_url(url: str) -> str:
    """postgresql:// -> postgresql+psycopg2:// (SQLAlchemy 2.1 defaults to psycopg 3; we ship psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def flat_params(cfg: DictConfig) -> dict[str, str]:
    """The resolved config flattened to dotted keys (MLflow params), with URL passwords redacted."""
    out: dict[str, str] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            out[prefix] = redact(str(node))[:6000]

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when a tracking server is down."""
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).read()
        except (urllib.error.URLError, OSError) as exc:
            raise TrackingError(
                f"MLflow tracking server {redact(uri)} is not reachable ({exc}): start it or set tracking.tracking_uri"
            ) from None
    elif uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(
                f"cannot create {db.parent} for the MLflow store ({exc.strerror}): make it "
                "writable or set paths.mlruns_dir"
            ) from None
        if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            raise TrackingError(f"the MLflow store {db} is not writable: fix its permissions or set paths.mlruns_dir")


def open_client(uri: str):
    """A plain MLflow client on a reachable store (read side: export and pick)."""
    from mlflow import MlflowClient

    check_reachable(uri)
    return MlflowClient(tracking_uri=uri)


VIEW_TAG = "mlflow.sharedViewState."  # MLflow 3.17's saved runs-table views: one experiment tag per view


def run_experiment(uri: str, run_id: str) -> str | None:
    """The experiment id of a run; None when the store does not have it."""
    from mlflow.exceptions import MlflowException

    try:
        return open_client(sqlalchemy_url(uri)).get_run(run_id).info.experiment_id
    except MlflowException:
        return None


def save_view(uri: str, experiment_id: str, key: str, name: str, state: dict) -> bool:
    """Store a named runs-table view (filter, sort, columns) where MLflow 3.17's UI reads it, the experiment tag
    mlflow.sharedViewState.<key>; `#/experiments/<id>/runs?viewStateShareKey=<key>` opens it. False: not stored."""
    from mlflow.exceptions import MlflowException

    client = open_client(sqlalchemy_url(uri))
    text = json.dumps(state, sort_keys=True)
    try:
        old = json.loads(client.get_experiment(experiment_id).tags.get(VIEW_TAG + key) or "{}")
        if old.get("state") == text and old.get("name") == name:
            return True
        now = int(time.time() * 1000)
        envelope = {"name": name, "createdAt": old.get("createdAt", now), "updatedAt": now, "state": text}
        client.set_experiment_tag(experiment_id, VIEW_TAG + key, json.dumps(envelope))
        return True
    except (MlflowException, ValueError) as exc:
        log.warning("could not save the MLflow view %s: %s", key, redact(str(exc).splitlines()[0] if str(exc) else exc))
        return False


class Tracker:
    """An MLflow client bound to one experiment. A server that cannot be reached is one error at once, or with
    `wait` (a launcher's worker: the launcher reached it), an outage waited for within tracking.retry_window_s."""

    def __init__(self, tracking: DictConfig, wait: bool = False):
        logging.getLogger("alembic").setLevel(logging.WARNING)
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.uri = sqlalchemy_url(str(tracking.tracking_uri))
        if not (wait and self.uri.startswith(("http://", "https://"))):  # a server's outage: retried below
            check_reachable(self.uri)
        # the retry window is ours: MLflow's own retries (7, backoff 2: minutes per call) would hide it
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        self.retry = Retrying(
            f"MLflow tracking server {redact(self.uri)}",
            float(tracking.get("retry_window_s", 120)),
            _mlflow_transient,
            "start it again, then run the same command to resume (the study is intact)",
            redact,
        )
        self.client = Retried(MlflowClient(tracking_uri=self.uri), self.retry)
        name = str(tracking.experiment)
        try:
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                location = None
                if tracking.get("artifact_root") and "://" not in self.uri.replace("sqlite:///", ""):
                    Path(tracking.artifact_root).mkdir(parents=True, exist_ok=True)
                    location = Path(tracking.artifact_root).resolve().as_uri()
                try:
                    self.experiment_id = self.client.create_experiment(name, artifact_location=location)
                except MlflowException:  # another worker created it first
                    self.experiment_id = self.client.get_experiment_by_name(name).experiment_id
            else:
                self.experiment_id = exp.experiment_id
        except MlflowException as exc:
            raise TrackingError(f"MLflow store {redact(self.uri)} failed: {redact(str(exc).splitlines()[0])}") from None

    def start_run(self, name: str, tags: dict[str, str] | None = None, parent_run_id: str | None = None) -> str:
        tags = {k: redact(str(v)) for k, v in (tags or {}).items()}
        tags.setdefault("code_version", code_version())
        if "CUDA_VISIBLE_DEVICES" in os.environ:  # the GPU(s) this worker was given (search/workers.py)
            tags.setdefault("cuda_visible_devices", os.environ["CUDA_VISIBLE_DEVICES"])
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def reopen(self, run_id: str) -> bool:
        """Mark an existing run RUNNING again; False when MLflow no longer has it."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
            self.client.update_run(run_id, status="RUNNING")
            return True
        except MlflowException:
            return False

    def log_batch(self, run_id: str, params=None, metrics=(), tags=None, step: int = 0) -> None:
        """Params, metrics ({key: value} or a list of Metric) and tags in as few requests as MLflow allows
        (per request: 100 params, 100 tags, 1000 entries in all)."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        ps = [Param(k, redact(str(v))[:6000]) for k, v in (params or {}).items()]
        given = metrics.items() if isinstance(metrics, dict) else None
        ms = [Metric(k, float(v), now, step) for k, v in given] if given is not None else list(metrics)
        ts = [RunTag(k, redact(str(v))) for k, v in (tags or {}).items()]
        while ps or ms or ts:
            p, t = ps[:100], ts[:100]
            m = ms[: 1000 - len(p) - len(t)]
            ps, ts, ms = ps[len(p) :], ts[len(t) :], ms[len(m) :]
            self.client.log_batch(run_id, params=p, metrics=m, tags=t, synchronous=True)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        self.log_batch(run_id, params=params)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        self.log_batch(run_id, metrics=metrics, step=step)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.log_batch(run_id, tags=tags)

    def log_table(self, run_id: str, df: pd.DataFrame, path: str) -> None:
        self.client.log_text(run_id, frame_csv(df, "%.4f"), path)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)


def log_result(tracker: Tracker, run_id: str, cfg: DictConfig, result, test_metrics: bool = True, params=None) -> None:
    """Everything one run leaves in MLflow: config (+ `params`), metrics, tags, per-class tables, class
    counts, predictions, the tau curve; one batch of values and one folder of artifacts (a trial's bookkeeping
    was ~17 requests).

    test_metrics=False (a study's trials): no test metric or test table is shown, so nobody picks by test;
    the test predictions are kept as an artifact for the export, which scores the exported points only."""
    from mlflow.entities import Metric

    splits, now = result.splits, int(time.time() * 1000)
    shown = {k: v for k, v in result.metrics.items() if test_metrics or not k.startswith("test_")}
    metrics = [Metric(k, float(v), now, 0) for k, v in shown.items()]
    curve = getattr(result, "tau_curve", None)
    if curve is not None:  # every post-hoc tau of this fit, at no cost: metric histories (step = 100 x tau)
        steps = [round(100 * t) for t in curve.posthoc_tau]  # that the run's charts draw
        metrics += [
            Metric(f"tau_curve_{m}", v, now, t) for m in curve.columns[1:] for v, t in zip(curve[m], steps, strict=True)
        ]
    tags = {"data_fingerprint": splits.fingerprint, "model": cfg.model.name, "data": cfg.data.name}
    tags.update(loss=cfg.loss.name, weighting=cfg.weighting.scheme)
    if "fit_converged" in result.metrics:
        tags["converged"] = "true" if result.metrics["fit_converged"] else "false"
    tracker.log_batch(run_id, {**flat_params(cfg), **(params or {})}, metrics, tags)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for split, table in result.per_class.items():
            if test_metrics or split != "test":
                (folder / f"per_class_{split}.csv").write_text(frame_csv(table, "%.4f"), encoding="utf-8")
        if result.predictions:  # what the export re-scores (bootstrap intervals, classes gained and lost)
            np.savez_compressed(
                folder / "predictions.npz",
                **{f"{s}_pred": p.astype(np.int16) for s, p in result.predictions.items()},
                **{f"{s}_true": splits.labels[s].astype(np.int16) for s in result.predictions},
            )
        if curve is not None:
            (folder / "tau_curve.csv").write_text(frame_csv(curve, "%.4f"), encoding="utf-8")
        counts = dict(zip(splits.class_names, splits.train_counts.tolist(), strict=True))
        classes = {
            "train_class_counts": counts,
            "split_sizes": splits.info,
            "fit": {k: v for k, v in result.info.items() if k.startswith("fit_")},
            "class_weights": result.info.get("class_weights"),
        }
        (folder / "classes.json").write_text(redact(json.dumps(classes, indent=2, default=str)))
        tracker.client.log_artifacts(run_id, str(folder))


@contextmanager
def restored_tracking_uri():
    """mlflow.set_tracking_uri (optuna-integration's MLflowCallback calls it) undone on exit, env var included."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None unsets mlflow's own copy and MLFLOW_TRACKING_URI
