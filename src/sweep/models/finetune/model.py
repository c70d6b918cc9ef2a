"""The model: a pretrained encoder + masked mean pooling + dropout + linear head, its device and precision, and
the Runner that holds it ready to train (packed or padded attention, optionally torch.compile'd)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sweep.data.encoders import load_error_hint, resolve_pretrained
from sweep.models.finetune.attention import PACKED_ATTN, register_packed_attention
from sweep.models.finetune.batching import Batcher


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"model.device={name!r} but no CUDA GPU is visible: use device: auto or cpu")
    return torch.device(name)


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("model.precision=bf16 but this GPU has no bf16: use precision: fp32")
        return True
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.config.hidden_size, num_classes)
        self._is_modernbert = backbone.config.model_type == "modernbert"

    def _set_attn(self, name: str) -> None:
        self.backbone.config._attn_implementation = name  # read by every layer at forward time

    def pool_padded(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask: (B, L); Hugging Face SDPA with an attention mask; the masked mean (B, hidden)."""
        self._set_attn("sdpa")
        hidden = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        m = mask.unsqueeze(-1).float()
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward_padded(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.pool_padded(ids, mask)))

    def forward_packed(self, ids, pos, seg, cu, max_len: int, n_seq: int, lengths) -> torch.Tensor:
        return self.head(self.drop(self.pool_packed(ids, pos, seg, cu, max_len, n_seq, lengths)))

    def pool_packed(self, ids, pos, seg, cu, max_len: int, n_seq: int, lengths) -> torch.Tensor:
        """ids, pos, seg: (T,) token ids, positions within their sequence, sequence index (n_seq = padding);
        the per-sequence mean of the last hidden state (n_seq, hidden)."""
        self._set_attn(PACKED_ATTN)
        kwargs = dict(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max_len, max_length_k=max_len)
        if self._is_modernbert:  # a dict of masks skips mask building
            kwargs["attention_mask"] = {"full_attention": None, "sliding_attention": None}
        else:
            kwargs["token_type_ids"] = torch.zeros_like(ids).unsqueeze(0)
        hidden = self.backbone(input_ids=ids.unsqueeze(0), position_ids=pos.unsqueeze(0), **kwargs)
        hidden = hidden.last_hidden_state[0].float()
        pooled = hidden.new_zeros(n_seq + 1, hidden.shape[-1]).index_add_(0, seg, hidden)[:n_seq]
        return pooled / lengths.unsqueeze(-1).float()


def load_backbone(pretrained: str, random_init: bool = False, dtype=torch.float32) -> nn.Module:
    """The encoder, fp32 master weights (an fp16 copy of the weights is upcast on load)."""
    from transformers import AutoConfig, AutoModel

    register_packed_attention()
    path = resolve_pretrained(pretrained)
    try:
        if random_init:
            config = AutoConfig.from_pretrained(path)
            model = AutoModel.from_config(config, attn_implementation="sdpa")
        else:
            model = AutoModel.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    except (OSError, ValueError) as exc:
        raise load_error_hint(pretrained, exc) from exc
    return model.float()


def load_tokenizer(pretrained: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_pretrained(pretrained))
    except (OSError, ValueError) as exc:
        raise load_error_hint(pretrained, exc) from exc


@dataclass
class Runner:
    """A model ready to train: the classifier, its device, precision and attention path."""

    model: Classifier
    device: torch.device
    bf16: bool
    packed: bool
    cfg: dict
    compiled: Callable | None = None

    def logits(self, batcher: Batcher, idx: np.ndarray, fixed_tokens: int | None = None) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if self.packed:
                args = batcher.packed(idx, fixed_tokens, max(self.cfg["max_length"], batcher.max_length))
                fwd = self.compiled or self.model.forward_packed
                return fwd(*args)
            return self.model.forward_padded(*batcher.padded(idx))

    def pooled(self, batcher: Batcher, idx: np.ndarray) -> torch.Tensor:
        """The encoder's mean-pooled output (before dropout and head), eager: inference runs once."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if self.packed:
                return self.model.pool_packed(
                    *batcher.packed(idx, None, max(self.cfg["max_length"], batcher.max_length))
                )
            return self.model.pool_padded(*batcher.padded(idx))


def use_compile_cache(cache_dir: str | Path) -> Path:
    """torch.compile's own caches (Inductor's FX graph cache, the AOTAutograd cache, Triton's kernels, all under
    TORCHINDUCTOR_CACHE_DIR) in the project's cache instead of /tmp: a second process, or a machine given the
    folder, finds the graphs compiled. A TORCHINDUCTOR_CACHE_DIR already set wins."""
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    path = Path(os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(cache_dir).resolve() / "compile")))
    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    return path


def build_runner(cfg: dict, num_classes: int, seed: int, cache_dir: str | Path | None = None) -> Runner:
    """The model on its device; with model.compile (packed path), torch.compile'd, its caches under cache_dir."""
    device = pick_device(cfg["device"])
    bf16 = use_bf16(cfg["precision"], device)
    attention = cfg["attention"]
    if attention == "auto":
        packed = device.type == "cuda" and bf16
    else:
        packed = attention == "packed"
    torch.manual_seed(seed)
    model = Classifier(load_backbone(cfg["pretrained"], cfg["random_init"]), num_classes, cfg["dropout"])
    model.to(device)
    compiled = None
    if cfg["compile"] and packed:
        if cache_dir is not None:
            use_compile_cache(cache_dir)
        mode = None if cfg["compile_mode"] == "default" else cfg["compile_mode"]
        compiled = torch.compile(model.forward_packed, dynamic=None, mode=mode)
    return Runner(model, device, bf16, packed, cfg, compiled)
