"""The training loop: AdamW under a linear warmup / decay schedule defined over the whole run, batches planned up
front from the seed, a loss that may change at a step (deferred re-weighting), and its whole state saved and
restored, so that a run continued from a saved step is the run that never stopped. Inference: raw logits."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from sweep.models.finetune.batching import Batcher, plan_batches
from sweep.models.finetune.model import Classifier, Runner
from sweep.models.finetune.tokens import Tokens
from sweep.models.losses import LossSpec

StepCallback = Callable[[int, np.ndarray], None]
log = logging.getLogger(__name__)
_FIRST_COMPILED_STEP: list[float] = []  # this process's first compiled step: torch.compile's cost, logged once


def make_optimizer(model: Classifier, cfg: dict, device: torch.device):
    decay, no_decay, head = [], [], []
    for name, p in model.named_parameters():
        if name.startswith("head."):
            head.append(p)
        elif p.ndim < 2:
            no_decay.append(p)
        else:
            decay.append(p)
    head_lr = cfg["head_lr"] or cfg["lr"]
    groups = [
        {"params": decay, "weight_decay": cfg["weight_decay"], "lr": cfg["lr"]},
        {"params": no_decay, "weight_decay": 0.0, "lr": cfg["lr"]},
        {"params": head, "weight_decay": cfg["weight_decay"], "lr": head_lr},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, fused=fused or None)


class Training:
    """One fine-tune's optimizer steps. Every epoch's batches are planned up front from the seed (packing makes
    their number vary), so the schedule knows the total and two runs of the same seed see the same batches in
    the same order; `run(loss, until)` takes the steps up to `until` with that loss."""

    def __init__(self, runner: Runner, tokens: Tokens, labels: np.ndarray, seed: int, epochs: float | None = None):
        cfg, dev = runner.cfg, runner.device
        self.runner, self.cfg = runner, cfg
        epochs = cfg["epochs"] if epochs is None else epochs
        rng = np.random.default_rng(seed)
        self.batcher = Batcher(tokens, dev)
        self.y = torch.as_tensor(np.array(labels, dtype=np.int64), device=dev)  # a copy: splits are read-only
        budget = cfg["batch_tokens"]
        plans = [plan_batches(tokens.lengths, budget, runner.packed, rng) for _ in range(math.ceil(epochs))]
        plans[-1] = plans[-1][: max(1, math.ceil(len(plans[-1]) * (epochs - (len(plans) - 1))))]  # a fractional epoch
        self.batches = [idx for plan in plans for idx in plan]
        self.epoch_ends = set(np.cumsum([len(p) for p in plans]).tolist())
        self.total = len(self.batches)
        self.warmup = int(cfg["warmup_ratio"] * self.total)
        self.opt = make_optimizer(runner.model, cfg, dev)
        self.base = [g["lr"] for g in self.opt.param_groups]
        self.step, self.history = 0, []
        self.epoch_loss, self.epoch_steps = torch.zeros((), device=dev), 0
        self.seconds = 0.0
        # torch.compile: every packed batch padded to the same token count, so shapes stay static
        self.fixed = None
        if runner.compiled:
            pad = self.batcher.pad_to
            self.fixed = -(-max(cfg["batch_tokens"], int(tokens.lengths.max())) // pad) * pad

    def schedule(self, step: int) -> float:
        """Linear warmup, then linear decay to 0 (Hugging Face's default schedule), over all the run's steps."""
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))

    def run(self, loss: LossSpec, until: int, on_step: StepCallback | None = None) -> None:
        runner, model, opt = self.runner, self.runner.model, self.opt
        model.train()
        t0 = time.perf_counter()
        while self.step < min(until, self.total):
            idx = self.batches[self.step]
            for g, b in zip(opt.param_groups, self.base, strict=True):
                g["lr"] = b * self.schedule(self.step)
            logits = runner.logits(self.batcher, idx, self.fixed)
            value = loss(logits, self.y[self.batcher._to(idx.astype(np.int64))])
            opt.zero_grad(set_to_none=True)
            value.backward()
            if self.cfg["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg["grad_clip"], foreach=True)
            opt.step()
            if runner.compiled and not _FIRST_COMPILED_STEP:
                self._first_compiled_step(t0)
            self.epoch_loss += value.detach()
            self.epoch_steps += 1
            self.step += 1
            if self.step in self.epoch_ends:  # one host sync per epoch
                self.history.append(float(self.epoch_loss) / max(1, self.epoch_steps))
                self.epoch_loss.zero_()
                self.epoch_steps = 0
            if on_step is not None:
                on_step(self.step, idx)
        self.seconds += time.perf_counter() - t0

    def _first_compiled_step(self, t0: float) -> None:
        if self.runner.device.type == "cuda":
            torch.cuda.synchronize(self.runner.device)
        _FIRST_COMPILED_STEP.append(time.perf_counter() - t0)
        log.info("torch.compile: the first step took %.1f s (compiling, or loading its cache)", _FIRST_COMPILED_STEP[0])

    def state(self) -> dict:
        """Everything the next step depends on, copied: weights, optimizer moments, where the schedule and the
        epoch's loss stand, and the random generators (dropout)."""
        dev = self.runner.device
        return copy.deepcopy(
            {
                "step": self.step,
                "total": self.total,
                "model": self.runner.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "history": list(self.history),
                "epoch_loss": float(self.epoch_loss),
                "epoch_steps": self.epoch_steps,
                # as bytes: torch.load(map_location=cuda) moves tensors, and a generator takes CPU bytes only
                "rng_cpu": torch.get_rng_state().numpy().tobytes(),
                "rng_cuda": torch.cuda.get_rng_state(dev).numpy().tobytes() if dev.type == "cuda" else None,
            }
        )

    def load(self, state: dict) -> None:
        """Continue from a saved state (of the same config, data and seed: the caller keys it so)."""
        if state["total"] != self.total:
            raise RuntimeError(f"saved state plans {state['total']} steps, this run {self.total}: not the same run")
        self.runner.model.load_state_dict(state["model"])
        self.opt.load_state_dict(copy.deepcopy(state["optimizer"]))  # the optimizer steps its state in place
        self.step, self.history = int(state["step"]), list(state["history"])
        self.epoch_loss.fill_(state["epoch_loss"])
        self.epoch_steps = int(state["epoch_steps"])
        torch.set_rng_state(_generator_state(state["rng_cpu"]))
        if state["rng_cuda"] is not None and self.runner.device.type == "cuda":
            torch.cuda.set_rng_state(_generator_state(state["rng_cuda"]), self.runner.device)

    def stats(self) -> dict:
        return {"loss_per_epoch": list(self.history), "steps": self.step, "seconds": self.seconds}


def _generator_state(saved: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(saved), dtype=torch.uint8)


def train(
    runner: Runner,
    tokens: Tokens,
    labels: np.ndarray,
    loss: LossSpec,
    seed: int,
    epochs: float | None = None,
    on_step: StepCallback | None = None,
) -> dict:
    """Train in place with one loss; returns {"loss_per_epoch": [...], "steps": n, "seconds": s}.

    on_step(step, example_indices) is called after every optimizer step (the bench times with it).
    """
    training = Training(runner, tokens, labels, seed, epochs)
    training.run(loss, training.total, on_step)
    return training.stats()


def rung_steps(start: int, total: int, fractions: Sequence[float]) -> list[int]:
    """The optimizer steps at which the rungs fall: fractions of the steps after `start`, before the last one."""
    steps = {start + max(1, round(f * (total - start))) for f in fractions}
    return sorted(s for s in steps if start < s < total)


@torch.inference_mode()
def predict(runner: Runner, tokens: Tokens, pooled: bool = False) -> np.ndarray:
    """Raw logits (n, C), or with pooled=True the encoder's mean-pooled output (n, hidden), float32."""
    runner.model.eval()
    batcher = Batcher(tokens, runner.device)
    budget = max(runner.cfg["eval_batch_tokens"], int(tokens.lengths.max()) if len(tokens) else 1)
    width = runner.model.head.in_features if pooled else runner.model.head.out_features
    out = torch.empty((len(tokens), width), dtype=torch.float32, device=runner.device)
    for idx in plan_batches(tokens.lengths, budget, runner.packed, None):
        rows = runner.pooled(batcher, idx) if pooled else runner.logits(batcher, idx)
        out[torch.as_tensor(idx, device=runner.device)] = rows.float()
    return out.cpu().numpy()
