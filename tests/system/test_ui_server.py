"""`python -m sweep ui` as a user runs it: it prints a link, serves the store, and stopping it (Ctrl-C, SIGTERM,
or SIGKILL of the command itself) leaves no process of the server behind (the links and one-line errors:
tests/serve/test_ui.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.system  # `sweep ui` / `sweep dashboard` servers in subprocesses, stopped by signals

REPO = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, process group, session) of every live (non-zombie) process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[0] != "Z":
                out[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return out


def descendants(pid: int) -> set[int]:
    table = processes()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, (ppid, _, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sweep ui exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"no /health after {timeout_s}s:\n{log.read_text(errors='replace')[-3000:]}")


@linux_only
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["INT", "TERM", "KILL"])
def test_stopping_sweep_ui_leaves_no_server_process(sig, tmp_path):
    port = free_port()
    log = tmp_path / "ui.log"
    cmd = [sys.executable, "-m", "sweep", "ui", f"paths.root={tmp_path}", "data=synthetic", f"port={port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        deadline = time.monotonic() + 30
        while "Ctrl-C stops it" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # the command's own health check comes just after ours
        server = descendants(proc.pid)
        sessions = {processes()[p][2] for p in server if p in processes()}
        assert server and proc.pid not in sessions, "the server runs in a session of its own"
        text = log.read_text()
        assert "no study in" in text and "make sweep" in text, text[-2000:]
        assert f"MLflow UI at http://127.0.0.1:{port}" in text
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = {
                p for p, (_, pgid, sid) in processes().items() if p in server or sid in sessions or pgid in sessions
            }
            if not alive:
                break
            time.sleep(0.05)
        assert not alive, f"left behind after {sig.name}: {sorted(alive)}"
        if sig != signal.SIGKILL:
            assert proc.returncode == 130, log.read_text()[-2000:]
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of the health checks is no listener
            s.bind(("127.0.0.1", port))  # nothing listens there any more
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("command", ["ui", "dashboard"])
def test_ctrl_c_stops_a_server_started_in_the_background(command, tmp_path):
    """A job started with `&` or nohup inherits SIGINT as ignored: Ctrl-C (SIGINT) must still stop it."""
    port = free_port()
    log = tmp_path / f"{command}.log"
    cmd = [sys.executable, "-m", "sweep", command, f"paths.root={tmp_path}", "data=synthetic", f"port={port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops it" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Ctrl-C stops it" in log.read_text(), log.read_text()[-2000:]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        assert proc.returncode == 130, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
