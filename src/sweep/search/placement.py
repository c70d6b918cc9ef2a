"""Where a trial ran: its host, its Ray node and the GPU(s) its worker was given (MLflow tags of every trial run),
and the count of a study's trials by Ray node that a sweep on Ray prints at its end."""

from __future__ import annotations

import os
import socket
from collections import Counter

import optuna

from sweep.tracking import Tracker

NODE_ENV = "SWEEP_RAY_NODE_ID"  # set by the Ray launcher (search/ray_workers.py) for the worker it starts


def placement_tags(environ=os.environ) -> dict[str, str]:
    """host always; ray_node_id on a Ray worker; cuda_visible_devices when the worker was given GPUs (or none:
    an empty value, a CPU worker on a GPU node)."""
    tags = {"host": socket.gethostname()}
    if environ.get(NODE_ENV):
        tags["ray_node_id"] = environ[NODE_ENV]
    if "CUDA_VISIBLE_DEVICES" in environ:
        tags["cuda_visible_devices"] = environ["CUDA_VISIBLE_DEVICES"]
    return tags


def trials_by_node(study: optuna.Study, tracker: Tracker) -> dict[tuple[str, str], Counter]:
    """(ray_node_id, host) -> the states of the study's trials whose run carries those tags; trials run by the
    local launcher count under ("", host)."""
    name = study.study_name.replace("'", "\\'")
    runs = tracker.client.search_runs(
        [tracker.experiment_id], f"tags.kind = 'trial' and tags.study_name = '{name}'", max_results=50_000
    )
    where = {int(r.data.tags.get("trial", -1)): (r.data.tags.get("ray_node_id", ""), r.data.tags.get("host", "?"))
             for r in runs}  # fmt: skip
    out: dict[tuple[str, str], Counter] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state.is_finished() and t.number in where:
            out.setdefault(where[t.number], Counter())[t.state.name.lower()] += 1
    return out


def node_summary(counts: dict[tuple[str, str], Counter]) -> str:
    """One line: how many trials completed (and failed) on each node, most first."""
    parts = []
    for (node, host), c in sorted(counts.items(), key=lambda kv: (-kv[1]["complete"], kv[0])):
        where = f"node {node[:12]} ({host})" if node else f"{host} (local)"
        failed = f", {c['fail']} failed" if c["fail"] else ""
        parts.append(f"{where}: {c['complete']} complete{failed}")
    return "trials by Ray node: " + ("; ".join(parts) if parts else "none")
