"""What a run ran on, as `env.*` tags (package versions, Python, CPU flags, threads, GPU, BLAS), and which of
them differ between a recorded run and now in a way that can change its numbers."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from sweep import __version__
from sweep.memo import CACHE

# The project's direct dependencies whose versions move its numbers (pyproject.toml); read from the installed
# metadata, never imported (importing torch alone takes seconds).
PACKAGES = ("torch", "optuna", "mlflow", "scikit-learn", "numpy", "scipy", "transformers", "hydra-core")
# The vector units that choose BLAS and oneDNN kernels: a front fitted with AVX-512 can differ in the last
# digits from one fitted with AVX2 only.
CPU_FLAGS = ("avx512f", "avx2", "fma")
MISSING = "none"


def env_tags(workers: int = 1) -> dict[str, str]:
    """The `env.*` tags of this process, cheaply (no package import, nvidia-smi at most once). workers: the
    local worker processes the run starts, each with its share of the cores (search/workers.py)."""
    tags = {f"env.{name}": _version(name) for name in PACKAGES}
    tags["env.python"] = platform.python_version()
    tags["env.cpu"] = _cpu()
    tags["env.threads"] = str(_threads(workers))
    tags["env.gpu"] = _gpu()
    if blas := _blas():
        tags["env.blas"] = blas
    return tags


def env_differences(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """What differs between two `env_tags()` in a way that can change results, as "name then -> now": package
    versions, Python's minor version (not its patch), the CPU's vector flags (not its model name), threads,
    GPU, BLAS. A tag missing from either side (a run recorded before the tags existed) is no difference."""
    return [f"{name} {then} -> {now}" for name, then, now in _changed(recorded, current)]


def env_warning(recorded: Mapping[str, str], current: Mapping[str, str] | None = None) -> str | None:
    """One line for a user about to compare a recorded study with what runs now; None when nothing differs."""
    changed = _changed(recorded, env_tags() if current is None else current)
    if not changed:
        return None
    then = ", ".join(f"{name} {v}" for name, v, _ in changed)
    now = ", ".join(f"{name} {v}" for name, _, v in changed)
    return f"this study was run with {then}; now {now}: the front may differ (the parent run's env.* tags)"


def _changed(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[tuple[str, str, str]]:
    out = []
    for key in [k for k in current if k in recorded and k.startswith("env.")]:  # in env_tags' order
        name, then, now = key[4:], _comparable(key, recorded[key]), _comparable(key, current[key])
        if then != now:
            out.append(("cpu" if key == "env.cpu" else name, then, now))
    return out


def _comparable(key: str, value: str) -> str:
    """The part of a tag that can change results: Python without its patch, the CPU's flags without its model."""
    if key == "env.python":
        return ".".join(value.split(".")[:2])
    if key == "env.cpu":
        flags = value.rpartition("(")[2].rstrip(")") if value.endswith(")") else ""
        return " ".join(f for f in CPU_FLAGS if f in flags.split()) or "no avx"
    return value


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return MISSING


def _cpu() -> str:
    """The CPU's model name and which of CPU_FLAGS it has: "Intel(R) Xeon(R) Processor (avx512f avx2 fma)"."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:  # not Linux: the platform's name for it, flags unknown
        return platform.processor() or platform.machine() or MISSING
    have = " ".join(f for f in CPU_FLAGS if f in flags) or "no avx"
    return f"{model or platform.machine()} ({have})"


def _threads(workers: int) -> int:
    """torch's intra-op threads as the run will use them. Several local workers: each gets OMP_NUM_THREADS =
    cores // workers (search/workers.py). One: torch's own count if torch is loaded, else OMP_NUM_THREADS,
    MKL_NUM_THREADS, or the cores this process may use (what torch takes by default)."""
    if workers > 1:
        return max(1, (os.cpu_count() or 1) // workers)
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if (text := os.environ.get(var, "").strip()).isdigit() and int(text) > 0:
            return int(text)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _gpu() -> str:
    """The GPU's name ("2 x NVIDIA H200" for several), or "none": torch.cuda when this process has already set
    CUDA up, else nvidia-smi (absent: no NVIDIA GPU)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif smi := shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return MISSING
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        names = [n.strip() for n in out.splitlines() if n.strip()]
        if visible is not None:
            names = names[: len([d for d in visible.split(",") if d.strip()])]
    else:
        names = []
    if not names:
        return MISSING
    return names[0] if len(names) == 1 else f"{len(names)} x {names[0]}"


def _blas() -> str | None:
    """numpy's BLAS ("scipy-openblas 0.3.30") when numpy is already loaded; None otherwise."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    try:
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except Exception:  # numpy < 1.26 has no mode="dicts": the tag is optional
        return None


@CACHE.lru_cache(maxsize=1)  # two git processes: once per process, not once per run
def code_version() -> str:
    def git(*args: str) -> str:
        root = Path(__file__).resolve().parents[2]
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()

    try:
        sha, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", ""
    return f"{__version__}+{sha}{'.dirty' if dirty else ''}" if sha else __version__
