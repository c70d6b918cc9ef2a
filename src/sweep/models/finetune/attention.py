"""Packed (unpadded) attention for transformers' attention interface: variable-length flash attention over
cu_seqlens on CUDA (torch.nn.attention.varlen, or aten's flash kernel), SDPA per sequence as the portable reference."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

PACKED_ATTN = "sweep_packed"  # name of our attention implementation in transformers' AttentionInterface

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


def register_packed_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_ATTN, packed_attention_forward)
    try:
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        # Masks are built only when an attention_mask is passed; the packed path passes none.
        AttentionMaskInterface.register(PACKED_ATTN, sdpa_mask)
    except ImportError:  # pragma: no cover - older transformers
        pass
