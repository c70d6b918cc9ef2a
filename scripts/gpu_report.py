"""What a GPU session leaves behind, as files: the MLflow runs of a study, its trial times, and the
decoupled-vs-full comparison with bootstrap intervals. Run from the repository root, after the sweeps:

    python scripts/gpu_report.py runs STUDY [hydra overrides]       -> runs_STUDY.csv, timing_STUDY.json
    python scripts/gpu_report.py compare ALPHAS FULL DECOUPLED      -> decoupled_vs_full.{csv,md}
        (FULL / DECOUPLED: comma-separated hydra overrides of the two models, e.g.
         model=minilm_finetune,model.pretrained=DIR  model=minilm_decoupled,model.finetune.pretrained=DIR)
    python scripts/gpu_report.py l2 [hydra overrides]               -> l2_path.csv (the head's l2 on validation)

Writes under $REPORT_DIR (default: reports/).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(os.environ.get("REPORT_DIR", "reports"))


def runs(study_name: str, overrides: list[str]) -> None:
    """One row per MLflow run of the study (parent first), with the trial's times from Optuna."""
    import optuna
    from mlflow import MlflowClient

    from sweep.config import load_config
    from sweep.search.storage import open_storage

    cfg = load_config(overrides)
    study = optuna.load_study(study_name=study_name, storage=open_storage(cfg))
    client = MlflowClient(cfg.tracking.tracking_uri)
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    kids = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=5000
    )
    trials = {t.number: t for t in study.trials}
    rows = []
    for r in [parent, *sorted(kids, key=lambda k: int(k.data.tags.get("trial", -1)))]:
        n = int(r.data.tags["trial"]) if "trial" in r.data.tags else None
        t = trials.get(n)
        m, p = r.data.metrics, r.data.params
        rows.append(
            {
                "run_name": r.info.run_name,
                "run_id": r.info.run_id,
                "status": r.info.status,
                "kind": r.data.tags.get("kind"),
                "trial": n,
                "pareto": r.data.tags.get("pareto", ""),
                "alpha": p.get("weighting.alpha"),
                "posthoc_tau": p.get("loss.posthoc_tau"),
                "val_accuracy": m.get("val_accuracy"),
                "val_macro_f1": m.get("val_macro_f1"),
                "fit_converged": m.get("fit_converged"),
                "fit_iterations": m.get("fit_iterations"),
                "trial_seconds": None
                if t is None or t.datetime_complete is None
                else (t.datetime_complete - t.datetime_start).total_seconds(),
                "logits_cache": None if t is None else t.user_attrs.get("logits_cache"),
                "error": r.data.tags.get("error", ""),
            }
        )
    OUT.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table["trial"] = table["trial"].astype("Int64")
    table.to_csv(OUT / f"runs_{study_name}.csv", index=False)
    done = [t for t in study.trials if t.datetime_complete is not None and t.state.name == "COMPLETE"]
    secs = np.array([(t.datetime_complete - t.datetime_start).total_seconds() for t in done])
    starts = [t.datetime_start for t in study.trials if t.datetime_start]
    first_done = min((t.datetime_complete for t in done), default=None)
    late = np.array(
        [
            (t.datetime_complete - t.datetime_start).total_seconds()
            for t in done
            if first_done is not None and t.datetime_start >= first_done
        ]
    )
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete]
    timing = {
        "study": study_name,
        "complete": len(done),
        "failed": sum(t.state.name == "FAIL" for t in study.trials),
        "first_trial_s": float(secs[0]) if len(secs) else None,
        "other_trials_median_s": float(np.median(secs[1:])) if len(secs) > 1 else None,
        "other_trials_max_s": float(secs[1:].max()) if len(secs) > 1 else None,
        "trials_span_s": (max(ends) - min(starts)).total_seconds() if ends else None,
        # trials started once a first trial had finished (with several workers, the others wait for
        # the one that fine-tunes): the steady per-trial cost
        "started_after_first_done_median_s": float(np.median(late)) if len(late) else None,
        "started_after_first_done": len(late),
        "trained": sum(t.user_attrs.get("logits_cache") == "trained" for t in done),
        "front": [t.number for t in study.best_trials],
    }
    (OUT / f"timing_{study_name}.json").write_text(json.dumps(timing, indent=1))
    print(json.dumps(timing))


def _interval_text(samples: np.ndarray, point: float) -> str:
    from sweep.models.metrics import interval

    lo, hi = interval(samples)
    return f"{point:.3f} [{lo:.3f}, {hi:.3f}]"


def compare(alphas: list[float], full: list[str], decoupled: list[str]) -> None:
    """Per alpha (post-hoc tau 0): the full fine-tune and the decoupled head, validation and test accuracy and
    macro-F1 with 95% bootstrap intervals (plain resampling of the split), and the paired interval of
    decoupled - full."""
    from sweep.config import load_config
    from sweep.models.metrics import bootstrap, evaluate, interval
    from sweep.models.train import run

    rows, md = [], []
    for alpha in alphas:
        preds, labels, seconds = {}, {}, {}
        for name, base in (("full", full), ("decoupled", decoupled)):
            cfg = load_config([*base, f"++weighting.alpha={alpha!r}", "++loss.posthoc_tau=0.0"])
            t0 = time.perf_counter()
            result = run(cfg)
            seconds[name] = (time.perf_counter() - t0, result.info.get("logits_cache"))
            for split in ("val", "test"):
                preds[(name, split)] = result.predictions[split]
                labels[split] = result.splits.labels[split]
            num_classes = result.splits.num_classes
            names = result.splits.class_names
        for split in ("val", "test"):
            y = labels[split]
            samples = bootstrap(y, {n: preds[(n, split)] for n in ("full", "decoupled")}, num_classes)
            point = {n: evaluate(y, preds[(n, split)], names)[0] for n in ("full", "decoupled")}
            for metric in ("accuracy", "macro_f1"):
                diff = samples["decoupled"][metric] - samples["full"][metric]
                lo, hi = interval(diff)
                rows.append(
                    {
                        "alpha": alpha,
                        "split": split,
                        "metric": metric,
                        "full": point["full"][metric],
                        "full_ci": interval(samples["full"][metric]),
                        "decoupled": point["decoupled"][metric],
                        "decoupled_ci": interval(samples["decoupled"][metric]),
                        "diff": point["decoupled"][metric] - point["full"][metric],
                        "diff_ci": (lo, hi),
                        "full_seconds": seconds["full"][0],
                        "full_logits": seconds["full"][1],
                        "decoupled_seconds": seconds["decoupled"][0],
                        "decoupled_logits": seconds["decoupled"][1],
                    }
                )
                md.append(
                    f"| {alpha:g} | {split} | {metric.replace('_', '-')} | "
                    f"{_interval_text(samples['full'][metric], point['full'][metric])} | "
                    f"{_interval_text(samples['decoupled'][metric], point['decoupled'][metric])} | "
                    f"{point['decoupled'][metric] - point['full'][metric]:+.3f} [{lo:+.3f}, {hi:+.3f}] |"
                )
        print(
            f"alpha {alpha}: full {seconds['full'][0]:.1f}s ({seconds['full'][1]}), decoupled "
            f"{seconds['decoupled'][0]:.1f}s ({seconds['decoupled'][1]})",
            flush=True,
        )
    OUT.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(OUT / "decoupled_vs_full.csv", index=False)
    head = [
        "| alpha | split | metric | full fine-tune [95% CI] | decoupled [95% CI] | decoupled - full [paired 95% CI] |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    (OUT / "decoupled_vs_full.md").write_text("\n".join([*head, *md]) + "\n")
    print("\n".join([*head, *md]))


def l2(overrides: list[str]) -> None:
    from sweep.config import load_config
    from sweep.models.select_l2 import GRID, best_l2, l2_path

    table = l2_path(load_config(overrides), GRID[-5:])  # 1e-5 ... 1e-3: the neighbourhood of the default
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "l2_path.csv", index=False)
    print(table.to_string(index=False), f"\nlowest validation log-loss at l2 = {best_l2(table):.3g}")


def main(argv: list[str]) -> None:
    command, rest = argv[0], argv[1:]
    if command == "runs":
        runs(rest[0], rest[1:])
    elif command == "compare":
        compare(
            [float(a) for a in rest[0].split(",")],
            [o for o in rest[1].split(",") if o],
            [o for o in rest[2].split(",") if o],
        )
    elif command == "l2":
        l2(rest)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
