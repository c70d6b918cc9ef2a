"""DataError: data that cannot be used as configured (a missing file, a broken row, a split too small to
measure macro-F1), raised by every data module with the value and the fix; cli prints it as one line."""

from __future__ import annotations


class DataError(ValueError):
    """Data that cannot be used as configured; the message names the problem and the fix."""
