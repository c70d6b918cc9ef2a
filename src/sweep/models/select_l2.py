"""Choosing the head's l2 once, on validation: the unweighted model's validation log-loss over a log grid.

Log-loss is a proper scoring rule and smooth in l2, so it is far less noisy than accuracy or macro-F1 for this
choice; the weighting and the post-hoc tau stay the sweep's business.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from scipy.special import log_softmax

from sweep.config import ConfigError, load_config
from sweep.data.splits import load_splits
from sweep.models.decoupled import head_features
from sweep.models.head import fit_head
from sweep.models.losses import LossSpec, log_prior
from sweep.models.metrics import evaluate

GRID = tuple(10.0 ** np.arange(-7, -2.99, 0.5))  # 1e-7 ... 1e-3, half decades


def l2_path(cfg: DictConfig, grid: tuple[float, ...] = GRID) -> pd.DataFrame:
    """One converged unweighted fit per l2, largest first (each warm-started from the previous one)."""
    if cfg.model.kind != "head":
        raise ConfigError(
            f"model={cfg.model.name} has no linear head to regularize: use model=tfidf_linear or model=minilm_head"
        )
    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    feats, _ = head_features(splits, cfg.model, cfg.paths.cache_dir)
    counts, y_val = splits.train_counts, splits.labels["val"]
    uniform = LossSpec(np.ones(len(counts)), log_prior(counts), 0.0)
    rows, starts = [], None
    for l2 in sorted(grid, reverse=True):
        fit = fit_head(
            feats["train"],
            splits.labels["train"],
            uniform,
            l2,
            gtol=float(cfg.model.head.gtol),
            max_iter=int(cfg.model.head.max_iter),
            starts=starts,
            device=str(cfg.model.head.get("device", "auto")),
        )
        starts = [("previous l2", fit.weight, fit.bias)]
        logits = fit.logits(feats["val"])
        scalars, _ = evaluate(y_val, logits.argmax(1), splits.class_names)
        rows.append(
            {
                "l2": l2,
                "val_log_loss": float(-log_softmax(logits, axis=1)[np.arange(len(y_val)), y_val].mean()),
                "val_accuracy": scalars["accuracy"],
                "val_macro_f1": scalars["macro_f1"],
                "iterations": fit.iterations,
                "seconds": fit.seconds,
                "converged": fit.converged,
            }
        )
    return pd.DataFrame(rows).sort_values("l2").reset_index(drop=True)


def best_l2(table: pd.DataFrame) -> float:
    """The converged l2 with the lowest validation log-loss."""
    ok = table[table["converged"]]
    if ok.empty:
        raise ConfigError("no l2 of the grid converged: raise model.head.max_iter")
    return float(ok.loc[ok["val_log_loss"].idxmin(), "l2"])


def l2_command(argv: list[str]) -> None:
    cfg = load_config(argv)
    table = l2_path(cfg)
    chosen = best_l2(table)
    print(
        f"unweighted {cfg.model.name} on {cfg.data.name}: validation log-loss per l2 (converged fits, "
        f"gtol {cfg.model.head.gtol})"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(
        f"lowest validation log-loss at l2 = {chosen:.3g}: set model.head.l2={chosen:.3g} (today {cfg.model.head.l2})"
    )
