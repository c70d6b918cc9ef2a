"""model=precomputed (your embeddings) and model=precomputed_logits (your logits): files the tests make, one row
per data row (by position, or by data.id_column), read through the harness's own cleaning and splits; real
sweeps, export and pick on them; a wrong row count, NaN / inf, a missing id: one line, exit code 2."""

from __future__ import annotations

import re

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from sweep.cli import main
from sweep.config import ConfigError, load_config
from sweep.data.sources import load_sources
from sweep.data.splits import load_splits
from sweep.models.train import run
from sweep.search.storage import open_storage


def raw_frame(overrides: list[str]) -> pd.DataFrame:
    """The data file's rows as read (before the harness cleans and splits them)."""
    cfg = load_config(overrides)
    pool, _ = load_sources(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    return pool


def encode(texts, dim: int = 32, seed: int = 0) -> np.ndarray:
    """A stand-in for a team's own encoder: each word a fixed random vector, a text the sum of its words."""
    rng = np.random.default_rng(seed)
    vocab = {w: rng.standard_normal(dim) for w in sorted({w for t in texts for w in str(t).split()})}
    return np.stack([np.sum([vocab[w] for w in str(t).split()], axis=0) for t in texts]).astype(np.float32)


def classify(frame: pd.DataFrame) -> pd.DataFrame:
    """A stand-in for a classifier run elsewhere: a score per class from its keywords, plus the log prior (so
    that, like any unweighted model, it leans to the large classes and the post-hoc tau has work to do)."""
    classes = sorted(frame["label"].unique())
    prior = frame["label"].value_counts(normalize=True)
    hits = {c: frame["text"].str.count(rf"\b{re.escape(c.replace('class_', 'c'))}w") for c in classes}
    return pd.DataFrame({c: 0.8 * hits[c] + np.log(prior[c]) for c in classes})


def first_row(frame: pd.DataFrame) -> dict[str, int]:
    """Independent of Splits.rows: the first data row of each text, as the cleaning normalizes it."""
    norm = frame["text"].fillna("").astype(str).map(lambda t: re.sub(r"\s+", " ", t).strip())
    return {t: i for i, t in reversed(list(enumerate(norm)))}


def write_csv_with_ids(root, synthetic) -> tuple[list[str], pd.DataFrame]:
    """The synthetic data as a CSV with an id column, its rows shuffled (so ids and positions differ)."""
    frame = raw_frame(synthetic).sample(frac=1.0, random_state=3).reset_index(drop=True)
    frame.insert(0, "cid", [f"C{1000 + 7 * i}" for i in range(len(frame))])
    path = root / "tickets.csv"
    frame.to_csv(path, index=False)
    return [f"paths.root={root}", "task_name=test", "data=csv", f"data.path={path}", "data.min_class_count=0"], frame


def test_each_split_gets_its_own_rows_through_cleaning_dedup_and_splits(synthetic, root):
    frame = raw_frame(synthetic)
    messy = pd.concat(  # rows the cleaning drops or merges: no text, no label, a repeated text (spaced out)
        [
            frame.iloc[:5],
            pd.DataFrame(
                {
                    "text": ["", None, f"  {frame.text[2]} ", frame.text[7]],
                    "label": ["class_0", "class_1", frame.label[2], None],
                }
            ),
            frame.iloc[5:],
        ],
        ignore_index=True,
    )
    messy.to_csv(root / "messy.csv", index=False)
    marked = np.arange(len(messy), dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # row i holds i
    np.save(root / "rows.npy", marked)
    data = ["data=csv", f"data.path={root / 'messy.csv'}", "data.min_class_count=0", "data.drop_missing_labels=true"]
    cfg = load_config(
        [*synthetic, *data, "model=precomputed", f"model.path={root / 'rows.npy'}", "model.normalize=none"]
    )
    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    assert sum(map(len, splits.texts.values())) == len(frame)  # 4 rows dropped: no text (2), no label, repeated
    assert splits.info["dropped"]["duplicate_text"] == 1 and splits.info["rows_read"] == {"pool": len(messy)}
    from sweep.models.decoupled import head_features

    feats, _ = head_features(splits, cfg.model, cfg.paths.cache_dir)
    where = first_row(messy.dropna(subset=["label"]).reindex(range(len(messy))))
    for split, texts in splits.texts.items():
        assert feats[split][:, 0].astype(int).tolist() == [where[t] for t in texts]


@pytest.mark.slow  # a whole sweep in-process and its export: make test's, not the edit loop's
def test_a_precomputed_sweep_fits_the_head_on_the_files_rows_and_exports_its_front(synthetic, root, capsys):
    frame = raw_frame(synthetic)
    np.save(root / "emb.npy", encode(frame["text"]))
    args = [*synthetic, "model=precomputed", f"model.path={root / 'emb.npy'}", "sweep.study_name=own-encoder"]
    assert main(["sweep", *args, "sweep.n_trials=8"]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="own-encoder", storage=open_storage(cfg))
    assert len(study.trials) == 8 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert all(t.user_attrs["fit_converged"] for t in study.trials)

    # the unweighted trial against scikit-learn on the same rows (found by text) and the same objective
    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    emb, where = encode(frame["text"]), first_row(frame)

    def rows(split):
        x = emb[[where[t] for t in splits.texts[split]]].astype(np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    n = len(splits.labels["train"])
    clf = LogisticRegression(C=1 / (2 * float(cfg.model.head.l2) * n), tol=1e-10, max_iter=10_000)
    clf.fit(rows("train"), splits.labels["train"])
    unweighted = study.trials[0]
    assert unweighted.params == {"weighting.alpha": 0.0, "loss.posthoc_tau": 0.0}
    assert unweighted.values[0] == pytest.approx((clf.predict(rows("val")) == splits.labels["val"]).mean(), abs=1e-9)

    out = root / "own.csv"
    capsys.readouterr()
    assert main(["export", *args, "study=own-encoder", f"out={out}", "n_boot=200", "sweep.front_boot=100"]) == 0
    with capsys.disabled():  # the front, for the record (pytest -s)
        print(capsys.readouterr().out)
    table = pd.read_csv(out)
    assert len(table) >= 1 and set(table["model"]) == {"precomputed"}
    assert (root / "own_meeting.md").exists()


def test_embeddings_by_id_match_the_same_rows_as_by_position(synthetic, root):
    data, frame = write_csv_with_ids(root, synthetic)
    emb = encode(frame["text"])
    np.save(root / "emb.npy", emb)
    by_id = pd.DataFrame({"cid": frame["cid"], "vector": list(emb)}).iloc[::-1]  # reversed, and a stray row
    by_id = pd.concat([by_id, pd.DataFrame({"cid": ["C999999"], "vector": [np.ones(emb.shape[1], np.float32)]})])
    by_id.to_parquet(root / "emb.parquet")
    position = load_config([*data, "model=precomputed", f"model.path={root / 'emb.npy'}"])
    ids = load_config([*data, "data.id_column=cid", "model=precomputed", f"model.path={root / 'emb.parquet'}"])
    assert ids.model.id_column == "cid"
    from sweep.models.decoupled import head_features

    a, _ = head_features(load_splits(position.data, position.paths.data_dir), position.model, position.paths.cache_dir)
    b, _ = head_features(load_splits(ids.data, ids.paths.data_dir), ids.model, ids.paths.cache_dir)
    for split in a:
        np.testing.assert_array_equal(a[split], b[split])
    # five-fold cross-validation carries the rows into each fold
    result = run(load_config([*data, "data.id_column=cid", "model=precomputed", f"model.path={root / 'emb.parquet'}",
                              "sweep.cv_folds=3"]))  # fmt: skip
    assert 0 < result.metrics["val_accuracy"] <= 1 and "val_accuracy_fold2" in result.metrics


@pytest.mark.slow  # a whole sweep in-process, its export and pick: make test's, not the edit loop's
def test_a_precomputed_logits_sweep_searches_only_the_posthoc_tau_and_exports_and_picks(synthetic, root, capsys):
    frame = raw_frame(synthetic)
    logits = classify(frame)
    logits[list(reversed(logits.columns))].to_parquet(root / "logits.parquet")  # columns in any order
    args = [*synthetic, "model=precomputed_logits", f"model.path={root / 'logits.parquet'}", "sweep.study_name=own"]
    assert main(["sweep", *args, "sweep.n_trials=10"]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="own", storage=open_storage(cfg))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) and len(study.trials) == 10
    assert all(set(t.params) == {"loss.posthoc_tau"} for t in study.trials)
    assert study.trials[0].params == {"loss.posthoc_tau": 0.0} and study.trials[1].params == {"loss.posthoc_tau": 1.0}
    assert set(study.user_attrs["baselines"]) == {"unweighted", "posthoc_tau_1"}

    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))  # independently: argmax f(x) - tau log prior
    where = first_row(frame)
    val = logits[splits.class_names].to_numpy()[[where[t] for t in splits.texts["val"]]]
    log_prior = np.log(splits.train_counts / splits.train_counts.sum())
    for t in study.trials:
        pred = np.argmax(val - t.params["loss.posthoc_tau"] * log_prior, axis=1)
        assert t.values[0] == pytest.approx((pred == splits.labels["val"]).mean(), abs=1e-9)

    out = root / "logits_front.csv"
    capsys.readouterr()
    assert main(["export", *args, "study=own", f"out={out}", "n_boot=200", "sweep.front_boot=100"]) == 0
    with capsys.disabled():  # the front, for the record (pytest -s)
        print(capsys.readouterr().out)
    table = pd.read_csv(out)
    assert len(table) >= 1 and set(table["model"]) == {"precomputed_logits"}
    floor = float(table["val_accuracy"].min())
    assert main(["pick", *args, "study=own", f"min_accuracy={floor}"]) == 0
    assert "trial" in capsys.readouterr().out


def test_a_npy_of_logits_needs_its_class_names(synthetic, root, capsys):
    frame = raw_frame(synthetic)
    logits = classify(frame)
    np.save(root / "logits.npy", logits.to_numpy())
    base = [*synthetic, "model=precomputed_logits", f"model.path={root / 'logits.npy'}"]
    assert main(["train", *base]) == 2
    assert "is a .npy without class names: set model.classes=" in capsys.readouterr().err
    names = ",".join(logits.columns)
    (root / "classes.txt").write_text("\n".join(logits.columns) + "\n")
    a = run(load_config([*base, f"model.classes=[{names}]"]))
    b = run(load_config([*base, f"model.classes={root / 'classes.txt'}"]))
    assert a.metrics == b.metrics and a.metrics["val_accuracy"] > 0.5


def one_line(capsys) -> str:
    said = capsys.readouterr().err.strip().splitlines()
    err = [line for line in said if " INFO mlflow." not in line]  # MLflow creating a new store says so first
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_files_are_one_line_errors_naming_the_file_the_count_and_the_fix(synthetic, root, capsys):
    frame = raw_frame(synthetic)
    emb = encode(frame["text"])
    sweep = ["sweep", *synthetic, "model=precomputed", "sweep.n_trials=3"]

    np.save(root / "short.npy", emb[:-2])
    assert main([*sweep, f"model.path={root / 'short.npy'}"]) == 2
    line = one_line(capsys)
    assert f"short.npy has {len(frame) - 2} rows, but data.path has {len(frame)} data rows" in line
    assert "recompute it for this data file, or give a .parquet / .csv with an id column" in line

    broken = emb.copy()
    broken[[5, 9]] = np.nan
    broken[11, 0] = np.inf
    np.save(root / "nan.npy", broken)
    assert main([*sweep, f"model.path={root / 'nan.npy'}"]) == 2
    line = one_line(capsys)
    assert "nan.npy" in line and "hold NaN or inf (the first: row 5)" in line and "recompute them" in line
    assert re.search(r": [23] of the \d+ rows used", line)  # row 5, 9 or 11 may be a duplicate text, dropped

    np.save(root / "none.npy", emb[:, 0])
    assert main([*sweep, f"model.path={root / 'none.npy'}"]) == 2
    assert "holds a 1-d float32 array: save a 2-d numeric array" in one_line(capsys)
    assert main([*sweep, f"model.path={root / 'absent.npy'}"]) == 2
    assert "absent.npy is not a file" in one_line(capsys)

    data, frame = write_csv_with_ids(root, synthetic)
    emb = encode(frame["text"])
    table = pd.DataFrame({"cid": frame["cid"], "vector": list(emb)})
    table.drop(index=[3, 4]).to_parquet(root / "missing.parquet")
    by_id = ["sweep", *data, "data.id_column=cid", "model=precomputed", "sweep.n_trials=3"]
    assert main([*by_id, f"model.path={root / 'missing.parquet'}"]) == 2
    line = one_line(capsys)
    assert "missing.parquet" in line and "ids the splits use (data.id_column='cid') are not in it, e.g. 'C10" in line
    assert re.search(r": [12] of the \d+ ids", line) and "add their rows" in line  # row 3 or 4: maybe a duplicate
    pd.concat([table, table.iloc[[7]]]).to_parquet(root / "twice.parquet")
    assert main([*by_id, f"model.path={root / 'twice.parquet'}"]) == 2
    assert f"id {frame['cid'][7]!r} appears 2 times (1 ids repeat): keep one row per id" in one_line(capsys)
    table.rename(columns={"cid": "key"}).to_parquet(root / "noid.parquet")
    assert main([*by_id, f"model.path={root / 'noid.parquet'}"]) == 2
    assert "noid.parquet has no column 'cid'" in one_line(capsys)
    blank = frame.copy()
    blank.loc[4, "cid"] = None
    blank.to_csv(root / "blank.csv", index=False)
    assert main([*by_id, f"data.path={root / 'blank.csv'}", f"model.path={root / 'missing.parquet'}"]) == 2
    assert "1 row(s) have no 'cid' value (data.id_column; the first: data row 4" in one_line(capsys)


def test_fixed_logits_refuse_class_weights_in_one_line(synthetic, root, capsys):
    classify(raw_frame(synthetic)).to_parquet(root / "logits.parquet")
    base = [*synthetic, "model=precomputed_logits", f"model.path={root / 'logits.parquet'}"]
    assert main(["sweep", *base, "weighting.alpha=0.5"]) == 2
    line = one_line(capsys)
    assert "weighting.alpha=0.5 with model=precomputed_logits: class weights need training" in line
    assert main(["sweep", *base, 'sweep.params.weighting.alpha="interval(0,1)"']) == 2
    assert "sweep.params.weighting.alpha is searched with model=precomputed_logits" in one_line(capsys)
    assert main(["sweep", *base, "loss=logit_adjusted"]) == 2
    assert "a training tau needs training" in one_line(capsys)
    with pytest.raises(ConfigError, match="sweep.params.weighting.alpha is searched"):  # also on the command line
        load_config([*base, 'sweep.params.weighting.alpha="interval(0,1)"'])
    narrowed = load_config([*base, 'sweep.params.loss.posthoc_tau="interval(0,0.5)"'])
    assert dict(narrowed.sweep.params) == {"loss": {"posthoc_tau": "interval(0,0.5)"}}
    assert "weighting" in load_config(synthetic).sweep.params  # other models keep the default space


def test_a_fixed_test_file_has_its_own_rows_in_model_test_path(synthetic, root, capsys):
    frame = raw_frame(synthetic).sample(frac=1.0, random_state=1).reset_index(drop=True)
    pool, test = frame.iloc[:250], frame.iloc[250:].reset_index(drop=True)
    pool.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    np.save(root / "train.npy", encode(pool["text"]))
    np.save(root / "test.npy", encode(test["text"]))
    data = [*synthetic, "data=csv", f"data.path={root / 'train.csv'}", f"data.test_path={root / 'test.csv'}"]
    data += ["data.min_class_count=0", "model=precomputed", f"model.path={root / 'train.npy'}", "model.normalize=none"]
    cfg = load_config([*data, f"model.test_path={root / 'test.npy'}"])
    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    from sweep.models.decoupled import head_features

    feats, _ = head_features(splits, cfg.model, cfg.paths.cache_dir)
    np.testing.assert_array_equal(
        feats["test"], encode(test["text"])[[first_row(test)[t] for t in splits.texts["test"]]]
    )
    np.testing.assert_array_equal(feats["val"], encode(pool["text"])[[first_row(pool)[t] for t in splits.texts["val"]]])

    assert main(["train", *data]) == 2
    assert f"this data has a fixed test file ({len(test)} rows): set model.test_path" in one_line(capsys)
    assert main(["train", *synthetic, "model=precomputed", f"model.path={root / 'train.npy'}",
                 f"model.test_path={root / 'test.npy'}"]) == 2  # fmt: skip
    assert "model.test_path=" in one_line(capsys)


@pytest.mark.slow  # two whole sweeps in-process: make test's, not the edit loop's
def test_a_file_rewritten_under_the_same_path_is_another_study(synthetic, root, capsys):
    frame = raw_frame(synthetic)
    np.save(root / "emb.npy", encode(frame["text"]))
    args = [*synthetic, "model=precomputed", f"model.path={root / 'emb.npy'}", "sweep.study_name=same-path"]
    assert main(["sweep", *args, "sweep.n_trials=2"]) == 0
    assert main(["sweep", *args, "sweep.n_trials=1"]) == 0  # the same file: it resumes
    np.save(root / "emb.npy", encode(frame["text"], seed=1))  # another encoder's vectors, the same name
    capsys.readouterr()
    assert main(["sweep", *args, "sweep.n_trials=1"]) == 2
    err = one_line(capsys)
    assert "model.files_content" in err and "study" in err
    cfg = load_config(args)
    assert len(optuna.load_study(study_name="same-path", storage=open_storage(cfg)).trials) == 3
