"""The hypervolume of a front (the area of accuracy x macro-F1 it dominates above a reference point, the
majority-class baseline), and two studies' validation fronts re-scored on test and compared by it, with a paired
bootstrap interval of the difference: `python -m sweep.report.hypervolume STUDY_A STUDY_B [overrides]`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import numpy as np
import optuna

from sweep.models.metrics import bootstrap, evaluate, interval


def hypervolume_2d(points: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """Area dominated by `points` (both coordinates maximized) and bounded below by `ref`."""
    area, top = 0.0, float(ref[1])
    for x, y in sorted(((float(p[0]), float(p[1])) for p in points), reverse=True):
        if x > ref[0] and y > top:
            area += (x - ref[0]) * (y - top)
            top = y
    return area


def _test_predictions(study: optuna.Study) -> tuple[dict[str, np.ndarray], np.ndarray, object]:
    """The study's validation front, each trial re-run from its own overrides (its logits come from the cache)."""
    from sweep.config import load_config
    from sweep.models.train import run
    from sweep.search.pareto import front

    preds, splits = {}, None
    for t in front(study):
        result = run(load_config(t.user_attrs["overrides"]))
        preds[f"{study.study_name}/{t.number}"] = result.predictions["test"]
        splits = result.splits
    if splits is None:  # no front yet: an empty one, on the study's data
        from sweep.data.splits import load_splits

        cfg = load_config(study.trials[0].user_attrs["overrides"])
        splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    return preds, splits.labels["test"], splits


def compare(a: optuna.Study, b: optuna.Study, n_boot: int = 1000) -> dict:
    """Test hypervolume of each study's front with 95% intervals, and of b - a, from the same resamples."""
    pa, y, splits = _test_predictions(a)
    pb, yb, _ = _test_predictions(b)
    if not np.array_equal(y, yb):
        raise ValueError(f"studies {a.study_name!r} and {b.study_name!r} were run on different test splits")
    majority = np.full_like(y, int(np.argmax(splits.train_counts)))
    scores, _ = evaluate(y, majority, splits.class_names)
    ref = (scores["accuracy"], scores["macro_f1"])
    samples = bootstrap(y, {**pa, **pb}, splits.num_classes, n_boot=n_boot)
    out = {"reference": {"accuracy": ref[0], "macro_f1": ref[1]}, "n_boot": n_boot}
    volumes = {}
    for name, preds in ((a.study_name, pa), (b.study_name, pb)):
        points = [evaluate(y, p, splits.class_names)[0] for p in preds.values()]
        point = hypervolume_2d([(s["accuracy"], s["macro_f1"]) for s in points], ref)
        per = np.array(
            [
                hypervolume_2d([(samples[k]["accuracy"][i], samples[k]["macro_f1"][i]) for k in preds], ref)
                for i in range(n_boot)
            ]
        )
        volumes[name] = per
        out[name] = {"front": len(preds), "test_hypervolume": point, "ci95": interval(per)}
    diff = volumes[b.study_name] - volumes[a.study_name]
    out["b_minus_a"] = {"mean": float(diff.mean()), "ci95": interval(diff), "p_b_greater": float((diff > 0).mean())}
    return out


def main(argv: list[str]) -> int:
    from sweep.config import load_config
    from sweep.search.storage import open_storage

    if len(argv) < 2:
        print("usage: python -m sweep.report.hypervolume STUDY_A STUDY_B [hydra overrides]", file=sys.stderr)
        return 2
    storage = open_storage(load_config(argv[2:]))
    studies = [optuna.load_study(study_name=name, storage=storage) for name in argv[:2]]
    print(json.dumps(compare(*studies), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
