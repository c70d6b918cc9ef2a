"""Fine-tune a pretrained encoder (MiniLM, ModernBERT) end to end with the project's loss; return raw logits.

The fast path (CUDA, bf16): sequences are *packed* back to back with no padding at all, and attention is
variable-length flash attention over cu_seqlens (torch.nn.attention.varlen, or aten's flash kernel), so no
FLOP is spent on padding; batches are token budgets (`batch_tokens` real tokens per optimizer step);
bf16 autocast with fp32 master weights, fused AdamW, optional torch.compile; the tokenized corpus lives in
a flat array and a batch is one concatenate + one pinned host-to-device copy, so the GPU never waits.
The portable path (CPU, fp32): length-sorted token-budget batches padded to their own longest sequence,
Hugging Face's SDPA attention with a mask. Both paths compute the same function (tests and bench check it).

Only torch, transformers and numpy are needed here (the GPU bench machine has no hydra/omegaconf).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sweep.data.encoders import load_error_hint, resolve_pretrained
from sweep.models import gpu_share
from sweep.models.losses import LossSpec

log = logging.getLogger(__name__)

PACKED_ATTN = "sweep_packed"  # name of our attention implementation in transformers' AttentionInterface
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


# ----------------------------------------------------------------------------------------------------------
# Tokenization, cached on disk: a flat int32 array of token ids plus offsets (no padding stored).


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


# ----------------------------------------------------------------------------------------------------------
# Packed (unpadded) attention for transformers' attention interface.


try:  # torch >= 2.10: public variable-length attention (flash / cuDNN) with autograd
    from torch.nn.attention.varlen import varlen_attn as _VARLEN

    _VARLEN_WINDOW = "window_size" in inspect.signature(_VARLEN).parameters
except ImportError:  # pragma: no cover - older torch
    _VARLEN, _VARLEN_WINDOW = None, False


def varlen_kernel(sliding: bool) -> str:
    """Which kernel the packed path uses on CUDA (reported by the bench)."""
    if _VARLEN is not None and (_VARLEN_WINDOW or not sliding):
        return "torch.nn.attention.varlen"
    return "aten._flash_attention_forward"


def _flash_varlen(q, k, v, cu, max_len: int, scale: float, window: tuple[int, int]):
    """Variable-length flash attention; q, k, v: (T, H, D) bf16/fp16 on CUDA; cu: int32 (B+1,)."""
    if _VARLEN is not None and window == (-1, -1):
        return _VARLEN(q, k, v, cu, cu, max_len, max_len, scale=scale)
    if _VARLEN is not None and _VARLEN_WINDOW:
        return _VARLEN(q, k, v, cu, cu, max_len, max_len, scale=scale, window_size=window)
    # aten's flash kernel directly (differentiable, supports a sliding window).
    out = torch.ops.aten._flash_attention_forward(
        q,
        k,
        v,
        cu,
        cu,
        max_len,
        max_len,
        0.0,
        False,
        False,
        scale=scale,
        window_size_left=window[0],
        window_size_right=window[1],
    )
    return out[0]


def _segment_attention(q, k, v, cu, scale: float, window: tuple[int, int]):
    """Portable reference for packed attention: SDPA per sequence (CPU, fp32, tests)."""
    outs = []
    bounds = cu.tolist()
    for s, e in zip(bounds[:-1], bounds[1:], strict=False):
        if e == s:
            continue
        qs, ks, vs = (x[s:e].transpose(0, 1).unsqueeze(0) for x in (q, k, v))  # (1, H, L, D)
        mask = None
        if window != (-1, -1):
            pos = torch.arange(e - s, device=q.device)
            rel = pos[None, :] - pos[:, None]
            mask = (rel >= -window[0]) & (rel <= window[1])
        outs.append(F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale)[0].transpose(0, 1))
    return torch.cat(outs, 0)


def packed_attention_forward(
    module,
    query,
    key,
    value,
    attention_mask,
    scaling=None,
    dropout=0.0,
    sliding_window=None,
    cu_seq_lens_q=None,
    max_length_q=None,
    **kwargs,
):
    """Attention over packed sequences: query/key/value (1, H, T, D); returns ((1, T, H, D), None).

    `sliding_window` follows transformers' flash convention (ModernBERT passes local_window // 2 + 1):
    a token sees the ones at most sliding_window - 1 positions away on each side.
    """
    if cu_seq_lens_q is None:
        raise RuntimeError("packed attention needs cu_seq_lens_q: call the model through finetune's packed path")
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # (T, H, D)
    window = (sliding_window - 1, sliding_window - 1) if sliding_window else (-1, -1)
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    if q.is_cuda and q.dtype in (torch.bfloat16, torch.float16):
        out = _flash_varlen(
            q.contiguous(), k.contiguous(), v.contiguous(), cu_seq_lens_q, int(max_length_q), scale, window
        )
    else:
        out = _segment_attention(q, k, v, cu_seq_lens_q, scale, window)
    return out.unsqueeze(0), None


def _register_packed_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_ATTN, packed_attention_forward)
    try:
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        # Masks are built only when an attention_mask is passed; the packed path passes none.
        AttentionMaskInterface.register(PACKED_ATTN, sdpa_mask)
    except ImportError:  # pragma: no cover - older transformers
        pass


# ----------------------------------------------------------------------------------------------------------
# Model: pretrained encoder + masked mean pooling + dropout + linear head.


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

    _register_packed_attention()
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


# ----------------------------------------------------------------------------------------------------------
# Batching: token budgets; packed (no padding) or length-sorted padded.


def plan_batches(lengths: np.ndarray, budget: int, packed: bool, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Split example indices into batches of at most `budget` tokens (real tokens if packed, else padded).

    Training (rng given): packed batches take a fresh shuffle; padded batches sort by length with random
    tie-breaking noise, then the batch order is shuffled. Inference (rng None): sorted by length.
    """
    n = len(lengths)
    if packed:
        order = rng.permutation(n) if rng is not None else np.argsort(-lengths, kind="stable")
    else:
        noise = rng.random(n) if rng is not None else np.zeros(n)
        order = np.lexsort((noise, -lengths))
    batches, cur, cur_tokens, cur_max = [], [], 0, 0
    for i in order:
        length = int(lengths[i])
        new_tokens = cur_tokens + length if packed else max(cur_max, length) * (len(cur) + 1)
        if cur and new_tokens > budget:
            batches.append(np.asarray(cur))
            cur, cur_tokens, cur_max = [], 0, 0
        cur.append(i)
        cur_tokens += length
        cur_max = max(cur_max, length)
    if cur:
        batches.append(np.asarray(cur))
    if rng is not None:
        rng.shuffle(batches)
    return batches


class Batcher:
    """Builds device tensors for a batch of example indices from the flat token array."""

    def __init__(self, tokens: Tokens, device: torch.device, pad_to: int = 64):
        self.t, self.device, self.pad_to = tokens, device, pad_to
        self.lengths = tokens.lengths
        self.max_length = int(self.lengths.max()) if len(self.lengths) else 1
        self.pin = device.type == "cuda"

    def _to(self, arr: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(arr)
        if self.pin:
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)

    def packed(self, idx: np.ndarray, fixed_tokens: int | None = None, cap: int = 512):
        """(ids, pos, seg, cu, max_len, n_seq, lengths) for `idx` packed back to back.

        T is padded to a multiple of pad_to (or to fixed_tokens, for static shapes) with dummy sequences
        of at most `cap` tokens that attend only to themselves and that pooling drops (seg == n_seq).
        With fixed_tokens, max_len is the constant cap too, so a compiled graph sees the same ints.
        """
        lens = self.lengths[idx]
        starts = self.t.offsets[idx]
        total = int(lens.sum())
        target = fixed_tokens or -(-total // self.pad_to) * self.pad_to
        if target < total:
            raise ValueError(f"batch of {total} tokens does not fit fixed_tokens={target}")
        n_pad = target - total
        pad_lens = [cap] * (n_pad // cap) + ([n_pad % cap] if n_pad % cap else [])
        ids = np.empty(target, dtype=np.int64)
        ids[:total] = np.concatenate([self.t.ids[s : s + n] for s, n in zip(starts, lens, strict=False)])
        ids[total:] = self.t.pad_id
        seg = np.repeat(np.arange(len(idx) + 1), [*lens.tolist(), n_pad])
        cu_lens = np.asarray([*lens.tolist(), *pad_lens], dtype=np.int64)
        cu = np.zeros(len(cu_lens) + 1, dtype=np.int32)
        np.cumsum(cu_lens, out=cu[1:])
        pos = np.arange(target) - np.repeat(cu[:-1], cu_lens)
        max_len = cap if fixed_tokens else int(cu_lens.max())
        return (
            self._to(ids),
            self._to(pos),
            self._to(seg),
            self._to(cu),
            max_len,
            len(idx),
            self._to(lens.astype(np.int64)),
        )

    def padded(self, idx: np.ndarray):
        lens = self.lengths[idx]
        width = int(lens.max())
        ids = np.full((len(idx), width), self.t.pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for r, (s, n) in enumerate(zip(self.t.offsets[idx], lens, strict=False)):
            ids[r, :n] = self.t.ids[s : s + n]
            mask[r, :n] = 1
        return self._to(ids), self._to(mask)


# ----------------------------------------------------------------------------------------------------------
# Training and inference.


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


def build_runner(cfg: dict, num_classes: int, seed: int) -> Runner:
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
        mode = None if cfg["compile_mode"] == "default" else cfg["compile_mode"]
        compiled = torch.compile(model.forward_packed, dynamic=None, mode=mode)
    return Runner(model, device, bf16, packed, cfg, compiled)


def make_optimizer(model: Classifier, cfg: dict, device: torch.device):
    decay, no_decay, head = [], [], []
    for name, p in model.named_parameters():
        if name.startswith("head."):
            head.append(p)
        elif p.ndim < 2:
            no_decay.append(p)
        else:
            decay.append(p)
    head_lr = cfg["head_lr"] or cfg["lr"]
    groups = [
        {"params": decay, "weight_decay": cfg["weight_decay"], "lr": cfg["lr"]},
        {"params": no_decay, "weight_decay": 0.0, "lr": cfg["lr"]},
        {"params": head, "weight_decay": cfg["weight_decay"], "lr": head_lr},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, fused=fused or None)


def train(
    runner: Runner,
    tokens: Tokens,
    labels: np.ndarray,
    loss: LossSpec,
    seed: int,
    epochs: float | None = None,
    on_step: Callable[[int, np.ndarray], None] | None = None,
) -> dict:
    """Train in place; returns {"loss_per_epoch": [...], "steps": n, "seconds": s}.

    on_step(step, example_indices) is called after every optimizer step (the bench times with it).
    """
    cfg, dev, model = runner.cfg, runner.device, runner.model
    epochs = cfg["epochs"] if epochs is None else epochs
    rng = np.random.default_rng(seed)
    batcher = Batcher(tokens, dev)
    y_all = torch.as_tensor(np.array(labels, dtype=np.int64), device=dev)  # a copy: splits are read-only
    # every epoch's batches planned up front (packing makes their number vary), so the schedule knows the total
    # and the history has one loss per epoch; a fractional last epoch takes that share of its batches
    plans = [plan_batches(tokens.lengths, cfg["batch_tokens"], runner.packed, rng) for _ in range(math.ceil(epochs))]
    plans[-1] = plans[-1][: max(1, math.ceil(len(plans[-1]) * (epochs - (len(plans) - 1))))]
    total_steps = sum(map(len, plans))
    warmup = int(cfg["warmup_ratio"] * total_steps)
    opt = make_optimizer(model, cfg, dev)
    base = [g["lr"] for g in opt.param_groups]

    def schedule(step: int) -> float:  # linear warmup, then linear decay to 0 (HF's default schedule)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    # torch.compile: every packed batch padded to the same token count, so shapes stay static.
    fixed = None
    if runner.compiled:
        fixed = -(-max(cfg["batch_tokens"], int(tokens.lengths.max())) // batcher.pad_to) * batcher.pad_to
    model.train()
    step, history, t0 = 0, [], time.perf_counter()
    for plan in plans:
        epoch_loss, epoch_steps = torch.zeros((), device=dev), 0
        for idx in plan:
            for g, b in zip(opt.param_groups, base, strict=False):
                g["lr"] = b * schedule(step)
            logits = runner.logits(batcher, idx, fixed)
            value = loss(logits, y_all[batcher._to(idx.astype(np.int64))])
            opt.zero_grad(set_to_none=True)
            value.backward()
            if cfg["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"], foreach=True)
            opt.step()
            epoch_loss += value.detach()
            epoch_steps += 1
            step += 1
            if on_step is not None:
                on_step(step, idx)
        history.append(float(epoch_loss) / max(1, epoch_steps))  # one host sync per epoch
    return {"loss_per_epoch": history, "steps": step, "seconds": time.perf_counter() - t0}


@torch.inference_mode()
def predict(runner: Runner, tokens: Tokens, pooled: bool = False) -> np.ndarray:
    """Raw logits (n, C), or with pooled=True the encoder's mean-pooled output (n, hidden), float32."""
    runner.model.eval()
    batcher = Batcher(tokens, runner.device)
    budget = max(runner.cfg["eval_batch_tokens"], int(tokens.lengths.max()) if len(tokens) else 1)
    width = runner.model.head.in_features if pooled else runner.model.head.out_features
    out = torch.empty((len(tokens), width), dtype=torch.float32, device=runner.device)
    for idx in plan_batches(tokens.lengths, budget, runner.packed, None):
        rows = runner.pooled(batcher, idx) if pooled else runner.logits(batcher, idx)
        out[torch.as_tensor(idx, device=runner.device)] = rows.float()
    return out.cpu().numpy()


def _finetuned(
    train_texts: list[str],
    train_labels: np.ndarray,
    eval_texts: dict[str, list[str]],
    num_classes: int,
    loss: LossSpec,
    cfg: Mapping[str, Any],
    seed: int,
    cache_dir: Path,
):
    """Fine-tune cfg.pretrained on the train split with `loss`: (runner, eval tokens, training stats)."""
    c = resolve_cfg(cfg)
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
    runner = build_runner(c, num_classes, seed)
    stats = train(runner, train_tokens, labels, loss, seed)
    log.info(
        "finetune %s: %d steps in %.1fs on %s (%s, %s), loss per epoch %s",
        c["name"],
        stats["steps"],
        stats["seconds"],
        runner.device,
        "bf16" if runner.bf16 else "fp32",
        "packed" if runner.packed else "padded",
        [round(x, 4) for x in stats["loss_per_epoch"]],
    )
    stats.update(device=str(runner.device), bf16=runner.bf16, packed=runner.packed)
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
) -> dict[str, np.ndarray]:
    """Fine-tune cfg.pretrained on the train split with `loss`; raw float32 logits (n, C) for each eval split."""
    with _gpu_share(cfg, cache_dir):
        runner, tokens, _ = _finetuned(train_texts, train_labels, eval_texts, num_classes, loss, cfg, seed, cache_dir)
        out = {k: predict(runner, t).astype(np.float32) for k, t in tokens.items()}
        del runner
    return out


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
        del runner
    return out, stats


def _gpu_share(cfg: Mapping[str, Any], cache_dir: Path):
    """Workers sharing a GPU queue for its memory (models/gpu_share.py); a CPU fine-tune shares nothing."""
    c = resolve_cfg(cfg)
    device = pick_device(c["device"])
    gpu = gpu_share.cuda_gpu(device) if device.type == "cuda" else None
    return gpu_share.gpu_slot(gpu, gpu_share.shape_key(c), cache_dir, c["gpu_memory_gib"])
