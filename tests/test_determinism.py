"""One float path on Intel AVX-512 and AVX2 CPUs: sweep pins numpy's, torch's and MKL's instruction sets before they
load, so a head fitted on one machine is bitwise the one fitted on the other (an AVX2 CPU emulated here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sweep import determinism

PINNED = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OPENBLAS_CORETYPE", "NPY_ENABLE_CPU_FEATURES", "NPY_DISABLE_CPU_FEATURES")
FLAGS = determinism.cpu_flags()
needs_avx2 = pytest.mark.skipif(not determinism.X86_V3 <= FLAGS, reason="the pinned path needs an AVX2 CPU")
needs_avx512 = pytest.mark.skipif("avx512f" not in FLAGS, reason="emulating an AVX2 CPU needs an AVX-512 one")
# An AVX2-only CPU as the libraries see it: what each would choose there by itself
AVX2_CPU = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}
AVX2_NATIVE = {**AVX2_CPU, "ATEN_CPU_CAPABILITY": "avx2", "NPY_ENABLE_CPU_FEATURES": "X86_V3"}

REPORT = """
import json, os, sys
{first}
import numpy, torch
from numpy._core._multiarray_umath import __cpu_features__ as npy
print(json.dumps({{"torch": torch.backends.cpu.get_cpu_capability(), "numpy_avx512": npy.get("X86_V4", False),
                  "env": {{k: os.environ.get(k) for k in {keys}}}}}))
"""

# A short real fit: TF-IDF (numpy's log in the idf) and the converged head (torch's softmax, MKL's products)
FIT = """
import hashlib, json
import sweep
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sweep.models.head import fit_head
from sweep.models.losses import LossSpec, class_weights, log_prior

rng = np.random.default_rng(0)
k, n = 12, 1000
y = np.minimum(rng.zipf(1.6, n) - 1, k - 1)
words = rng.integers(0, 3000, (n, 30)) + (y[:, None] * 37) * (rng.random((n, 30)) < 0.3)
x = TfidfVectorizer(dtype=np.float32, sublinear_tf=True).fit_transform([" ".join(map(str, r)) for r in words])
counts = np.bincount(y, minlength=k)
fit = fit_head(x, y, LossSpec(class_weights(counts, "power", 0.5), log_prior(counts)), l2=1e-4, gtol=1e-6)
digest = hashlib.sha256(np.ascontiguousarray(fit.logits(x)).tobytes()).hexdigest()
print(json.dumps({"logits": digest, "converged": bool(fit.converged)}))
"""


def run(code: str, **env: str) -> dict:
    """code in a fresh interpreter whose environment has none of the pinned variables but those in env."""
    base = {k: v for k, v in os.environ.items() if k not in (*PINNED, *AVX2_CPU, determinism.ENV)}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(first: str, **env: str) -> dict:
    return run(REPORT.format(first=first, keys=list(PINNED)), **env)


def test_the_settings_cap_each_library_at_avx2_and_only_on_a_cpu_that_has_it():
    assert determinism.settings(determinism.X86_V3 | {"avx512f"}, "2.4.6") == {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_CBWR": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell",
        "NPY_ENABLE_CPU_FEATURES": "X86_V3",
    }
    assert determinism.settings(determinism.X86_V3, "2.4.6", "compatible")["MKL_CBWR"] == "COMPATIBLE"  # AMD too
    assert determinism.settings(determinism.X86_V3, "2.1.3")["NPY_DISABLE_CPU_FEATURES"].startswith("AVX512F ")
    assert determinism.settings({"sse2", "avx"}, "2.4.6") == {}  # no AVX2: the CPU has one path below it
    assert determinism.settings(determinism.X86_V3, "2.4.6", "native") == {}
    with pytest.raises(ValueError, match="SWEEP_FLOAT_PATH='avx512' is unknown: use avx2 .*, compatible .* or native"):
        determinism.settings(determinism.X86_V3, "2.4.6", "avx512")


def test_cpu_flags_reads_the_first_cpu_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert determinism.cpu_flags(str(info)) == {"fpu", "sse2", "avx2", "fma"}
    assert determinism.cpu_flags(str(tmp_path / "none")) == set()


@pytest.mark.slow  # a fresh interpreter per case: make test's, not the edit loop's
@needs_avx2
def test_importing_sweep_first_puts_torch_and_numpy_on_the_avx2_path():
    got = report("import sweep")
    assert got["torch"] == "AVX2" and got["numpy_avx512"] is False
    assert got["env"]["MKL_CBWR"] == "AVX2"
    # the same as setting the variables by hand before python starts: an independent route to the same path
    by_hand = report("", **{k: v for k, v in got["env"].items() if v is not None})
    assert (by_hand["torch"], by_hand["numpy_avx512"]) == (got["torch"], got["numpy_avx512"])


@pytest.mark.slow  # a fresh interpreter per case: make test's, not the edit loop's
@needs_avx512
def test_native_and_a_users_own_setting_are_left_alone():
    native = report("")  # no sweep: the machine's own choice
    assert report("import sweep", SWEEP_FLOAT_PATH="native") == native
    assert report("import sweep", ATEN_CPU_CAPABILITY="avx512")["torch"] == native["torch"] == "AVX512"


@pytest.mark.slow  # a fresh interpreter per case: make test's, not the edit loop's
@needs_avx512
def test_numpy_loaded_before_sweep_keeps_the_native_path_for_its_workers_too():
    got = run("import os, numpy, sweep, torch\nprint('{\"torch\": \"%s\", \"mode\": \"%s\", \"aten\": \"%s\"}' % ("
              "torch.backends.cpu.get_cpu_capability(), os.environ['SWEEP_FLOAT_PATH'],"
              " os.environ.get('ATEN_CPU_CAPABILITY')))")  # fmt: skip
    assert got == {"torch": "AVX512", "mode": "native", "aten": "None"}


@pytest.mark.slow  # a fresh interpreter per case: make test's, not the edit loop's
@needs_avx512
def test_a_head_fitted_on_avx512_and_on_an_avx2_cpu_is_bitwise_the_same():
    here, avx2_cpu = run(FIT), run(FIT, **AVX2_CPU)
    assert here["converged"] and here == avx2_cpu
    # without the pin the two machines differ (the check above has something to catch)
    assert run(FIT, SWEEP_FLOAT_PATH="native") != run(FIT, SWEEP_FLOAT_PATH="native", **AVX2_NATIVE)
