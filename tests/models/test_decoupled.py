"""Decoupled classifier re-training (features: finetuned): one fine-tune, cached, then only head fits per trial.

On CPU with a tiny random BERT (the packaged MiniLM's tokenizer, 2 layers of width 32): the pooled embeddings
are what the fine-tuned classifier's head reads; a sweep of 3 trials fine-tunes once; the cache is keyed by
everything that changes the fine-tune and by nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from mlflow import MlflowClient

from sweep.cli import main
from sweep.config import load_config
from sweep.data import features
from sweep.data.splits import load_splits
from sweep.models import finetune as ft
from sweep.models.decoupled import head_features
from sweep.search.storage import open_storage


def decoupled(root: Path, tiny_bert: str, *extra: str) -> list[str]:
    return [
        f"paths.root={root}",
        "data=synthetic",
        "task_name=test",
        "model=minilm_decoupled",
        f"model.finetune.pretrained={tiny_bert}",
        "++model.finetune.random_init=true",
        "model.finetune.max_length=32",
        "model.finetune.epochs=1",
        "model.finetune.batch_tokens=512",
        "model.finetune.lr=1e-3",
        "model.finetune.device=cpu",
        *extra,
    ]


@pytest.fixture
def count_finetunes(monkeypatch) -> list[int]:
    """Counts the fine-tunes that models/decoupled.py starts (it imports finetune_embeddings when it needs one)."""
    calls = []
    real = ft.finetune_embeddings

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "finetune_embeddings", counted)
    monkeypatch.setattr(features, "_MEMORY", {})
    return calls


def test_pooled_output_is_what_the_head_reads(tiny_bert):
    """predict(pooled=True) returns the encoder's mean-pooled output: head(pooled) == the logits, both paths."""
    runner = ft.build_runner(
        ft.resolve_cfg({"name": "t", "pretrained": tiny_bert, "random_init": True, "max_length": 32, "device": "cpu"}),
        4,
        seed=0,
    )
    rng = np.random.default_rng(0)
    lens = rng.integers(3, 32, 9)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    tokens = ft.Tokens(rng.integers(1000, 30000, offsets[-1]).astype(np.int32), offsets, 0)
    for packed in (False, True):
        runner.packed = packed
        pooled = ft.predict(runner, tokens, pooled=True)
        logits = ft.predict(runner, tokens)
        assert pooled.shape == (9, 32) and logits.shape == (9, 4)
        with torch.no_grad():
            again = runner.model.head(torch.from_numpy(pooled)).numpy()
        np.testing.assert_allclose(again, logits, rtol=1e-4, atol=1e-5)


def test_normalized():
    rng = np.random.default_rng(0)
    feats = {"train": rng.normal(3.0, 2.0, (50, 4)).astype(np.float32), "val": rng.normal(size=(7, 4))}
    unit = features.normalized(feats, "l2")
    np.testing.assert_allclose(np.linalg.norm(unit["val"], axis=1), 1.0, rtol=1e-6)
    z = features.normalized(feats, "standard")
    np.testing.assert_allclose(z["train"].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z["train"].std(0), 1.0, rtol=1e-4)
    np.testing.assert_allclose(z["val"], (feats["val"] - feats["train"].mean(0)) / feats["train"].std(0), rtol=1e-4)
    assert features.normalized(feats, "none") is feats
    with pytest.raises(ValueError, match="^model.normalize='zscore' is unknown"):
        features.normalized(feats, "zscore")


@pytest.mark.parametrize("name", ["minilm_decoupled", "modernbert_decoupled"])
def test_decoupled_configs_compose_and_their_finetune_resolves(name, tmp_path):
    cfg = load_config([f"paths.root={tmp_path}", f"model={name}", "seed=3"])
    assert cfg.model.kind == "head" and cfg.model.features == "finetuned"
    assert cfg.model.finetune.seed == 3  # the seed is part of the fine-tune's settings, hence of its cache key
    c = ft.resolve_cfg(
        {"name": name, **{k: v for k, v in dict(cfg.model.finetune).items() if k not in ("weighting", "tau", "seed")}}
    )
    assert c["pretrained"] == cfg.model.finetune.pretrained


@pytest.mark.slow  # a whole decoupled sweep: make test's, not the edit loop's
def test_decoupled_sweep_fine_tunes_once(tmp_path, tiny_bert, count_finetunes):
    """3 trials with different alpha / post-hoc tau: one fine-tune (trial 0), then only converged head fits."""
    args = [*decoupled(tmp_path, tiny_bert), "sweep.n_trials=3", "sweep.study_name=dec"]
    assert main(["sweep", *args]) == 0
    assert len(count_finetunes) == 1
    cfg = load_config(args)
    study = optuna.load_study(study_name="dec", storage=open_storage(cfg))
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert len({(t.params["weighting.alpha"], t.params["loss.posthoc_tau"]) for t in trials}) == 3
    assert all(t.user_attrs["fit_converged"] for t in trials)
    # a head fit per distinct (alpha, training tau); the 3rd baseline differs from the 1st in post-hoc tau only
    assert [t.user_attrs["logits_cache"] for t in trials] == ["trained", "trained", "memory"]
    cached = sorted(p.name for p in (tmp_path / "data" / "cache" / "features").iterdir() if p.name[0] != ".")
    assert len(cached) == 1 and cached[0].startswith("finetuned-")
    assert {p.name for p in (tmp_path / "data" / "cache" / "features" / cached[0]).iterdir()} == {
        "train.npy",
        "val.npy",
        "test.npy",
    }
    client = MlflowClient(cfg.tracking.tracking_uri)
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    kids = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(kids) == 3 and all(k.info.status == "FINISHED" for k in kids)
    assert all(k.data.params["model.features"] == "finetuned" for k in kids)


@pytest.mark.slow  # fine-tunes, three times: make test's, not the edit loop's
def test_cache_hits_on_disk_and_keys_on_what_changes_the_finetune(tmp_path, tiny_bert, count_finetunes):
    cfg = load_config(decoupled(tmp_path, tiny_bert))
    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    first, info = head_features(splits, cfg.model, cfg.paths.cache_dir)
    assert info["cached"] == "computed" and len(count_finetunes) == 1
    assert first["train"].shape == (len(splits.labels["train"]), 32)
    np.testing.assert_allclose(np.linalg.norm(first["test"], axis=1), 1.0, rtol=1e-5)  # normalize: l2
    assert head_features(splits, cfg.model, cfg.paths.cache_dir)[1]["cached"] == "memory"
    features._MEMORY.clear()  # a new process, or another worker
    again, info = head_features(splits, cfg.model, cfg.paths.cache_dir)
    assert info["cached"] == "disk" and len(count_finetunes) == 1
    np.testing.assert_array_equal(again["val"], first["val"])
    # another normalization of the same fine-tune: no fine-tune, another head problem (warm starts apart)
    std = load_config(decoupled(tmp_path, tiny_bert, "model.normalize=standard"))
    _, info_std = head_features(splits, std.model, cfg.paths.cache_dir)
    assert info_std["cached"] == "disk" and info_std["key"] != info["key"] and len(count_finetunes) == 1
    # the fine-tune's own loss, its seed and its settings are in the key; the head's settings are not
    for extra in ("model.finetune.weighting.alpha=0.5", "seed=1", "model.finetune.tau=1.0"):
        other = load_config(decoupled(tmp_path, tiny_bert, extra))
        before = len(count_finetunes)
        assert head_features(splits, other.model, cfg.paths.cache_dir)[1]["cached"] == "computed"
        assert len(count_finetunes) == before + 1
    head_only = load_config(decoupled(tmp_path, tiny_bert, "model.head.l2=1e-3"))
    assert head_features(splits, head_only.model, cfg.paths.cache_dir)[1]["cached"] == "memory"


def test_concurrent_workers_wait_for_one_finetune(tmp_path, tiny_bert, count_finetunes):
    """Two workers asking for the same features at once: one fine-tunes, the other waits and reads the disk."""
    import threading

    cfg = load_config(decoupled(tmp_path, tiny_bert))
    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    sources = []

    def worker():
        sources.append(head_features(splits, cfg.model, cfg.paths.cache_dir)[1]["cached"])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(count_finetunes) == 1 and sorted(sources) in (["computed", "disk"], ["computed", "memory"])
