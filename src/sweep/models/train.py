"""One configuration, end to end: splits -> features (cached) -> train with the project's loss -> logits.

Logits are cached by everything that changes training; the post-hoc tau only changes the argmax, so a
trial that differs from an earlier one only in loss.posthoc_tau reuses the earlier trial's logits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.config import ConfigError
from sweep.data.precomputed import precomputed_logits
from sweep.data.splits import Splits, load_splits
from sweep.memo import CACHE
from sweep.models.decoupled import head_features
from sweep.models.head import HeadFit, WarmStarts, fit_head
from sweep.models.losses import LossSpec, class_weights, log_prior, posthoc_predict
from sweep.models.metrics import evaluate
from sweep.models.posthoc import tau_curve

log = logging.getLogger(__name__)
_LOGITS: dict[str, tuple[dict[str, np.ndarray], dict]] = CACHE.slot("models.train.logits")


@dataclass
class RunResult:
    metrics: dict[str, float]  # "val_accuracy", "test_macro_f1", ...
    per_class: dict[str, pd.DataFrame]  # split -> per-class table
    splits: Splits
    info: dict = field(default_factory=dict)  # timings, cache hits, weights
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # split -> predicted class ids
    tau_curve: pd.DataFrame | None = None  # validation metrics over post-hoc tau, from the same logits


def loss_spec(cfg: DictConfig, counts: np.ndarray) -> LossSpec:
    w = cfg.weighting
    weights = class_weights(counts, w.scheme, float(w.get("alpha", 0.0)), float(w.get("beta", 0.999)))
    tau = float(cfg.loss.tau) if cfg.loss.name == "logit_adjusted" else 0.0
    return LossSpec(weights=weights, log_prior=log_prior(counts), tau=tau)


_WARM = WarmStarts()
_WARM.solutions = CACHE.slot("models.train.warm_starts")


def path_point(weighting: DictConfig) -> float:
    """Where a weighting sits on its scheme's one-parameter path (alpha, beta): the warm starts' coordinate."""
    return {"power": float(weighting.get("alpha", 0.0)), "effective_number": float(weighting.get("beta", 0.0))}.get(
        str(weighting.scheme), 0.0
    )


def fit_linear(feats: dict, y: np.ndarray, loss: LossSpec, cfg: DictConfig, features_key: str) -> HeadFit:
    """The converged head fit, started from a prediction along the solutions fitted on the same features."""
    head = cfg.model.head
    problem = (features_key, float(head.l2), float(head.gtol), str(cfg.weighting.scheme))
    point = path_point(cfg.weighting)
    fit = fit_head(
        feats["train"],
        y,
        loss,
        float(head.l2),
        gtol=float(head.gtol),
        max_iter=int(head.max_iter),
        starts=_WARM.start(problem, point, loss),
        device=str(head.get("device", "auto")),
    )
    _WARM.add(problem, point, loss, fit)
    if not fit.converged:
        log.warning(
            "head fit stopped at the cap (%d iterations) with max|gradient| %.2e > gtol %.0e: not a "
            "result; raise model.head.max_iter or model.head.l2",
            fit.iterations,
            fit.grad_max,
            head.gtol,
        )
    return fit


def _logits_key(cfg: DictConfig, fingerprint: str) -> str:
    loss = OmegaConf.to_container(cfg.loss, resolve=True)
    loss.pop("posthoc_tau", None)  # prediction-time only
    if cfg.model.kind == "head":  # a head's training tau is a bias shift of the tau = 0 fit (see head.py)
        loss = {}
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model.pop("gpu_memory_gib", None)  # where a fine-tune queues, not what it computes
    blob = {
        "model": model,
        "loss": loss,
        "seed": int(cfg.seed),
        "weighting": OmegaConf.to_container(cfg.weighting, resolve=True),
        "data": fingerprint,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def train_logits(cfg: DictConfig, splits: Splits, loss: LossSpec, hooks=None) -> tuple[dict[str, np.ndarray], dict]:
    """Raw (unadjusted) val and test logits of the configured model; a fine-tune takes `hooks` (finetune.Hooks:
    the halving rungs, the shared prefix's run)."""
    cache_dir = Path(cfg.paths.cache_dir)
    info: dict = {}
    if cfg.model.kind == "logits":  # given (model=precomputed_logits): nothing to train, so nothing to weight
        if np.ptp(loss.weights) > 0 or loss.tau:
            raise ConfigError(
                f"model={cfg.model.name} holds fixed logits: class weights and a training tau need training; "
                "use weighting.alpha=0 and loss=ce (the post-hoc tau is free)"
            )
        return precomputed_logits(splits, cfg.model), {"logits_cache": "file"}
    if cfg.model.kind == "head":
        feats, finfo = head_features(splits, cfg.model, cache_dir)
        info["featurize_seconds"], info["features_cache"] = finfo["seconds"], finfo["cached"]
        fit = fit_linear(feats, splits.labels["train"], loss, cfg, finfo["key"])
        info.update(fit.info())
        return {s: fit.logits(feats[s], key=f"{finfo['key']}/{s}") for s in ("val", "test")}, info
    from sweep.models.finetune import finetune_logits

    evals = {s: splits.texts[s] for s in ("val", "test")}
    logits = finetune_logits(
        splits.texts["train"],
        splits.labels["train"],
        evals,
        splits.num_classes,
        loss,
        cfg.model,
        int(cfg.seed),
        cache_dir,
        hooks,
    )
    if hooks is not None and (hooks.info.get("prefix") or {}).get("run_id"):
        info["branched_from"] = hooks.info["prefix"]["run_id"]
    return logits, info


FIT_KEYS = ("fit_iterations", "fit_grad_max", "fit_converged", "fit_loss", "fit_seconds")  # how the fit ended
CACHED_KEYS = (*FIT_KEYS, "branched_from")  # kept with cached logits; with the shared prefix's MLflow run


def cached_logits(cfg: DictConfig, splits: Splits, loss: LossSpec, hooks=None) -> tuple[dict[str, np.ndarray], dict]:
    """Logits per split, and how the fit behind them ended (iterations, gradient, converged), cached.

    A head model's training-time tau costs no fit: the optimum at tau is the tau = 0 optimum with its bias
    shifted by -tau * log_prior (unpenalized bias), so the cache holds the tau = 0 logits and shifts them."""
    if cfg.model.kind == "logits":  # read from their file (once per process): no copy in the cache
        return train_logits(cfg, splits, loss)
    if cfg.model.kind == "head" and loss.tau:
        logits, info = cached_logits(cfg, splits, LossSpec(loss.weights, loss.log_prior, 0.0))
        return {s: v - loss.tau * loss.log_prior for s, v in logits.items()}, info
    key = _logits_key(cfg, splits.fingerprint)
    path = Path(cfg.paths.cache_dir) / "logits" / f"{key}.npz"
    if key in _LOGITS:
        logits, fit = _LOGITS[key]
        return logits, {**fit, "logits_cache": "memory"}
    if path.exists():
        with np.load(path) as z:
            fit = json.loads(str(z["fit_info"])) if "fit_info" in z.files else {}
            _LOGITS[key] = {k: z[k] for k in z.files if k != "fit_info"}, fit
        return _LOGITS[key][0], {**fit, "logits_cache": "disk"}
    start = time.perf_counter()
    logits, info = train_logits(cfg, splits, loss, hooks)
    info.update(train_seconds=time.perf_counter() - start, logits_cache="trained")
    if not all(np.isfinite(v).all() for v in logits.values()):
        raise FloatingPointError("the model produced non-finite logits (NaN/inf): lower the learning rate")
    fit = {k: info[k] for k in CACHED_KEYS if k in info}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{key}.{os.getpid()}.npz")
    np.savez(tmp, **logits, fit_info=np.array(json.dumps(fit)))
    os.replace(tmp, path)
    _LOGITS[key] = logits, fit
    return logits, info


def fold_splits(splits: Splits, k: int, seed: int) -> list[Splits]:
    """K stratified train / validation folds of the pool (train + validation); the test split untouched."""
    from sklearn.model_selection import StratifiedKFold

    from sweep.data.splits import DataError

    texts = splits.texts["train"] + splits.texts["val"]
    labels = np.concatenate([splits.labels["train"], splits.labels["val"]])
    # where each example came from (data/precomputed.py reads its rows by them): pooled as the texts are
    origin = {
        name: (np.concatenate([by_split["train"], by_split["val"]]), by_split["test"])
        for name, by_split in (("rows", splits.rows), ("ids", splits.ids))
        if by_split
    }
    smallest = int(np.bincount(labels, minlength=splits.num_classes).min())
    if smallest < k:
        raise DataError(
            f"a class has {smallest} example(s) in train + validation, fewer than sweep.cv_folds={k}: "
            "lower sweep.cv_folds or raise data.min_class_count"
        )
    out = []
    for tr, va in StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels):
        parts = {"train": tr, "val": va}
        out.append(
            Splits(
                texts={**{n: [texts[i] for i in idx] for n, idx in parts.items()}, "test": splits.texts["test"]},
                labels={**{n: labels[idx] for n, idx in parts.items()}, "test": splits.labels["test"]},
                class_names=splits.class_names,
                info={f"n_{n}": len(idx) for n, idx in parts.items()} | {"rows_read": splits.info.get("rows_read", {})},
                **{
                    name: {**{n: pool[idx] for n, idx in parts.items()}, "test": test}
                    for name, (pool, test) in origin.items()
                },
            )
        )
    return out


def cv_metrics(cfg: DictConfig, splits: Splits, k: int) -> dict[str, float]:
    """Validation accuracy and macro-F1 as the mean over k folds, with their standard errors and each fold's
    value: a less noisy objective than one validation split (cheap for the linear head)."""
    tau = float(cfg.loss.get("posthoc_tau", 0.0))
    per_fold: dict[str, list[float]] = {"accuracy": [], "macro_f1": []}
    converged = True
    for fold in fold_splits(splits, k, int(cfg.data.get("split_seed", 0))):
        loss = loss_spec(cfg, fold.train_counts)
        logits, info = cached_logits(cfg, fold, loss)
        converged &= info.get("fit_converged", True)
        scalars, _ = evaluate(fold.labels["val"], posthoc_predict(logits["val"], loss.log_prior, tau), fold.class_names)
        for m in per_fold:
            per_fold[m].append(scalars[m])
    out: dict[str, float] = {"cv_folds_converged": float(converged)}
    for m, values in per_fold.items():
        v = np.array(values)
        out[f"val_{m}"], out[f"val_{m}_se"] = float(v.mean()), float(v.std(ddof=1) / np.sqrt(k))
        out.update({f"val_{m}_fold{i}": float(x) for i, x in enumerate(v)})
    return out


def check_inputs(cfg: DictConfig, splits: Splits) -> None:
    """Read what a model takes from a file before any trial (model=precomputed, model=precomputed_logits), so that
    a wrong row count, NaN or inf, or a missing id stops a sweep in one line instead of failing every trial."""
    if cfg.model.kind == "logits":
        precomputed_logits(splits, cfg.model)
    elif cfg.model.kind == "head" and cfg.model.get("features") == "precomputed":
        head_features(splits, cfg.model, cfg.paths.cache_dir)


def rung_scorer(splits: Splits, loss: LossSpec, tau: float, on_score: Callable[[int, dict], None]):
    """A fine-tune's rung callback: its validation logits at a step -> the scalar metrics, as the trial's end
    would score them (the trial's post-hoc tau), handed to on_score(step, metrics)."""

    def on_rung(step: int, val_logits: np.ndarray) -> None:
        pred = posthoc_predict(val_logits, loss.log_prior, tau)
        on_score(step, evaluate(splits.labels["val"], pred, splits.class_names)[0])

    return on_rung


def run(cfg: DictConfig, hooks=None, on_score: Callable[[int, dict], None] | None = None) -> RunResult:
    """Train and evaluate one composed configuration (no tracking: see tracking.log_result). A fine-tune takes
    `hooks` (finetune.Hooks), and with on_score, is scored on validation at each of the hooks' rungs.

    With sweep.cv_folds = K > 1 the validation metrics are the mean over K folds of train + validation; the
    predictions (and the test metrics) stay those of the model trained on the train split."""
    start = time.perf_counter()
    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    loss = loss_spec(cfg, splits.train_counts)
    tau = float(cfg.loss.get("posthoc_tau", 0.0))
    if hooks is not None and on_score is not None:
        hooks.on_rung = rung_scorer(splits, loss, tau, on_score)
    logits, info = cached_logits(cfg, splits, loss, hooks)
    metrics, per_class, predictions = {}, {}, {}
    for split in ("val", "test"):
        pred = predictions[split] = posthoc_predict(logits[split], loss.log_prior, tau)
        scalars, per_class[split] = evaluate(splits.labels[split], pred, splits.class_names)
        metrics.update({f"{split}_{k}": v for k, v in scalars.items()})
    folds = int(cfg.sweep.get("cv_folds", 1))
    if folds > 1:
        metrics.update(cv_metrics(cfg, splits, folds))
        info["fit_converged"] = bool(info.get("fit_converged", True) and metrics.pop("cv_folds_converged"))
    for key in FIT_KEYS:
        if key in info:
            metrics[key] = float(info[key])
    curve = tau_curve(logits["val"], splits.labels["val"], loss.log_prior)
    info.update(seconds=time.perf_counter() - start, class_weights=loss.weights.round(4).tolist(), posthoc_tau=tau)
    info["logits"] = logits
    return RunResult(metrics, per_class, splits, info, predictions, tau_curve=curve)
