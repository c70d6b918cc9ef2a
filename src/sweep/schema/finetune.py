"""The fine-tune's settings: defaults, checks and the one-line fix of each bad value (model.<key> of a kind:
finetune model, and decoupled's model.finetune). Plain Python: the GPU bench runs it without hydra or omegaconf."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

PRECISIONS = ("auto", "bf16", "fp32")
ATTENTIONS = ("auto", "packed", "padded")
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs", "max-autotune", "reduce-overhead")

# key: (default, check, fix hint). Defaults apply when a key is missing from the yaml.
_SCHEMA: dict[str, tuple[Any, Callable[[Any], bool], str]] = {
    "max_length": (256, lambda v: isinstance(v, int) and 8 <= v <= 8192, "an int in [8, 8192]"),
    "epochs": (3, lambda v: isinstance(v, (int, float)) and 0 < v <= 100, "a number in (0, 100]"),
    "batch_tokens": (8192, lambda v: isinstance(v, int) and v > 0, "a positive int (real tokens per step)"),
    "eval_batch_tokens": (65536, lambda v: isinstance(v, int) and v > 0, "a positive int"),
    "lr": (5e-5, lambda v: isinstance(v, (int, float)) and 0 < v < 1, "a number in (0, 1), e.g. 5e-5"),
    "head_lr": (
        None,
        lambda v: v is None or (isinstance(v, (int, float)) and 0 < v < 1),
        "null (same as lr) or a number in (0, 1)",
    ),
    "weight_decay": (0.01, lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)"),
    "warmup_ratio": (0.1, lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)"),
    "grad_clip": (1.0, lambda v: isinstance(v, (int, float)) and v >= 0, "a number >= 0 (0 turns it off)"),
    "precision": ("auto", lambda v: v in PRECISIONS, f"one of {PRECISIONS}"),
    "attention": ("auto", lambda v: v in ATTENTIONS, f"one of {ATTENTIONS}"),
    "device": (
        "auto",
        lambda v: isinstance(v, str) and (v in ("auto", "cpu", "cuda") or v.startswith("cuda:")),
        "auto, cpu, cuda or cuda:N",
    ),
    "compile": (False, lambda v: isinstance(v, bool), "true or false"),
    "compile_mode": ("default", lambda v: v in COMPILE_MODES, f"one of {COMPILE_MODES} (torch.compile's mode)"),
    "dropout": (0.1, lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a number in [0, 1)"),
    "reweight_from": (
        0.0,
        lambda v: isinstance(v, (int, float)) and 0 <= v < 1,
        "a fraction in [0, 1): 0 weights from the first step, 0.5 from half-way (deferred re-weighting)",
    ),
    "random_init": (False, lambda v: isinstance(v, bool), "true or false (benchmarks only)"),
    "gpu_memory_gib": (
        None,
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0),
        "null (learned: this shape's last peak, models/gpu_share.py) or GiB, e.g. 24",
    ),
}


def resolve_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Plain dict of the model config with defaults filled in; a bad value -> one-line ValueError."""
    if hasattr(cfg, "_metadata"):  # OmegaConf DictConfig, without importing omegaconf
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)
    out = dict(cfg)
    for key in ("name", "pretrained"):
        if not isinstance(out.get(key), str) or not out[key]:
            raise ValueError(f"model.{key} is missing: set it in conf/model/<name>.yaml")
    if out.get("kind", "finetune") != "finetune":
        raise ValueError(f"model.kind={out.get('kind')!r} is not finetune: use kind: finetune")
    for key, (default, ok, fix) in _SCHEMA.items():
        out.setdefault(key, default)
        value = out[key]
        if isinstance(value, bool) and key not in ("compile", "random_init"):
            ok_value = False
        else:
            ok_value = ok(value)
        if not ok_value:
            raise ValueError(f"model.{key}={value!r} is invalid: use {fix}")
    return out
