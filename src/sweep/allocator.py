"""glibc's malloc told to keep freed memory for the next allocation instead of handing it back to the kernel.

Every evaluation of the head's objective allocates ~260 MB of short-lived tensors (logits, their gradient, the
float32 copies) at 113 classes x 42K texts. By default glibc serves blocks over its mmap threshold with fresh
mmap pages and unmaps them on free, so each evaluation page-faults ~60,000 times: on the 2-core machine that
was ~0.12 s of kernel time an evaluation and 98M minor faults in one 50-trial sweep (docs/results/scale.md).
With mmap off (M_MMAP_MAX 0) and no trimming, the blocks are reused: ~2,000 faults an evaluation.

The process keeps its peak heap until it exits (what a sweep worker needs anyway). Linux with glibc only; a
no-op elsewhere. SWEEP_ALLOCATOR=system leaves malloc as it is."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
_DONE: list[bool] = []


def keep_freed_memory() -> bool:
    """Once per process; True when glibc accepted both settings."""
    if _DONE or not sys.platform.startswith("linux") or os.environ.get("SWEEP_ALLOCATOR") == "system":
        return bool(_DONE and _DONE[0])
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # musl, or no libc found: malloc stays as it is
        ok = False
    _DONE.append(ok)
    return ok
