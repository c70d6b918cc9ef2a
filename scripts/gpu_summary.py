"""One study's outcome as one JSON line, for the GPU scripts' session logs (scripts/gpu_finetune.sh, gpu_ray.sh).

    python scripts/gpu_summary.py STUDY OVERRIDES...

Trials by state, the span from the first trial's start to the last one's end, the median complete trial's
seconds, trials by the host and Ray node they ran on (the trials' runs' tags), and the front.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter


def main() -> None:
    import mlflow
    import optuna

    from sweep.config import load_config
    from sweep.search.pareto import front
    from sweep.search.storage import open_storage

    name, overrides = sys.argv[1], sys.argv[2:]
    cfg = load_config(overrides)
    study = optuna.load_study(study_name=name, storage=open_storage(cfg))
    states = Counter(t.state.name for t in study.trials)
    secs = [t.user_attrs["seconds"] for t in study.trials if "seconds" in t.user_attrs]
    ended = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    span = 0.0
    if ended:
        span = (max(t.datetime_complete for t in ended) - min(t.datetime_start for t in ended)).total_seconds()
    mlflow.set_tracking_uri(cfg.tracking.tracking_uri)
    runs = mlflow.search_runs(
        experiment_names=[cfg.tracking.experiment],
        filter_string=f"tags.kind = 'trial' and tags.study_name = '{name}'",
        output_format="list",
    )
    where = Counter(f"{r.data.tags.get('host', '?')}/{r.data.tags.get('ray_node_id', '-')[:12]}" for r in runs)
    print(
        json.dumps(
            {
                "study": name,
                **dict(sorted(states.items())),
                "trials_span_s": round(span, 1),
                "median_complete_trial_s": statistics.median(secs) if secs else None,
                "runs_by_host_node": dict(where),
                "front": [[t.number, round(t.values[0], 4), round(t.values[1], 4), t.params] for t in front(study)],
            }
        )
    )


if __name__ == "__main__":
    main()
