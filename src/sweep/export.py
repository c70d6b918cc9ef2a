"""The Pareto front for decision meetings: one row per non-dominated trial, its test figures computed here
from the predictions each trial logged to MLflow (trials keep validation metrics only), written atomically."""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Hashable
from functools import lru_cache
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from omegaconf import DictConfig
from optuna.trial import TrialState

from sweep.config import ConfigError, load_config
from sweep.metrics import evaluate
from sweep.pareto import front

log = logging.getLogger(__name__)
REFERENCE_NAME = "unweighted"
MAJORITY = "majority_class"  # the baseline every study has: computed here, not a trial
COMPARED = ("accuracy", "macro_f1")  # the two objectives: what "beats" and "better on both" refer to
WORDS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
TEST_COLUMNS = ("test_accuracy", "test_macro_f1", "test_balanced_accuracy", "zero_f1_classes",
                "delta_test_accuracy", "delta_test_macro_f1")


def reference_trial(study: optuna.Study):
    from sweep.study import baseline_points

    return baseline_points(study).get(study.user_attrs.get("reference", REFERENCE_NAME))


def _basic_row(t) -> dict:
    """What the study itself holds: params and the validation objectives (never test metrics)."""
    c = t.user_attrs.get("config", {})
    return {
        "trial": t.number,
        "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""),
        "alpha": c.get("alpha"), "tau": c.get("tau"), "posthoc_tau": c.get("posthoc_tau"),
        "loss": c.get("loss"), "weighting": c.get("weighting"), "model": c.get("model"),
        "val_accuracy": t.values[0], "val_macro_f1": t.values[1],
    }


@lru_cache(maxsize=512)  # a finished run's artifacts never change; the table and the report both read them
def load_predictions(client, run_id: str) -> dict | None:
    """Test labels and predictions, class names and train counts, as the trial's MLflow run recorded them."""
    import json

    try:
        with np.load(client.download_artifacts(run_id, "predictions.npz")) as z:
            y, pred = z["test_true"].astype(np.int64), z["test_pred"].astype(np.int64)
        with open(client.download_artifacts(run_id, "classes.json")) as f:
            counts = json.load(f)["train_class_counts"]
    except Exception:  # noqa: BLE001 - a run without these artifacts (older or failed): no test figures for it
        return None
    return {"y": y, "pred": pred, "names": list(counts), "counts": np.array(list(counts.values()))}


def point_scores(point: dict) -> dict[str, float]:
    """Test accuracy, macro-F1, balanced accuracy, weighted F1 and zero-F1 classes of logged predictions."""
    return evaluate(point["y"], point["pred"], point["names"])[0]


def per_class_f1(point: dict) -> np.ndarray:
    return evaluate(point["y"], point["pred"], point["names"])[1]["f1"].to_numpy()


def majority_point(point: dict) -> dict:
    """The majority-class baseline on the same test split: every example gets the largest training class."""
    return {**point, "pred": np.full_like(point["y"], int(np.argmax(point["counts"])))}


def _head_classes(counts: np.ndarray) -> np.ndarray:
    """The largest classes that together hold 80% of the training volume."""
    order = np.argsort(-counts, kind="stable")
    share = np.cumsum(counts[order]) / counts.sum()
    return order[: int(np.searchsorted(share, 0.8) + 1)]


def head_tail(point: dict, head: np.ndarray) -> dict[str, float]:
    """The same two metrics on the head classes and on the tail (the other classes). Accuracy: the share of
    the group's test examples predicted correctly. Macro-F1: the mean over the group's classes of each
    class's F1 on the whole test split (a tail example predicted as a head class counts against that head
    class's precision)."""
    y, pred, f1 = point["y"], point["pred"], per_class_f1(point)
    groups = {"head": np.asarray(head), "tail": np.setdiff1d(np.arange(len(point["names"])), head)}
    out = {}
    for group, classes in groups.items():
        member = np.isin(y, classes)
        out[f"{group}_accuracy"] = float((pred[member] == y[member]).mean()) if member.any() else float("nan")
        out[f"{group}_macro_f1"] = float(f1[classes].mean()) if len(classes) else float("nan")
    return out


def comparisons(samples: dict, scores: dict, front_keys: list, baselines: dict[str, Hashable]) -> dict:
    """Who beats whom on the test split, per front point (from paired bootstrap samples: `samples[key][metric]`
    share their resamples). A beats B on a metric beyond noise when the 95% interval of A - B lies above 0.

    beats_beyond_noise: the other front points and the baselines it beats beyond noise, with the metrics,
    e.g. "sqrt_inverse (macro-F1); trial 12 (accuracy and macro-F1)".
    beaten_by_baseline: each baseline that beats it beyond noise on a metric, or has the higher point
    estimate on both metrics (then both are named, each tagged beyond / within noise), e.g.
    "sqrt_inverse on accuracy and macro-F1 (within noise)". Empty: no baseline does."""
    from sweep.metrics import interval

    def above(a, b, metric: str) -> bool:
        return interval(samples[a][metric] - samples[b][metric])[0] > 0

    def named(metrics: list[str]) -> str:
        return " and ".join(WORDS[m] for m in metrics)

    # a baseline that is also on the front is named as the baseline
    others = [(f"trial {k}", k) for k in front_keys if k not in baselines.values()] + list(baselines.items())
    out = {}
    for a in front_keys:
        beats = [f"{label} ({named(won)})" for label, b in others
                 if b != a and (won := [m for m in COMPARED if above(a, b, m)])]
        beaten = []
        for name, b in baselines.items():
            if b == a:
                continue
            beyond = [m for m in COMPARED if above(b, a, m)]
            both = all(scores[b][m] > scores[a][m] for m in COMPARED)
            within = [m for m in COMPARED if both and m not in beyond]
            parts = [f"{named(ms)} ({tag})" for ms, tag in ((beyond, "beyond noise"), (within, "within noise")) if ms]
            if parts:
                beaten.append(f"{name} on {' and '.join(parts)}")
        out[a] = {"beats_beyond_noise": "; ".join(beats), "beaten_by_baseline": "; ".join(beaten)}
    return out


def decision_columns(points: dict[Hashable, dict], ref: int | None, front_keys: list[int] | None = None,
                     baselines: dict[str, Hashable] | None = None, n_boot: int = 2000,
                     seed: int = 0) -> dict[int, dict]:
    """Per front point (`front_keys`, default: every point), everything computed on the test split from
    the logged predictions: accuracy, macro-F1, balanced accuracy, zero-F1 classes; 95% stratified-bootstrap
    intervals; the change against the reference with its paired interval and whether it is within noise;
    classes gained / lost (F1 from 0 to > 0 and back); accuracy and macro-F1 of the head and of the tail
    classes and their changes; who it beats and which baseline beats it (see comparisons). `points` holds
    every compared prediction vector (front, baselines, reference) on one test split; `baselines` maps a
    baseline's name to its key in `points`."""
    from sweep.metrics import bootstrap, interval

    if not points:
        return {}
    front_keys = list(points) if front_keys is None else [k for k in front_keys if k in points]
    baselines = {name: k for name, k in (baselines or {}).items() if k in points}
    any_point = next(iter(points.values()))
    y, names, counts = any_point["y"], any_point["names"], any_point["counts"]
    samples = bootstrap(y, {n: p["pred"] for n, p in points.items()}, len(names), n_boot=n_boot, seed=seed)
    scores = {n: point_scores(p) for n, p in points.items()}
    head = _head_classes(counts)
    groups = {n: head_tail(points[n], head) for n in {*front_keys, ref} if n in points}
    per_class = {n: per_class_f1(points[n]) for n in {*front_keys, ref} if n in points}
    versus = comparisons(samples, scores, front_keys, baselines)

    out = {}
    for n in front_keys:
        s = scores[n]
        row: dict = {"test_accuracy": s["accuracy"], "test_macro_f1": s["macro_f1"],
                     "test_balanced_accuracy": s["balanced_accuracy"], "zero_f1_classes": s["zero_f1_classes"]}
        for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
            row[f"test_{metric}_ci_low"], row[f"test_{metric}_ci_high"] = interval(samples[n][metric])
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
        row.update(versus[n])
        out[n] = row
    return out


def _scored_points(study: optuna.Study, client, best: list) -> tuple[dict, dict[str, Hashable], int | None]:
    """The prediction vectors to compare on test: the front, the baselines, the reference (their logged
    predictions) and the majority class. Returns points, baseline name -> key, the reference's key."""
    from sweep.study import baseline_points

    ref = reference_trial(study)
    named = baseline_points(study)
    wanted = {t.number: t for t in [*best, *named.values(), *([ref] if ref else [])]}
    points = {n: p for n, t in wanted.items()
              if (p := load_predictions(client, t.user_attrs.get("mlflow_run_id", "")))}
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


def front_table(study: optuna.Study, client=None, n_boot: int = 2000) -> pd.DataFrame:
    """The CSV's rows: the non-dominated converged trials, highest validation accuracy first. With an MLflow
    client, the test columns, computed from each trial's logged predictions (the study holds no test
    metrics); without one, those columns are empty."""
    best = front(study)
    table = pd.DataFrame([_basic_row(t) for t in best])
    if table.empty:
        return table
    first = [*table.columns, *TEST_COLUMNS]  # the study's own columns, then the test figures, then the rest
    if client is not None:
        points, baselines, ref = _scored_points(study, client, best)
        extra = decision_columns(points, ref, [t.number for t in best], baselines, n_boot=n_boot)
        if extra:
            table = table.join(pd.DataFrame.from_dict(extra, orient="index"), on="trial")
    for c in TEST_COLUMNS:
        if c not in table:
            table[c] = np.nan
    table = table[first + [c for c in table.columns if c not in first]]
    ref_trial = reference_trial(study)
    table["reference_trial"] = ref_trial.number if ref_trial else None
    table["zero_f1_classes"] = table["zero_f1_classes"].astype("Int64")
    table = table.sort_values(["val_accuracy", "val_macro_f1"], ascending=False, kind="stable")
    return table.round({c: 4 for c in table.columns if table[c].dtype == float})


def statements(table: pd.DataFrame) -> list[str]:
    """The comparison columns in plain words, one sentence per front point and per baseline beating one."""
    if "beaten_by_baseline" not in table:
        return []

    def text(v) -> str:
        return v if isinstance(v, str) else ""  # a point without logged predictions has no comparison

    lines = []
    for r in table.itertuples():
        for entry in filter(None, text(r.beaten_by_baseline).split("; ")):
            name, _, how = entry.partition(" on ")
            lines.append(f"On test, baseline {name} beats trial {r.trial} on {how}.")
    if not lines:
        lines.append("On test, no baseline beats a Pareto point, neither beyond noise on one metric nor on both "
                     "metrics.")
    for r in table.itertuples():
        if text(r.beats_beyond_noise):
            lines.append(f"On test, trial {r.trial} beats beyond noise: {r.beats_beyond_noise}.")
        elif isinstance(r.beats_beyond_noise, str):
            lines.append(f"On test, trial {r.trial} beats no other Pareto point and no baseline beyond noise.")
    return lines


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write to a temporary file beside the target, then rename: never a half-written CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        table.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _split_args(argv: list[str], keys: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """`key=value` for our own keys; everything else is a Hydra override (storage, tracking...)."""
    mine, rest = {}, []
    for a in argv:
        k, sep, v = a.partition("=")
        if sep and k in keys:
            mine[k] = v
        elif sep and "." not in k and "=" not in k and not k.startswith("+") and k not in (
                "data", "model", "weighting", "loss", "sweep", "tracking", "paths", "seed", "task_name"):
            raise ConfigError(f"unknown argument {a!r}: use {', '.join(f'{x}=...' for x in keys)} or Hydra overrides")
        else:
            rest.append(a)
    return mine, rest


def load_study(cfg: DictConfig, name: str | None) -> optuna.Study:
    from sweep.study import open_storage, storage_location

    storage = open_storage(cfg)
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    if not summaries:
        raise ConfigError(f"no study in {storage_location(cfg) if '@' not in storage_location(cfg) else 'the storage'}"
                          ": run `make sweep` first, or set sweep.storage")
    names = [s.study_name for s in summaries]
    if name is None:  # the last study: the one whose latest trial started last
        latest = max(summaries, key=lambda s: (s.datetime_start is not None, s.datetime_start or 0, s._study_id))
        name = latest.study_name
    if name not in names:
        raise ConfigError(f"no study named {name!r}; the storage has: {', '.join(names[:10])}")
    return optuna.load_study(study_name=name, storage=storage)


def running_warning(study: optuna.Study) -> str | None:
    n = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    if not n:
        return None
    return (f"warning: study {study.study_name} has {n} RUNNING trial(s): the front may change; run export again "
            "when they finish")


def _tracking_client(cfg: DictConfig):
    from mlflow import MlflowClient

    from sweep.tracking import check_reachable

    check_reachable(str(cfg.tracking.tracking_uri))
    return MlflowClient(tracking_uri=str(cfg.tracking.tracking_uri))


def write_report(study: optuna.Study, table: pd.DataFrame, client, folder: Path) -> list[Path]:
    """report.md with the table and the pictures: the test-split Pareto plot with intervals and baselines
    (the points a baseline beats ringed), and per front trial the per-class F1 histogram and F1 against class
    frequency (also logged to that trial's MLflow run). Returns the files written."""
    from sweep.pareto import plot_front, plot_per_class
    from sweep.study import baseline_points

    folder.mkdir(parents=True, exist_ok=True)
    scored = table.dropna(subset=["test_accuracy", "test_macro_f1"])
    points = {int(r.trial): (r.test_accuracy, r.test_macro_f1) for r in scored.itertuples()}
    intervals = {int(r.trial): {"accuracy": (r.test_accuracy_ci_low, r.test_accuracy_ci_high),
                                "macro_f1": (r.test_macro_f1_ci_low, r.test_macro_f1_ci_high)}
                 for r in scored.itertuples() if hasattr(r, "test_accuracy_ci_low")}
    flagged = {int(r.trial): "beaten by " + ", ".join(e.partition(" on ")[0] for e in r.beaten_by_baseline.split("; "))
               for r in scored.itertuples() if isinstance(getattr(r, "beaten_by_baseline", None), str)
               and r.beaten_by_baseline}
    marks = {}
    ref = reference_trial(study)
    ref_pred = load_predictions(client, ref.user_attrs.get("mlflow_run_id", "")) if ref else None
    if ref_pred is not None:
        m = point_scores(majority_point(ref_pred))
        marks["majority class"] = (m["accuracy"], m["macro_f1"])
    for name, t in baseline_points(study).items():  # marked, and scored points: the zoom keeps them in view
        if (p := load_predictions(client, t.user_attrs.get("mlflow_run_id", ""))) is not None:
            m = point_scores(p)
            marks[name.replace("_", " ")] = points.setdefault(t.number, (m["accuracy"], m["macro_f1"]))
    files = [plot_front(study, folder / "pareto_test.png", marks, split="test", intervals=intervals,
                        points=points, flagged=flagged)]
    ref_f1 = per_class_f1(ref_pred) if ref_pred is not None else None
    lines = [f"# Pareto front of study `{study.study_name}`", "",
             "Chosen on validation; every point re-scored on the held-out test split (from the predictions each "
             "trial logged) with 95% stratified bootstrap intervals. `within_noise`: the paired interval of the "
             "change against the reference (unweighted) trial contains 0 for both accuracy and macro-F1. "
             "`beats_beyond_noise`: the other Pareto points and baselines this point beats on test, the 95% paired "
             "interval of the difference above 0. `beaten_by_baseline`: the baselines that beat it on test "
             "(beyond noise on a metric, or better on both metrics even within noise); ringed in the plot. "
             "Head: the largest classes holding 80% of the training examples; tail: the others; both measured "
             "by accuracy and macro-F1.", "",
             "![Pareto front on the test split](pareto_test.png)", ""]
    said = statements(table)
    if said:
        lines += ["## On test, in words", "", *[f"- {s}" for s in said], ""]
    cols = [c for c in ("trial", "alpha", "tau", "posthoc_tau", "test_accuracy", "test_accuracy_ci_low",
                        "test_accuracy_ci_high", "test_macro_f1", "test_macro_f1_ci_low", "test_macro_f1_ci_high",
                        "delta_test_accuracy", "delta_test_macro_f1", "within_noise", "delta_head_accuracy",
                        "delta_head_macro_f1", "delta_tail_accuracy", "delta_tail_macro_f1", "zero_f1_classes",
                        "classes_gained", "classes_lost", "beats_beyond_noise", "beaten_by_baseline",
                        "mlflow_run_id") if c in table.columns]
    lines += [table[cols].to_markdown(index=False), ""]
    for r in table.itertuples():
        pred = load_predictions(client, r.mlflow_run_id)
        if pred is None:
            continue
        f1 = per_class_f1(pred)
        png = plot_per_class(f1, pred["counts"], f"trial {r.trial}", folder / f"per_class_f1_trial_{r.trial}.png",
                             reference=ref_f1)
        client.log_artifact(r.mlflow_run_id, str(png))
        files.append(png)
        lines += [f"## Trial {r.trial}: alpha {r.alpha}, tau {r.tau}, post-hoc tau {r.posthoc_tau}", "",
                  f"![per-class F1 of trial {r.trial}]({png.name})", ""]
    md = folder / "report.md"
    md.write_text("\n".join(lines))
    return [md, *files]


def export_command(argv: list[str]) -> None:
    args, overrides = _split_args(argv, ("study", "out", "seeds", "n_boot"))
    seeds = _count(args, "seeds", 1)
    n_boot = _count(args, "n_boot", 2000)
    cfg = load_config(overrides)
    study = load_study(cfg, args.get("study"))
    client = _tracking_client(cfg)
    table = front_table(study, client, n_boot=n_boot)
    if table.empty:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet: run `make sweep` first")
    if seeds > 1:
        table = table.join(resplit_reseed(study, table, seeds), on="trial")
    out = write_csv(table, Path(args.get("out", Path(cfg.paths.root) / "pareto.csv")))
    report = out.with_name(f"{out.stem}_report")
    files = write_report(study, table, client, report)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent:
        client.log_artifact(parent, str(out), "export")
        for f in files:
            client.log_artifact(parent, str(f), "export")
    print(f"wrote {out} ({len(table)} Pareto-optimal trials of study {study.study_name!r}) and {report}/report.md")
    show = [c for c in ("trial", "alpha", "posthoc_tau", "tau", "val_accuracy", "val_macro_f1", "test_accuracy",
                        "test_accuracy_ci_low", "test_accuracy_ci_high", "test_macro_f1", "test_macro_f1_ci_low",
                        "test_macro_f1_ci_high", "within_noise", "classes_gained", "classes_lost") if c in table]
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 40):
        print(table[show].to_string(index=False))
    for line in statements(table):
        print(line)
    warning = running_warning(study)  # last, where it is seen: the table above may already be out of date
    if warning:
        print(warning, file=sys.stderr)


def _count(args: dict[str, str], key: str, default: int) -> int:
    text = args.get(key, str(default))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{key}={text!r} must be a whole number >= 1, e.g. {key}={default}")
    return value


RESEED_KEYS = ("seed", "data.split_seed")  # what is random in a run: the train/validation split and the model


def resplit_reseed(study: optuna.Study, table: pd.DataFrame, runs: int) -> pd.DataFrame:
    """Re-train each Pareto point `runs` times, run k with the train/validation split seed
    `data.split_seed` + k and the model seed `seed` + k (run 0 is the trial itself); mean and sample
    standard deviation of test accuracy and macro-F1 over the runs. The linear head is a deterministic
    convex fit: the split carries its spread. Data without a fixed test file (synthetic, a CSV without
    data.test_path) redraws its test split with the split seed too."""
    from sweep.train import run

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


def _constraint(args: dict[str, str], key: str) -> float | None:
    """A pick constraint as a number, or a one-line error naming the value and the fix."""
    if key not in args:
        return None
    text = args[key]
    example = {"min_accuracy": "min_accuracy=0.8", "max_accuracy_loss": "max_accuracy_loss=0.01"}[key]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{key}={text!r} is not a number: give a validation accuracy as a fraction, e.g. {example}")
    if key == "min_accuracy" and not 0 <= value <= 1:
        raise ConfigError(f"min_accuracy={text} is outside [0, 1], so no point can meet it: give a validation "
                          f"accuracy as a fraction, e.g. {example} for 80%")
    if key == "max_accuracy_loss" and value < 0:
        raise ConfigError(f"max_accuracy_loss={text} is negative: give the validation accuracy you accept to lose "
                          f"against the reference as a fraction >= 0, e.g. {example} for one point")
    return value


def pick_command(argv: list[str]) -> int:
    """The Pareto point with the best validation macro-F1 that meets an accuracy constraint (on validation:
    the choice never peeks at the test split), shown with its test figures and MLflow run id. Returns 1 when
    no point meets the constraint (the sentence says so), 0 otherwise."""
    args, overrides = _split_args(argv, ("study", "min_accuracy", "max_accuracy_loss"))
    if "min_accuracy" not in args and "max_accuracy_loss" not in args:
        raise ConfigError("give a constraint: min_accuracy=<x> and/or max_accuracy_loss=<x> (against the "
                          "unweighted reference, validation accuracy)")
    min_accuracy, max_loss = _constraint(args, "min_accuracy"), _constraint(args, "max_accuracy_loss")
    cfg = load_config(overrides)
    study = load_study(cfg, args.get("study"))
    warning = running_warning(study)
    if warning:
        print(warning, file=sys.stderr)
    table = front_table(study, _tracking_client(cfg))
    if table.empty:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet: run `make sweep` first")
    accuracy = table["trial"].map({t.number: t.values[0] for t in front(study)})  # unrounded, unlike the table
    ok = pd.Series(True, index=table.index)
    rules = []
    if min_accuracy is not None:
        ok &= accuracy >= min_accuracy
        rules.append(f"validation accuracy >= {min_accuracy:.4f}")
    if max_loss is not None:
        ref = reference_trial(study)
        if ref is None:
            raise ConfigError("max_accuracy_loss needs the unweighted reference trial, which this study lacks: "
                              "use min_accuracy")
        floor = ref.values[0] - max_loss
        ok &= accuracy >= floor
        rules.append(f"validation accuracy >= {floor:.4f} (reference {ref.values[0]:.4f} - {max_loss})")
    rule = " and ".join(rules)
    if not ok.any():
        best = accuracy.max()
        print(f"no Pareto point of study {study.study_name!r} meets {rule}: the most accurate reaches {best:.4f}")
        return 1
    macro_f1 = table["trial"].map({t.number: t.values[1] for t in front(study)})
    row = table.loc[macro_f1[ok].idxmax()]
    print(f"pick for {rule}: trial {row.trial} (MLflow run {row.mlflow_run_id})")
    print(f"  alpha {row.alpha}, loss {row.loss}, tau {row.tau}, post-hoc tau {row.posthoc_tau}, model {row.model}")
    print(f"  validation: accuracy {row.val_accuracy:.4f}, macro-F1 {row.val_macro_f1:.4f}")
    if "test_accuracy_ci_low" in row and pd.notna(row.test_accuracy_ci_low):
        print(f"  test: accuracy {row.test_accuracy:.4f} [{row.test_accuracy_ci_low:.4f}, "
              f"{row.test_accuracy_ci_high:.4f}], macro-F1 {row.test_macro_f1:.4f} [{row.test_macro_f1_ci_low:.4f}, "
              f"{row.test_macro_f1_ci_high:.4f}] (95% bootstrap)")
    elif pd.notna(row.test_accuracy):
        print(f"  test: accuracy {row.test_accuracy:.4f}, macro-F1 {row.test_macro_f1:.4f}")
    else:
        print("  test: no logged predictions for this trial's MLflow run")
    if isinstance(row.get("beaten_by_baseline"), str) and row.beaten_by_baseline:
        print(f"  on test, beaten by baseline: {row.beaten_by_baseline}")
    return 0
