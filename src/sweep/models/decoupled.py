"""Decoupled classifier re-training (model.features=finetuned): the encoder fine-tuned once with its own loss,
its mean-pooled embeddings cached (data/features.py) as the features every trial's linear head refits on."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from sweep.config import plain
from sweep.data.features import cached, featurize
from sweep.data.splits import Splits

log = logging.getLogger(__name__)


def finetuned_features(splits: Splits, settings: dict, cache_dir: str | Path) -> dict[str, np.ndarray]:
    """Decoupled classifier re-training (Kang et al., ICLR 2020, "Decoupling Representation and Classifier"):
    the representation is learned once, by fine-tuning with the loss in `settings` (weighting, tau), and the
    class balance is then set in the linear head that each trial fits on these embeddings."""
    from sweep.models.finetune import finetune_embeddings
    from sweep.models.losses import LossSpec, class_weights, log_prior

    ft = dict(settings)
    weighting, tau, seed = dict(ft.pop("weighting")), float(ft.pop("tau")), int(ft.pop("seed"))
    counts = splits.train_counts
    weights = class_weights(
        counts,
        weighting.get("scheme", "power"),
        float(weighting.get("alpha", 0.0)),
        float(weighting.get("beta", 0.999)),
    )
    loss = LossSpec(weights=weights, log_prior=log_prior(counts), tau=tau)
    feats, stats = finetune_embeddings(
        splits.texts["train"],
        splits.labels["train"],
        splits.texts,
        splits.num_classes,
        loss,
        {"name": "finetuned", **ft},
        seed,
        cache_dir,
    )
    log.info(
        "finetuned features: fine-tune %.1fs, embedding %.1fs (%s)",
        stats["finetune_seconds"],
        stats["embed_seconds"],
        stats["device"],
    )
    return feats


def head_features(splits: Splits, model_cfg: DictConfig, cache_dir: str | Path) -> tuple[dict, dict]:
    """Features per split for a `kind: head` model, plus timing info ({'seconds': .., 'cached': .., 'key': ..}):
    tfidf and embeddings from data/features.py's featurize.

    features: finetuned fine-tunes model.finetune on first use (on the GPU if there is one) and caches the
    raw embeddings by data + every fine-tune setting (its loss and seed included); model.normalize is applied
    after the cache, so changing it never fine-tunes again. Its keys were checked at load (config.validate)."""
    if model_cfg.features != "finetuned":
        return featurize(splits, model_cfg, cache_dir)
    settings, how = plain(model_cfg.finetune), str(model_cfg.normalize)

    def build(s, settings):
        return finetuned_features(s, settings, cache_dir)

    return cached("finetuned", settings, splits, cache_dir, build, how)
