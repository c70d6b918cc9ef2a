"""Where a step of the harness's fast ModernBERT-base path goes on the GPU: torch.profiler over a few warm
optimizer steps of the packed compiled path (the bench's synthetic CFPB-length sequences), kernels grouped
by kind (GEMM, attention, Triton elementwise, optimizer, other) against the steps' wall time.

    PYTHONPATH=src python scripts/gpu_profile.py [batch_tokens] [compile_mode]
"""

import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import ModernBertConfig

from sweep.bench import gpu_harness as bg
from sweep.models import finetune as ft


def kind(name: str) -> str:
    n = name.lower()
    if "flash" in n or "fmha" in n or "attention" in n:
        return "attention"
    if any(k in n for k in ("gemm", "nvjet", "cutlass", "sm90_xmma", "cublas", "matmul", "splitk")):
        return "gemm"
    if "adam" in n or "multi_tensor" in n or "foreach" in n:
        return "optimizer"
    if n.startswith("triton"):
        return "triton"
    if "embedding" in n or "index" in n or "scatter" in n or "gather" in n:
        return "index/scatter"
    return "other"


def main() -> None:
    batch_tokens = int(sys.argv[1]) if len(sys.argv) > 1 else 65536
    mode = sys.argv[2] if len(sys.argv) > 2 else "default"
    conf = ModernBertConfig()
    conf.num_labels = bg.NUM_LABELS
    folder = Path(tempfile.mkdtemp()) / "mb"
    conf.save_pretrained(folder)
    tokens, labels = bg.synthetic(4096, conf.vocab_size, 0, 512, conf.cls_token_id, conf.sep_token_id)
    cfg = ft.resolve_cfg(
        {
            "name": "modernbert_base",
            "pretrained": str(folder),
            "random_init": True,
            "max_length": 512,
            "dropout": 0.0,
            "batch_tokens": batch_tokens,
            "compile": True,
            "compile_mode": mode,
            "epochs": 2,
        }
    )
    runner = ft.build_runner(cfg, bg.NUM_LABELS, seed=0)
    warm = len(ft.plan_batches(tokens.lengths, batch_tokens, True, np.random.default_rng(0)))
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
    marks = {}

    def on_step(step, idx):
        if step == warm + 2:
            torch.cuda.synchronize()
            prof.start()
            marks["t0"], marks["s0"] = time.perf_counter(), step
        if step == warm + 12:
            torch.cuda.synchronize()
            marks["t1"], marks["s1"] = time.perf_counter(), step
            prof.stop()

    t = time.perf_counter()
    ft.train(runner, tokens, labels, bg.project_loss(labels), seed=0, epochs=2, on_step=on_step)
    steps = marks["s1"] - marks["s0"]
    wall = (marks["t1"] - marks["t0"]) / steps * 1e3
    print(
        f"{batch_tokens} tokens/step, compile_mode {mode}: {steps} steps profiled, wall {wall:.1f} ms a step "
        f"(whole run {time.perf_counter() - t:.0f} s, {warm} steps an epoch)"
    )
    by_kind, by_name = collections.Counter(), collections.Counter()
    for e in prof.key_averages():
        us = e.self_device_time_total if hasattr(e, "self_device_time_total") else e.self_cuda_time_total
        if us <= 0:
            continue
        by_kind[kind(e.key)] += us
        by_name[e.key[:110]] += us
    total = sum(by_kind.values()) / steps / 1e3
    print(f"GPU kernel time {total:.1f} ms a step ({100 * total / wall:.0f}% of wall)")
    for k, us in by_kind.most_common():
        print(f"  {k:14s} {us / steps / 1e3:7.1f} ms  {100 * us / steps / 1e3 / wall:5.1f}%")
    print("top kernels (ms a step):")
    for n, us in by_name.most_common(30):
        print(f"  {us / steps / 1e3:7.2f}  {n}")


if __name__ == "__main__":
    main()
