"""`python -m sweep.bench.gpu --quick`: the CPU dry run runs every path of make bench-gpu at toy sizes and prints
its table (the harness rows, the correctness lines; the Trainer rows where accelerate is installed)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from sweep.bench import gpu


@pytest.mark.slow
def test_quick_dry_run_covers_every_path(tmp_path, capsys):
    has_accelerate = importlib.util.find_spec("accelerate") is not None
    out = tmp_path / "bench.json"
    gpu.main(["--quick", "--skip-real", "--json", str(out), *([] if has_accelerate else ["--skip-trainer"])])
    results = json.loads(out.read_text())
    paths = {(r["model"], r["path"]) for r in results["rows"]}
    for model in ("ModernBERT-base", "MiniLM-L6"):
        assert (model, "harness fp32 padded 256 tok") in paths  # one variant per model at toy sizes
        if has_accelerate:  # make install-gpu: the Trainer reference runs (fp32 on a CPU)
            assert (model, "Trainer fp32 b4") in paths
    assert all(r["seq_s"] > 0 for r in results["rows"])
    assert {c["model"] for c in results["correctness"]} == {"ModernBERT-base", "MiniLM-L6"}
    for c in results["correctness"]:  # on a CPU the "fast" path is the fp32 padded path: the same function
        assert c["fast"]["finite"] and c["fast"]["grad"] < 1e-5
    printed = capsys.readouterr().out
    assert "== sweep.bench.gpu on cpu" in printed and "--quick: toy sizes" in printed
