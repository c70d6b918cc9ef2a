"""Links into the MLflow UI: a study's experiment in the runs view ("Model training" mode, not MLflow 3's
GenAI overview), opened on a saved view of the study's Pareto front (filter, sort, objective columns)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterable
from urllib.parse import quote, urlsplit, urlunsplit

import optuna
from omegaconf import DictConfig

from sweep.config import ConfigError
from sweep.search.objective import OBJECTIVES
from sweep.search.study import PARENT_ATTR
from sweep.tracking import TrackingError, redact, run_experiment, save_view

FRONT_FILTER = 'tags.pareto = "true"'
UI_HOST, UI_PORT = "127.0.0.1", 5000  # `make ui`'s defaults; the Makefile passes HOST / PORT as SWEEP_UI_HOST / _PORT


def runs_view_url(
    experiment_id: str,
    base_url: str = "http://127.0.0.1:5000",
    search_filter: str | None = FRONT_FILTER,
    view_key: str | None = None,
) -> str:
    """`<base>/#/experiments/<id>/runs?workflowType=machine_learning&searchFilter=...` (the filter URL-quoted).
    With view_key, the saved view replaces the filter: MLflow ignores a view when the URL holds a searchFilter."""
    query = "workflowType=machine_learning"
    if view_key:
        query += "&viewStateShareKey=" + quote(view_key, safe="")
    elif search_filter:
        query += "&searchFilter=" + quote(search_filter, safe="")
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def browser_host(host: str) -> str:
    """The host a browser uses for a server bound to `host` (a wildcard bind: this machine's name)."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"[{host}]" if ":" in host else host


def ui_base_url(tracking_uri: str = "", host: str | None = None, port: int | str | None = None) -> str:
    """Where the store's MLflow UI is: the tracking server itself, else `make ui` on host:port (defaults from
    SWEEP_UI_HOST / SWEEP_UI_PORT, then 127.0.0.1:5000)."""
    if tracking_uri.startswith(("http://", "https://")):  # printed: never the user:password@ of the URL
        parts = urlsplit(tracking_uri)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/")
    host = host or os.environ.get("SWEEP_UI_HOST") or UI_HOST
    port = port or os.environ.get("SWEEP_UI_PORT") or UI_PORT
    return f"http://{browser_host(str(host))}:{port}"


def front_filter(study_name: str) -> str:
    """The front of one study: several studies share an experiment (it is named after task_name)."""
    if '"' in study_name:
        return FRONT_FILTER
    return f'{FRONT_FILTER} and tags.study_name = "{study_name}"'


def front_view(study_name: str, params: Iterable[str], objectives: Iterable[str] = OBJECTIVES) -> dict:
    """The runs-table state of a study's front: filtered, best macro-F1 first, objectives, p_front and searched
    values as columns (MLflow's column keys: metrics.`name`, params.`name`, tags.`name`)."""
    objectives = list(objectives)
    best = "val_macro_f1" if "val_macro_f1" in objectives else objectives[-1]
    return {
        "searchFilter": front_filter(study_name),
        "orderByKey": f"metrics.`{best}`",
        "orderByAsc": False,
        "selectedColumns": [f"metrics.`{m}`" for m in [*objectives, "p_front"]]
        + [f"params.`{p}`" for p in params]
        + ["tags.`pareto`"],
    }


def view_key(study_name: str) -> str:
    """`pareto-<study>`, made URL- and tag-safe (a hash keeps two names that slug alike apart)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", study_name).strip("-")[:80]
    if slug != study_name:
        slug += "-" + hashlib.sha1(study_name.encode()).hexdigest()[:6]
    return f"pareto-{slug}"


def study_link(cfg: DictConfig, study: optuna.Study, base_url: str | None = None) -> str:
    """The link that opens the study's Pareto front in the MLflow runs view. Saves the view (an experiment tag)
    on the way; where it cannot, the link carries the filter alone. A one-line error when there is no run."""
    name = study.study_name
    parent = study.user_attrs.get(PARENT_ATTR)
    if not parent:
        raise ConfigError(f"study {name!r} has no MLflow parent run yet: run `make sweep` on it first")
    uri = str(cfg.tracking.tracking_uri)
    experiment = run_experiment(uri, parent)
    if experiment is None:
        raise TrackingError(
            f"the MLflow parent run {parent} of study {name!r} is not in {redact(uri)}: set "
            "tracking.tracking_uri to the store the sweep logged to"
        )
    params = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
    view = front_view(name, params, study.metric_names or OBJECTIVES)
    base = base_url or ui_base_url(uri)
    if save_view(uri, experiment, view_key(name), f"Pareto front: {name}", view):
        return runs_view_url(experiment, base, view_key=view_key(name))
    return runs_view_url(experiment, base, search_filter=view["searchFilter"])


def link_or_reason(cfg: DictConfig, study: optuna.Study, base_url: str | None = None) -> str:
    """study_link, or "(no link: <why>)": printed after a sweep or an export whose work is done, where a missing
    link is no reason to fail."""
    try:
        return study_link(cfg, study, base_url)
    except (ConfigError, TrackingError) as exc:
        return f"(no link: {exc})"
