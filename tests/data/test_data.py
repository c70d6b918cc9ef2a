import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from sweep.data.sources import read_table
from sweep.data.splits import DataError, make_splits

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
    with pytest.raises(DataError, match=r"broken.csv line 3 has 4 fields, expected 2: fix or remove that row"):
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
    from sweep.data.splits import load_splits

    rng = np.random.default_rng(0)
    issues = [f"Issue {i}" for i in range(12)]
    rows = []
    for i in range(600):
        issue = issues[min(int(rng.exponential(3)), 11)]
        rows.append(
            {
                "Date received": "2024-01-01",
                "Product": "Debt collection",
                "Sub-product": "x",
                "Issue": issue,
                "Sub-issue": "",
                "Consumer complaint narrative": ""
                if i % 10 == 0
                else f"complaint {i} about {issue.lower()} words {rng.integers(50)}",
            }
        )
    path = tmp_path / "complaints.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    cfg = load_config(
        [
            f"paths.root={tmp_path}",
            "data=cfpb_csv",
            f"data.path={path}",
            "data.label_field=issue",
            "data.min_class_count=10",
        ]
    )
    s = load_splits(cfg.data, cfg.paths.data_dir)
    assert sum(len(v) for v in s.texts.values()) == 540  # 60 rows without narrative dropped
    assert "Other" in s.class_names  # rare issues merged
    assert all(name.startswith("Issue") or name == "Other" for name in s.class_names)


# ---------------------------------------------------------------- degenerate data


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_one_class_after_cleaning_or_small_class_handling_is_an_error():
    with pytest.raises(
        DataError,
        match=r"has only 1 class \('a'\): a classifier needs at least 2; check "
        r"data.label_column / data.min_class_count",
    ) as info:
        make_splits(frame({"a": 50}), None, CFG)
    one_line(info)
    dropped = OmegaConf.merge(CFG, {"min_class_count": 10, "small_classes": "drop"})
    with pytest.raises(DataError, match=r"has only 1 class \('a'\).*data.min_class_count \(now 10\)"):
        make_splits(frame({"a": 50, "b": 4, "c": 6}), None, dropped)
    merged = OmegaConf.merge(CFG, {"min_class_count": 100, "small_classes": "merge"})
    with pytest.raises(DataError, match=r"has only 1 class \('Other'\)"):
        make_splits(frame({"a": 50, "b": 40}), None, merged)
    with pytest.raises(DataError, match="has only no class left"):
        make_splits(frame({"a": 5, "b": 4}), None, dropped)


def test_small_eval_splits_warn_with_counts(caplog):
    with caplog.at_level(logging.WARNING, logger="sweep.data.splits"):
        s = make_splits(frame({"a": 200, "b": 60, "c": 12}), None, CFG)
    counts = np.bincount(s.labels["val"], minlength=3)
    assert counts[2] < 5 <= counts[:2].min()
    warning = next(r.getMessage() for r in caplog.records if "val split" in r.getMessage())
    assert f"1 of 3 classes with fewer than 5 examples (smallest: 'c' with {counts[2]})" in warning


def test_eval_split_too_small_for_macro_f1_is_an_error():
    # 40 classes of 7 rows: every class reaches val (one row moved there if needed), but ~1 per class
    with pytest.raises(
        DataError,
        match=r"the val split has 4\d examples for 40 classes \(1.\d per class, under 2\): "
        r"too few to measure macro-F1; raise data.val_fraction",
    ) as info:
        make_splits(frame({f"k{i}": 7 for i in range(40)}), None, CFG)
    one_line(info)
    # a fixed test file without any row of a training class cannot score that class
    with pytest.raises(
        DataError,
        match=r"the test split has no example of 1 class\(es\) \('c'\): macro-F1 needs "
        r"every class; add rows to the test file",
    ):
        make_splits(frame({"a": 50, "b": 30, "c": 20}), frame({"a": 10, "b": 5}, prefix="held out"), CFG)


def test_a_class_left_out_of_a_split_by_stratification_gets_one_row():
    cfg = OmegaConf.merge(CFG, {"val_fraction": 0.1, "test_fraction": 0.1})
    s = make_splits(frame({"a": 400, "b": 300, "c": 3, "d": 4}), None, cfg)
    for split in ("train", "val", "test"):
        assert np.bincount(s.labels[split], minlength=4).min() >= 1, split
    assert sum(len(v) for v in s.texts.values()) == 707


def test_default_synthetic_data_passes_the_checks(tmp_path: Path):
    from sweep.config import load_config
    from sweep.data.splits import load_splits

    cfg = load_config([f"paths.root={tmp_path}", "data=synthetic"])
    s = load_splits(cfg.data, cfg.paths.data_dir)
    assert s.num_classes == 6 and s.info["n_test"] == 69


@pytest.mark.slow  # the real CFPB sample: make test's, not the edit loop's
def test_cfpb_sample_passes_the_checks(sample_dir: Path, caplog):
    from sweep.config import load_config
    from sweep.data.splits import load_splits

    cfg = load_config([f"paths.root={sample_dir}"])
    with caplog.at_level(logging.WARNING, logger="sweep.data.splits"):
        s = load_splits(cfg.data, cfg.paths.data_dir, seed=12345)  # another seed: not the session's cached one
    assert s.num_classes == 8 and s.info["dropped"]["test_in_train"] == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_dropped_rows_are_counted_by_reason(caplog):
    pool = frame({"a": 60, "b": 30, "tiny": 2}, dup_every=10)  # 10 duplicates, one of a row emptied below
    pool.loc[0, "text"], pool.loc[1, "text"] = None, "   "  # missing text
    pool.loc[2, "label"] = None  # missing label
    test = frame({"a": 10, "b": 5, "tiny": 1}, prefix="held out")
    test.loc[3, "text"] = pool.loc[10, "text"]  # also in training
    test.loc[4, "text"] = test.loc[5, "text"]  # duplicate within test
    cfg = OmegaConf.merge(CFG, {"drop_missing_labels": True, "min_class_count": 3, "small_classes": "drop"})
    with caplog.at_level(logging.INFO, logger="sweep.data.splits"):
        s = make_splits(pool, test, cfg)
    dropped = s.info["dropped"]
    assert dropped == {
        "missing_label": 1,
        "missing_text": 2,
        "duplicate_text": 9 + 1,
        "test_in_train": 1,
        "small_class": 3,
        "imbalance": 0,
    }
    assert all(type(v) is int for v in dropped.values())
    assert s.info["n_train"] + s.info["n_val"] + s.info["n_test"] == 92 + 10 + 16 - sum(dropped.values())
    assert any(
        "dropped rows: missing_label 1, missing_text 2, duplicate_text 10" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO
    )


def test_directory_or_unreadable_path_is_one_line(tmp_path: Path, monkeypatch):
    with pytest.raises(
        DataError, match=r"data.path=.* is a directory, not a CSV file: point data.path at the file"
    ) as info:
        read_table(tmp_path, "text", "label")
    one_line(info)
    locked = tmp_path / "locked.csv"
    locked.write_text("text,label\nhello,a\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    import sweep.data.sources

    monkeypatch.setattr(sweep.data.sources, "open", refuse, raising=False)
    with pytest.raises(DataError, match=r"cannot read .*locked.csv \(Permission denied\): check its permissions"):
        read_table(locked, "text", "label")


def test_malformed_row_names_the_physical_line(tmp_path: Path):
    """pandas counts records; a quoted narrative spanning lines must not shift the line number."""
    path = tmp_path / "complaints.csv"
    rows = [
        "text,label,product",
        '"one",a,p',
        "",
        '"two\nlines\nof text",b,p',
        '"fine",a,p',
        '"bad, row",a,p,x,y',
        '"after",b,p',
    ]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"complaints.csv line 8 has 5 fields, expected 3: fix or remove that row"):
        read_table(path, "text", "label")


# ---------------------------------------------------------------- data=csv, any labelled CSV


def long_tailed_csv(path: Path, n_max: int = 400, classes: int = 8, seed: int = 0, prefix: str = "") -> Path:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "body": f"{prefix}note {k} {i} about {' '.join(f'k{k}w{j}' for j in rng.integers(6, size=5))}",
            "topic": f"t{k}",
            "other": "x",
        }
        for k in range(classes)
        for i in range(max(2, int(n_max * 0.5**k)))
    ]
    pd.DataFrame(rows).sample(frac=1, random_state=seed).to_csv(path, index=False)
    return path


def csv_overrides(tmp_path: Path, *extra: str) -> list[str]:
    return [
        f"paths.root={tmp_path}",
        "data=csv",
        "data.text_column=body",
        "data.label_column=topic",
        "data.min_class_count=10",
        "data.small_classes=merge",
        *extra,
    ]


def load(overrides: list[str]):
    from sweep.config import load_config
    from sweep.data.splits import load_splits

    cfg = load_config(overrides)
    return load_splits(cfg.data, cfg.paths.data_dir)


def test_generic_csv_carves_out_the_test_split(tmp_path: Path):
    path = long_tailed_csv(tmp_path / "texts.csv")  # 400, 200, 100, 50, 25, 12, 6, 3: the last two merged
    s = load(csv_overrides(tmp_path, f"data.path={path}", "data.test_fraction=0.2"))
    assert s.class_names == ["Other", "t0", "t1", "t2", "t3", "t4", "t5"]
    n = sum(s.info[f"n_{k}"] for k in ("train", "val", "test"))
    assert n == 796 and s.info["n_test"] == pytest.approx(0.2 * n, abs=1)
    assert s.info["dropped"] == {
        "missing_label": 0,
        "missing_text": 0,
        "duplicate_text": 0,
        "test_in_train": 0,
        "small_class": 0,
        "imbalance": 0,
    }


def test_generic_csv_with_a_fixed_test_file(tmp_path: Path):
    path = long_tailed_csv(tmp_path / "train.csv")
    test = long_tailed_csv(tmp_path / "test.csv", n_max=80, seed=1, prefix="held out ")
    s = load(csv_overrides(tmp_path, f"data.path={path}", f"data.test_path={test}"))
    assert len(s.texts["test"]) == 80 + 40 + 20 + 10 + 5 + 2 + 2 + 2
    assert all(t.startswith("held out") for t in s.texts["test"])
    assert not {t for t in s.texts["train"] + s.texts["val"] if t.startswith("held out")}


def test_generic_csv_bad_inputs_are_one_line_errors(tmp_path: Path, capsys):
    from sweep.cli import main

    path = long_tailed_csv(tmp_path / "texts.csv")
    broken = tmp_path / "broken.csv"
    broken.write_text(path.read_text().replace("\n", "\nbroken,row,with,extra,fields\n", 1))
    single = tmp_path / "single.csv"
    single.write_text("body,topic\n" + "".join(f"text {i},only\n" for i in range(30)))
    cases = [
        (
            [f"data.path={path}", "data.label_column=Issue"],
            r"column 'Issue' not found in .*texts.csv \(columns: "
            r"body, topic, other\): set data.label_column",
        ),
        ([f"data.path={tmp_path}"], r"data.path=.* is a directory, not a CSV file"),
        ([f"data.path={tmp_path / 'nope.csv'}"], r"data file .*nope.csv does not exist: check data.path"),
        ([f"data.path={path}", f"data.test_path={tmp_path / 'nope.csv'}"], r"does not exist: check data.test_path"),
        ([f"data.path={broken}"], r"broken.csv line 2 has 5 fields, expected 3: fix or remove that row"),
        ([f"data.path={single}"], r"has only 1 class \('only'\): a classifier needs at least 2"),
        ([], r"data.path is not set: give the labelled CSV file"),
    ]
    for extra, message in cases:
        with pytest.raises(DataError, match=message) as info:
            load(csv_overrides(tmp_path, *extra))
        one_line(info)
        assert main(["data", *csv_overrides(tmp_path, *extra)]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def test_cfpb_csv_is_a_preset_of_csv(tmp_path: Path):
    from sweep.config import load_config

    cfg = load_config([f"paths.root={tmp_path}", "data=cfpb_csv", "data.path=/x.csv", "data.label_field=issue"])
    assert cfg.data.source == "csv" and cfg.data.text_column == "Consumer complaint narrative"
    assert cfg.data.test_path is None and cfg.data.min_class_count == 10
    with pytest.raises(DataError, match="data.label_field='nope' is unknown: use one of issue, product, sub_product"):
        load([f"paths.root={tmp_path}", "data=cfpb_csv", f"data.path={tmp_path / 'x.csv'}", "data.label_field=nope"])


# ---------------------------------------------------------------- the two long-tail protocols


def shares(labels: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels, minlength=k) / len(labels)


@pytest.mark.parametrize("fixed_test", [False, True])
def test_imbalance_all_gives_val_and_test_the_training_mix(fixed_test):
    pool = frame({"a": 1000, "b": 1000, "c": 1000, "d": 1000})
    test = frame({"a": 250, "b": 250, "c": 250, "d": 250}, prefix="held out") if fixed_test else None
    cfg = OmegaConf.merge(CFG, {"imbalance_ratio": 20, "imbalance_splits": "all"})
    s = make_splits(pool, test, cfg)
    train = shares(s.labels["train"], 4)
    assert train.max() / train.min() == pytest.approx(20, rel=0.05)
    for split in ("val", "test"):
        np.testing.assert_allclose(shares(s.labels[split], 4), train, atol=0.01)
    n = 5000 if fixed_test else 4000
    assert s.info["dropped"]["imbalance"] == n - sum(s.info[f"n_{k}"] for k in ("train", "val", "test"))
    assert make_splits(pool, test, cfg).fingerprint == s.fingerprint  # deterministic
    assert make_splits(pool, test, cfg, seed=1).fingerprint != s.fingerprint


def test_imbalance_train_keeps_the_original_mix_in_val_and_test():
    pool = frame({"a": 1000, "b": 1000, "c": 1000, "d": 1000})
    s = make_splits(pool, None, OmegaConf.merge(CFG, {"imbalance_ratio": 20, "imbalance_splits": "train"}))
    train = shares(s.labels["train"], 4)
    assert train.max() / train.min() == pytest.approx(20, rel=0.05)
    for split in ("val", "test"):
        np.testing.assert_allclose(shares(s.labels[split], 4), 0.25, atol=0.01)
    assert s.info["n_val"] + s.info["n_test"] == 640 + 800


def test_imbalance_default_is_all_and_unknown_protocol_is_an_error(tmp_path: Path):
    from sweep.config import CONF_DIR

    for path in sorted((CONF_DIR / "data").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        assert cfg.get("imbalance_splits", "all") == "all", path.name
    with pytest.raises(DataError, match=r"data.imbalance_splits='val' is unknown: use all .* or train") as info:
        make_splits(
            frame({"a": 50, "b": 50}), None, OmegaConf.merge(CFG, {"imbalance_ratio": 5, "imbalance_splits": "val"})
        )
    one_line(info)
