"""`make bench ARGS="grid=1"`: how a sweep's cost grows with classes and texts, so a user can predict it; and
the timed harness sweep in a fresh root that both benchmarks run (timed_sweep).

For each (classes, texts) cell of the Zipf scale fixture: first-run featurization, then a short harness sweep
(converged fits, fresh stores); prints the cold fit, the median warm fit and the median seconds per trial.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.trial import FrozenTrial

from sweep.config import load_config
from sweep.data.splits import Splits, load_splits

CLASSES = (8, 32, 113)
TEXTS = (10_000, 30_000, 58_000)


@dataclass
class TimedSweep:
    root: Path  # the temporary root: stores and caches, gone when the with-block ends
    cfg: DictConfig
    splits: Splits
    n_features: int
    featurize_s: float  # first-run featurization, no cache
    wall_s: float  # the harness sweep, start-up and final plot / CSV included
    done: list[FrozenTrial]  # its complete trials


@contextmanager
def timed_sweep(overrides: list[str], data_dir: str, trials: int, what: str) -> Iterator[TimedSweep]:
    """In a fresh temporary root (the data directory shared): time the first-run featurization, then a harness
    sweep of `trials` trials (study "bench", fresh Optuna journal and MLflow store)."""
    from sweep.cli import main as cli_main
    from sweep.data.features import featurize
    from sweep.memo import CACHE
    from sweep.search.storage import open_storage

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        common = [*overrides, f"paths.root={root}", f"paths.data_dir={data_dir}", f"paths.cache_dir={root}/cache"]
        cfg = load_config(common)
        splits = load_splits(cfg.data, cfg.paths.data_dir)
        CACHE.clear("data.features.memory")  # time the featurization itself
        start = time.perf_counter()
        feats, _ = featurize(splits, cfg.model, cfg.paths.cache_dir)
        feat_s = time.perf_counter() - start
        start = time.perf_counter()
        if cli_main(["sweep", *common, f"sweep.n_trials={trials}", "sweep.study_name=bench", "sweep.progress=false"]):
            raise RuntimeError(f"the benchmark sweep {what} failed: see the error above")
        wall = time.perf_counter() - start
        study = optuna.load_study(study_name="bench", storage=open_storage(cfg))
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        yield TimedSweep(root, cfg, splits, feats["train"].shape[1], feat_s, wall, done)


def _cell(overrides: list[str], data_dir: str, classes: int, texts: int, trials: int) -> dict:
    cell = [*overrides, "data=synthetic", f"data.n_classes={classes}", f"data.n={texts}"]
    with timed_sweep(cell, data_dir, trials, f"at {classes} classes x {texts} texts") as run:
        done = run.done
    fits = [t.user_attrs["metrics"] for t in done if t.user_attrs.get("logits_cache") == "trained"]
    warm = [f["fit_seconds"] for f in fits[1:]]
    return {
        "classes": classes,
        "texts": texts,
        "features": run.n_features,
        "featurize_s": run.featurize_s,
        "cold_s": fits[0]["fit_seconds"],
        "cold_it": int(fits[0]["fit_iterations"]),
        "warm_s": statistics.median(warm) if warm else float("nan"),
        "warm_it": statistics.median(f["fit_iterations"] for f in fits[1:]) if warm else float("nan"),
        "trial_s": statistics.median((t.datetime_complete - t.datetime_start).total_seconds() for t in done),
        "wall_s": run.wall_s,
        "unconverged": sum(f.get("fit_converged") == 0 for f in fits),
        "trials": len(done),
    }


def cost_grid(overrides: list[str], data_dir: str, trials: int) -> list[dict]:
    """Every cell of CLASSES x TEXTS; prints each row as it finishes (a long run shows progress)."""
    print(
        "| classes | texts | TF-IDF features | featurize s | cold fit s (iterations) | warm fit s (iterations) "
        "| median s/trial | 50 trials ~min | not converged |",
        flush=True,
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    rows = []
    for texts in TEXTS:
        for classes in CLASSES:
            r = _cell(overrides, data_dir, classes, texts, trials)
            rows.append(r)
            est = (r["cold_s"] + 49 * r["warm_s"]) / 60  # one cold fit, the rest warm: an estimate, labelled so
            print(
                f"| {classes} | {texts:,} | {r['features']:,} | {r['featurize_s']:.1f} | {r['cold_s']:.1f} "
                f"({r['cold_it']}) | {r['warm_s']:.1f} ({r['warm_it']:.0f}) | {r['trial_s']:.1f} | {est:.1f} "
                f"| {r['unconverged']} of {r['trials']} |",
                flush=True,
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{trials} trials per cell (3 enqueued baselines, the rest TPE); '50 trials ~min' = cold fit + 49 "
        f"median warm fits, an estimate from these measurements; peak RSS {peak:.0f} MiB",
        flush=True,
    )
    return rows


def grid_command(overrides: list[str], trials: int) -> None:
    base = load_config(overrides)
    if base.model.name != "tfidf_linear":
        raise SystemExit("the cost grid measures the tfidf_linear head: use model=tfidf_linear")
    cost_grid(overrides, str(Path(base.paths.data_dir).resolve()), trials)
