"""Calls to a service that may be away for a while (a restarted database, a tracking server that died):
retried with backoff within a bounded window, then one error naming the service and the fix."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Unavailable(RuntimeError):
    """A service (the Optuna storage, the MLflow server) stayed away longer than its retry window."""


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_IN_CALL = [0]  # service calls running now (signals reach the main thread only: a counter is enough)
_PENDING: list[int] = []  # a SIGINT / SIGTERM that came during one, raised when it returns


def defer_interrupt(signum: int) -> bool:
    """For a signal handler: True when a service call is running and this is the first signal, which is then
    raised as KeyboardInterrupt once the call returns. An interrupt inside an SQLite write left its
    transaction open, and the handler's own writes (run KILLED) then met "database is locked"; a second
    signal is not deferred, so a call that hangs can still be interrupted."""
    if _IN_CALL[0] and not _PENDING:
        _PENDING.append(signum)
        return True
    return False


def _raise_pending() -> None:
    if _PENDING and not _IN_CALL[0]:
        raise KeyboardInterrupt(f"signal {_PENDING.pop()}")


class Retrying:
    """One service's calls, retried with backoff (0.25 s doubling to 5 s) through an outage of up to window_s
    seconds; past that, Unavailable, and later calls fail at once (no second window) until one succeeds.
    `transient(exc)` says which errors mean "away"; any other error is raised as it is, at once."""

    def __init__(
        self,
        what: str,
        window_s: float,
        transient: Callable[[BaseException], bool],
        fix: str,
        clean: Callable[[str], str] = str,
    ):
        self.what, self.window_s, self.transient, self.fix, self.clean = what, float(window_s), transient, fix, clean
        self.down, self._local = False, threading.local()

    def call(self, fn: Callable, *args, **kwargs):
        if getattr(self._local, "active", False):  # a call made inside a retried one: the outer one retries
            return fn(*args, **kwargs)
        self._local.active, start, delay, warned = True, time.monotonic(), 0.25, False
        try:
            while True:
                try:
                    _IN_CALL[0] += 1
                    try:
                        out = fn(*args, **kwargs)
                    finally:
                        _IN_CALL[0] -= 1
                        _raise_pending()  # the deferred signal, once the call (or its error) is out
                except Exception as exc:
                    if not self.transient(exc):
                        raise
                    waited, reason = time.monotonic() - start, self.clean(first_line(exc))[:200]
                    if self.down or waited + delay > self.window_s:
                        self.down = True
                        raise Unavailable(
                            f"{self.what} unreachable for {waited:.0f} s ({reason}): {self.fix}"
                        ) from None
                    if not warned:
                        log.warning("%s unreachable (%s): retrying for up to %.0f s", self.what, reason, self.window_s)
                    warned = True
                    time.sleep(delay)
                    delay = min(2 * delay, 5.0)
                    continue
                if warned:
                    log.warning("%s is back after %.0f s", self.what, time.monotonic() - start)
                self.down = False
                return out
        finally:
            self._local.active = False


class Retried:
    """An object (a client) whose every method call goes through a Retrying."""

    def __init__(self, target, retry: Retrying):
        self._target, self._retry = target, retry

    def __getattr__(self, name: str):
        attr = getattr(self._target, name)
        return (lambda *a, **k: self._retry.call(attr, *a, **k)) if callable(attr) else attr
