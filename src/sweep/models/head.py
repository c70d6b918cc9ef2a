"""The linear softmax head on fixed features: the project's loss + l2 * |W|^2, fitted to a stated gradient
tolerance by torch's L-BFGS, warm-started from the nearest solution already fitted in this process.

A fit that stops on the iteration cap (or on lack of progress) with max|gradient| above the tolerance is
reported as not converged: its numbers are not a trial result (the study keeps it off the front).
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from sweep.models.losses import LossSpec


@dataclass(frozen=True)
class HeadFit:
    weight: np.ndarray  # (features, classes), float64
    bias: np.ndarray  # (classes,)
    iterations: int
    evaluations: int
    grad_max: float  # max |gradient| at the end point
    loss: float  # the objective at the end point
    converged: bool  # grad_max <= gtol
    seconds: float
    warm_start: str  # "cold" or a description of the start point

    def logits(self, x) -> np.ndarray:
        return np.asarray(x @ self.weight) + self.bias

    def info(self) -> dict:
        return {
            "fit_iterations": self.iterations,
            "fit_evaluations": self.evaluations,
            "fit_grad_max": self.grad_max,
            "fit_loss": self.loss,
            "fit_converged": self.converged,
            "fit_seconds": self.seconds,
            "fit_warm_start": self.warm_start,
        }


class _Features:
    """w -> x @ w with autograd, float64; the backward uses a precomputed x.T (25x faster than torch's own
    CSR backward). Torch's sparse kernels on ONE thread: on this 2-core machine
    (8.5K x 50K TF-IDF, 8 classes) one thread takes 11 ms per pair, scipy 19 ms, two torch threads 70 ms
    when the other core is busy."""

    def __init__(self, x):
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        self.x, self.xt = self._tensor(x), self._tensor(sp.csr_matrix(x.T) if sp.issparse(x) else np.asarray(x).T)
        outer = self

        class _Product(torch.autograd.Function):
            @staticmethod
            def forward(ctx, w):
                return outer.x @ w

            @staticmethod
            def backward(ctx, grad):
                return outer.xt @ grad

        self.matmul = _Product.apply

    @staticmethod
    def _tensor(x) -> torch.Tensor:
        if sp.issparse(x):
            x = x.tocsr()
            return torch.sparse_csr_tensor(
                torch.from_numpy(x.indptr.astype(np.int64)),
                torch.from_numpy(x.indices.astype(np.int64)),
                torch.from_numpy(x.data.astype(np.float64)),
                size=x.shape,
                check_invariants=False,
            )
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


@contextmanager
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_head(
    x,
    y: np.ndarray,
    loss: LossSpec,
    l2: float,
    gtol: float = 1e-5,
    max_iter: int = 2000,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    warm_start: str = "cold",
) -> HeadFit:
    """Minimize loss(xW + b, y) + l2 * |W|^2 (float64) until max|gradient| <= gtol.

    Convex, and strictly convex in W for l2 > 0; the bias is unpenalized and has one flat direction (adding
    a constant to every class's bias changes nothing), which moves neither the logits' differences nor the
    predictions. So the start point changes how fast a fit converges, not where to."""
    if not l2 > 0:
        raise ValueError(
            f"model.head.l2={l2} must be > 0: an unpenalized softmax head on separable "
            "features has no optimum; use e.g. 1e-4 (see `make l2`)"
        )
    if not gtol > 0:
        raise ValueError(f"model.head.gtol={gtol} must be > 0: use e.g. 1e-5")
    start = time.perf_counter()
    n_features, n_classes = x.shape[1], len(loss.weights)
    feats, yt = _Features(x), torch.from_numpy(np.array(y, dtype=np.int64))
    if init is None:
        weight = torch.zeros(n_features, n_classes, dtype=torch.float64)
        bias = torch.zeros(n_classes, dtype=torch.float64)
    else:
        weight, bias = (torch.tensor(np.asarray(v), dtype=torch.float64) for v in init)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    # tolerance_change=0: stop on the gradient (or the cap), never on a small step that only looks like progress
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        max_eval=2 * max_iter,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=gtol,
        tolerance_change=0.0,
    )

    def closure():
        opt.zero_grad()
        value = loss(feats.matmul(weight) + bias, yt) + l2 * weight.pow(2).sum()
        value.backward()
        return value

    with _one_thread():
        opt.step(closure)
        final = closure()  # the objective and gradient AT the end point (step() returns the start's loss)
    if not torch.isfinite(final.detach()):
        raise FloatingPointError(f"training loss is {final.item()} at the end point: check the features for NaN/inf")
    grad_max = max(float(weight.grad.abs().max()), float(bias.grad.abs().max()))
    state = opt.state[opt._params[0]]
    return HeadFit(
        weight=weight.detach().numpy(),
        bias=bias.detach().numpy(),
        iterations=int(state.get("n_iter", 0)),
        evaluations=int(state.get("func_evals", 0)) + 1,
        grad_max=grad_max,
        loss=float(final.detach()),
        converged=grad_max <= gtol,
        seconds=time.perf_counter() - start,
        warm_start=warm_start,
    )


class WarmStarts:
    """Solutions fitted in this process, per problem (features + l2 + gtol). A new fit starts on the secant
    through the two nearest solutions (the solution path is smooth in the class weights and tau), or at the
    nearest one when only one is known. Points are (log class weights, training tau)."""

    def __init__(self, max_per_problem: int = 64):
        self.solutions: dict[tuple, list[tuple[np.ndarray, HeadFit]]] = {}
        self.max = max_per_problem

    @staticmethod
    def _point(loss: LossSpec) -> np.ndarray:
        return np.append(np.log(loss.weights), loss.tau)

    def start(
        self, problem: tuple, loss: LossSpec, secant: bool = True
    ) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
        known = self.solutions.get(problem, [])
        if not known:
            return None, "cold"
        p = self._point(loss)
        dist = np.array([np.abs(p - q).max() for q, _ in known])
        order = np.argsort(dist, kind="stable")
        i, fit_i = order[0], known[order[0]][1]
        if len(known) == 1 or dist[i] == 0 or not secant:
            return (fit_i.weight, fit_i.bias), f"nearest (distance {dist[i]:.3g})"
        (qi, _), (qj, fit_j) = known[i], known[order[1]]
        t = float(np.clip(np.dot(p - qi, qj - qi) / np.dot(qj - qi, qj - qi), -1.0, 2.0))
        return (
            (fit_i.weight + t * (fit_j.weight - fit_i.weight), fit_i.bias + t * (fit_j.bias - fit_i.bias)),
            f"secant of the 2 nearest (t={t:.2f}, distance {dist[i]:.3g})",
        )

    def add(self, problem: tuple, loss: LossSpec, fit: HeadFit) -> None:
        if not fit.converged:
            return
        known, p = self.solutions.setdefault(problem, []), self._point(loss)
        known[:] = [(q, f) for q, f in known if not np.array_equal(q, p)]  # distinct points: the secant is defined
        known.append((p, fit))
        del known[: -self.max]
