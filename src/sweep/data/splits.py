"""Clean and split labelled texts (from sources.py): train / validation / test, stratified, deterministic;
the long-tail protocols, the checks that the splits can measure macro-F1, the dropped-row counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split

from sweep.data.errors import DataError
from sweep.data.sources import load_sources
from sweep.memo import CACHE

log = logging.getLogger(__name__)
__all__ = ["DataError", "Splits", "load_splits", "make_splits"]


@dataclass(frozen=True)
class Splits:
    """Texts and integer labels per split; class priors come from the train split only."""

    texts: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    class_names: list[str]
    info: dict = field(default_factory=dict)
    # Where each example came from, for features computed elsewhere (data/precomputed.py): its data row in its
    # file (from 0 after the header; a fixed test file's own rows for the test split), and its data.id_column.
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    ids: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def train_counts(self) -> np.ndarray:
        return np.bincount(self.labels["train"], minlength=self.num_classes)

    @cached_property  # hashed once: every cache key of a trial asks for it (~25 ms a call at 58K texts)
    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps(self.class_names).encode())
        for name in sorted(self.texts):
            h.update(name.encode())
            h.update("\x1f".join(self.texts[name]).encode())
            h.update(self.labels[name].astype(np.int64).tobytes())
        return h.hexdigest()[:16]


# ---------------------------------------------------------------- cleaning and splitting


IMBALANCE_SPLITS = ("all", "train")
MIN_EVAL_PER_CLASS = 5  # below this many val / test examples, a class's F1 moves in big steps: a warning
MIN_EVAL_MEAN = 2  # below this many per class on average, a split cannot measure macro-F1: an error


def _clean(df: pd.DataFrame, what: str, drop_missing_labels: bool) -> tuple[pd.DataFrame, dict[str, int]]:
    """Normalize whitespace, drop rows without text, one row per distinct text (its most common label).
    Returns the rows kept and how many were dropped, by reason."""
    if df.empty:
        raise DataError(f"the {what} data is empty: check data.path / data.dataset")
    df = df.assign(row=np.arange(len(df)))  # the data row each kept text comes from (its first occurrence)
    missing = int(df["label"].isna().sum())
    if missing and not drop_missing_labels:
        raise DataError(
            f"the label column of the {what} data has {missing} missing values: fill them, or set "
            "data.drop_missing_labels=true to drop those rows"
        )
    df = df.dropna(subset=["label"]).assign(
        text=lambda d: d["text"].fillna("").astype(str).map(lambda t: re.sub(r"\s+", " ", t).strip()),
        label=lambda d: d["label"].astype(str).str.strip(),
    )
    with_text = df[df["text"] != ""]
    # Identical texts must never cross splits: keep one row per text, with its most common label.
    origin = {c: (c, "first") for c in with_text.columns if c not in ("text", "label")}  # row, and id if any
    pairs = with_text.groupby(["text", "label"], sort=False).agg(n=("row", "size"), **origin).reset_index()
    out = pairs.sort_values("n", ascending=False, kind="stable").drop_duplicates("text")[["text", "label", *origin]]
    out = out.sort_index().reset_index(drop=True)
    if out.empty:
        raise DataError(f"the {what} data has no rows with text: check data.text_column")
    return out, {
        "missing_label": missing,
        "missing_text": len(df) - len(with_text),
        "duplicate_text": len(with_text) - len(out),
    }


def _small_classes(pool: pd.DataFrame, test: pd.DataFrame | None, min_count: int, how: str):
    """Merge or drop classes with fewer than min_count rows in the pool; returns the rows dropped too."""
    counts = pool["label"].value_counts()
    small = set(counts[counts < min_count].index)
    if not small:
        return pool, test, 0
    rows = int(counts[list(small)].sum())
    log.info("%d classes below data.min_class_count=%d (%d rows): %s", len(small), min_count, rows, how)
    if how == "merge":
        fix = lambda d: d.assign(label=d["label"].where(~d["label"].isin(small), "Other"))  # noqa: E731
    else:
        fix = lambda d: d[~d["label"].isin(small)]  # noqa: E731
    n_before = len(pool) + (len(test) if test is not None else 0)
    pool, test = fix(pool), (fix(test) if test is not None else None)
    return pool, test, n_before - len(pool) - (len(test) if test is not None else 0)


def _check_classes(pool: pd.DataFrame, min_count: int) -> None:
    counts = pool["label"].value_counts()
    if len(counts) < 2:
        found = f"1 class ({counts.index[0]!r})" if len(counts) else "no class left"
        raise DataError(
            f"the training data has only {found}: a classifier needs at least 2; check "
            f"data.label_column / data.min_class_count (now {min_count})"
        )


def _cover_classes(train: pd.DataFrame, held: pd.DataFrame, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified split can leave a class of 3-9 rows out of a 10% split; move one of its training rows
    there (deterministic: its last), so that every class is measured."""
    counts = train["label"].value_counts()
    missing = sorted(lab for lab in set(counts.index) - set(held["label"]) if counts[lab] >= 2)
    if not missing:
        return train, held
    moved = train[train["label"].isin(missing)].groupby("label", sort=True).tail(1)
    log.info("moved one training example of %d class(es) to the %s split, which had none of them", len(missing), name)
    return train.drop(moved.index), pd.concat([held, moved])


def _keep_fractions(train: pd.DataFrame, ratio: float) -> dict[str, float]:
    """Per class, the share of rows to keep so that train follows n_max * ratio ** (-rank / (C - 1))."""
    counts = train["label"].value_counts()
    order = sorted(counts.index, key=lambda lab: (-counts[lab], lab))  # rank by size, ties by name
    c, n_max = len(order), counts[order[0]]
    keep = {
        lab: max(1, min(counts[lab], int(round(n_max * ratio ** (-r / max(c - 1, 1)))))) for r, lab in enumerate(order)
    }
    return {lab: keep[lab] / counts[lab] for lab in order}


def _subsample(df: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """Keep round(fraction * n) rows of each class (at least 1), sampled with the seed; original order."""
    parts = [
        g.sample(n=max(1, int(round(fractions[lab] * len(g)))), random_state=seed)
        for lab, g in df.groupby("label", sort=True)
    ]
    return pd.concat(parts).sort_index()


def _imbalance(parts: dict[str, pd.DataFrame], ratio: float, which: str, seed: int) -> dict[str, pd.DataFrame]:
    """The long-tail protocol: subsample train classes to an exponential profile (largest / smallest = ratio).
    which="train": val and test keep the original mix (the long-tail papers' protocol); "all": val and test
    lose the same share of each class as train, so all three have the same long-tailed mix."""
    fractions = _keep_fractions(parts["train"], ratio)
    names = ("train",) if which == "train" else ("train", "val", "test")
    return {k: (_subsample(d, fractions, seed) if k in names else d) for k, d in parts.items()}


def _check_eval_splits(parts: dict[str, pd.DataFrame], class_names: list[str], fixed_test: bool) -> None:
    """Error when a val / test split cannot measure macro-F1; warn when some classes' F1 will be noisy."""
    for name in ("val", "test"):
        fix = (
            "add rows to the test file (data.test_path)"
            if name == "test" and fixed_test
            else f"raise data.{name}_fraction"
        )
        fix += " or merge small classes (data.min_class_count with data.small_classes=merge)"
        counts = parts[name]["label"].value_counts().reindex(class_names, fill_value=0)
        absent = counts[counts == 0]
        if len(absent):
            raise DataError(
                f"the {name} split has no example of {len(absent)} class(es) "
                f"({', '.join(map(repr, absent.index[:3]))}): macro-F1 needs every class; {fix}"
            )
        if counts.mean() < MIN_EVAL_MEAN:
            raise DataError(
                f"the {name} split has {counts.sum()} examples for {len(counts)} classes "
                f"({counts.mean():.1f} per class, under {MIN_EVAL_MEAN}): too few to measure macro-F1; "
                f"{fix}"
            )
        small = counts[counts < MIN_EVAL_PER_CLASS]
        if len(small):
            log.warning(
                "the %s split has %d of %d classes with fewer than %d examples (smallest: %r with %d): "
                "their F1 is noisy",
                name,
                len(small),
                len(counts),
                MIN_EVAL_PER_CLASS,
                small.idxmin(),
                small.min(),
            )


def make_splits(pool: pd.DataFrame, test: pd.DataFrame | None, cfg: DictConfig, seed: int = 0) -> Splits:
    """Deterministic stratified splits; identical texts never cross splits; every class in every split."""
    which = str(cfg.get("imbalance_splits", "all"))
    if which not in IMBALANCE_SPLITS:
        raise DataError(
            f"data.imbalance_splits={which!r} is unknown: use all (val and test get the training mix) "
            "or train (only train is subsampled)"
        )
    drop_missing = bool(cfg.get("drop_missing_labels", False))
    rows_read = {"pool": len(pool), **({"test": len(test)} if test is not None else {})}  # per file, as read
    pool, dropped = _clean(pool, "training", drop_missing)
    dropped["test_in_train"] = 0
    fixed_test = test is not None
    if fixed_test:
        test, test_dropped = _clean(test, "test", drop_missing)
        dropped = {k: v + test_dropped.get(k, 0) for k, v in dropped.items()}
        overlap = test["text"].isin(set(pool["text"]))
        test, dropped["test_in_train"] = test[~overlap], int(overlap.sum())
    min_count = int(cfg.get("min_class_count", 0))
    pool, test, dropped["small_class"] = _small_classes(pool, test, min_count, cfg.get("small_classes", "drop"))
    _check_classes(pool, min_count)
    n_splits = 2 if fixed_test else 3
    counts = pool["label"].value_counts()
    if counts.min() < n_splits:
        lab = counts.idxmin()
        raise DataError(
            f"class {lab!r} has {counts.min()} example(s) but the {n_splits} splits need at least "
            f"{n_splits}: set data.min_class_count={n_splits} (data.small_classes=merge or drop)"
        )
    try:
        if test is None:
            pool, test = train_test_split(pool, test_size=cfg.test_fraction, stratify=pool["label"], random_state=seed)
        train, val = train_test_split(pool, test_size=cfg.val_fraction, stratify=pool["label"], random_state=seed)
    except ValueError as exc:
        raise DataError(
            f"cannot split stratified ({str(exc).splitlines()[0]}): raise data.min_class_count "
            "or data.val_fraction / data.test_fraction"
        ) from None
    unseen = sorted(set(test["label"]) - set(train["label"]))
    if unseen:
        raise DataError(
            f"label(s) {unseen[:5]} appear in the test data but not in training: set "
            "data.min_class_count with data.small_classes=merge, or drop those rows"
        )
    if not fixed_test:
        train, test = _cover_classes(train, test, "test")
    train, val = _cover_classes(train, val, "val")
    parts = {"train": train, "val": val, "test": test}
    n_before = sum(map(len, parts.values()))
    if cfg.get("imbalance_ratio"):
        parts = _imbalance(parts, float(cfg.imbalance_ratio), which, seed)
    dropped["imbalance"] = n_before - sum(map(len, parts.values()))
    class_names = sorted(parts["train"]["label"].unique())
    _check_eval_splits(parts, class_names, fixed_test)
    log.info("dropped rows: %s", ", ".join(f"{k} {v}" for k, v in dropped.items()))
    index = {name: i for i, name in enumerate(class_names)}
    return Splits(
        texts={k: d["text"].tolist() for k, d in parts.items()},
        labels={k: d["label"].map(index).to_numpy(np.int64) for k, d in parts.items()},
        class_names=class_names,
        info={
            **{f"n_{k}": len(d) for k, d in parts.items()},
            "dropped": {k: int(v) for k, v in dropped.items()},
            "rows_read": rows_read,
        },
        rows={k: d["row"].to_numpy(np.int64) for k, d in parts.items()},
        ids={k: d["id"].astype(str).to_numpy(object) for k, d in parts.items() if "id" in d},
    )


@CACHE.lru_cache(maxsize=4)
def _load_cached(data_json: str, data_dir: str, seed: int) -> Splits:
    cfg = OmegaConf.create(json.loads(data_json))
    pool, test = load_sources(cfg, Path(data_dir), seed)
    return make_splits(pool, test, cfg, seed=int(cfg.get("split_seed", 0)))


def load_splits(data_cfg: DictConfig, data_dir: str | Path, seed: int = 0) -> Splits:
    """Load and split once per process for each data config (every trial of a sweep reuses it)."""
    data_json = json.dumps(OmegaConf.to_container(data_cfg, resolve=True), sort_keys=True)
    return _load_cached(data_json, str(data_dir), seed)
