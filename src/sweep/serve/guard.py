"""`python -m sweep.serve.guard CMD...`: run CMD in this process's group and stop the whole group (CMD and whatever
it forked) when asked (SIGTERM, SIGINT, SIGHUP) or when the parent goes away, even SIGKILLed: its stdin closes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (Linux /proc; empty where there is none)."""
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, session...
            pids.append(int(entry))
    return pids


def stop_group(pgid: int, grace_s: float = 10.0, spare: int | None = None) -> None:
    """SIGTERM to the group, SIGKILL to whatever is still there after grace_s (`spare`: a pid to leave alone)."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and set(group_members(pgid)) - {spare}:
        time.sleep(0.1)
    for pid in set(group_members(pgid)) - {spare}:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m sweep.serve.guard CMD [ARGS...]", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def watch_parent() -> None:
        try:  # the raw fd, not sys.stdin: a daemon thread must hold no lock at interpreter exit
            while os.read(0, 4096):  # b"" at end of file: the parent closed the pipe or died
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    while child.poll() is None and not stop.wait(0.5):
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM is for the others
    stop_group(os.getpgrp(), spare=os.getpid())
    child.wait()
    return 0 if stop.is_set() else child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
