"""Generated long-tailed labelled texts (data=synthetic): the small set the tests run on, and the Zipf scale
fixture (data.n texts in data.n_classes classes, up to 113 x 58K) shaped like a real complaint set."""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from sweep.data.errors import DataError


def synthetic_frame(cfg: DictConfig, seed: int) -> pd.DataFrame:
    """The generated set: the small profile (the tests' default), or the Zipf profile when data.n is set. The
    numbers were checked at load (schema/data.py's Synthetic)."""
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
        raise DataError(
            f"data.n_classes={n_classes}, data.n={n}: the Zipf profile needs at least 2 classes and "
            f"{2 * ZIPF_MIN} texts per class: raise data.n or lower data.n_classes"
        )
    p = (np.arange(1, n_classes + 1) + ZIPF_Q) ** -ZIPF_S
    sizes = np.maximum(ZIPF_MIN, np.round(n * p / p.sum())).astype(np.int64)
    sizes[0] += n - sizes.sum()  # rounding and the floor are absorbed by the largest class
    if sizes[0] < sizes[1]:
        raise DataError(
            f"data.n={n} is too small for a Zipf profile of data.n_classes={n_classes} with at least "
            f"{ZIPF_MIN} texts per class: raise data.n (e.g. {40 * n_classes}) or lower data.n_classes"
        )
    return sizes


def zipf_frame(
    n_classes: int,
    n: int,
    seed: int,
    words=(50, 150),
    own=0.06,
    topic=0.15,
    n_topics: int = 12,
    vague: float = 0.3,
    borrow: float = 0.6,
) -> pd.DataFrame:
    """Complaint-like texts of 50-150 words, in classes of zipf_sizes (class 0 the largest).

    A word comes from the class's keywords (share `own`), its topic's keywords (`topic`: classes k, k + T,
    k + 2T... share a topic, as issues share a product), or a shared Zipfian vocabulary. Within a topic, each
    class's keywords overlap half with the next larger and half with the next smaller class's: a tail text is
    often ambiguous with a larger neighbour. A keyword is borrowed (share `borrow`) from a random class of
    the same topic, so keywords point to a topic more than to a class: unweighted, a linear model leaves
    many tail classes at F1 = 0 and weighting buys them back with head accuracy (defaults chosen so; the
    docs/results/scale.md compares its numbers with the seed's)."""
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
    texts = [" ".join(tokens[e - k : e]) for e, k in zip(ends.tolist(), length.tolist(), strict=True)]
    order = rng.permutation(n)  # classes interleaved, as in a real export
    return pd.DataFrame(
        {
            "text": np.asarray(texts, dtype=object)[order],
            "label": np.char.add("issue_", lab.astype(str))[order].astype(object),
        }
    )


def _pseudo_words(n: int) -> np.ndarray:
    """n distinct pronounceable words (consonant-vowel syllables), vectorized."""
    syl = np.array([c + v for c in "bdfgklmnprstvz" for v in "aeiou"], dtype=object)  # 70 syllables
    i = np.arange(n)
    words = syl[i % 70] + syl[(i // 70) % 70]
    return np.where(i >= 70 * 70, words + syl[(i // 4900) % 70], words)
