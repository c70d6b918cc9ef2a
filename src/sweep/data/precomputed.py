"""Embeddings and logits computed elsewhere (model=precomputed, model=precomputed_logits): a .npy, .parquet or
.csv file with one row per data row, in the data file's order or keyed by data.id_column, gathered per split.

The harness's own cleaning and splits decide which rows are used (Splits.rows / Splits.ids: each example's data
row and id); a wrong row count, NaN or inf in a used row, or an id the file lacks is a one-line DataError.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from sweep.data.errors import DataError
from sweep.data.splits import Splits
from sweep.memo import CACHE

log = logging.getLogger(__name__)
SUFFIXES = (".npy", ".parquet", ".csv")
_LOGITS: dict[str, dict[str, np.ndarray]] = CACHE.slot("data.precomputed.logits")
_DIGESTS: dict[tuple, str] = CACHE.slot("data.precomputed.digests")
_FIX_ROWS = "recompute it for this data file, or give a .parquet / .csv with an id column (data.id_column)"


def _digest(path: Path) -> str:
    """The file's sha256, read once per process and version of the file (every trial asks)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()[:16]
    return _DIGESTS[key]


def _files(model_cfg: DictConfig, splits: Splits) -> dict[str, tuple[str, Path]]:
    """'pool' (model.path: the rows of data.path) and, for data with a fixed test file, 'test' (model.test_path)."""
    files = {"pool": ("model.path", Path(str(model_cfg.path)).expanduser())}
    if model_cfg.get("test_path"):
        if "test" not in splits.info.get("rows_read", {}):
            raise DataError(
                f"model.test_path={model_cfg.test_path} is set, but this data has no fixed test file (its test "
                "split is carved from data.path, whose rows model.path holds): unset model.test_path"
            )
        files["test"] = ("model.test_path", Path(str(model_cfg.test_path)).expanduser())
    for key, path in files.values():
        if not path.is_file():
            raise DataError(f"{key}={path} is not a file: point {key} at the {' or '.join(SUFFIXES)} file")
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(f"{key}={path}: unknown format {path.suffix!r}: save it as {', '.join(SUFFIXES)}")
    return files


def read_matrix(
    path: Path, id_column: str | None, need_ids: bool = False
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """The file's values (rows x columns), its ids (a table's id_column, as text; required with need_ids) and
    its column names (tables)."""
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
            if values.ndim != 2 or not np.issubdtype(values.dtype, np.number):
                raise DataError(
                    f"{path} holds a {values.ndim}-d {values.dtype} array: save a 2-d numeric array (rows x columns)"
                )
            return values, None, None
        table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy, pyarrow and pandas raise many types for an unreadable file
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    ids = None
    if id_column and id_column in table.columns:
        ids = table.pop(id_column).astype(str).to_numpy(object)
    elif need_ids:
        raise DataError(
            f"{path} has no column {id_column!r} (model.id_column, from data.id_column; it has "
            f"{', '.join(map(str, table.columns[:4]))}): add the ids, or unset data.id_column to match rows by position"
        )
    vectors = table.shape[1] == 1 and pd.api.types.is_object_dtype(table.dtypes.iloc[0])  # a vector per row
    if vectors:
        try:
            values = np.stack(table.iloc[:, 0].to_numpy())
        except ValueError as exc:
            raise DataError(f"{path}: column {table.columns[0]!r} does not hold equal-length vectors ({exc})") from None
        return values, ids, None
    bad = [str(c) for c, t in table.dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
    if bad:
        more = f"; for ids set data.id_column={bad[0]}" if ids is None else ""
        raise DataError(f"{path}: column(s) {', '.join(bad[:3])} are not numeric: keep only the values{more}")
    return table.to_numpy(), ids, [str(c) for c in table.columns]


def gather(
    splits: Splits, model_cfg: DictConfig, dtype, which: tuple[str, ...] = ("train", "val", "test")
) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """The rows of splits `which` from the file(s), and the files' column names: by id when the data has ids
    (data.id_column) and the files are tables, else by position (model.path's rows are data.path's rows; a
    fixed test file's rows are in model.test_path)."""
    files = _files(model_cfg, splits)
    id_column = model_cfg.get("id_column")
    read = {part: read_matrix(path, id_column, bool(splits.ids)) for part, (_, path) in files.items()}
    widths = {part: v.shape[1] for part, (v, _, _) in read.items()}
    if len(set(widths.values())) > 1:
        raise DataError(
            f"model.path has {widths['pool']} columns but model.test_path {widths['test']}: make them equal"
        )
    by_id = bool(splits.ids) and all(ids is not None for _, ids, _ in read.values())
    offsets = np.cumsum([0, *(v.shape[0] for v, _, _ in read.values())])
    start = {part: int(offsets[i]) for i, part in enumerate(read)}
    index = _id_index(read, files) if by_id else None
    rows = {}
    for split in which:
        if by_id:
            rows[split] = index.get_indexer(splits.ids[split])
        else:
            part = "test" if split == "test" and "test" in splits.info.get("rows_read", {}) else "pool"
            rows[split] = start[_positional(part, read, files, splits)] + splits.rows[split]
    missing = {split: np.flatnonzero(r < 0) for split, r in rows.items() if (r < 0).any()}
    if missing:
        first = next(iter(missing))
        raise DataError(
            f"{', '.join(str(p) for _, p in files.values())}: {sum(map(len, missing.values()))} of the "
            f"{sum(map(len, rows.values()))} ids the splits use (data.id_column={id_column!r}) are not in it, e.g. "
            f"{splits.ids[first][missing[first][0]]!r}: add their rows, or recompute the file for this data"
        )
    stacked = np.concatenate([v for v, _, _ in read.values()]) if len(read) > 1 else read["pool"][0]
    _check_finite(stacked, rows, files, offsets)
    return {split: np.ascontiguousarray(stacked[r], dtype=dtype) for split, r in rows.items()}, read["pool"][2]


def _id_index(read: dict, files: dict) -> pd.Index:
    """All ids of the file(s), in stacked order; an id twice is ambiguous: an error."""
    ids = pd.Index(np.concatenate([ids for _, ids, _ in read.values()]))
    if not ids.is_unique:
        twice = ids[ids.duplicated()]
        raise DataError(
            f"{', '.join(str(p) for _, p in files.values())}: id {twice[0]!r} appears {int((ids == twice[0]).sum())} "
            f"times ({twice.nunique()} ids repeat): keep one row per id"
        )
    return ids


def _positional(part: str, read: dict, files: dict, splits: Splits) -> str:
    """The file holding `part`'s rows, checked: one row per data row read from that data file."""
    expected = splits.info.get("rows_read", {}).get(part)
    if part not in read:
        raise DataError(
            f"this data has a fixed test file ({expected} rows): set model.test_path to its rows' values (in "
            "its order), or give ids in model.path (data.id_column)"
        )
    key, path = files[part]
    n = read[part][0].shape[0]
    if n != expected:
        data_key = "data.test_path" if part == "test" else "data.path"
        raise DataError(f"{key}={path} has {n} rows, but {data_key} has {expected} data rows: {_FIX_ROWS}")
    return part


def _check_finite(stacked: np.ndarray, rows: dict[str, np.ndarray], files: dict, offsets: np.ndarray) -> None:
    used = np.unique(np.concatenate(list(rows.values())))
    bad = used[~np.isfinite(stacked[used]).all(axis=1)]
    if len(bad):
        part = int(np.searchsorted(offsets, bad[0], side="right") - 1)
        key, path = list(files.values())[part]
        raise DataError(
            f"{key}={path}: {len(bad)} of the {len(used)} rows used hold NaN or inf (the first: row "
            f"{bad[0] - offsets[part]}): recompute them, or drop those rows from the data file"
        )


def file_settings(model_cfg: DictConfig, splits: Splits) -> dict:
    """What the gathered values depend on: the files' content, the id column and which rows each split uses
    (the data fingerprint covers texts and labels, not the rows they came from)."""
    out = {"id_column": model_cfg.get("id_column")}
    for key, path in _files(model_cfg, splits).values():
        out[key] = {"path": str(path.resolve()), "sha256": _digest(path)}
    h = hashlib.sha256()
    for split in sorted(splits.rows):
        h.update(splits.rows[split].tobytes())
        h.update("\x1f".join(splits.ids.get(split, [])).encode())
    out["rows"] = h.hexdigest()[:16]
    return out


def files_content(model_cfg: DictConfig, splits: Splits) -> str | None:
    """For a study's identity: one digest of the files a precomputed model reads (their content and the rows
    each split takes), so that a file rewritten under the same path is another experiment; None for the models
    that read no file."""
    if model_cfg.get("kind") != "logits" and model_cfg.get("features") != "precomputed":
        return None
    settings = file_settings(model_cfg, splits)
    blob = [settings["rows"], *(v["sha256"] for k, v in sorted(settings.items()) if isinstance(v, dict))]
    return hashlib.sha256("\x1f".join(blob).encode()).hexdigest()[:16]


def precomputed_features(splits: Splits, model_cfg: DictConfig) -> dict[str, np.ndarray]:
    """model=precomputed: each split's embeddings (float32), for the linear head (data/features.py caches them)."""
    feats, _ = gather(splits, model_cfg, np.float32)
    log.info("precomputed features from %s: %s", model_cfg.path, {k: v.shape for k, v in feats.items()})
    return feats


def class_columns(model_cfg: DictConfig, columns: list[str] | None, width: int) -> list[str]:
    """The class name of each column: a table's header, or model.classes (a list, or a .txt with one per line)."""
    if columns is not None:
        return columns
    classes = model_cfg.get("classes")
    if classes is None:
        raise DataError(
            f"model.path={model_cfg.path} is a .npy without class names: set model.classes=[a,b,...] (one per "
            "column, in order) or a .txt file with one name per line, or save a table with a column per class"
        )
    if isinstance(classes, str):
        classes = Path(classes).expanduser().read_text().splitlines()
    names = [str(c).strip() for c in (OmegaConf.to_container(classes) if hasattr(classes, "_metadata") else classes)]
    names = [n for n in names if n]
    if len(names) != width:
        raise DataError(
            f"model.classes names {len(names)} classes, but model.path={model_cfg.path} has {width} columns: "
            "give one name per column, in order"
        )
    return names


def precomputed_logits(splits: Splits, model_cfg: DictConfig) -> dict[str, np.ndarray]:
    """model=precomputed_logits: raw val and test logits (float64), one column per class of the splits, in
    Splits.class_names order. A class of the file that the data lost (data.min_class_count) is dropped."""
    key = hashlib.sha256(
        repr((sorted(file_settings(model_cfg, splits).items()), splits.fingerprint)).encode()
    ).hexdigest()
    if key in _LOGITS:
        return _LOGITS[key]
    values, columns = gather(splits, model_cfg, np.float64, ("val", "test"))
    names = class_columns(model_cfg, columns, values["val"].shape[1])
    if len(set(names)) < len(names):
        raise DataError(f"model.path={model_cfg.path}: a class name appears twice among its columns: name each once")
    missing = [c for c in splits.class_names if c not in names]
    if missing:
        raise DataError(
            f"model.path={model_cfg.path} has no logit column for {len(missing)} of the data's "
            f"{splits.num_classes} classes (e.g. {missing[0]!r}; it has {', '.join(names[:4])}...): one column "
            "per class name of data.label_column"
        )
    extra = sorted(set(names) - set(splits.class_names))
    if extra:
        log.warning("%d logit column(s) name no class of the data (dropped): %s", len(extra), ", ".join(extra[:5]))
    order = [names.index(c) for c in splits.class_names]
    _LOGITS[key] = {s: values[s][:, order] for s in ("val", "test")}
    return _LOGITS[key]
