"""Fine-tune a pretrained encoder (MiniLM, ModernBERT) end to end with the project's loss; raw logits or pooled
embeddings. Settings: sweep/schema/finetune.py. tokens: the token cache; attention: packed kernels; batching;
model; loop: the steps and their saved state; prefix: the DRW prefix, trained once; fit: one trial's fine-tune.

The fast path (CUDA, bf16): sequences packed back to back with no padding, variable-length flash attention over
cu_seqlens, token-budget batches, bf16 autocast with fp32 master weights, fused AdamW, optional torch.compile.
The portable path (CPU, fp32): length-sorted padded batches, Hugging Face's SDPA with a mask. Both compute the
same function (tests and bench check it). Only torch, transformers and numpy are needed here."""

from sweep.data.encoders import resolve_pretrained
from sweep.models.finetune.attention import PACKED_ATTN, packed_attention_forward, varlen_kernel
from sweep.models.finetune.batching import Batcher, plan_batches
from sweep.models.finetune.fit import Hooks, finetune_embeddings, finetune_logits
from sweep.models.finetune.loop import Training, make_optimizer, predict, rung_steps, train
from sweep.models.finetune.model import (
    Classifier,
    Runner,
    build_runner,
    load_backbone,
    load_tokenizer,
    pick_device,
    use_bf16,
)
from sweep.models.finetune.tokens import Tokens, tokenize_cached
from sweep.schema.finetune import ATTENTIONS, COMPILE_MODES, PRECISIONS, resolve_cfg

__all__ = [
    "ATTENTIONS",
    "COMPILE_MODES",
    "PACKED_ATTN",
    "PRECISIONS",
    "Batcher",
    "Classifier",
    "Hooks",
    "Runner",
    "Tokens",
    "Training",
    "build_runner",
    "finetune_embeddings",
    "finetune_logits",
    "load_backbone",
    "load_tokenizer",
    "make_optimizer",
    "packed_attention_forward",
    "pick_device",
    "plan_batches",
    "predict",
    "resolve_cfg",
    "resolve_pretrained",
    "rung_steps",
    "tokenize_cached",
    "train",
    "use_bf16",
    "varlen_kernel",
]
