"""One fine-tune of a trial, end to end: tokens (cached) -> the model (built once per process and shape) -> the
steps, branched from the shared prefix when model.reweight_from > 0, evaluated at the halving rungs -> logits.

Deferred re-weighting (Cao et al. 2019, LDAM-DRW): plain cross-entropy for the first reweight_from of the steps,
the trial's class weights and training tau after; the schedule spans the whole run either way."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sweep.memo import CACHE
from sweep.models import gpu_share
from sweep.models.finetune.loop import Training, predict, rung_steps
from sweep.models.finetune.model import Runner, build_runner, load_tokenizer, pick_device
from sweep.models.finetune.prefix import PrefixStore, prefix_key
from sweep.models.finetune.tokens import tokenize_cached
from sweep.models.losses import LossSpec
from sweep.schema.finetune import resolve_cfg

log = logging.getLogger(__name__)


@dataclass
class Hooks:
    """What a trial asks of its fine-tune beyond the logits. on_rung(step, val_logits) is called at each rung
    (fractions of the steps after the prefix) and may raise to stop the trial there; on_prefix(meta) is called
    by the one process that trains a prefix, before the others may load it, and returns its MLflow run id."""

    rungs: Sequence[float] = ()
    on_rung: Callable[[int, np.ndarray], None] | None = None
    on_prefix: Callable[[dict], str | None] | None = None
    info: dict = field(default_factory=dict)  # filled in: the prefix used ({key, run_id, trained_here, step})


# one model per process: a reused model keeps its compile
_RUNNERS: dict[str, tuple[Runner, dict, tuple]] = CACHE.slot("models.finetune.runners")


def _runner(c: dict, num_classes: int, seed: int, cache_dir: Path) -> Runner:
    """The model as build_runner makes it, rebuilt only when the shape changes: a later trial of the same config
    gets the same weights and random state back (bitwise a fresh build), and torch.compile's graphs with them."""
    key = json.dumps({"cfg": c, "classes": num_classes, "seed": seed}, sort_keys=True, default=str)
    if key in _RUNNERS:
        runner, weights, rng = _RUNNERS[key]
        runner.model.load_state_dict(weights)
    else:
        _RUNNERS.clear()  # one model at a time: the memory goes back before the next shape is built
        runner = build_runner(c, num_classes, seed, cache_dir)
        weights = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
        cuda = torch.cuda.get_rng_state(runner.device) if runner.device.type == "cuda" else None
        rng = (torch.get_rng_state(), cuda)
        _RUNNERS[key] = runner, weights, rng
    torch.set_rng_state(rng[0])
    if rng[1] is not None:
        torch.cuda.set_rng_state(rng[1], runner.device)
    return runner


def _steps(training: Training, c: dict, loss: LossSpec, num_classes: int, seed: int, cache_dir: Path, hooks: Hooks):
    """The steps before model.reweight_from with plain cross-entropy, trained here or loaded, then the trial's."""
    start = round(c["reweight_from"] * training.total)
    if start == 0:
        return 0
    plain = LossSpec(np.ones_like(loss.weights), loss.log_prior, 0.0)
    store = PrefixStore(cache_dir)
    key = prefix_key(c, training.batcher.t, training.y.cpu().numpy(), num_classes, seed, training.runner.device.type)
    with store.lock(key):
        found = store.load(key, training.runner.device)
        if found is None:
            training.run(plain, start)
            meta = {"key": key, "step": start, "total": training.total, "seconds": round(training.seconds, 3)}
            meta["run_id"] = hooks.on_prefix(meta) if hooks.on_prefix else None
            store.save(key, training.state(), meta)
            trained = True
        else:
            training.load(found[0])
            meta, trained = found[1], False
    hooks.info["prefix"] = {**meta, "trained_here": trained}
    return start


def _finetuned(
    train_texts: list[str],
    train_labels: np.ndarray,
    eval_texts: dict[str, list[str]],
    num_classes: int,
    loss: LossSpec,
    cfg: Mapping[str, Any],
    seed: int,
    cache_dir: Path,
    hooks: Hooks | None = None,
):
    """Fine-tune cfg.pretrained on the train split with `loss`: (runner, eval tokens, training stats)."""
    c = resolve_cfg(cfg)
    hooks = hooks or Hooks()
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.shape != (len(train_texts),) or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"train_labels must be {len(train_texts)} ints in [0, {num_classes}): got shape "
            f"{labels.shape}, range [{labels.min()}, {labels.max()}]"
        )
    tok = load_tokenizer(c["pretrained"])
    cache_dir = Path(cache_dir)
    train_tokens = tokenize_cached(list(train_texts), tok, c["max_length"], cache_dir)
    eval_tokens = {k: tokenize_cached(list(v), tok, c["max_length"], cache_dir) for k, v in eval_texts.items()}
    runner = _runner(c, num_classes, seed, cache_dir)
    training = Training(runner, train_tokens, labels, seed)
    start = _steps(training, c, loss, num_classes, seed, cache_dir, hooks)
    for step in rung_steps(start, training.total, hooks.rungs if hooks.on_rung else ()):
        training.run(loss, step)
        hooks.on_rung(step, predict(runner, eval_tokens["val"]))
    training.run(loss, training.total)
    stats = training.stats()
    hooks.info["steps"] = training.total
    log.info(
        "finetune %s: %d steps (%d from the prefix) in %.1fs on %s (%s, %s), loss per epoch %s",
        c["name"],
        stats["steps"],
        start,
        stats["seconds"],
        runner.device,
        "bf16" if runner.bf16 else "fp32",
        "packed" if runner.packed else "padded",
        [round(x, 4) for x in stats["loss_per_epoch"]],
    )
    stats.update(device=str(runner.device), bf16=runner.bf16, packed=runner.packed, prefix_steps=start)
    return runner, eval_tokens, stats


def finetune_logits(
    train_texts: list[str],
    train_labels: np.ndarray,
    eval_texts: dict[str, list[str]],
    num_classes: int,
    loss: LossSpec,
    cfg: Mapping[str, Any],
    seed: int,
    cache_dir: Path,
    hooks: Hooks | None = None,
) -> dict[str, np.ndarray]:
    """Fine-tune cfg.pretrained on the train split with `loss`; raw float32 logits (n, C) for each eval split."""
    with _gpu_share(cfg, cache_dir):
        runner, tokens, _ = _finetuned(
            train_texts, train_labels, eval_texts, num_classes, loss, cfg, seed, cache_dir, hooks
        )
        return {k: predict(runner, t).astype(np.float32) for k, t in tokens.items()}


def finetune_embeddings(
    train_texts: list[str],
    train_labels: np.ndarray,
    texts: dict[str, list[str]],
    num_classes: int,
    loss: LossSpec,
    cfg: Mapping[str, Any],
    seed: int,
    cache_dir: Path,
) -> tuple[dict[str, np.ndarray], dict]:
    """Fine-tune once, as finetune_logits, then embed every split in `texts` (train included) with the
    fine-tuned encoder: mean-pooled last hidden states (n, hidden) float32, the representation on which
    decoupled classifier re-training (Kang et al., ICLR 2020) fits its heads. Also: the training stats."""
    with _gpu_share(cfg, cache_dir):  # gives the cached GPU memory back: the sweep's head fits come next
        t0 = time.perf_counter()
        runner, tokens, stats = _finetuned(train_texts, train_labels, texts, num_classes, loss, cfg, seed, cache_dir)
        t1 = time.perf_counter()
        out = {k: predict(runner, t, pooled=True) for k, t in tokens.items()}
        stats.update(finetune_seconds=t1 - t0, embed_seconds=time.perf_counter() - t1)
        _RUNNERS.clear()  # fine-tuned once: the head fits need the memory, not the model
    return out, stats


def _gpu_share(cfg: Mapping[str, Any], cache_dir: Path):
    """Workers sharing a GPU queue for its memory (models/gpu_share.py); a CPU fine-tune shares nothing."""
    c = resolve_cfg(cfg)
    device = pick_device(c["device"])
    gpu = gpu_share.cuda_gpu(device) if device.type == "cuda" else None
    return gpu_share.gpu_slot(gpu, gpu_share.shape_key(c), cache_dir, c["gpu_memory_gib"])
