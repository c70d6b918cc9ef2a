"""Tokenization, cached on disk: a flat int32 array of token ids plus offsets (no padding stored), keyed by the
tokenizer, the length cap and the texts."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Tokens:
    ids: np.ndarray  # int32, all sequences back to back
    offsets: np.ndarray  # int64, n + 1
    pad_id: int

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1


def _tokenizer_fingerprint(tok) -> str:
    files = [
        json.dumps(tok.init_kwargs.get("name_or_path", ""), default=str),
        type(tok).__name__,
        str(len(tok)),
        str(tok.pad_token_id),
    ]
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        files.append(hashlib.sha256(backend.to_str().encode()).hexdigest())
    return hashlib.sha256("|".join(files).encode()).hexdigest()[:16]


def tokenize_cached(texts: list[str], tok, max_length: int, cache_dir: Path | None) -> Tokens:
    """Tokenize once (truncate at max_length, special tokens added); cache keyed by tokenizer + length + texts."""
    h = hashlib.sha256()
    h.update(f"{_tokenizer_fingerprint(tok)}|{max_length}|{len(texts)}".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    path = Path(cache_dir) / "tokens" / f"{h.hexdigest()[:24]}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return Tokens(z["ids"], z["offsets"], int(z["pad_id"]))
    t0 = time.perf_counter()
    ids_list: list[list[int]] = []
    for start in range(0, len(texts), 4096):  # chunks keep peak memory small on 58K texts
        enc = tok(
            list(texts[start : start + 4096]),
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids_list.extend(enc["input_ids"])
    lengths = np.fromiter((len(x) for x in ids_list), dtype=np.int64, count=len(ids_list))
    offsets = np.zeros(len(ids_list) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((i for x in ids_list for i in x), dtype=np.int32, count=int(offsets[-1]))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = Tokens(ids, offsets, int(pad_id))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, ids=ids, offsets=offsets, pad_id=np.int64(pad_id))
        tmp.replace(path)
    log.info("tokenized %d texts in %.1fs (%d tokens)", len(texts), time.perf_counter() - t0, ids.size)
    return out
