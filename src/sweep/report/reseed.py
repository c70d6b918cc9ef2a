"""`make export ARGS="seeds=K"`: each Pareto point re-trained K times, the train/validation split seed and
the model seed moved on by one each time; the mean and sample standard deviation of its test figures."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd

from sweep.config import load_config
from sweep.models.metrics import COMPARED, evaluate

RESEED_KEYS = ("seed", "data.split_seed")  # what is random in a run: the train/validation split and the model


def resplit_reseed(study: optuna.Study, table: pd.DataFrame, runs: int) -> pd.DataFrame:
    """Re-train each Pareto point `runs` times, run k with the train/validation split seed
    `data.split_seed` + k and the model seed `seed` + k (run 0 is the trial itself); mean and sample
    standard deviation of test accuracy and macro-F1 over the runs. The linear head is a deterministic
    convex fit: the split carries its spread. Data without a fixed test file (synthetic, a CSV without
    data.test_path) redraws its test split with the split seed too."""
    from sweep.models.train import run

    trials = {t.number: t for t in study.trials}
    rows = {}
    for n in table["trial"]:
        stored = trials[int(n)].user_attrs["overrides"]
        base = load_config(stored)
        seed, split_seed = int(base.seed), int(base.data.get("split_seed", 0))
        kept = [o for o in stored if o.lstrip("+").partition("=")[0] not in RESEED_KEYS]
        scores = []
        for k in range(runs):
            r = run(load_config([*kept, f"seed={seed + k}", f"++data.split_seed={split_seed + k}"]))
            scores.append(evaluate(r.splits.labels["test"], r.predictions["test"], r.splits.class_names)[0])
        rows[int(n)] = {"resplit_reseed_runs": runs}
        for m in COMPARED:
            values = np.array([s[m] for s in scores])
            rows[int(n)][f"test_{m}_resplit_reseed_mean"] = float(values.mean())
            rows[int(n)][f"test_{m}_resplit_reseed_std"] = float(values.std(ddof=1))
    return pd.DataFrame.from_dict(rows, orient="index")
