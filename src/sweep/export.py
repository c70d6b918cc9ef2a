"""The Pareto front for decision meetings: one row per non-dominated trial, read from the Optuna storage
(which trials, their params and metrics) and MLflow (their run ids' existence), written atomically."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from omegaconf import DictConfig

from sweep.config import ConfigError, load_config
from sweep.metrics import evaluate
from sweep.pareto import front

REFERENCE_NAME = "unweighted"


def reference_trial(study: optuna.Study):
    from sweep.study import baseline_points

    return baseline_points(study).get(study.user_attrs.get("reference", REFERENCE_NAME))


def _basic_row(t, ref_m: dict) -> dict:
    m, c = t.user_attrs.get("metrics", {}), t.user_attrs.get("config", {})
    return {
        "trial": t.number,
        "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""),
        "alpha": c.get("alpha"), "tau": c.get("tau"), "posthoc_tau": c.get("posthoc_tau"),
        "loss": c.get("loss"), "weighting": c.get("weighting"), "model": c.get("model"),
        "val_accuracy": t.values[0], "val_macro_f1": t.values[1],
        "test_accuracy": m.get("test_accuracy"), "test_macro_f1": m.get("test_macro_f1"),
        "test_balanced_accuracy": m.get("test_balanced_accuracy"),
        "zero_f1_classes": m.get("test_zero_f1_classes"),
        "delta_test_accuracy": (m["test_accuracy"] - ref_m["test_accuracy"]) if ref_m else None,
        "delta_test_macro_f1": (m["test_macro_f1"] - ref_m["test_macro_f1"]) if ref_m else None,
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
    except Exception:  # noqa: BLE001 - a run without these artifacts (older or failed): no intervals for it
        return None
    return {"y": y, "pred": pred, "names": list(counts), "counts": np.array(list(counts.values()))}


def per_class_f1(point: dict) -> np.ndarray:
    return evaluate(point["y"], point["pred"], point["names"])[1]["f1"].to_numpy()


def _head_classes(counts: np.ndarray) -> np.ndarray:
    """The largest classes that together hold 80% of the training volume."""
    order = np.argsort(-counts, kind="stable")
    share = np.cumsum(counts[order]) / counts.sum()
    return order[: int(np.searchsorted(share, 0.8) + 1)]


def decision_columns(points: dict[int, dict], ref: int | None, n_boot: int = 2000, seed: int = 0) -> dict[int, dict]:
    """Per trial: 95% stratified-bootstrap intervals on the test split, paired intervals of the change
    against the reference, whether that change is within noise, classes gained / lost (F1 from 0 to > 0
    and back), head-class accuracy and tail-class macro-F1 and their changes."""
    from sweep.metrics import bootstrap, interval

    if not points:
        return {}
    any_point = next(iter(points.values()))
    y, names, counts = any_point["y"], any_point["names"], any_point["counts"]
    samples = bootstrap(y, {n: p["pred"] for n, p in points.items()}, len(names), n_boot=n_boot, seed=seed)
    head = _head_classes(counts)
    tail = np.setdiff1d(np.arange(len(names)), head)
    per_class = {n: per_class_f1(p) for n, p in points.items()}

    def head_tail(n: int) -> tuple[float, float]:
        in_head = np.isin(y, head)
        acc = float((points[n]["pred"][in_head] == y[in_head]).mean())
        return acc, float(per_class[n][tail].mean()) if len(tail) else float("nan")

    out = {}
    for n in points:
        row: dict = {}
        for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
            row[f"test_{metric}_ci_low"], row[f"test_{metric}_ci_high"] = interval(samples[n][metric])
        h, t = head_tail(n)
        row["head_accuracy"], row["tail_macro_f1"] = h, t
        if ref is not None and ref in points:
            noisy = True
            for metric in ("accuracy", "macro_f1"):
                lo, hi = interval(samples[n][metric] - samples[ref][metric])
                row[f"delta_test_{metric}_ci_low"], row[f"delta_test_{metric}_ci_high"] = lo, hi
                noisy &= lo <= 0 <= hi
            row["within_noise"] = bool(noisy)
            rh, rt = head_tail(ref)
            row["delta_head_accuracy"], row["delta_tail_macro_f1"] = h - rh, t - rt
            f, fr = per_class[n], per_class[ref]
            row["classes_gained"] = "; ".join(names[i] for i in np.flatnonzero((fr == 0) & (f > 0)))
            row["classes_lost"] = "; ".join(names[i] for i in np.flatnonzero((fr > 0) & (f == 0)))
        out[n] = row
    return out


def front_table(study: optuna.Study, client=None, n_boot: int = 2000) -> pd.DataFrame:
    """The CSV's rows: the non-dominated trials (Optuna's best_trials), highest validation accuracy first.
    With an MLflow client, the decision columns too (intervals, gained / lost classes, head vs tail)."""
    ref = reference_trial(study)
    ref_m = ref.user_attrs.get("metrics", {}) if ref else {}
    best = front(study)
    table = pd.DataFrame([_basic_row(t, ref_m) for t in best])
    if table.empty:
        return table
    if client is not None:
        wanted = {t.number: t for t in best} | ({ref.number: ref} if ref else {})
        points = {n: p for n, t in wanted.items()
                  if (p := load_predictions(client, t.user_attrs.get("mlflow_run_id", "")))}
        extra = decision_columns(points, ref.number if ref else None, n_boot=n_boot)
        if extra:
            table = table.join(pd.DataFrame.from_dict(extra, orient="index"), on="trial")
    table["reference_trial"] = ref.number if ref else None
    table["zero_f1_classes"] = table["zero_f1_classes"].astype("Int64")
    table = table.sort_values(["val_accuracy", "val_macro_f1"], ascending=False, kind="stable")
    return table.round({c: 4 for c in table.columns if table[c].dtype == float})


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


def _tracking_client(cfg: DictConfig):
    from mlflow import MlflowClient

    from sweep.tracking import check_reachable

    check_reachable(str(cfg.tracking.tracking_uri))
    return MlflowClient(tracking_uri=str(cfg.tracking.tracking_uri))


def write_report(study: optuna.Study, table: pd.DataFrame, client, folder: Path) -> list[Path]:
    """report.md with the table and the pictures: the test-split Pareto plot with intervals and baselines,
    and per front trial the per-class F1 histogram and F1 against class frequency (also logged to that
    trial's MLflow run). Returns the files written."""
    from sweep.pareto import plot_front, plot_per_class
    from sweep.study import baseline_points

    folder.mkdir(parents=True, exist_ok=True)
    intervals = {int(r.trial): {"accuracy": (r.test_accuracy_ci_low, r.test_accuracy_ci_high),
                                "macro_f1": (r.test_macro_f1_ci_low, r.test_macro_f1_ci_high)}
                 for r in table.itertuples() if hasattr(r, "test_accuracy_ci_low")}
    marks = {}
    ref = reference_trial(study)
    ref_pred = load_predictions(client, ref.user_attrs.get("mlflow_run_id", "")) if ref else None
    if ref_pred is not None:
        majority = int(np.argmax(ref_pred["counts"]))
        m, _ = evaluate(ref_pred["y"], np.full_like(ref_pred["y"], majority), ref_pred["names"])
        marks["majority class"] = (m["accuracy"], m["macro_f1"])
    for name, t in baseline_points(study).items():
        tm = t.user_attrs.get("metrics", {})
        marks[name.replace("_", " ")] = (tm.get("test_accuracy", np.nan), tm.get("test_macro_f1", np.nan))
    files = [plot_front(study, folder / "pareto_test.png", marks, split="test", intervals=intervals)]
    ref_f1 = None
    if ref_pred is not None:
        ref_f1 = per_class_f1(ref_pred)
    lines = [f"# Pareto front of study `{study.study_name}`", "",
             "Chosen on validation; every point re-scored on the held-out test split with 95% stratified "
             "bootstrap intervals. `within_noise`: the paired interval of the change against the reference "
             "(unweighted) trial contains 0 for both accuracy and macro-F1.", "",
             "![Pareto front on the test split](pareto_test.png)", ""]
    cols = [c for c in ("trial", "alpha", "tau", "posthoc_tau", "test_accuracy", "test_accuracy_ci_low",
                        "test_accuracy_ci_high", "test_macro_f1", "test_macro_f1_ci_low", "test_macro_f1_ci_high",
                        "delta_test_accuracy", "delta_test_macro_f1", "within_noise", "delta_head_accuracy",
                        "delta_tail_macro_f1", "zero_f1_classes", "classes_gained", "classes_lost",
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
    cfg = load_config(overrides)
    study = load_study(cfg, args.get("study"))
    client = _tracking_client(cfg)
    table = front_table(study, client, n_boot=int(args.get("n_boot", 2000)))
    if table.empty:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet: run `make sweep` first")
    seeds = int(args.get("seeds", 1))
    if seeds > 1:
        table = table.join(_seed_spread(study, table, seeds), on="trial")
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


def _seed_spread(study: optuna.Study, table: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """Re-train each Pareto point with `seeds` seeds; mean and standard deviation of the test metrics."""
    from sweep.train import run

    trials = {t.number: t for t in study.trials}
    rows = {}
    for n in table["trial"]:
        overrides = trials[int(n)].user_attrs["overrides"]
        base = int(load_config(overrides).seed)
        ms = [run(load_config([*overrides, f"seed={base + k}"])).metrics for k in range(seeds)]
        rows[int(n)] = {f"test_{m}_seed_{s}": getattr(np, s)([x[f"test_{m}"] for x in ms])
                        for m in ("accuracy", "macro_f1") for s in ("mean", "std")}
    return pd.DataFrame.from_dict(rows, orient="index")


def pick_command(argv: list[str]) -> None:
    """The Pareto point with the best validation macro-F1 that meets an accuracy constraint (on validation:
    the choice never peeks at the test split), shown with its test figures and MLflow run id."""
    args, overrides = _split_args(argv, ("study", "min_accuracy", "max_accuracy_loss"))
    if "min_accuracy" not in args and "max_accuracy_loss" not in args:
        raise ConfigError("give a constraint: min_accuracy=<x> and/or max_accuracy_loss=<x> (against the "
                          "unweighted reference, validation accuracy)")
    cfg = load_config(overrides)
    study = load_study(cfg, args.get("study"))
    table = front_table(study, _tracking_client(cfg))
    ok = pd.Series(True, index=table.index)
    rules = []
    if "min_accuracy" in args:
        ok &= table["val_accuracy"] >= float(args["min_accuracy"])
        rules.append(f"validation accuracy >= {float(args['min_accuracy']):.4f}")
    if "max_accuracy_loss" in args:
        ref = reference_trial(study)
        if ref is None:
            raise ConfigError("max_accuracy_loss needs the unweighted reference trial, which this study lacks: "
                              "use min_accuracy")
        floor = ref.values[0] - float(args["max_accuracy_loss"])
        ok &= table["val_accuracy"] >= floor
        rules.append(f"validation accuracy >= {floor:.4f} (reference {ref.values[0]:.4f} - "
                     f"{float(args['max_accuracy_loss'])})")
    rule = " and ".join(rules)
    if not ok.any():
        best = table["val_accuracy"].max()
        print(f"no Pareto point of study {study.study_name!r} meets {rule}: the most accurate reaches {best:.4f}")
        return
    row = table[ok].sort_values("val_macro_f1", ascending=False).iloc[0]
    print(f"pick for {rule}: trial {row.trial} (MLflow run {row.mlflow_run_id})")
    print(f"  alpha {row.alpha}, loss {row.loss}, tau {row.tau}, post-hoc tau {row.posthoc_tau}, model {row.model}")
    print(f"  validation: accuracy {row.val_accuracy:.4f}, macro-F1 {row.val_macro_f1:.4f}")
    if "test_accuracy_ci_low" in row:
        print(f"  test: accuracy {row.test_accuracy:.4f} [{row.test_accuracy_ci_low:.4f}, "
              f"{row.test_accuracy_ci_high:.4f}], macro-F1 {row.test_macro_f1:.4f} [{row.test_macro_f1_ci_low:.4f}, "
              f"{row.test_macro_f1_ci_high:.4f}] (95% bootstrap)")
    else:
        print(f"  test: accuracy {row.test_accuracy:.4f}, macro-F1 {row.test_macro_f1:.4f}")
