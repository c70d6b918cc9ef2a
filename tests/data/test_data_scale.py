"""The scale fixture: data=synthetic with data.n set, classes sized like a 113-class complaint set."""

from pathlib import Path

import numpy as np
import pytest

from sweep.config import load_config
from sweep.data.splits import DataError, load_splits
from sweep.data.synthetic import zipf_frame, zipf_sizes


def test_zipf_profile_matches_the_113_class_complaint_set():
    for n in (20_000, 58_000):
        sizes = zipf_sizes(113, n)
        assert sizes.sum() == n and (np.diff(sizes) <= 0).all()
        assert 0.20 <= sizes[0] / n <= 0.26
    sizes = zipf_sizes(113, 58_000)
    assert 24 <= (sizes < 50).sum() <= 60  # dozens of classes under 50 texts
    assert sizes.min() >= 10  # each class still reaches every split
    np.testing.assert_array_equal(zipf_sizes(113, 58_000), sizes)
    with pytest.raises(DataError, match=r"data.n_classes=113, data.n=500: .* raise data.n"):
        zipf_sizes(113, 500)


def test_scale_texts_are_deterministic_complaint_length_and_sized_by_the_profile():
    a = zipf_frame(113, 20_000, seed=0)
    counts = a["label"].value_counts()
    np.testing.assert_array_equal(np.sort(counts.to_numpy())[::-1], zipf_sizes(113, 20_000))
    words = a["text"].str.count(" ") + 1
    assert words.min() >= 50 and words.max() <= 150
    assert a["text"].nunique() == len(a)
    assert zipf_frame(113, 20_000, seed=0).equals(a)
    assert not zipf_frame(113, 20_000, seed=1)["text"].equals(a["text"])


def test_synthetic_n_classes_and_n_select_the_scale_fixture(tmp_path: Path):
    cfg = load_config([f"paths.root={tmp_path}", "data=synthetic", "data.n_classes=40", "data.n=8000"])
    s = load_splits(cfg.data, cfg.paths.data_dir)
    assert s.num_classes == 40 and sum(s.info[f"n_{k}"] for k in ("train", "val", "test")) == 8000
    assert load_splits(cfg.data, cfg.paths.data_dir).fingerprint == s.fingerprint
    preset = load_config([f"paths.root={tmp_path}", "data=synthetic_scale"]).data
    assert (preset.n_classes, preset.n, preset.source) == (113, 58_000, "synthetic")
    small = load_config([f"paths.root={tmp_path}", "data=synthetic"]).data
    assert small.n is None and small.n_classes == 6  # the tests' small default is unchanged
