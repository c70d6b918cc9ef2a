"""Deferred re-weighting's shared prefix: a run continued from a saved state is the run that never stopped
(bitwise, tiny model on the CPU), a trial that branches from a stored prefix equals one that trained it, and two
processes that need the same prefix train it once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sweep.models import finetune as ft
from sweep.models.finetune import fit, prefix
from sweep.models.losses import LossSpec, class_weights, log_prior

N_CLASSES = 4


def _cfg(tiny_bert: str, **over) -> dict:
    base = {
        "name": "tiny",
        "pretrained": tiny_bert,
        "random_init": True,
        "max_length": 32,
        "epochs": 2,
        "batch_tokens": 256,
        "lr": 1e-3,
        "head_lr": 1e-2,
        "warmup_ratio": 0.2,
        "dropout": 0.2,  # dropout draws random numbers: the saved generator state must carry them on
        "device": "cpu",
    }
    return ft.resolve_cfg({**base, **over})


def _data(n: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    words = ["loan", "card", "debt", "bank", "fee", "rate", "late", "credit", "score", "fraud"]
    labels = rng.choice(N_CLASSES, n, p=[0.55, 0.25, 0.15, 0.05])
    texts = [" ".join(rng.choice(words[c * 2 : c * 2 + 3].copy(), 6).tolist() + ["ok"]) for c in labels]
    return texts, labels


def _losses(labels):
    counts = np.bincount(labels, minlength=N_CLASSES)
    plain = LossSpec(np.ones(N_CLASSES), log_prior(counts), 0.0)
    weighted = LossSpec(class_weights(counts, "power", 1.0), log_prior(counts), 0.7)
    return plain, weighted


def _training(tiny_bert: str, texts, labels) -> ft.Training:
    c = _cfg(tiny_bert)
    tok = ft.load_tokenizer(c["pretrained"])
    runner = ft.build_runner(c, N_CLASSES, seed=3)
    return ft.Training(runner, ft.tokenize_cached(texts, tok, 32, None), labels, seed=3)


def test_a_run_continued_from_its_saved_state_is_bitwise_the_run_that_never_stopped(tiny_bert, tmp_path):
    texts, labels = _data()
    plain, weighted = _losses(labels)
    whole = _training(tiny_bert, texts, labels)
    split = round(0.5 * whole.total)
    assert 2 <= split < whole.total - 2
    whole.run(plain, split)
    whole.run(weighted, whole.total)

    first = _training(tiny_bert, texts, labels)
    first.run(plain, split)
    torch.save(first.state(), tmp_path / "state.pt")
    first.run(plain, whole.total)  # the first process goes on elsewhere: the saved state is a copy

    branch = _training(tiny_bert, texts, labels)  # a new process: a fresh model and optimizer
    saved = torch.load(tmp_path / "state.pt", map_location="meta", weights_only=False)  # as the GPU loads it
    assert isinstance(saved["rng_cpu"], bytes)  # map_location moves tensors: the generator's state is none
    branch.load(torch.load(tmp_path / "state.pt", weights_only=False))
    branch.run(weighted, branch.total)
    mine, theirs = branch.runner.model.state_dict(), whole.runner.model.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert branch.stats()["loss_per_epoch"] == whole.stats()["loss_per_epoch"]
    assert not all(torch.equal(first.runner.model.state_dict()[k], theirs[k]) for k in theirs)  # the loss mattered


def test_a_state_of_another_run_is_refused(tiny_bert):
    texts, labels = _data()
    state = _training(tiny_bert, texts, labels).state()
    other = _training(tiny_bert, texts[:40], labels[:40])
    with pytest.raises(RuntimeError, match="not the same run"):
        other.load(state)


def _finetune(tiny_bert, cache, loss, texts, labels, **over):
    hooks = ft.Hooks(on_prefix=lambda meta: f"run-{meta['key'][:6]}")
    logits = ft.finetune_logits(
        texts, labels, {"val": texts[:20]}, N_CLASSES, loss, _cfg(tiny_bert, **over), 3, cache, hooks
    )
    return logits["val"], hooks.info


def test_a_trial_branched_from_the_stored_prefix_equals_the_trial_that_trained_it(tiny_bert, tmp_path):
    texts, labels = _data()
    _, weighted = _losses(labels)
    trained, info = _finetune(tiny_bert, tmp_path, weighted, texts, labels, reweight_from=0.5)
    assert info["prefix"]["trained_here"] and info["prefix"]["run_id"].startswith("run-")
    prefix.clear_loaded()
    fit._RUNNERS.clear()  # as a new worker process: the prefix comes from disk, the model is built anew
    branched, again = _finetune(tiny_bert, tmp_path, weighted, texts, labels, reweight_from=0.5)
    assert not again["prefix"]["trained_here"] and again["prefix"]["run_id"] == info["prefix"]["run_id"]
    np.testing.assert_array_equal(branched, trained)
    # another weighting branches from the same prefix, and ends elsewhere
    other, third = _finetune(tiny_bert, tmp_path, _losses(labels)[0], texts, labels, reweight_from=0.5)
    assert third["prefix"]["key"] == info["prefix"]["key"] and not np.array_equal(other, trained)
    # reweight_from=0: no prefix at all, today's run
    _, none = _finetune(tiny_bert, tmp_path, weighted, texts, labels, reweight_from=0.0)
    assert "prefix" not in none
    # another seed, data or fraction is another prefix
    _, later = _finetune(tiny_bert, tmp_path, weighted, texts, labels, reweight_from=0.75)
    assert later["prefix"]["key"] != info["prefix"]["key"] and later["prefix"]["trained_here"]


def test_a_reused_model_gives_the_fresh_models_logits(tiny_bert, tmp_path):
    """The per-process model cache: a second trial of the same shape gets a fresh model's weights and RNG."""
    texts, labels = _data()
    _, weighted = _losses(labels)
    fit._RUNNERS.clear()
    first, _ = _finetune(tiny_bert, tmp_path, weighted, texts, labels)
    second, _ = _finetune(tiny_bert, tmp_path, weighted, texts, labels)  # the cached model, trained once already
    np.testing.assert_array_equal(first, second)


WORKER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[3])
    from test_prefix import _cfg, _data, _losses, N_CLASSES
    from sweep.models import finetune as ft
    texts, labels = _data()
    calls = []
    hooks = ft.Hooks(on_prefix=lambda meta: calls.append(meta) or "run-1")
    ft.finetune_logits(texts, labels, {"val": texts[:8]}, N_CLASSES, _losses(labels)[1],
                       _cfg(sys.argv[1], reweight_from=0.5), 3, sys.argv[2], hooks)
    print(json.dumps({"trained": hooks.info["prefix"]["trained_here"], "calls": len(calls)}))
    """
)


@pytest.mark.system  # two fine-tunes in subprocesses racing for one lock
def test_two_workers_that_need_one_prefix_train_it_once(tiny_bert, tmp_path):
    here = str(__import__("pathlib").Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, tiny_bert, str(tmp_path), here], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o["trained"] for o in outs) == [False, True]
    assert sum(o["calls"] for o in outs) == 1
    assert len(list((tmp_path / "prefix").glob("*.pt"))) == 1
