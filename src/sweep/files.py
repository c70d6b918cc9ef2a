"""Every file the harness writes, made safe: one atomic write (a temporary file beside the target, then a rename),
CSV text whose text cells a spreadsheet never runs as formulas, and Markdown tables a cell cannot break."""

from __future__ import annotations

import math
import numbers
import os
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

# OWASP "CSV Injection" (CWE-1236): a spreadsheet runs a cell starting with one of these as a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # "-0.5" is a number to a spreadsheet too
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def write_atomic(path: Path | str, data: str | bytes | Callable[[Path], object]) -> Path:
    """`data` (text as UTF-8, bytes, or a writer called with the temporary path: a file or a whole directory)
    to a temporary path beside the target, then renamed into place: a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            data(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return path


def _missing(value) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def safe_text(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting with = + - @ tab or CR gets a leading ' (OWASP);
    a number written as text ("-0.5") is left as it is."""
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_cell(value, float_format: str | None = None) -> str:
    """One CSV field: numbers as numbers (never altered), a missing value empty, text through safe_text and
    quoted when neutralized or when it holds a comma, a quote or a line break."""
    if _missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return float_format % value if float_format else repr(float(value))
    text = str(value)
    safe = safe_text(text)
    if safe != text or any(c in safe for c in ',"\r\n'):
        return '"' + safe.replace('"', '""') + '"'
    return safe


def csv_text(columns: Iterable, rows: Iterable[Iterable], float_format: str | None = None) -> str:
    """A whole CSV file (header, then rows; \\n line ends), every field through csv_cell."""
    lines = [",".join(csv_cell(c) for c in columns)]
    lines += [",".join(csv_cell(v, float_format) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def frame_csv(frame: pd.DataFrame, float_format: str | None = None) -> str:
    """A DataFrame as safe CSV text (no index): what `to_csv(index=False)` writes, formula cells neutralized."""
    return csv_text(frame.columns, frame.itertuples(index=False, name=None), float_format)


def write_csv(frame: pd.DataFrame, path: Path | str, float_format: str | None = None) -> Path:
    """A DataFrame as a safe CSV file (frame_csv), written atomically."""
    return write_atomic(path, frame_csv(frame, float_format))


def md_text(value) -> str:
    """Text for one line of Markdown: control characters (newlines included) become a space."""
    return _CONTROL.sub(" ", str(value)).strip()


def md_cell(value) -> str:
    """Text for a Markdown table cell: md_text, backslashes and | escaped (a | would split the cell)."""
    return md_text(value).replace("\\", "\\\\").replace("|", "\\|")


def markdown_table(frame: pd.DataFrame, floatfmt: str = "g") -> str:
    """A GitHub table of a DataFrame whose text cells and headers cannot break it (md_cell); text that looks
    like a number ("1e5") stays as written; numbers get floatfmt."""
    shown = frame.copy()
    text_columns = [i for i in range(shown.shape[1]) if not pd.api.types.is_numeric_dtype(shown.iloc[:, i])]
    for i in text_columns:
        shown.isetitem(i, [v if _missing(v) or isinstance(v, numbers.Number) else md_cell(v) for v in shown.iloc[:, i]])
    shown.columns = [md_cell(c) for c in frame.columns]
    return shown.to_markdown(index=False, floatfmt=floatfmt, disable_numparse=text_columns or False)
