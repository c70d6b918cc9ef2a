"""`make bench`: speed figures of the harness on the default data, each measured in this run.

1. first-run featurization (TF-IDF fit + transform of every split, no cache);
2. a default sweep of `trials` trials (fresh Optuna journal and MLflow store): median s/trial, wall time;
3. the naive way for comparison, same search space, sampler and seed: every trial re-vectorizes from
   scratch and fits scikit-learn's LogisticRegression, logged with optuna-integration's MLflowCallback;
4. throughput of 2 local workers vs 1 on one study.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna

from sweep.config import load_config
from sweep.data import load_splits
from sweep.losses import class_weights, log_prior, posthoc_predict
from sweep.metrics import evaluate


def _args(argv: list[str]) -> tuple[dict[str, int], list[str]]:
    opts = {"trials": 50, "naive_trials": 50, "worker_trials": 16}
    rest = []
    for a in argv:
        k, _, v = a.partition("=")
        if k in opts:
            opts[k] = int(v)
        else:
            rest.append(a)
    return opts, rest


def _trial_seconds(study: optuna.Study) -> list[float]:
    return [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials
            if t.datetime_complete and t.datetime_start]


def _best(study: optuna.Study) -> tuple[float, float]:
    vals = np.array([t.values for t in study.trials if t.values])
    return float(vals[:, 0].max()), float(vals[:, 1].max())


def naive_sweep(overrides: list[str], root: Path, n_trials: int) -> tuple[optuna.Study, float]:
    """The reference: re-vectorize and fit LogisticRegression in every trial, MLflowCallback for tracking."""
    from optuna_integration.mlflow import MLflowCallback
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    cfg = load_config(overrides)
    splits = load_splits(cfg.data, cfg.paths.data_dir)
    counts = splits.train_counts

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        alpha = trial.suggest_float("weighting.alpha", 0.0, 1.0)
        tau = trial.suggest_float("loss.posthoc_tau", 0.0, 2.0)
        vec = TfidfVectorizer(max_features=50000, ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        x_train, x_val = vec.fit_transform(splits.texts["train"]), vec.transform(splits.texts["val"])
        w = class_weights(counts, "power", alpha)
        clf = LogisticRegression(C=10.0, max_iter=1000, class_weight=dict(enumerate(w)))
        clf.fit(x_train, splits.labels["train"])
        pred = posthoc_predict(clf.decision_function(x_val), log_prior(counts), tau)
        m, _ = evaluate(splits.labels["val"], pred, splits.class_names)
        return m["accuracy"], m["macro_f1"]

    uri = f"sqlite:///{root}/naive-mlflow.db"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        callback = MLflowCallback(tracking_uri=uri, metric_name=["val_accuracy", "val_macro_f1"])
        study = optuna.create_study(directions=["maximize", "maximize"], study_name="naive",
                                    sampler=optuna.samplers.TPESampler(seed=int(cfg.seed), multivariate=True))
        for fixed in ({"weighting.alpha": 0.0, "loss.posthoc_tau": 0.0}, {"weighting.alpha": 0.5,
                      "loss.posthoc_tau": 0.0}, {"weighting.alpha": 0.0, "loss.posthoc_tau": 1.0}):
            study.enqueue_trial(fixed)
        start = time.perf_counter()
        study.optimize(objective, n_trials=n_trials, callbacks=[callback])
    return study, time.perf_counter() - start


def bench_command(argv: list[str]) -> None:
    from sweep.cli import main as cli_main
    from sweep.features import _MEMORY, featurize
    from sweep.study import open_storage

    opts, overrides = _args(argv)
    base = load_config(overrides)
    data_dir = base.paths.data_dir  # share the downloaded data; everything else goes to a temp root
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        common = [*overrides, f"paths.root={root}", f"paths.data_dir={data_dir}", f"paths.cache_dir={root}/cache"]
        cfg = load_config(common)
        splits = load_splits(cfg.data, cfg.paths.data_dir)
        _MEMORY.clear()
        _, finfo = featurize(splits, cfg.model, cfg.paths.cache_dir)
        feat_s = finfo["seconds"]

        start = time.perf_counter()
        rc = cli_main(["sweep", *common, f"sweep.n_trials={opts['trials']}", "sweep.study_name=bench",
                       "sweep.progress=false"])
        sweep_wall = time.perf_counter() - start
        if rc:
            raise RuntimeError("the benchmark sweep failed: see the error above")
        study = optuna.load_study(study_name="bench", storage=open_storage(cfg))
        fast = _trial_seconds(study)
        fast_best = _best(study)
        cache_hits = sum(t.user_attrs.get("logits_cache") in ("memory", "disk") for t in study.trials)

        naive_study, naive_wall = naive_sweep(common, root, opts["naive_trials"])
        naive = _trial_seconds(naive_study)
        naive_best = _best(naive_study)

        workers = {}
        for n in (1, 2):
            per = max(1, opts["worker_trials"] // n)
            start = time.perf_counter()
            cli_main(["sweep", *common, f"sweep.n_trials={per}", f"sweep.study_name=workers{n}",
                      f"sweep.workers={n}", f"sweep.seed={100 + n}", "sweep.baselines=null",
                      "sweep.progress=false"])
            workers[n] = (per * n) / (time.perf_counter() - start)

    med_fast, med_naive = statistics.median(fast), statistics.median(naive)
    print()
    print(f"bench on {cfg.data.name} ({splits.info}), model {cfg.model.name}, 2-core figures on this machine")
    print(f"  first-run featurization (TF-IDF fit + transform, no cache) {feat_s:8.2f} s")
    print(f"  harness sweep, {len(fast)} trials: median {med_fast:.3f} s/trial, wall {sweep_wall:.1f} s "
          f"(incl. start-up, final plot/CSV); logits reused in {cache_hits} trials")
    print(f"  naive sweep,   {len(naive)} trials: median {med_naive:.3f} s/trial, wall {naive_wall:.1f} s")
    print(f"  speed-up per trial (median naive / median harness): {med_naive / med_fast:.1f}x")
    print(f"  best val accuracy / macro-F1: harness {fast_best[0]:.4f} / {fast_best[1]:.4f}, "
          f"naive {naive_best[0]:.4f} / {naive_best[1]:.4f}")
    print(f"  local workers: 1 worker {workers[1]:.2f} trials/s, 2 workers {workers[2]:.2f} trials/s "
          f"({workers[2] / workers[1]:.2f}x)")
