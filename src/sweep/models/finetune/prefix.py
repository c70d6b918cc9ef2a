"""The shared prefix of deferred re-weighting: the steps before model.reweight_from are the same for every trial
of a study, so the first worker to need them trains them once, under a file lock, and saves the whole training
state in the cache; the others wait on the lock, then load it (once per process) and branch from it."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from sweep.memo import CACHE
from sweep.models.finetune.tokens import Tokens

# What a prefix does not depend on: where it runs or queues, and what applies only after it.
NOT_IN_KEY = ("gpu_memory_gib", "name")
# key -> (state, meta): a worker reads a prefix from disk once
_LOADED: dict[str, tuple[dict, dict]] = CACHE.slot("models.finetune.prefixes")


def prefix_key(cfg: dict, tokens: Tokens, labels: np.ndarray, num_classes: int, seed: int, device: str) -> str:
    """Everything the prefix depends on: the training tokens and labels (the data), the model config (which
    holds model.reweight_from; weighting and loss are not in it), the number of classes and the seed."""
    h = hashlib.sha256()
    model = {k: v for k, v in sorted(cfg.items()) if k not in NOT_IN_KEY}
    blob = {"model": model, "classes": num_classes, "seed": seed, "on": device}
    h.update(json.dumps(blob, sort_keys=True, default=str).encode())
    for arr in (tokens.ids, tokens.offsets, np.asarray(labels, dtype=np.int64)):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:24]


class PrefixStore:
    """cache_dir/prefix/<key>.pt (the state, written atomically) and <key>.json (its meta: the MLflow run)."""

    def __init__(self, cache_dir: Path):
        self.root = Path(cache_dir) / "prefix"

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.pt", self.root / f"{key}.json"

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """One process at a time per prefix; the others block here. The kernel frees the lock if its holder
        dies (the next one then finds no state and trains it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{key}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self, key: str, device: torch.device) -> tuple[dict, dict] | None:
        if key in _LOADED:
            return _LOADED[key]
        state_path, meta_path = self.paths(key)
        if not (state_path.exists() and meta_path.exists()):
            return None
        state = torch.load(state_path, map_location=device, weights_only=False)
        _LOADED[key] = state, json.loads(meta_path.read_text())
        return _LOADED[key]

    def save(self, key: str, state: dict, meta: dict) -> None:
        state_path, meta_path = self.paths(key)
        for path, write in ((state_path, lambda p: torch.save(state, p)), (meta_path, None)):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            if write is None:
                tmp.write_text(json.dumps(meta, sort_keys=True))
            else:
                write(tmp)
            os.replace(tmp, path)  # the meta last: a state without its meta is not yet a prefix
        _LOADED[key] = state, meta


def clear_loaded() -> None:
    _LOADED.clear()
