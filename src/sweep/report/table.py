"""The front as a table: one row per non-dominated trial, the study's validation columns, and the test columns
computed from the predictions each trial logged to MLflow (trials keep validation metrics only): on the test
split's own class mix and, with a deployment mix, re-weighted to it."""

from __future__ import annotations

import logging
from collections.abc import Hashable

import numpy as np
import optuna
import pandas as pd

from sweep.memo import CACHE
from sweep.models.metrics import (
    COMPARED,
    _scores_from_confusion,
    bootstrap,
    comparisons,
    confusion,
    coverage_interval,
    head_classes,
    head_tail,
    interval,
    majority_point,
    mix_weights,
    per_class_f1,
    point_scores,
)
from sweep.report.columns import TEST
from sweep.search.pareto import baseline_points, front, reference_trial

log = logging.getLogger(__name__)
MAJORITY = "majority_class"  # the baseline every study has: computed here, not a trial


def _basic_row(t) -> dict:
    """What the study itself holds: params and the validation objectives (never test metrics)."""
    c = t.user_attrs.get("config", {})
    return {
        "trial": t.number,
        "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""),
        "alpha": c.get("alpha"),
        "tau": c.get("tau"),
        "posthoc_tau": c.get("posthoc_tau"),
        "loss": c.get("loss"),
        "weighting": c.get("weighting"),
        "model": c.get("model"),
        "val_accuracy": t.values[0],
        "val_macro_f1": t.values[1],
        "val_coverage": t.values[2] if len(t.values) > 2 else t.user_attrs.get("metrics", {}).get("val_coverage"),
    }


@CACHE.lru_cache(maxsize=1024)  # a finished run's artifacts never change; the table and the report both read them
def load_predictions(client, run_id: str, split: str = "test") -> dict | None:
    """A split's labels and predictions (test by default, or val), class names and train counts, as the
    trial's MLflow run recorded them."""
    import json

    try:
        with np.load(client.download_artifacts(run_id, "predictions.npz")) as z:
            y, pred = z[f"{split}_true"].astype(np.int64), z[f"{split}_pred"].astype(np.int64)
        with open(client.download_artifacts(run_id, "classes.json")) as f:
            counts = json.load(f)["train_class_counts"]
    except Exception:  # noqa: BLE001 - a run without these artifacts (older or failed): no test figures for it
        return None
    return {"y": y, "pred": pred, "names": list(counts), "counts": np.array(list(counts.values()))}


def decision_columns(
    points: dict[Hashable, dict],
    ref: int | None,
    front_keys: list[int] | None = None,
    baselines: dict[str, Hashable] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    stratified: bool = False,
    deploy: np.ndarray | None = None,
    uncompared: tuple = (),
) -> dict[int, dict]:
    """Per front point (`front_keys`, default: every point), everything computed on the test split from
    the logged predictions: accuracy, macro-F1, balanced accuracy, zero-F1 classes, coverage (classes with
    F1 > 0); 95% paired bootstrap intervals (plain: class counts vary; or stratified); the change against the
    reference with its paired interval and whether it is within noise; classes gained / lost (F1 from 0 to > 0
    and back); accuracy and macro-F1 of the head and of the tail classes and their changes; who it beats and
    which baseline beats it (see comparisons). `points` holds every compared prediction vector (front,
    baselines, reference) on one test split; `baselines` maps a baseline's name to its key in `points`.
    deploy: a class mix (shares summing to 1): deploy_accuracy / deploy_macro_f1 (with intervals, on the same
    resamples) re-weight each test example by deploy(c) / test share(c); macro-F1 over the mix's classes.
    uncompared: keys scored but left out of who-beats-whom (a row added for the deployment mix)."""
    if not points:
        return {}
    front_keys = list(points) if front_keys is None else [k for k in front_keys if k in points]
    baselines = {name: k for name, k in (baselines or {}).items() if k in points}
    any_point = next(iter(points.values()))
    y, names, counts = any_point["y"], any_point["names"], any_point["counts"]
    preds = {n: p["pred"] for n, p in points.items()}
    samples = bootstrap(y, preds, len(names), n_boot=n_boot, seed=seed, stratified=stratified)
    scores = {n: point_scores(p) for n, p in points.items()}
    head = head_classes(counts)
    groups = {n: head_tail(points[n], head) for n in {*front_keys, ref} if n in points}
    per_class = {n: per_class_f1(points[n]) for n in {*front_keys, ref} if n in points}
    versus = comparisons(samples, scores, [k for k in front_keys if k not in uncompared], baselines)
    if deploy is not None:
        weight, mix = mix_weights(y, deploy), np.asarray(deploy) > 0
        mixed = bootstrap(y, preds, len(names), n_boot, seed, stratified, class_weight=weight, macro=mix)

    out = {}
    for n in front_keys:
        s = scores[n]
        row: dict = {
            "test_accuracy": s["accuracy"],
            "test_macro_f1": s["macro_f1"],
            "test_balanced_accuracy": s["balanced_accuracy"],
            "zero_f1_classes": s["zero_f1_classes"],
            "test_coverage": s["coverage"],
            "n_classes": len(names),
        }
        for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
            row[f"test_{metric}_ci_low"], row[f"test_{metric}_ci_high"] = interval(samples[n][metric])
        row["test_coverage_ci_low"], row["test_coverage_ci_high"] = coverage_interval(
            samples[n]["coverage"], s["coverage"]
        )
        if deploy is not None:
            at = _scores_from_confusion(confusion(y, preds[n], len(names), weight), mix)
            for metric in COMPARED:
                row[f"deploy_{metric}"] = float(at[metric])
                row[f"deploy_{metric}_ci_low"], row[f"deploy_{metric}_ci_high"] = interval(mixed[n][metric])
        row.update(groups[n])
        if ref is not None and ref in points:
            noisy = True
            for metric in COMPARED:
                row[f"delta_test_{metric}"] = s[metric] - scores[ref][metric]
                lo, hi = interval(samples[n][metric] - samples[ref][metric])
                row[f"delta_test_{metric}_ci_low"], row[f"delta_test_{metric}_ci_high"] = lo, hi
                noisy &= lo <= 0 <= hi
            row["within_noise"] = bool(noisy)
            row.update({f"delta_{k}": v - groups[ref][k] for k, v in groups[n].items()})
            f, fr = per_class[n], per_class[ref]
            row["classes_gained"] = "; ".join(names[i] for i in np.flatnonzero((fr == 0) & (f > 0)))
            row["classes_lost"] = "; ".join(names[i] for i in np.flatnonzero((fr > 0) & (f == 0)))
        row.update(versus.get(n, {}))
        out[n] = row
    return out


def _scored_points(study: optuna.Study, client, best: list) -> tuple[dict, dict[str, Hashable], int | None]:
    """The prediction vectors to compare on test: the front, the baselines, the reference (their logged
    predictions) and the majority class. Returns points, baseline name -> key, the reference's key."""
    ref = reference_trial(study)
    named = baseline_points(study)
    wanted = {t.number: t for t in [*best, *named.values(), *([ref] if ref else [])]}
    points = {n: p for n, t in wanted.items() if (p := load_predictions(client, t.user_attrs.get("mlflow_run_id", "")))}
    if not points:
        return {}, {}, None
    first = points[ref.number] if ref and ref.number in points else next(iter(points.values()))
    other_split = [n for n, p in points.items() if not np.array_equal(p["y"], first["y"])]
    for n in other_split:  # not comparable example by example (another data version): left out
        log.warning("trial %d was scored on another test split than the reference: no test figures for it", n)
        del points[n]
    points[MAJORITY] = majority_point(first)
    baselines = {**{name: t.number for name, t in named.items()}, MAJORITY: MAJORITY}
    return points, baselines, (ref.number if ref else None)


def front_table(study: optuna.Study, client=None, n_boot: int = 2000, **options) -> pd.DataFrame:
    """The CSV's rows: the non-dominated converged trials, highest validation accuracy first. With an MLflow
    client, the test columns, computed from each trial's logged predictions (the study holds no test
    metrics); without one, those columns are empty. options: see scored_tables."""
    return scored_tables(study, client, n_boot, **options)[0]


def scored_tables(
    study: optuna.Study,
    client=None,
    n_boot: int = 2000,
    stratified: bool = False,
    deploy: np.ndarray | None = None,
    extra: dict[str, dict] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """front_table's rows and, from the same bootstrap (so every number is computed once), the baselines'
    rows: one per baseline with logged predictions plus the majority class, their `baseline` column naming
    them (a baseline on the front has a row in both). stratified, deploy: see decision_columns. extra: name ->
    a prediction vector on the same test split that is no trial (the reference adjusted to the deployment
    mix), scored as a row of the baselines' table but compared with nothing."""
    best = front(study)
    table = pd.DataFrame([_basic_row(t) for t in best])
    if table.empty:
        return table, pd.DataFrame()
    first = [*table.columns, *TEST]  # the study's own columns, then the test figures, then the rest
    columns, base = {}, pd.DataFrame()
    if client is not None:
        points, baselines, ref = _scored_points(study, client, best)
        extra = {k: p for k, p in (extra or {}).items() if points and np.array_equal(p["y"], points[MAJORITY]["y"])}
        points.update(extra)
        keys = list(dict.fromkeys([t.number for t in best] + list(baselines.values()) + list(extra)))
        options = {"n_boot": n_boot, "stratified": stratified, "deploy": deploy, "uncompared": tuple(extra)}
        columns = decision_columns(points, ref, keys, baselines, **options)
        named = baseline_points(study)
        rows = [
            {"baseline": name, **(_basic_row(named[name]) if name in named else {"trial": None}), **columns[k]}
            for name, k in [*baselines.items(), *((k, k) for k in extra)]
            if k in columns
        ]
        base = pd.DataFrame(rows)
    if columns:
        front_rows = {k: v for k, v in columns.items() if k in set(table["trial"])}
        table = table.join(pd.DataFrame.from_dict(front_rows, orient="index"), on="trial")
    for c in TEST:
        if c not in table:
            table[c] = np.nan
    table = table[first + [c for c in table.columns if c not in first]]
    ref_trial = reference_trial(study)
    table["reference_trial"] = ref_trial.number if ref_trial else None
    table["zero_f1_classes"] = table["zero_f1_classes"].astype("Int64")
    table = table.sort_values(["val_accuracy", "val_macro_f1"], ascending=False, kind="stable")
    return _rounded(table), _rounded(base)


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    return table.round({c: 4 for c in table.columns if table[c].dtype == float})
