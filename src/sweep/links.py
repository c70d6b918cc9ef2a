"""Links into the MLflow UI: a study's experiment in the runs view ("Model training" mode, not MLflow 3's
GenAI overview), filtered to the Pareto front by default."""

from __future__ import annotations

from urllib.parse import quote

FRONT_FILTER = 'tags.pareto = "true"'


def runs_view_url(experiment_id: str, base_url: str = "http://127.0.0.1:5000",
                  search_filter: str | None = FRONT_FILTER) -> str:
    """`<base>/#/experiments/<id>/runs?workflowType=machine_learning&searchFilter=...` (the filter URL-quoted)."""
    query = "workflowType=machine_learning"
    if search_filter:
        query += "&searchFilter=" + quote(search_filter, safe="")
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
