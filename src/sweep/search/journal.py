"""The journal file (Optuna's JournalFileBackend) made to hold whole lines only, whatever happens to a writer:
killed mid-line, or stopped by a full disk; its lock is released by the kernel when its holder dies."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from pathlib import Path

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock, get_lock_file

from sweep.config import ConfigError

log = logging.getLogger(__name__)


class _Flock(BaseJournalFileLock):
    """The journal's lock as an fcntl lock, which the kernel releases when its holder dies (SIGKILL included):
    Optuna's symlink lock, left behind by a killed worker, stalls every other worker for 30 s."""

    def __init__(self, path: str):
        self.path, self._fd = path, threading.local()

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd.value = fd
        return True

    def release(self) -> None:
        fd = self._fd.value
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class Journal(JournalFileBackend):
    """Optuna's journal file, holding whole lines only: an append first cuts a torn last line (a writer killed
    mid-line: appends hold the lock, so never a live writer's), a failed append (a full disk) is cut back, and
    a line that cannot be read is a one-line error naming it and the fix."""

    def __init__(self, path: str):
        super().__init__(path, lock_obj=_Flock(path + ".flock"))

    def append_logs(self, logs: list[dict]) -> None:
        data = ("\n".join(json.dumps(entry, separators=(",", ":")) for entry in logs) + "\n").encode()
        with get_lock_file(self._lock), open(self._file_path, "r+b", buffering=0) as f:
            end = f.seek(0, os.SEEK_END)
            keep = _whole_lines(f, end)
            if keep < end:
                log.warning(
                    "%s: cut a torn last line (%d bytes, a writer killed mid-write)", self._file_path, end - keep
                )
                f.truncate(keep)
                f.seek(keep)
            try:
                view = memoryview(data)
                while view:
                    view = view[f.write(view) :]
                os.fsync(f.fileno())
            except OSError:
                f.truncate(keep)  # a full disk: nothing of this append stays
                raise

    def read_logs(self, log_number_from: int):
        try:
            yield from super().read_logs(log_number_from)
        except ValueError:  # json's decode error too: a line cut off in the middle of the file
            raise ConfigError(_bad_line(Path(self._file_path))) from None


def _whole_lines(f, end: int) -> int:
    """The length of the file's whole lines: up to and including its last newline."""
    pos = end
    while pos > 0:
        step = min(pos, 65536)
        f.seek(pos - step)
        chunk = f.read(step)
        if (i := chunk.rfind(b"\n")) >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def _bad_line(path: Path) -> str:
    with open(path, "rb") as f:
        number = next((n for n, line in enumerate(f, 1) if not _parses(line)), 0)
    return (
        f"{path} line {number} is not a whole journal entry (a write cut off): stop the workers, then delete that "
        f"line (sed -i '{number}d' {path}) or move the file aside to start over, and run again"
    )


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
        return line.endswith(b"\n")
    except ValueError:
        return False
