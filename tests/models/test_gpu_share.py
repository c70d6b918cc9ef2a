"""Workers sharing one GPU: admission by free memory, across real processes and a real flock.

This machine has no GPU, so the device is a file that the processes share: its "free memory" goes down when a
worker reserves and up when it releases, like CUDA's mem_get_info does across processes. The real CUDA
device is checked under the gpu marker (tests/search/test_gpu_device.py runs on the H200)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from sweep.models import gpu_share
from sweep.models.gpu_share import GIB, Gpu, GpuMemoryError, admit, gpu_slot, need_bytes

TOTAL = 10 * GIB


def _used(path: Path) -> dict:
    """The file device's use: {pid: bytes}."""
    return json.loads(path.read_text()) if path.exists() else {}


def file_gpu(path: Path, peak: int = 2 * GIB) -> Gpu:
    """A device whose memory use lives in a JSON file {pid: bytes}: what every process sees as used."""

    def write(d: dict) -> None:
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(json.dumps(d))
        os.replace(tmp, path)

    def reserve(n: int) -> None:
        write({**_used(path), str(os.getpid()): n + GIB})  # + the context, which real CUDA also shows as used

    def release() -> None:
        write({k: v for k, v in _used(path).items() if k != str(os.getpid())})

    return Gpu(
        ident="test:gpu0",
        memory=lambda: (TOTAL - sum(_used(path).values()), TOTAL),
        reserve=reserve,
        reset_peak=lambda: None,
        peak=lambda: peak,
        release=release,
    )


def _worker(state_dir: str, dev: str, given: float | None, hold_s: float, log: str) -> None:
    gpu = file_gpu(Path(dev))
    with gpu_slot(gpu, "shape", state_dir, given, poll_s=0.05):
        start = time.time()
        time.sleep(hold_s)
        end = time.time()
    with open(log, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "given": given, "start": start, "end": end}) + "\n")


def _run(tmp_path: Path, jobs: list[tuple[float | None, float, float]]) -> list[dict]:
    """jobs: (given GiB, hold seconds, start delay); returns each worker's admitted [start, end]."""
    ctx = mp.get_context("fork")
    log = tmp_path / "log.jsonl"
    log.unlink(missing_ok=True)
    procs = []
    for given, hold, delay in jobs:
        p = ctx.Process(target=_worker, args=(str(tmp_path), str(tmp_path / "dev.json"), given, hold, str(log)))
        p.start()
        procs.append(p)
        time.sleep(delay)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_admit_rule():
    assert admit(4 * GIB, 5 * GIB, [{"alone": False}])
    assert not admit(6 * GIB, 5 * GIB, [])
    assert not admit(1, 5 * GIB, [{"alone": True}])  # a shape being measured runs alone
    assert admit(None, 0, [])  # unknown need: alone, whatever is free
    assert not admit(None, TOTAL, [{"alone": False}])


def test_need_is_given_or_learned():
    assert need_bytes(24, 10 * GIB) == 24 * GIB
    assert need_bytes(None, 10 * GIB) == 12 * GIB + GIB
    assert need_bytes(None, None) is None


def test_a_worker_that_would_not_fit_waits(tmp_path):
    # 10 GiB: A takes 6 (+1 context); B (6) cannot fit beside it and waits; C (2) fits beside A at once
    rows = _run(tmp_path, [(6, 1.0, 0.3), (6, 0.2, 0.05), (2, 0.2, 0)])
    a, b = sorted((r for r in rows if r["given"] == 6), key=lambda r: r["start"])
    c = next(r for r in rows if r["given"] == 2)
    assert b["start"] >= a["end"], "the second 6 GiB fine-tune started before the first gave its memory back"
    assert c["start"] < a["end"], "the 2 GiB fine-tune fitted beside the first and should not have waited"


def test_unknown_shape_runs_alone_then_its_peak_is_learned(tmp_path):
    rows = _run(tmp_path, [(None, 0.6, 0.2), (None, 0.1, 0)])
    first, second = sorted(rows, key=lambda r: r["start"])
    assert second["start"] >= first["end"], "two unmeasured fine-tunes ran at once"
    state = json.loads((tmp_path / gpu_share.STATE).read_text())
    assert state["peaks"]["shape"] == 2 * GIB
    assert state["holders"]["test:gpu0"] == []
    # measured now: 2 x 1.2 + 1 = 3.4 GiB each, so two of them share the 10 GiB
    rows = _run(tmp_path, [(None, 0.6, 0.2), (None, 0.6, 0)])
    first, second = sorted(rows, key=lambda r: r["start"])
    assert second["start"] < first["end"], "two measured fine-tunes that fit together did not share the GPU"


def test_a_dead_holder_does_not_block(tmp_path):
    ctx = mp.get_context("fork")
    p = ctx.Process(target=lambda: None)
    p.start()
    p.join()
    state = {"peaks": {}, "holders": {"test:gpu0": [{"pid": p.pid, "host": os.uname().nodename, "alone": True}]}}
    (tmp_path / gpu_share.STATE).write_text(json.dumps(state))
    gpu = file_gpu(tmp_path / "dev.json")
    t0 = time.monotonic()
    with gpu_slot(gpu, "shape", tmp_path, 1, poll_s=0.05):
        pass
    assert time.monotonic() - t0 < 2


def test_a_need_above_the_gpu_is_one_line(tmp_path):
    gpu = file_gpu(tmp_path / "dev.json")
    with pytest.raises(GpuMemoryError) as e, gpu_slot(gpu, "shape", tmp_path, 11):
        pass
    assert "\n" not in str(e.value) and "11.0 GiB" in str(e.value) and "model.batch_tokens" in str(e.value)


def test_cpu_shares_nothing(tmp_path):
    with gpu_slot(None, "shape", tmp_path / "never"):
        pass
    assert not (tmp_path / "never").exists()


def test_the_setting_is_checked():
    from sweep.models.finetune import resolve_cfg

    base = {"name": "m", "pretrained": "p", "kind": "finetune"}
    assert resolve_cfg(base)["gpu_memory_gib"] is None
    assert resolve_cfg({**base, "gpu_memory_gib": 24})["gpu_memory_gib"] == 24
    with pytest.raises(ValueError, match="model.gpu_memory_gib=-1 is invalid"):
        resolve_cfg({**base, "gpu_memory_gib": -1})


@pytest.mark.gpu
def test_on_cuda_the_reservation_is_seen_and_the_peak_learned(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    dev = torch.device("cuda:0")
    gpu = gpu_share.cuda_gpu(dev)
    free0, _ = torch.cuda.mem_get_info(dev)
    with gpu_slot(gpu, "cuda-shape", tmp_path, 3):  # 3 GiB asked: 2 GiB reserved (1 GiB is the context's)
        free1, _ = torch.cuda.mem_get_info(dev)
        x = torch.empty(GIB // 2, dtype=torch.uint8, device=dev)  # served from the reservation
        assert torch.cuda.mem_get_info(dev)[0] == free1
        del x
    assert free0 - free1 >= 2 * GIB - 64 * 2**20, "the reservation did not show in the GPU's free memory"
    assert torch.cuda.mem_get_info(dev)[0] >= free1 + 2 * GIB - 64 * 2**20, "the memory was not given back"
    peak = json.loads((tmp_path / gpu_share.STATE).read_text())["peaks"]["cuda-shape"]
    assert GIB // 2 <= peak < GIB


def pinned_gpu(path: Path) -> Gpu:
    """A device where a worker's reserved memory never goes back (a live tensor, the model kept for the next
    trial, pins the segment): release gives nothing back, and the process's cache stays usable by itself."""
    base = file_gpu(path)
    take = base.reserve  # writes this process's use: n + the context

    def reserve(n: int) -> None:
        mine = _used(path).get(str(os.getpid()), 0)
        if n > 0:
            take(max(n, mine - GIB))

    base.reserve, base.release = reserve, lambda: None
    base.cached = lambda: max(0, _used(path).get(str(os.getpid()), 0) - GIB)
    return base


def _two_finetunes(state_dir: str, dev: str, log: str) -> None:
    gpu = pinned_gpu(Path(dev))
    for _ in range(2):  # one process, two trials: the second meets the memory the first left pinned
        with gpu_slot(gpu, "shape", state_dir, 4, poll_s=0.05):
            time.sleep(0.3)
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")


def test_workers_whose_cache_stays_pinned_use_it_and_do_not_wait_for_each_other(tmp_path):
    """Two workers, 4 GiB each on 10 GiB: after their first fine-tunes 8 GiB stay pinned (2 GiB free). Each
    counts its own pinned cache (3 GiB) as its own: both run their second fine-tune instead of waiting for ever."""
    ctx = mp.get_context("fork")
    log = tmp_path / "done.txt"
    procs = [ctx.Process(target=_two_finetunes, args=(str(tmp_path), str(tmp_path / "dev.json"), str(log)))
             for _ in range(2)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join(20)
    alive = [p.is_alive() for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert alive == [False, False] and [p.exitcode for p in procs] == [0, 0], alive
    assert len(log.read_text().split()) == 2
    used = json.loads((tmp_path / "dev.json").read_text())
    assert sorted(used.values()) == [4 * GIB, 4 * GIB]  # no second reservation on top of the pinned one
