"""`make bench`: speed of the harness against the naive sweep AT THE SAME ANSWER, each figure measured in
this run.

1. first-run featurization (TF-IDF fit + transform of every split, no cache);
2. a harness sweep of `trials` trials (fresh Optuna journal and MLflow store): median s/trial, wall time;
3. the naive way on the same trials' parameters (every `naive_every`-th): re-vectorize, fit scikit-learn's
   LogisticRegression on the same objective (C = 1 / (2 l2 n), the same class weights, tol = the harness's
   gtol: both stop on max|gradient| <= gtol), log with optuna-integration's MLflowCallback; then the largest
   difference in validation accuracy / macro-F1 between the two sides' trials with the same parameters;
4. what each idea bought: the same fits from a cold start, from the nearest solution, on the secant.
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

    with warnings.catch_warnings():
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


def warm_start_ideas(cfg, splits, trained: list[float], n: int) -> dict[str, tuple[float, float]]:
    """The same sequence of head fits (the sweep's first n trained alphas) with each start strategy:
    median seconds and median iterations."""
    from sweep.data.features import featurize
    from sweep.models.head import WarmStarts, fit_head
    from sweep.models.losses import LossSpec

    feats, _ = featurize(splits, cfg.model, cfg.paths.cache_dir)
    head, counts = cfg.model.head, splits.train_counts
    out = {}
    for how, degree in (("cold", None), ("nearest", 0), ("secant", 1), ("quadratic", 2)):
        warm, secs, iters = WarmStarts(degree=degree or 0), [], []
        for alpha in trained[:n]:
            loss = LossSpec(class_weights(counts, "power", alpha), log_prior(counts), 0.0)
            fit = fit_head(
                feats["train"],
                splits.labels["train"],
                loss,
                float(head.l2),
                float(head.gtol),
                int(head.max_iter),
                starts=warm.start("bench", alpha, loss) if degree is not None else None,
                device=str(head.get("device", "auto")),
            )
            warm.add("bench", alpha, loss, fit)
            secs.append(fit.seconds)
            iters.append(fit.iterations)
        out[how] = (statistics.median(secs[1:]), statistics.median(iters[1:]))  # the first fit is cold in all
    return out


def bench_command(argv: list[str]) -> None:
    opts, overrides = _args(argv)
    if opts["grid"]:
        return grid_command(overrides, opts["trials"] if opts["trials"] != 50 else 6)
    base = load_config(overrides)
    if base.model.name != "tfidf_linear":
        raise SystemExit("make bench compares the tfidf_linear head with scikit-learn: use model=tfidf_linear")
    data_dir = base.paths.data_dir  # share the downloaded data; everything else goes to a temp root
    with timed_sweep(overrides, data_dir, opts["trials"], "bench") as run:
        cfg, splits, feat_s, sweep_wall, done = run.cfg, run.splits, run.featurize_s, run.wall_s, run.done
        fast = [_seconds(t) for t in done]
        unconverged = sum(t.user_attrs.get("fit_converged") is False for t in done)
        trained = [t for t in done if t.user_attrs.get("logits_cache") == "trained"]
        picked = done[:: opts["naive_every"]]
        naive, naive_wall = naive_sweep(cfg, [t.params for t in picked], run.root)
        ideas = (
            warm_start_ideas(cfg, splits, [t.params["weighting.alpha"] for t in trained], opts["ideas"])
            if opts["ideas"] > 1
            else {}
        )  # ideas=0 skips it (at 113 classes a cold fit takes minutes)
    diffs = np.abs(np.array([t.values for t in picked]) - np.array([r["values"] for r in naive]))
    n_val = len(splits.labels["val"])
    med_fast, med_naive = statistics.median(fast), statistics.median(r["seconds"] for r in naive)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(
        f"bench on {cfg.data.name} ({splits.info}, {splits.num_classes} classes), model {cfg.model.name}, "
        f"l2 {cfg.model.head.l2}, both sides stop at max|gradient| <= {cfg.model.head.gtol}"
    )
    print(f"  first-run featurization (TF-IDF fit + transform, no cache): {feat_s:.2f} s")
    print(
        f"  harness: {len(fast)} trials, median {med_fast:.3f} s/trial, wall {sweep_wall:.1f} s (incl. start-up, "
        f"final plot/CSV); {len(trained)} fits, {len(fast) - len(trained)} reused logits, "
        f"{unconverged} not converged"
    )
    iters = [t.user_attrs["fit_iterations"] for t in trained if "fit_iterations" in t.user_attrs]
    if iters:
        print(
            f"  harness head fits: iterations median {statistics.median(iters):.0f}, first (cold) {iters[0]}, "
            f"max {max(iters)}"
        )
    if len(fast) < 50:
        print(f"  50 trials at this median would take ~{50 * med_fast / 60:.1f} min (extrapolated, not measured)")
    print(
        f"  naive:   {len(naive)} of those trials' parameters, median {med_naive:.3f} s/trial, wall "
        f"{naive_wall:.1f} s; {sum(not r['converged'] for r in naive)} not converged"
    )
    print(f"  speed-up per trial (median naive / median harness): {med_naive / med_fast:.1f}x")
    print(
        f"  same answer? largest |difference| on the same parameters: val accuracy {diffs[:, 0].max():.5f}, "
        f"val macro-F1 {diffs[:, 1].max():.5f} (must be < 0.001); {int(round(diffs[:, 0].max() * n_val))} of "
        f"{n_val} validation predictions differ at most"
    )
    if ideas:
        print(f"  head fits by start (median over {opts['ideas'] - 1} warm fits of the sweep's alphas):")
    for how, (s, it) in ideas.items():
        print(f"    {how:8s} {s:6.2f} s  {it:5.0f} iterations")
    print(f"  peak RSS {peak:.0f} MiB")
