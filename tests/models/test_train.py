"""End to end: one composed run on synthetic data, and what MLflow recorded."""

import numpy as np
import pytest
import scipy.sparse as sp
from mlflow import MlflowClient

from sweep.cli import main
from sweep.config import load_config
from sweep.models.head import fit_head
from sweep.models.losses import LossSpec
from sweep.models.train import run


def test_train_logs_config_metrics_and_per_class_table(synthetic, root, capsys):
    assert main(["train", *synthetic, "weighting.alpha=0.5", "loss=logit_adjusted", "loss.tau=1.0"]) == 0
    client = MlflowClient(f"sqlite:///{root}/mlruns/mlflow.db")
    exp = client.get_experiment_by_name("test")
    assert exp.artifact_location.startswith(f"file://{root}/mlruns/artifacts")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.status == "FINISHED"
    assert r.data.params["weighting.alpha"] == "0.5" and r.data.params["loss.name"] == "logit_adjusted"
    assert r.data.params["data.name"] == "synthetic" and "model.tfidf.max_features" in r.data.params
    for split in ("val", "test"):
        for m in ("accuracy", "macro_f1", "balanced_accuracy", "weighted_f1", "zero_f1_classes"):
            assert f"{split}_{m}" in r.data.metrics
    assert r.data.metrics["val_accuracy"] > 0.5  # the synthetic classes are learnable
    assert len(r.data.tags["data_fingerprint"]) == 16 and r.data.tags["code_version"]
    files = {f.path for f in client.list_artifacts(r.info.run_id)}
    assert {"per_class_val.csv", "per_class_test.csv", "classes.json"} <= files
    table = client.download_artifacts(r.info.run_id, "per_class_test.csv")
    lines = open(table).read().splitlines()
    assert lines[0] == "class,precision,recall,f1,support" and len(lines) == 7  # 6 classes
    assert "val   accuracy" in capsys.readouterr().out


def test_bad_input_fails_before_anything_is_written(synthetic, root, capsys):
    assert main(["train", *synthetic, "weighting.alpha=7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: weighting.alpha=7.0 is outside the allowed range [0.0, 2.0]: pick a value inside it"]
    assert main(["train", *synthetic, "data.val_fraction=0.9"]) == 2
    assert "data.val_fraction=0.9 is outside" in capsys.readouterr().err
    db = root / "mlruns" / "mlflow.db"
    if db.exists():  # the store may exist (it is checked first), but holds no run
        client = MlflowClient(f"sqlite:///{db}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_posthoc_tau_reuses_the_trained_logits(synthetic):
    a = run(load_config([*synthetic, "weighting.alpha=0.3"]))
    b = run(load_config([*synthetic, "weighting.alpha=0.3", "loss.posthoc_tau=1.0"]))
    assert a.info["logits_cache"] == "trained" and b.info["logits_cache"] in ("memory", "disk")
    np.testing.assert_array_equal(a.info["logits"]["test"], b.info["logits"]["test"])
    # the adjustment moved predictions toward rare classes: balanced accuracy does not drop much, recall moves
    assert (
        a.metrics["test_balanced_accuracy"] != b.metrics["test_balanced_accuracy"]
        or a.metrics["test_macro_f1"] != b.metrics["test_macro_f1"]
    )


def test_same_config_and_seed_give_the_same_metrics(synthetic, root):
    first = run(load_config([*synthetic, "weighting.alpha=0.7", f"paths.cache_dir={root}/c1"])).metrics
    second = run(load_config([*synthetic, "weighting.alpha=0.7", f"paths.cache_dir={root}/c2"])).metrics
    assert first == second


def test_nan_features_give_a_clear_floating_point_error():
    x = sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32))
    with pytest.raises(FloatingPointError, match="training loss is nan at the end point"):
        fit_head(x, np.array([0, 1, 1]), LossSpec(np.ones(2), np.log([0.5, 0.5])), 1e-3, max_iter=10)
