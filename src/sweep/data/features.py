"""Featurize the splits once per data + featurizer settings; cached on disk and in memory.

tfidf: scikit-learn's TfidfVectorizer fit on the train split (sparse matrices);
embeddings: a frozen encoder's mean-pooled sentence embeddings (dense), see encoders.py;
finetuned: built by the models layer (models/decoupled.py: the encoder fine-tuned once with its own loss) on
this module's cache (cached) and normalization (normalized);
precomputed: embeddings computed elsewhere, read from model.path per data row (data/precomputed.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from omegaconf import DictConfig, OmegaConf

from sweep.data.precomputed import file_settings, precomputed_features
from sweep.data.splits import Splits
from sweep.files import write_atomic
from sweep.memo import CACHE

log = logging.getLogger(__name__)
_MEMORY: dict[str, dict] = CACHE.slot("data.features.memory")


def cache_key(kind: str, settings: dict, fingerprint: str) -> str:
    blob = json.dumps({"kind": kind, "settings": settings, "data": fingerprint}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def tfidf_features(splits: Splits, settings: dict) -> dict[str, sp.csr_matrix]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(
        max_features=settings["max_features"],
        ngram_range=(1, settings["ngram_max"]),
        min_df=settings["min_df"],
        sublinear_tf=settings["sublinear_tf"],
        dtype=np.float32,
    )
    out = {"train": vec.fit_transform(splits.texts["train"]).tocsr()}
    for name in ("val", "test"):
        out[name] = vec.transform(splits.texts[name]).tocsr()
    return out


def embedding_features(splits: Splits, settings: dict) -> dict[str, np.ndarray]:
    from sweep.data.encoders import embed_texts

    return {
        name: embed_texts(texts, settings["pretrained"], settings["max_length"], settings["batch_size"])
        for name, texts in splits.texts.items()
    }


NORMALIZE = ("l2", "standard", "none")


def normalized(feats: dict[str, np.ndarray], how: str) -> dict[str, np.ndarray]:
    """Dense features as the head sees them. l2: unit rows (sentence-transformers' recipe, as the frozen
    `embeddings`); standard: each dimension centred and scaled by the train split's mean and standard
    deviation; none. On fine-tuned MiniLM embeddings of the CFPB sample (CPU check, 4,000 train rows), l2 gave
    the head's L-BFGS 3-4x fewer iterations than none and 6x fewer than standard, whose scaling blows up
    near-constant dimensions (train std down to 1e-3) into noise the head then fits."""
    if how == "none":
        return feats
    if how == "l2":
        return {k: v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for k, v in feats.items()}
    if how == "standard":
        mean, std = feats["train"].mean(0), feats["train"].std(0)
        std = np.where(std > 1e-6 * max(float(std.max()), 1e-30), std, 1.0)  # a constant dimension stays 0
        return {k: ((v - mean) / std).astype(np.float32) for k, v in feats.items()}
    raise ValueError(f"model.normalize={how!r} is unknown: use one of {', '.join(NORMALIZE)}")


def _save(path: Path, feats: dict) -> None:
    def write(tmp: Path) -> None:
        tmp.mkdir()
        for name, m in feats.items():
            if sp.issparse(m):
                sp.save_npz(tmp / f"{name}.npz", m, compressed=False)
            else:
                np.save(tmp / f"{name}.npy", m)

    write_atomic(path, write)  # a directory renamed into place: readers see all splits or none


def _load(path: Path) -> dict:
    feats = {}
    for f in path.iterdir():
        if f.suffix in (".npz", ".npy"):
            feats[f.stem] = sp.load_npz(f).tocsr() if f.suffix == ".npz" else np.load(f)
    return feats


@contextmanager
def _building(path: Path):
    """An exclusive file lock next to the cache entry, held while it is read or built."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def featurize(splits: Splits, model_cfg: DictConfig, cache_dir: str | Path) -> tuple[dict, dict]:
    """Features per split for a head on TF-IDF or frozen-encoder embeddings, plus timing info ({'seconds': ..,
    'cached': .., 'key': ..}). model.features=finetuned is models/decoupled.py's head_features (it fine-tunes)."""
    kind = model_cfg.features
    if kind == "tfidf":
        settings, build = OmegaConf.to_container(model_cfg.tfidf, resolve=True), tfidf_features
    elif kind == "embeddings":
        settings, build = OmegaConf.to_container(model_cfg.encoder, resolve=True), embedding_features
    elif kind == "precomputed":  # the file's rows per split, normalized after the cache as fine-tuned features
        how = str(model_cfg.normalize)  # one of NORMALIZE: checked at load (schema/model.py)
        build = lambda s, _settings: precomputed_features(s, model_cfg)  # noqa: E731 - settings: the key only
        return cached(kind, file_settings(model_cfg, splits), splits, cache_dir, build, how)
    elif kind == "finetuned":
        raise ValueError(
            "model.features=finetuned fine-tunes an encoder: its features come from "
            "sweep.models.decoupled.head_features"
        )
    else:
        raise ValueError(f"model.features={kind!r} is unknown: use tfidf, embeddings, finetuned or precomputed")
    return cached(kind, settings, splits, cache_dir, build)


def cached(
    kind: str,
    settings: dict,
    splits: Splits,
    cache_dir: str | Path,
    build: Callable[[Splits, dict], dict],
    how: str | None = None,
) -> tuple[dict, dict]:
    """build(splits, settings) once per data + settings: from memory, else from disk, else built and saved;
    `how` normalizes dense features after the cache (normalized), so changing it never builds again."""
    key = cache_key(kind, settings, splits.fingerprint)
    shown = key if how is None else f"{key}-{how}"  # the head's problem: warm starts never mix normalizations
    if shown in _MEMORY:
        return _MEMORY[shown], {"seconds": 0.0, "cached": "memory", "key": shown}
    path = Path(cache_dir) / "features" / key
    start = time.perf_counter()
    with _building(path):  # local workers wait for the one that builds (one fine-tune, not one per worker)
        if path.exists():
            feats, source = _load(path), "disk"
        else:
            feats, source = build(splits, settings), "computed"
            if not path.exists():  # a process on another machine may have written it meanwhile
                _save(path, feats)
    if how is not None:
        feats = normalized(feats, how)
    _MEMORY[shown] = feats
    seconds = time.perf_counter() - start
    log.info("features %s: %s in %.1fs", shown, source, seconds)
    return feats, {"seconds": seconds, "cached": source, "key": shown}
