"""Batching by token budgets: packed back to back (no padding) or length-sorted and padded, and the Batcher
that turns a batch of example indices into device tensors from the flat token array."""

from __future__ import annotations

import numpy as np
import torch

from sweep.models.finetune.tokens import Tokens


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
