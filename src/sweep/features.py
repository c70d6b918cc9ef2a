"""Featurize the splits once per data + featurizer settings; cached on disk and in memory.

tfidf: scikit-learn's TfidfVectorizer fit on the train split (sparse matrices);
embeddings: a frozen encoder's mean-pooled sentence embeddings (dense), see encoders.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from omegaconf import DictConfig, OmegaConf

from sweep.data import Splits

log = logging.getLogger(__name__)
_MEMORY: dict[str, dict] = {}


def cache_key(kind: str, settings: dict, fingerprint: str) -> str:
    blob = json.dumps({"kind": kind, "settings": settings, "data": fingerprint}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def tfidf_features(splits: Splits, settings: dict) -> dict[str, sp.csr_matrix]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(max_features=settings["max_features"], ngram_range=(1, settings["ngram_max"]),
                          min_df=settings["min_df"], sublinear_tf=settings["sublinear_tf"], dtype=np.float32)
    out = {"train": vec.fit_transform(splits.texts["train"]).tocsr()}
    for name in ("val", "test"):
        out[name] = vec.transform(splits.texts[name]).tocsr()
    return out


def embedding_features(splits: Splits, settings: dict) -> dict[str, np.ndarray]:
    from sweep.encoders import embed_texts

    return {name: embed_texts(texts, settings["pretrained"], settings["max_length"], settings["batch_size"])
            for name, texts in splits.texts.items()}


def _save(path: Path, feats: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, m in feats.items():
        if sp.issparse(m):
            sp.save_npz(tmp / f"{name}.npz", m, compressed=False)
        else:
            np.save(tmp / f"{name}.npy", m)
    os.replace(tmp, path)  # a directory rename: readers see all splits or none


def _load(path: Path) -> dict:
    feats = {}
    for f in path.iterdir():
        feats[f.stem] = sp.load_npz(f).tocsr() if f.suffix == ".npz" else np.load(f)
    return feats


def featurize(splits: Splits, model_cfg: DictConfig, cache_dir: str | Path) -> tuple[dict, dict]:
    """Features per split for a `kind: head` model, plus timing info ({'seconds': .., 'cached': ..})."""
    kind = model_cfg.features
    if kind == "tfidf":
        settings, build = OmegaConf.to_container(model_cfg.tfidf, resolve=True), tfidf_features
    elif kind == "embeddings":
        settings, build = OmegaConf.to_container(model_cfg.encoder, resolve=True), embedding_features
    else:
        raise ValueError(f"model.features={kind!r} is unknown: use tfidf or embeddings")
    key = cache_key(kind, settings, splits.fingerprint)
    if key in _MEMORY:
        return _MEMORY[key], {"seconds": 0.0, "cached": "memory", "key": key}
    path = Path(cache_dir) / "features" / key
    start = time.perf_counter()
    if path.exists():
        feats, source = _load(path), "disk"
    else:
        feats, source = build(splits, settings), "computed"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # another worker may have written it meanwhile
            _save(path, feats)
    _MEMORY[key] = feats
    seconds = time.perf_counter() - start
    log.info("features %s: %s in %.1fs", key, source, seconds)
    return feats, {"seconds": seconds, "cached": source, "key": key}
