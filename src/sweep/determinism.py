"""One float path on x86 CPUs with AVX2: the libraries' instruction-set choices fixed before numpy and torch
load, so that an Intel AVX-512 machine and an AVX2-only one fit the same heads and fronts.

A converged head is only determined to within gtol / (its smallest curvature): any difference in the last bit
of a product (an AVX-512 kernel sums in another order than an AVX2 one; numpy's AVX-512 log and exp round
differently from its AVX2 ones) moves a few validation predictions, the sampler's next trials and the front.
Measured in docs/results/reproducibility.md; how to read it in docs/statistics.md.

apply() (called by sweep/__init__.py, before anything imports numpy or torch) sets, unless already set:
    ATEN_CPU_CAPABILITY=avx2   torch's own kernels (softmax, exp, reductions) at AVX2 width
    MKL_CBWR=AVX2              MKL's (torch's BLAS: the solver's dot products) AVX2 branch on every Intel CPU
    NPY_ENABLE_CPU_FEATURES    numpy's dispatch up to AVX2 (its log/exp: TF-IDF's idf, the priors)
    OPENBLAS_CORETYPE=Haswell  numpy/scipy's OpenBLAS kernels (a Zen or Skylake-X core picks its own)
Worker processes inherit the environment. Threads stay as they are: MKL's reductions depend on the thread
count, so the same front needs the same thread count (docs/statistics.md). SWEEP_FLOAT_PATH=native leaves
every library at its own choice. MKL runs its own AUTO branch on AMD CPUs whatever MKL_CBWR=AVX2 says:
SWEEP_FLOAT_PATH=compatible takes MKL's COMPATIBLE branch instead, the same on Intel and AMD (~30% slower
fits, docs/results/reproducibility.md). A variable the user set is never overridden. Where numpy or torch loaded
before sweep, the process (and the workers it starts) keep the native path.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

ENV = "SWEEP_FLOAT_PATH"  # "avx2" (default), "compatible" (Intel and AMD alike) or "native"
MKL_BRANCH = {"avx2": "AVX2", "compatible": "COMPATIBLE"}
X86_V3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "abm"}  # numpy's X86_V3; abm is lzcnt
# numpy before 2.4 names its dispatch targets by feature; unknown names are an ImportWarning, not an error
OLD_NUMPY_AVX512 = "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"
APPLIED: dict[str, str] = {}  # what apply() set in this process
LATE: list[str] = []  # numpy / torch, where they loaded before apply(): this process keeps its native path


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The first CPU's flags (Linux); empty where there is no /proc/cpuinfo."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def numpy_setting(version: str) -> tuple[str, str]:
    """The variable that caps numpy's runtime dispatch at AVX2, in the names this numpy version knows."""
    major, minor = (int(p) for p in (version.split(".") + ["0"])[:2])
    if (major, minor) >= (2, 4):
        return "NPY_ENABLE_CPU_FEATURES", "X86_V3"
    return "NPY_DISABLE_CPU_FEATURES", OLD_NUMPY_AVX512


def settings(flags: set[str], numpy_version: str | None, mode: str = "avx2") -> dict[str, str]:
    """The variables that put this CPU on the AVX2 path (MKL's COMPATIBLE branch for mode "compatible");
    none on a CPU without AVX2 (it has only the paths below it) or for mode "native"."""
    if mode not in (*MKL_BRANCH, "native"):
        raise ValueError(f"{ENV}={mode!r} is unknown: use avx2 (the default), compatible (AMD too) or native")
    if mode == "native" or not X86_V3 <= flags:
        return {}
    out = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": MKL_BRANCH[mode], "OPENBLAS_CORETYPE": "Haswell"}
    if numpy_version:
        key, value = numpy_setting(numpy_version)
        out[key] = value
    return out


def _numpy_version() -> str | None:
    try:
        return metadata.version("numpy")
    except metadata.PackageNotFoundError:
        return None


def apply(environ=os.environ) -> dict[str, str]:
    """Set the variables this process and its workers need, before numpy or torch load; returns what it set.

    Where numpy or torch loaded first (a notebook, a test module), this process has chosen its path already:
    nothing is set but SWEEP_FLOAT_PATH=native, so the workers it starts take the same native path as it."""
    LATE[:] = [m for m in ("numpy", "torch") if m in sys.modules]
    mode = environ.get(ENV, "avx2")
    if LATE and mode != "native":
        environ[ENV] = "native"
        return {}
    for key, value in settings(cpu_flags(), _numpy_version(), mode).items():
        if key not in environ:
            environ[key] = APPLIED[key] = value
    return dict(APPLIED)


apply()  # on import: sweep/__init__.py imports this module before anything loads numpy or torch
