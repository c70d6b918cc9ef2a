"""The linear softmax head on fixed features: the project's loss + l2 * |W|^2, fitted by the lean L-BFGS of
lbfgs.py to max|gradient| <= gtol (float64 terms), on the CPU (both cores) or a CUDA GPU, started from a
prediction along the path of solutions already fitted in this process.

Products run in float32 (TF-IDF and embeddings are float32 already: exact inputs) with float64 parameters,
logits and loss; the final gradient is checked with float64 products. Training-time logit adjustment costs
no fit: with an unpenalized bias, the solution at tau is the solution at 0 with bias - tau * log_prior
(Menon et al. 2021's loss, reparametrized). A fit stopped by its cap is reported as not converged.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from sweep.memo import CACHE
from sweep.models.lbfgs import minimize
from sweep.models.losses import LossSpec
from sweep.schema.model import check_head


@dataclass(frozen=True)
class HeadFit:
    weight: np.ndarray  # (features, classes), float64
    bias: np.ndarray  # (classes,)
    iterations: int
    evaluations: int
    grad_max: float  # max |gradient| at the end point, float64 products
    loss: float  # the objective at the end point
    converged: bool  # grad_max <= gtol
    seconds: float
    warm_start: str  # "cold" or the start point chosen
    device: str = "cpu"  # where it was fitted: a GPU fit computes its split logits there too

    def logits(self, x, key: str | None = None) -> np.ndarray:
        """x @ W + b in float64. On a GPU, x's copy there is kept under `key` (the features and split) for
        the next trial: scipy's single-threaded product took ~0.1 s a split at 113 classes x 8K texts."""
        if self.device == "cpu":
            return np.asarray(x @ self.weight) + self.bias
        dev = torch.device(self.device)
        xs = _ON_DEVICE.get((key, self.device)) if key else None
        if xs is None:
            xs = to_tensor(x, torch.float64, dev)
            if key:
                while len(_ON_DEVICE) >= 2:  # the val and test splits of the features in use
                    _ON_DEVICE.pop(next(iter(_ON_DEVICE)))
                _ON_DEVICE[(key, self.device)] = xs
        return (xs @ torch.from_numpy(self.weight).to(dev)).cpu().numpy() + self.bias

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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():  # its spelling: schema/model.py, at load
        raise ValueError(f"model.head.device={device} but torch sees no CUDA GPU: use device=auto or cpu")
    return torch.device(device)


def to_tensor(x, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if sp.issparse(x):
        x = x.tocsr()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            t = torch.sparse_csr_tensor(
                torch.from_numpy(x.indptr.astype(np.int32)),
                torch.from_numpy(x.indices.astype(np.int32)),
                torch.from_numpy(x.data).to(dtype),
                size=x.shape,
                check_invariants=False,
            )
        return t.to(device)
    return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)


_ON_DEVICE: dict[tuple, torch.Tensor] = CACHE.slot("models.head.on_device")


# Class-block widths of the sparse products on the CPU. torch's (MKL's) CSR x dense product slows down per
# output column as the dense side widens: at 41,905 x 50,000 (5.0M nonzeros) one column cost 0.4-0.6 ms in
# float32 up to ~64 columns wide but 0.9-1.4 ms at 113, and in float64 ~1 ms up to 16 wide but 2.7-4.2 ms at
# 113 (2-core AMD EPYC, 2 MiB L2 a core). So a product is taken in blocks of classes: the same sums in the same
# order (bitwise the same result), a fast evaluation 0.35 -> 0.22 s, an exact one 0.93 -> 0.48 s.
# (docs/results/scale.md). On a GPU cuSPARSE takes the whole width.
CPU_BLOCK = {torch.float32: 32, torch.float64: 16}


class HeadObjective:
    """theta = [W (d x k) row-major, b (k)] -> loss(xW + b, y) + l2 |W|^2 and its gradient, written in place.
    The loss and its gradient in the logits come from LossSpec (autograd): the formula lives in losses.py."""

    def __init__(self, x, y: np.ndarray, loss: LossSpec, l2: float, device: torch.device):
        self.raw, self.device, self.loss, self.l2 = x, device, loss, l2
        self.d, self.k = x.shape[1], len(loss.weights)
        self.size = self.d * self.k
        self.y = torch.from_numpy(np.array(y, dtype=np.int64)).to(device)
        self.fast = (
            to_tensor(x, torch.float32, device),
            to_tensor(x.T if not sp.issparse(x) else x.T.tocsr(), torch.float32, device),
        )
        self.exact_pair: tuple[torch.Tensor, torch.Tensor] | None = None
        blocked = sp.issparse(x) and device.type == "cpu"
        self.blocks = {dtype: self._blocks(blocked, width) for dtype, width in CPU_BLOCK.items()}

    def _blocks(self, blocked: bool, width: int) -> list[slice]:
        if not blocked or self.k <= width:
            return [slice(0, self.k)]
        edges = np.linspace(0, self.k, -(-self.k // width) + 1).round().astype(int)
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def products(self, exact: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not exact:
            return self.fast
        if self.exact_pair is None:
            xt = self.raw.T.tocsr() if sp.issparse(self.raw) else self.raw.T
            self.exact_pair = to_tensor(self.raw, torch.float64, self.device), to_tensor(xt, torch.float64, self.device)
        return self.exact_pair

    def __call__(self, theta: torch.Tensor, grad: torch.Tensor, exact: bool) -> float:
        x, xt = self.products(exact)
        dtype = torch.float64 if exact else torch.float32
        blocks = self.blocks[dtype]
        w, b = theta[: self.size].view(self.d, self.k), theta[self.size :]
        parts = [x @ w[:, c].to(dtype) for c in blocks]  # one block: the whole width, no copy
        z = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        z = (z.double() + b).requires_grad_(True)
        value = self.loss(z, self.y)
        value.backward()
        gz = z.grad
        gw = grad[: self.size].view(self.d, self.k)
        gzd = gz.to(dtype)
        for c in blocks:
            gw[:, c].copy_(xt @ gzd[:, c].contiguous())
        gw.add_(w, alpha=2 * self.l2)
        torch.sum(gz, 0, out=grad[self.size :])
        wf = theta[: self.size]
        return float(value.detach()) + self.l2 * float(wf.dot(wf))


def fit_head(
    x,
    y: np.ndarray,
    loss: LossSpec,
    l2: float,
    gtol: float = 1e-6,
    max_iter: int = 3000,
    starts: list[tuple[str, np.ndarray, np.ndarray]] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    memory: int = 10,
    float64_only: bool = False,
) -> HeadFit:
    """Minimize loss(xW + b, y) + l2 * |W|^2 until max|gradient| <= gtol (float64 terms).

    Convex, and strictly convex in W for l2 > 0; the bias is unpenalized and has one flat direction (adding
    a constant to every class's bias), which moves neither the logits' differences nor the predictions. The
    start point (the candidate in `starts` with the lowest objective, else zero) changes how fast a fit
    converges, not where to. The defaults are conf/model/*.yaml's; l2 and gtol get the config's own check (a
    caller with plain numbers, e.g. `make l2`'s grid, meets the same line as a bad model.head.l2)."""
    check_head(l2, gtol)
    start = time.perf_counter()
    dev = resolve_device(device)
    shift = loss.tau * loss.log_prior  # the tau problem's optimum is the tau = 0 one, bias shifted by -shift
    objective = HeadObjective(x, y, LossSpec(loss.weights, loss.log_prior, 0.0), l2, dev)
    before = torch.get_num_threads()  # torch's default: every core, or OMP_NUM_THREADS (set per local worker)
    torch.set_num_threads(threads or before)
    try:
        theta, label, evals, at_x = _start(objective, starts, shift, dev)
        result = minimize(objective, theta, gtol, max_iter, memory, exact=float64_only, at_x=at_x)
    finally:
        torch.set_num_threads(before)
    if not np.isfinite(result.f):
        raise FloatingPointError(f"training loss is {result.f} at the end point: check the features for NaN/inf")
    out = result.x.cpu().numpy()
    return HeadFit(
        weight=out[: objective.size].reshape(objective.d, objective.k),
        bias=out[objective.size :] - shift,
        iterations=result.iterations,
        evaluations=result.evaluations + evals,
        grad_max=result.grad_max,
        loss=result.f,
        converged=result.converged,
        seconds=time.perf_counter() - start,
        warm_start=label,
        device=str(dev),
    )


def _start(objective: HeadObjective, starts, shift: np.ndarray, dev) -> tuple[torch.Tensor, str, int, tuple | None]:
    """The candidate start with the lowest objective (one fast evaluation each), in the tau = 0 problem; also
    that evaluation (objective, gradient), which the solver's first iteration uses instead of repeating it."""
    theta = torch.zeros(objective.size + objective.k, dtype=torch.float64, device=dev)
    if not starts:  # W = 0 and the bias that is optimal for it: the log of the weighted class shares
        mass = np.bincount(objective.y.cpu().numpy(), minlength=objective.k) * objective.loss.weights
        theta[objective.size :] = torch.from_numpy(np.log(np.maximum(mass / mass.sum(), 1e-12)))
        return theta, "cold", 0, None
    best = None
    for label, w, b in starts:
        cand = torch.cat(
            [torch.as_tensor(w, dtype=torch.float64).reshape(-1), torch.as_tensor(b + shift, dtype=torch.float64)]
        ).to(dev)
        grad = torch.empty_like(theta)
        f = objective(cand, grad, False)
        if best is None or f < best[0]:
            best = (f, cand, label, grad)
    return best[1], best[2], len(starts), (best[0], best[3])


class WarmStarts:
    """Solutions fitted in this process, per problem (features, l2, gtol, weighting scheme), by the scheme's
    one parameter (alpha, beta). A new fit is offered two starts: the Lagrange polynomial through the (up to
    3) nearest solutions, evaluated at the new parameter (a quadratic predictor along the solution path), and
    the nearest solution itself. Stored in float32 (a start need not be exact) and at tau = 0."""

    def __init__(self, max_per_problem: int = 48, degree: int = 2):
        self.solutions: dict[tuple, list[tuple[float, np.ndarray, np.ndarray]]] = {}
        self.max, self.degree = max_per_problem, degree

    def start(self, problem: tuple, point: float, loss: LossSpec) -> list[tuple[str, np.ndarray, np.ndarray]]:
        known = sorted(self.solutions.get(problem, []), key=lambda s: abs(s[0] - point))
        if not known:
            return []
        shift = loss.tau * loss.log_prior
        q, w, b = known[0]
        nearest = (f"nearest (distance {abs(q - point):.3g})", w, b - shift)
        if len(known) == 1 or q == point or self.degree == 0:
            return [nearest]
        nodes = known[: self.degree + 1]
        coef = [
            np.prod([(point - qj) / (qi - qj) for j, (qj, _, _) in enumerate(nodes) if j != i])
            for i, (qi, _, _) in enumerate(nodes)
        ]
        # float32: a third of float64's memory traffic (it was 137 ms of host time a trial at 5.65M parameters),
        # and a start need not be exact
        w_pred = sum(np.float32(c) * wi for c, (_, wi, _) in zip(coef, nodes, strict=True))
        b_pred = sum(c * bi for c, (_, _, bi) in zip(coef, nodes, strict=True))
        label = f"degree-{len(nodes) - 1} prediction from {', '.join(f'{qi:.3g}' for qi, _, _ in nodes)}"
        return [(label, w_pred, b_pred - shift), nearest]

    def add(self, problem: tuple, point: float, loss: LossSpec, fit: HeadFit) -> None:
        if not fit.converged:
            return
        known = self.solutions.setdefault(problem, [])
        known[:] = [s for s in known if s[0] != point]  # distinct points: the polynomial is defined
        known.append((point, fit.weight.astype(np.float32), fit.bias + loss.tau * loss.log_prior))
        del known[: -self.max]
