"""The reference of make bench-gpu: the Hugging Face Trainer fine-tuning the same encoder on the same sequences
(padded batches, fp32 or bf16, optionally group_by_length), timed after its first steps.

Needs transformers and accelerate (the `gpu` extra: make install-gpu); the harness side needs neither."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time

import numpy as np
import torch

from sweep.bench.gpu_harness import log, peak_memory_gib, release, reset_peak_memory, sync
from sweep.models import finetune as ft


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, tokens: ft.Tokens, labels: np.ndarray):
        self.t, self.y = tokens, labels

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        s, e = self.t.offsets[i], self.t.offsets[i + 1]
        return {"input_ids": self.t.ids[s:e].tolist(), "labels": int(self.y[i])}


def _collate(features):
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros(len(features), width, dtype=torch.long)
    mask = torch.zeros(len(features), width, dtype=torch.long)
    for r, f in enumerate(features):
        ids[r, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[r, : len(f["input_ids"])] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([f["labels"] for f in features])}


def _grouping(training_arguments, group_by_length: bool) -> dict:
    """The length-grouping argument under either name transformers has given it."""
    fields = {f.name for f in dataclasses.fields(training_arguments)}
    if "group_by_length" in fields:  # transformers < 5.2x
        return {"group_by_length": group_by_length}
    return {"train_sampling_strategy": "group_by_length" if group_by_length else "random"}


def trainer_reference(
    label: str, make_model, tokens, labels, bf16: bool, group_by_length: bool, batch: int = 32, warm_steps: int = 8
) -> dict:
    """One epoch of Trainer.train(); sequences a second counted after `warm_steps` steps."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    times: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == warm_steps:
                sync()
                times["t0"] = time.perf_counter()

    reset_peak_memory()
    model = make_model()
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch,
            num_train_epochs=1,
            bf16=bf16,
            **_grouping(TrainingArguments, group_by_length),
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            seed=0,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_ListDataset(tokens, labels),
            data_collator=_collate,
            callbacks=[Clock()],
        )
        trainer.train()
        sync()
        steps = trainer.state.global_step
    seconds = time.perf_counter() - times["t0"]
    n_seq = min(len(labels), steps * batch) - warm_steps * batch
    mem = peak_memory_gib()
    del trainer, model
    release()
    name = f"Trainer {'bf16' if bf16 else 'fp32'}{' +group_by_length' if group_by_length else ''} b{batch}"
    row = {
        "model": label,
        "path": name,
        "seq_s": n_seq / seconds,
        "tok_s": n_seq / seconds * tokens.lengths.mean(),
        "params": params,
        "mem_gib": mem,
    }
    log(json.dumps(row))
    return row
