"""Class weights, the logit-adjusted loss and post-hoc logit adjustment: the formulas, once, and the LossSpec
that every model (linear head, fine-tuning) trains with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def class_weights(counts: np.ndarray, scheme: str = "power", alpha: float = 0.0, beta: float = 0.999) -> np.ndarray:
    """Per-class loss weights, normalized so that the mean weight per training example is 1.

    scheme "none": all ones; "power": (n_max / n_c) ** alpha (0 unweighted, 0.5 sqrt-inverse, 1 inverse);
    "effective_number": (1 - beta) / (1 - beta ** n_c) (Cui et al. 2019, "Class-Balanced Loss").
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts <= 0):
        raise ValueError(f"class counts must be a non-empty vector of positive counts, got {counts!r}")
    if scheme == "none":
        raw = np.ones_like(counts)
    elif scheme == "power":
        if not 0.0 <= alpha <= 2.0:
            raise ValueError(f"weighting.alpha={alpha} is outside [0, 2]: use 0 (unweighted) to 1 (inverse)")
        raw = (counts.max() / counts) ** alpha
    elif scheme == "effective_number":
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"weighting.beta={beta} is outside [0, 1): use e.g. 0.999")
        raw = (1.0 - beta) / (1.0 - np.power(beta, counts))
    else:
        raise ValueError(f"unknown weighting scheme {scheme!r}: use none, power or effective_number")
    return raw * counts.sum() / (raw * counts).sum()


def log_prior(counts: np.ndarray) -> np.ndarray:
    """log of the training-split class frequencies."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log(counts / counts.sum())


def logit_adjust(logits, log_prior_, tau: float):
    """logits + tau * log_prior; the loss uses +tau, post-hoc prediction uses -tau (Menon et al. 2021)."""
    return logits + tau * log_prior_


def posthoc_predict(logits: np.ndarray, log_prior_: np.ndarray, tau: float) -> np.ndarray:
    """argmax(f(x) - tau * log prior): post-hoc logit adjustment (Menon et al. 2021, eq. 4)."""
    return np.asarray(logit_adjust(logits, log_prior_, -tau)).argmax(axis=1)


@dataclass(frozen=True)
class LossSpec:
    """The training loss of every model: weighted softmax cross-entropy on logits + tau * log_prior.

    tau = 0 and uniform weights give plain cross-entropy; the mean is over examples (weights mean 1).
    """

    weights: np.ndarray
    log_prior: np.ndarray
    tau: float = 0.0

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if logits.dtype != torch.float64:  # float64 for the head's converged fits; bf16 / fp16 upcast
            logits = logits.float()
        w = torch.as_tensor(self.weights, dtype=logits.dtype, device=logits.device)
        lp = torch.as_tensor(self.log_prior, dtype=logits.dtype, device=logits.device)
        per_example = F.cross_entropy(logit_adjust(logits, lp, self.tau), y, reduction="none")
        return (w[y] * per_example).mean()
