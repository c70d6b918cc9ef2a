"""`make bench`: speed of the harness against the naive sweep AT THE SAME ANSWER, each figure measured in
this run.

1. first-run featurization (TF-IDF fit + transform of every split, no cache);
2. a harness sweep of `trials` trials (fresh Optuna journal and MLflow store): median s/trial, wall time;
3. the naive way on the same trials' parameters (every `naive_every`-th): re-vectorize, fit scikit-learn's
   LogisticRegression on the same objective (C = 1 / (2 l2 n), the same class weights, tol = the harness's
   gtol: both stop on max|gradient| <= gtol), log with optuna-integration's MLflowCallback; then the largest
   difference in validation accuracy / macro-F1 between the two sides' trials with the same parameters;
4. what each idea bought (bench/ideas.py): the previous solver, float64 vs float32 products, warm starts.
A failed check (a fit not converged, a difference >= 0.001) prints `bench FAILED: ...` and exits 1.
"""

from __future__ import annotations

import resource
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import optuna

from sweep.bench.cost import grid_command, timed_sweep
from sweep.config import load_config
from sweep.data.splits import load_splits
from sweep.models.losses import class_weights, log_prior, posthoc_predict
from sweep.models.metrics import evaluate
from sweep.tracking import restored_tracking_uri


def _args(argv: list[str]) -> tuple[dict[str, int], list[str]]:
    opts = {"trials": 50, "naive_every": 5, "ideas": 12, "grid": 0}
    rest = []
    for a in argv:
        k, _, v = a.partition("=")
        if k in opts:
            opts[k] = int(v)
        else:
            rest.append(a)
    return opts, rest


def _seconds(t) -> float:
    return (t.datetime_complete - t.datetime_start).total_seconds()


def naive_sweep(cfg, params: list[dict], root: Path) -> tuple[list[dict], float]:
    """The reference: per trial, re-vectorize and fit LogisticRegression; MLflowCallback for tracking."""
    from optuna_integration.mlflow import MLflowCallback
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    splits = load_splits(cfg.data, cfg.paths.data_dir)
    counts, tf, head = splits.train_counts, cfg.model.tfidf, cfg.model.head
    c_equal = 1.0 / (2 * float(head.l2) * len(splits.labels["train"]))  # the same objective as the head's

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        alpha = trial.suggest_float("weighting.alpha", 0.0, 2.0)
        tau = trial.suggest_float("loss.posthoc_tau", 0.0, 5.0)
        vec = TfidfVectorizer(
            max_features=tf.max_features,
            ngram_range=(1, tf.ngram_max),
            min_df=tf.min_df,
            sublinear_tf=tf.sublinear_tf,
            dtype=np.float64,
        )  # float64 like the head's fit
        x_train, x_val = vec.fit_transform(splits.texts["train"]), vec.transform(splits.texts["val"])
        w = class_weights(counts, "power", alpha)
        clf = LogisticRegression(
            C=c_equal, tol=float(head.gtol), max_iter=int(head.max_iter), class_weight=dict(enumerate(w))
        )
        clf.fit(x_train, splits.labels["train"])
        trial.set_user_attr("converged", bool(clf.n_iter_[0] < int(head.max_iter)))
        pred = posthoc_predict(clf.decision_function(x_val), log_prior(counts), tau)
        m, _ = evaluate(splits.labels["val"], pred, splits.class_names)
        return m["accuracy"], m["macro_f1"]

    with warnings.catch_warnings(), restored_tracking_uri():  # MLflowCallback sets the process-wide URI
        warnings.simplefilter("ignore")
        callback = MLflowCallback(
            tracking_uri=f"sqlite:///{root}/naive-mlflow.db", metric_name=["val_accuracy", "val_macro_f1"]
        )
        study = optuna.create_study(directions=["maximize", "maximize"], study_name="naive")
        for p in params:
            study.enqueue_trial(p)
        start = time.perf_counter()
        study.optimize(objective, n_trials=len(params), callbacks=[callback])
    rows = [
        {"params": t.params, "values": t.values, "seconds": _seconds(t), "converged": t.user_attrs["converged"]}
        for t in study.trials
    ]
    return rows, time.perf_counter() - start


def bench_command(argv: list[str]) -> int:
    opts, overrides = _args(argv)
    if opts["grid"]:
        grid_command(overrides, opts["trials"] if opts["trials"] != 50 else 6)
        return 0
    base = load_config(overrides)
    if base.model.name != "tfidf_linear":
        raise SystemExit("make bench compares the tfidf_linear head with scikit-learn: use model=tfidf_linear")
    data_dir = base.paths.data_dir  # share the downloaded data; everything else goes to a temp root
    with timed_sweep(overrides, data_dir, opts["trials"], "bench") as run:
        cfg, splits, done = run.cfg, run.splits, run.done
        trained = [t for t in done if t.user_attrs.get("logits_cache") == "trained"]
        picked = done[:: opts["naive_every"]] if opts["naive_every"] > 0 else []
        naive, naive_wall = naive_sweep(cfg, [t.params for t in picked], run.root) if picked else ([], 0.0)
        ideas = []
        if opts["ideas"] > 1:  # ideas=0 skips it (at 113 x 58K one cold fit of the previous solver takes minutes)
            from sweep.bench.ideas import idea_table
            from sweep.data.features import featurize

            feats, _ = featurize(splits, cfg.model, cfg.paths.cache_dir)
            alphas = [t.params["weighting.alpha"] for t in trained][: opts["ideas"]]
            ideas = idea_table(feats, splits, cfg.model.head, alphas, str(cfg.model.head.get("device", "auto")))
    return report(opts, cfg, splits, run, done, trained, picked, naive, naive_wall, ideas)


def report(opts, cfg, splits, run, done, trained, picked, naive, naive_wall, ideas) -> int:
    """Print the figures; exit status 1 when a check fails (not converged, not the same answer)."""
    fast = [_seconds(t) for t in done]
    unconverged = sum(t.user_attrs.get("fit_converged") is False for t in done)
    med_fast = statistics.median(fast)
    amortized = (run.featurize_s + run.wall_s) / len(done)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    failures = []
    print()
    print(
        f"bench on {cfg.data.name} ({splits.info}, {splits.num_classes} classes, {run.n_features:,} features), "
        f"model {cfg.model.name}, l2 {cfg.model.head.l2}, both sides stop at max|gradient| <= {cfg.model.head.gtol}, "
        f"head on {cfg.model.head.get('device', 'auto')}"
    )
    print(f"  first-run featurization (TF-IDF fit + transform, no cache): {run.featurize_s:.1f} s")
    print(
        f"  harness: {len(done)} trials in {run.wall_s:.1f} s wall (start-up and final plot/CSV included), "
        f"{run.featurize_s + run.wall_s:.1f} s with featurization = {(run.featurize_s + run.wall_s) / 60:.2f} min; "
        f"median {med_fast:.3f} s/trial; {len(trained)} fits, {len(done) - len(trained)} reused logits, "
        f"{unconverged} not converged"
    )
    if unconverged:
        failures.append(f"{unconverged} harness fits not converged")
    fits = [t.user_attrs["metrics"] for t in trained if "fit_seconds" in t.user_attrs.get("metrics", {})]
    if fits:
        print(
            f"  harness head fits: cold {fits[0]['fit_seconds']:.1f} s / {fits[0]['fit_iterations']:.0f} iterations; "
            f"warm median {statistics.median(f['fit_seconds'] for f in fits[1:] or fits):.1f} s / "
            f"{statistics.median(f['fit_iterations'] for f in fits[1:] or fits):.0f} iterations; all fits "
            f"{sum(f['fit_iterations'] for f in fits):.0f} iterations in {sum(f['fit_seconds'] for f in fits):.1f} s "
            f"(the rest of the wall: start-up, scoring, bookkeeping)"
        )
    if naive:
        med_naive = statistics.median(r["seconds"] for r in naive)
        diffs = np.abs(np.array([t.values for t in picked]) - np.array([r["values"] for r in naive]))
        n_val = len(splits.labels["val"])
        print(
            f"  naive:   {len(naive)} of those trials' parameters, median {med_naive:.2f} s/trial, wall "
            f"{naive_wall:.1f} s; {sum(not r['converged'] for r in naive)} not converged"
        )
        print(
            f"  speed-up per trial: {med_naive / med_fast:.1f}x (median naive / median harness), "
            f"{med_naive / amortized:.1f}x (median naive / harness wall with featurization per trial)"
        )
        same = diffs.max() < 0.001
        print(
            f"  same answer: largest |difference| on the same parameters: val accuracy {diffs[:, 0].max():.5f}, "
            f"val macro-F1 {diffs[:, 1].max():.5f} (must be < 0.001: {'ok' if same else 'FAILED'}); "
            f"{int(round(diffs[:, 0].max() * n_val))} of {n_val} validation predictions differ at most"
        )
        if not same:
            failures.append(f"not the same answer (largest difference {diffs.max():.5f} >= 0.001)")
        if any(not r["converged"] for r in naive):
            failures.append("a naive fit stopped at its cap")
    for row in ideas:
        if row == ideas[0]:
            print(f"  what each idea buys ({cfg.data.name}; cold = the first alpha, warm = median over the others):")
        print(
            f"    {row['idea']:58s} {row['seconds']:7.2f} s {row['iterations']:6.0f} iterations "
            f"({row['fits']} fits, max|grad| {row['max_grad']:.1e}{'' if row['converged'] else ', NOT converged'})"
        )
    print(f"  peak RSS {peak:.2f} GiB")
    for f in failures:
        print(f"bench FAILED: {f}")
    return 1 if failures else 0
