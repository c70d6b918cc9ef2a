"""The Pareto front for decision meetings: one row per non-dominated trial, read from the Optuna storage
(which trials, their params and metrics) and MLflow (their run ids' existence), written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pandas as pd
from omegaconf import DictConfig

from sweep.config import ConfigError, load_config
from sweep.pareto import front

REFERENCE_NAME = "unweighted"


def reference_trial(study: optuna.Study):
    from sweep.study import baseline_points

    return baseline_points(study).get(study.user_attrs.get("reference", REFERENCE_NAME))


def front_table(study: optuna.Study, cfg: DictConfig | None = None) -> pd.DataFrame:
    """The CSV's rows: the non-dominated trials (Optuna's best_trials), sorted by validation accuracy."""
    ref = reference_trial(study)
    ref_m = ref.user_attrs.get("metrics", {}) if ref else {}
    rows = []
    for t in front(study):
        m, c = t.user_attrs.get("metrics", {}), t.user_attrs.get("config", {})
        row = {
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
            "reference_trial": ref.number if ref else None,
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values(["val_accuracy", "val_macro_f1"], ascending=False, kind="stable")
    table["zero_f1_classes"] = table["zero_f1_classes"].astype("Int64")
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


def export_command(argv: list[str]) -> None:
    args, overrides = _split_args(argv, ("study", "out"))
    cfg = load_config(overrides)
    study = load_study(cfg, args.get("study"))
    table = front_table(study, cfg)
    if table.empty:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet: run `make sweep` first")
    out = write_csv(table, Path(args.get("out", Path(cfg.paths.root) / "pareto.csv")))
    print(f"wrote {out}: {len(table)} Pareto-optimal trials of study {study.study_name!r}")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False))


def pick_command(argv: list[str]) -> None:
    raise ConfigError("make pick is not implemented yet")
