"""The harness side of make bench-gpu: synthetic CFPB-length sequences, the project's loss, the measured bf16
peak, one timed harness fine-tune (after a warm-up epoch), and the fast path's correctness against fp32.

Only torch, numpy and sweep.models (no Hydra): the GPU machine runs it as it is."""

from __future__ import annotations

import gc
import json
import time

import numpy as np
import torch

from sweep.models import finetune as ft
from sweep.models.losses import LossSpec, class_weights, log_prior

NUM_LABELS = 113
AUTOTUNE = "max-autotune-no-cudagraphs"  # Triton GEMM templates benchmarked per shape, no CUDA graphs
MODE_NAMES = {AUTOTUNE: " autotune", "max-autotune": " autotune+graphs", "reduce-overhead": " cudagraphs"}
# --quick: every code path once at toy sizes (8 sequences of <= 32 tokens, one harness variant per model,
# Trainer batches of 4, 40 real texts), so that the CPU dry run takes about a minute on 2 busy cores
QUICK = {"seqs": 8, "max_length": 32, "batch_tokens": 256, "trainer_batch": 4, "per_class": 5}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def release() -> None:
    """Hand the freed model's memory back before the next run measures its own peak."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def bf16_peak_tflops(n: int = 8192, reps: int = 20) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    sync()
    return 2 * n**3 * reps / (start.elapsed_time(end) / 1e3) / 1e12


def cfpb_lengths(n: int, seed: int, cap: int = 512) -> np.ndarray:
    """Log-normal token counts, median 170, sigma 0.75, cut at `cap` (~209 real tokens per sequence)."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(np.exp(np.log(170) + 0.75 * rng.standard_normal(n))), 8, cap).astype(np.int64)


def synthetic(n: int, vocab: int, seed: int, cap: int = 512, cls_id: int = 1, sep_id: int = 2):
    lens = cfpb_lengths(n, seed, cap)
    rng = np.random.default_rng(seed + 1)
    offs = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=offs[1:])
    ids = rng.integers(10, vocab, offs[-1]).astype(np.int32)
    ids[offs[:-1]] = cls_id
    ids[offs[1:] - 1] = sep_id
    # imbalanced labels (Zipf-like prior), so class weights and logit adjustment matter
    prior = 1.0 / np.arange(1, NUM_LABELS + 1) ** 0.8
    labels = rng.choice(NUM_LABELS, size=n, p=prior / prior.sum()).astype(np.int64)
    return ft.Tokens(ids, offs, 0), labels


def project_loss(labels: np.ndarray) -> LossSpec:
    counts = np.bincount(labels, minlength=NUM_LABELS) + 1
    return LossSpec(class_weights(counts, "power", 0.5), log_prior(counts), tau=1.0)


def harness_run(label: str, cfg: dict, tokens, labels, epochs: int = 3, path_name: str = "") -> dict:
    """Train `epochs` epochs with the harness; time everything after the first epoch (warm-up, compile)."""
    reset_peak_memory()
    c = ft.resolve_cfg(cfg)
    t_build = time.perf_counter()
    runner = ft.build_runner(c, NUM_LABELS, seed=0)
    params = sum(p.numel() for p in runner.model.parameters())
    warm = len(ft.plan_batches(tokens.lengths, c["batch_tokens"], runner.packed, np.random.default_rng(0)))
    acc = {"seq": 0, "tok": 0, "t0": None, "t_first": None}

    def on_step(step, idx):
        if step == 1:
            sync()
            acc["t_first"] = time.perf_counter() - t_build
        if step == warm:
            sync()
            acc["t0"] = time.perf_counter()
        elif step > warm:
            acc["seq"] += len(idx)
            acc["tok"] += int(tokens.lengths[idx].sum())

    stats = ft.train(runner, tokens, labels, project_loss(labels), seed=0, epochs=epochs, on_step=on_step)
    sync()
    seconds = time.perf_counter() - acc["t0"]
    row = {
        "model": label,
        "path": path_name or describe(runner, c),
        "seq_s": acc["seq"] / seconds,
        "tok_s": acc["tok"] / seconds,
        "params": params,
        "mem_gib": peak_memory_gib(),
        "first_step_s": acc["t_first"],
        "steps": stats["steps"],
        "loss": stats["loss_per_epoch"],
        "seq_per_step": len(labels) / warm,
    }
    log(json.dumps(row))
    del runner
    release()
    return row


def _tokens(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 else str(n)


def describe(runner, c) -> str:
    """A harness row's path: `harness bf16 packed compiled autotune 64K tok`."""
    return (
        f"harness {'bf16' if runner.bf16 else 'fp32'} {'packed' if runner.packed else 'padded'}"
        f"{' compiled' if runner.compiled else ''}{MODE_NAMES.get(c.get('compile_mode'), '')}"
        f" {_tokens(c['batch_tokens'])} tok"
    )


def correctness(label: str, cfg: dict, vocab: int, n: int = 16, seed: int = 123) -> dict:
    """Fast path (bf16 autocast, packed, compiled if cfg says so) vs reference (fp32, padded to the longest,
    SDPA with mask), same weights, fresh random inputs, dropout off: relative errors of logits, loss, grads."""
    c = ft.resolve_cfg({**cfg, "dropout": 0.0})
    runner = ft.build_runner(c, NUM_LABELS, seed=seed)
    runner.model.eval()  # no dropout anywhere
    tokens, labels = synthetic(n, vocab, seed, cap=c["max_length"])
    y = torch.as_tensor(labels, device=runner.device)
    loss = project_loss(labels)
    batcher = ft.Batcher(tokens, runner.device)
    idx = np.arange(n)

    def run(bf16, packed, compiled):
        runner.model.zero_grad(set_to_none=True)
        runner.bf16, runner.packed = bf16, packed
        keep = runner.compiled
        runner.compiled = keep if compiled else None
        out = runner.logits(batcher, idx)
        value = loss(out, y)
        value.backward()
        runner.compiled = keep
        g = torch.cat([p.grad.flatten().double() for p in runner.model.parameters() if p.grad is not None])
        return out.detach().double(), value.detach().double(), g

    ref = run(False, False, False)
    res = {"model": label}
    for name, (bf16, packed, comp) in {"fast": (True, True, True), "hf_bf16_padded": (True, False, False)}.items():
        if packed and runner.device.type != "cuda":
            bf16 = False
        o, v, g = run(bf16, packed, comp)
        res[name] = {
            "logits": float((o - ref[0]).norm() / ref[0].norm()),
            "loss": float(abs(v - ref[1]) / abs(ref[1])),
            "grad": float((g - ref[2]).norm() / ref[2].norm()),
            "finite": bool(torch.isfinite(g).all() and torch.isfinite(o).all()),
        }
    log(json.dumps(res))
    runner.model = runner.compiled = None
    release()
    return res
