"""The allocator setting (sweep/allocator.py): with it, a loop that allocates and frees 40 MB torch blocks (as
the head's evaluations do) reuses
them; without it (SWEEP_ALLOCATOR=system), every block is fresh mmap pages. Each side in its own
process. (numpy asks for huge pages on big arrays, which hides the faults: torch does not.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LOOP = """
import resource, torch
from sweep.allocator import keep_freed_memory
ok = keep_freed_memory()
for _ in range(40):  # the heap grows to its working size first (freed blocks fragment it for a while)
    a = torch.ones(5_000_000, dtype=torch.float64)
    del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = torch.ones(5_000_000, dtype=torch.float64)  # 40 MB, over glibc's largest mmap threshold (32 MB)
    del a
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(env: dict) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", LOOP], env={**os.environ, **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ok, faults = out.stdout.split()
    return ok == "True", int(faults)


@pytest.mark.slow  # a fresh interpreter: make test's, not the edit loop's
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_not_faulted_in_again():
    kept_ok, kept = _faults({})
    system_ok, system = _faults({"SWEEP_ALLOCATOR": "system"})
    assert kept_ok and not system_ok
    pages = 20 * 40_000_000 // 4096  # every page of every block, when each block is fresh
    assert system > 0.5 * pages  # the default: the kernel hands out (and zeroes) new pages each time
    assert kept < 0.05 * pages
