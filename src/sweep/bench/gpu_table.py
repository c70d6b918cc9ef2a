"""The table make bench-gpu prints last: one row per Trainer or harness run (throughput, useful TFLOP/s, share
of the measured peak, memory, speed-up over the bf16 Trainer), then the correctness and real-data lines."""

from __future__ import annotations


def _row_lines(results: dict) -> list[str]:
    peak = results["peak_tflops"]
    ref = {r["model"]: r["seq_s"] for r in results["rows"] if r["path"].startswith("Trainer bf16 b")}
    lines = []
    for r in results["rows"]:
        tflops = 6 * r["params"] * r["tok_s"] / 1e12
        ratio = r["seq_s"] / ref[r["model"]] if r["model"] in ref else float("nan")
        lines.append(
            f"{r['model']:<16}{r['path'][:39]:<40}{r['seq_s']:>9.0f}{r['tok_s']:>11.0f}{tflops:>9.1f}"
            f"{100 * tflops / peak if peak == peak else float('nan'):>6.1f}%{r['mem_gib']:>7.1f}"
            f"{ratio:>15.1f}x"
        )
    return lines


def _correctness_line(c: dict) -> str:
    f, h = c["fast"], c["hf_bf16_padded"]
    within = f["finite"] and all(f[m] <= 1.5 * h[m] + 1e-6 for m in ("logits", "grad"))
    return (
        f"correctness {c['model']} ({c.get('path', 'fast path')}): vs fp32 padded reference, rel. err logits "
        f"{f['logits']:.2e}"
        f" loss {f['loss']:.2e} grad {f['grad']:.2e} (finite {f['finite']}); plain bf16 autocast"
        f" padded: logits {h['logits']:.2e} loss {h['loss']:.2e} grad {h['grad']:.2e}; "
        + (
            "within bf16 rounding (<= 1.5x plain bf16's error on logits and grad)"
            if within
            else "NOT within bf16 rounding"
        )
    )


def _real_line(r: dict) -> str:
    verdict = "OK" if r["finetune_macro_f1"] >= r["frozen_macro_f1"] else "WORSE"
    return (
        f"real CFPB MiniLM ({r['n_train']} train / {r['n_val']} val, {r['classes']} classes): "
        f"fine-tuned macro-F1 {r['finetune_macro_f1']:.4f} (acc {r['finetune_acc']:.4f}, "
        f"{r['finetune_s']:.0f}s, {r['epochs']} epochs) vs frozen+LR {r['frozen_macro_f1']:.4f} "
        f"(acc {r['frozen_acc']:.4f}, C={r['frozen_C']}) -> {verdict}"
    )


def print_table(results: dict) -> None:
    peak = results["peak_tflops"]
    lines = [f"\n== sweep.bench.gpu on {results['device']} (bf16 matmul peak measured: {peak:.0f} TFLOP/s) =="]
    lines.append(
        f"{'model':<16}{'path':<40}{'seq/s':>9}{'tok/s':>11}{'TFLOP/s':>9}{'%peak':>7}{'GiB':>7}{'x bf16 Trainer':>16}"
    )
    lines.extend(_row_lines(results))
    lines.append("useful TFLOP/s = 6 x all params (embeddings included) x real tokens/s; seq/s after warm-up")
    if results.get("quick"):
        lines.append("--quick: toy sizes; these numbers check that every path runs, not its speed or quality")
    lines.extend(_correctness_line(c) for c in results["correctness"])
    if results.get("real"):
        lines.append(_real_line(results["real"]))
    print("\n".join(lines), flush=True)
