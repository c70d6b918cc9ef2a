from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from sweep.data import DataError, make_splits, read_table

CFG = OmegaConf.create({"val_fraction": 0.2, "test_fraction": 0.2, "min_class_count": 0, "small_classes": "drop"})


def frame(counts: dict[str, int], dup_every: int = 0, prefix: str = "text") -> pd.DataFrame:
    rows = [(f"{prefix} {lab} {i}", lab) for lab, n in counts.items() for i in range(n)]
    if dup_every:  # exact duplicates, some with whitespace differences
        rows += [(f"  text {lab}  {i} ", lab) for lab, n in counts.items() for i in range(0, n, dup_every)]
    return pd.DataFrame(rows, columns=["text", "label"])


def test_splits_are_stratified_disjoint_and_deterministic():
    pool = frame({"a": 200, "b": 60, "c": 20}, dup_every=3)
    s1, s2 = make_splits(pool, None, CFG), make_splits(pool, None, CFG)
    assert s1.fingerprint == s2.fingerprint
    texts = {k: set(v) for k, v in s1.texts.items()}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    assert sum(len(v) for v in texts.values()) == 280  # duplicates collapsed
    for split in ("train", "val", "test"):
        share = np.bincount(s1.labels[split], minlength=3) / len(s1.labels[split])
        np.testing.assert_allclose(share, [200 / 280, 60 / 280, 20 / 280], atol=0.03)


def test_given_test_set_loses_texts_seen_in_training():
    pool, test = frame({"a": 50, "b": 20}), frame({"a": 10, "b": 5}, prefix="held out")
    test.loc[0, "text"] = pool.loc[0, "text"]
    s = make_splits(pool, test, CFG)
    assert len(s.texts["test"]) == 14
    assert not set(s.texts["test"]) & set(s.texts["train"] + s.texts["val"])


def test_class_too_small_to_split_is_a_clear_error_and_min_class_count_fixes_it():
    pool = frame({"a": 50, "b": 30, "tiny": 2})
    with pytest.raises(DataError, match=r"class 'tiny' has 2 example.*data.min_class_count=3"):
        make_splits(pool, None, CFG)
    merged = make_splits(pool, None, OmegaConf.merge(CFG, {"min_class_count": 3, "small_classes": "drop"}))
    assert merged.class_names == ["a", "b"]


def test_label_in_test_but_not_in_train_is_an_error():
    with pytest.raises(DataError, match="appear in the test data but not in training"):
        make_splits(frame({"a": 50, "b": 20}), frame({"a": 5, "z": 3}, prefix="t"), CFG)


def test_missing_labels_are_an_error_unless_dropped():
    pool = frame({"a": 50, "b": 20})
    pool.loc[3, "label"] = None
    with pytest.raises(DataError, match="1 missing values.*drop_missing_labels"):
        make_splits(pool, None, CFG)
    s = make_splits(pool, None, OmegaConf.merge(CFG, {"drop_missing_labels": True}))
    assert sum(len(v) for v in s.texts.values()) == 69


def test_empty_data_is_an_error():
    with pytest.raises(DataError, match="empty"):
        make_splits(frame({}), None, CFG)


def test_imbalance_ratio_gives_an_exponential_profile():
    s = make_splits(frame({"a": 500, "b": 500, "c": 500}), None, OmegaConf.merge(CFG, {"imbalance_ratio": 25}))
    counts = sorted(s.train_counts, reverse=True)
    assert counts[0] / counts[-1] == pytest.approx(25, rel=0.05)
    assert counts[1] == pytest.approx(counts[0] / 5, rel=0.05)


def test_csv_problems_are_one_line_errors(tmp_path: Path):
    good = tmp_path / "ok.csv"
    good.write_text("Consumer complaint narrative,Product\nhello,A\n")
    with pytest.raises(DataError, match=r"column 'Issue' not found.*data.label_column"):
        read_table(good, "Consumer complaint narrative", "Issue")
    broken = tmp_path / "broken.csv"
    broken.write_text('text,label\n"a",x\n"b",y,extra,fields\n"c",z\n')
    with pytest.raises(DataError, match="malformed CSV row"):
        read_table(broken, "text", "label")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9 cr\xe9dit,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid UTF-8.*iconv"):
        read_table(latin, "text", "label")
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "nope.csv", "text", "label")


def test_official_cfpb_export_layout(tmp_path: Path):
    """data=cfpb_csv reads the CFPB export's columns, drops rows without narrative, picks the label field."""
    from sweep.config import load_config
    from sweep.data import load_splits

    rng = np.random.default_rng(0)
    issues = [f"Issue {i}" for i in range(12)]
    rows = []
    for i in range(600):
        issue = issues[min(int(rng.exponential(3)), 11)]
        rows.append({"Date received": "2024-01-01", "Product": "Debt collection", "Sub-product": "x",
                     "Issue": issue, "Sub-issue": "", "Consumer complaint narrative":
                     "" if i % 10 == 0 else f"complaint {i} about {issue.lower()} words {rng.integers(50)}"})
    path = tmp_path / "complaints.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    cfg = load_config([f"paths.root={tmp_path}", "data=cfpb_csv", f"data.path={path}", "data.label_field=issue",
                       "data.min_class_count=10"])
    s = load_splits(cfg.data, cfg.paths.data_dir)
    assert sum(len(v) for v in s.texts.values()) == 540  # 60 rows without narrative dropped
    assert "Other" in s.class_names  # rare issues merged
    assert all(name.startswith("Issue") or name == "Other" for name in s.class_names)
