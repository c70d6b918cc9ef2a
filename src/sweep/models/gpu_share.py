"""Workers that share one GPU (`make sweep WORKERS=4` on a one-GPU machine): a fine-tune starts only when the
memory it needs is free on its GPU and waits otherwise, so that workers queue instead of running out of memory.

The need of a fine-tune is `model.gpu_memory_gib` when given; else it is learned: the allocated peak that the
last fine-tune of the same shape (encoder, max_length, batch_tokens, precision, attention, compile) recorded
on this machine, x 1.2 plus 1 GiB for the process's CUDA context. A shape never run here runs alone once, to
be measured. Admission is one flock per GPU: the admitted worker reserves its memory in PyTorch's caching
allocator (the blocks stay reserved for its own tensors) before the next worker reads the free memory.

The state (learned peaks, the holders of each GPU) is one JSON file next to the caches; holders whose
process is gone are dropped. A waiting worker counts its own cached memory as free to it: the model it keeps
for the next trial can pin its reserved segment, which then cannot go back to the GPU (two such workers would
otherwise wait for each other for ever). Only torch and the standard library here (the GPU machine runs it)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GIB = 2**30
STATE = "gpu_share.json"
SHAPE_KEYS = ("pretrained", "random_init", "max_length", "batch_tokens", "eval_batch_tokens", "precision")
SHAPE_KEYS += ("attention", "compile", "compile_mode")


class GpuMemoryError(RuntimeError):
    """A fine-tune that can never fit on its GPU; the message names the need, the GPU and the fix."""


@dataclass
class Gpu:
    """What admission reads and does on one GPU: (free, total) bytes, reserve(n bytes), the allocated peak
    since reset_peak(). cuda_gpu() is the real one; a test gives its own (this machine has no GPU)."""

    ident: str
    memory: Callable[[], tuple[int, int]]
    reserve: Callable[[int], None]
    reset_peak: Callable[[], None]
    peak: Callable[[], int]
    release: Callable[[], None]
    cached: Callable[[], int] = lambda: 0  # bytes this process's allocator holds unused (only it can use them)


def cuda_gpu(device) -> Gpu:
    import torch

    props = torch.cuda.get_device_properties(device)
    ident = str(getattr(props, "uuid", "") or f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')}:{device.index or 0}")

    def reserve(n: int) -> None:
        if n > 0:  # the block stays in the caching allocator, reserved for this process's own tensors
            block = torch.empty(n, dtype=torch.uint8, device=device)
            del block

    return Gpu(
        ident=f"{socket.gethostname()}:{ident}",
        memory=lambda: torch.cuda.mem_get_info(device),
        reserve=reserve,
        reset_peak=lambda: torch.cuda.reset_peak_memory_stats(device),
        peak=lambda: torch.cuda.max_memory_allocated(device),
        release=torch.cuda.empty_cache,
        cached=lambda: torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device),
    )


def shape_key(cfg: dict) -> str:
    """What sets a fine-tune's memory (not its loss or seed): 12 hex digits."""
    text = json.dumps({k: cfg.get(k) for k in SHAPE_KEYS}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def need_bytes(given_gib: float | None, learned_peak: int | None) -> int | None:
    """The memory a fine-tune asks for: given, or the learned peak x 1.2 + 1 GiB (context); None: unknown."""
    if given_gib is not None:
        return int(float(given_gib) * GIB)
    if learned_peak is None:
        return None
    return int(1.2 * learned_peak) + GIB


def admit(need: int | None, free: int, holders: list[dict]) -> bool:
    """A worker may start when nobody runs alone and either its need is free, or (need unknown) nobody runs."""
    if any(h.get("alone") for h in holders):
        return False
    return not holders if need is None else free >= need


def _alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process (a shared cache folder): not ours to judge
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked(path: Path) -> Iterator[dict]:
    """The state under an exclusive flock; written back (atomically) when the block ends."""
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            state = {}  # a damaged state file costs one re-measurement, never a stuck sweep
        state.setdefault("peaks", {})
        state.setdefault("holders", {})
        yield state
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        os.replace(tmp, path)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def gpu_slot(gpu: Gpu | None, key: str, state_dir: str | Path, given_gib: float | None = None, poll_s: float = 2.0):
    """Hold a share of `gpu` for one fine-tune: wait until admit() says it fits, record the allocated peak
    afterwards (the next fine-tune of this shape asks for it), then give the cached memory back. gpu=None (a
    CPU fine-tune): nothing to share."""
    if gpu is None:
        yield
        return
    path = Path(state_dir) / STATE
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "key": key}
    waited, t0 = False, time.monotonic()
    while True:
        with _locked(path) as state:
            gpu.release()  # what this process's cache can give back goes back, for itself and the others
            free, total = gpu.memory()
            own = gpu.cached()  # what it could not (a segment a live tensor pins, e.g. the kept model): its own
            need = need_bytes(given_gib, state["peaks"].get(key))
            if need is not None and need > total:
                raise GpuMemoryError(
                    f"a fine-tune of this shape needs {need / GIB:.1f} GiB, more than the GPU's "
                    f"{total / GIB:.1f} GiB: lower model.batch_tokens, or set model.gpu_memory_gib (now "
                    f"{given_gib if given_gib is not None else 'learned'})"
                )
            holders = [h for h in state["holders"].get(gpu.ident, []) if _alive(h)]
            if admit(need, free + own, holders):
                gpu.reserve(max(0, (need or 0) - GIB - own))  # the context is not the allocator's
                state["holders"][gpu.ident] = [*holders, {**me, "alone": need is None, "bytes": need or 0}]
                break
            state["holders"][gpu.ident] = holders
        if not waited:
            log.info(
                "GPU %s: waiting for %s (%.1f GiB free, %d fine-tunes on it)",
                gpu.ident,
                "the GPU to itself (this shape's memory is not measured yet)"
                if need is None
                else f"{need / GIB:.1f} GiB",
                free / GIB,
                len(holders),
            )
            waited = True
        time.sleep(poll_s)
    if waited:
        log.info("GPU %s: admitted after %.0fs", gpu.ident, time.monotonic() - t0)
    gpu.reset_peak()
    try:
        yield
    finally:
        peak = gpu.peak()
        gpu.release()  # the cached blocks go back to the GPU, for the workers that wait
        with _locked(path) as state:
            if peak > 0:
                state["peaks"][key] = int(peak)
            mine = state["holders"].get(gpu.ident, [])
            state["holders"][gpu.ident] = [h for h in mine if (h["pid"], h["host"]) != (me["pid"], me["host"])]
        log.info("GPU %s: fine-tune peak %.1f GiB allocated (shape %s)", gpu.ident, peak / GIB, key)
