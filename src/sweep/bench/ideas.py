"""`make bench`'s idea table: what each part of the head solver buys, on the same sequence of fits (the sweep's
first trained alphas): the previous solver (torch.optim.LBFGS, float64, history 20), the lean L-BFGS with
float64 products only, then with float32 products, each from a cold start; then warm starts from the nearest
solution, the secant of the two nearest and the quadratic through the three nearest."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from sweep.models.head import HeadFit, HeadObjective, WarmStarts, fit_head, resolve_device, to_tensor
from sweep.models.losses import LossSpec, class_weights, log_prior


def torch_lbfgs_fit(x, y, loss: LossSpec, l2: float, gtol: float, max_iter: int) -> HeadFit:
    """The previous solver, as it was: torch.optim.LBFGS (strong Wolfe, history 20) on autograd, float64."""
    start = time.perf_counter()
    obj = HeadObjective(x, y, loss, l2, torch.device("cpu"))
    xs, xts = (
        to_tensor(x, torch.float64, obj.device),
        to_tensor(x.T.tocsr() if hasattr(x, "tocsr") else x.T, torch.float64, obj.device),
    )

    class _Product(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w):
            return xs @ w

        @staticmethod
        def backward(ctx, grad):
            return xts @ grad

    w = torch.zeros(obj.d, obj.k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(obj.k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
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
        value = loss(_Product.apply(w) + b, obj.y) + l2 * w.pow(2).sum()
        value.backward()
        return value

    opt.step(closure)
    final = closure()
    grad_max = max(float(w.grad.abs().max()), float(b.grad.abs().max()))
    state = opt.state[opt._params[0]]
    return HeadFit(
        w.detach().numpy(),
        b.detach().numpy(),
        int(state.get("n_iter", 0)),
        int(state.get("func_evals", 0)) + 1,
        grad_max,
        float(final.detach()),
        grad_max <= gtol,
        time.perf_counter() - start,
        "cold",
    )


def idea_table(feats: dict, splits, head, alphas: list[float], device: str = "auto") -> list[dict]:
    """One row per idea: cold fits time the first alpha, warm ones the median over the rest."""
    counts, y = splits.train_counts, splits.labels["train"]
    lp, l2, gtol, cap = log_prior(counts), float(head.l2), float(head.gtol), int(head.max_iter)
    loss0 = LossSpec(class_weights(counts, "power", alphas[0]), lp, 0.0)
    rows = []
    if resolve_device(device).type == "cpu":
        rows.append(
            (
                "cold: torch.optim.LBFGS, float64 (the previous solver)",
                [torch_lbfgs_fit(feats["train"], y, loss0, l2, gtol, cap)],
            )
        )
    for label, f64 in (("cold: lean L-BFGS, float64 products", True), ("cold: lean L-BFGS, float32 products", False)):
        rows.append((label, [fit_head(feats["train"], y, loss0, l2, gtol, cap, device=device, float64_only=f64)]))
    for label, degree in (
        ("warm: nearest solution", 0),
        ("warm: secant of the 2 nearest", 1),
        ("warm: quadratic through the 3 nearest", 2),
    ):
        warm, fits = WarmStarts(degree=degree), []
        for alpha in alphas:
            loss = LossSpec(class_weights(counts, "power", alpha), lp, 0.0)
            fit = fit_head(feats["train"], y, loss, l2, gtol, cap, starts=warm.start("i", alpha, loss), device=device)
            warm.add("i", alpha, loss, fit)
            fits.append(fit)
        rows.append((label, fits[1:]))  # the first fit of each sequence is cold
    return [
        {
            "idea": label,
            "fits": len(fits),
            "iterations": statistics.median(f.iterations for f in fits),
            "seconds": statistics.median(f.seconds for f in fits),
            "converged": all(f.converged for f in fits),
            "max_grad": float(np.max([f.grad_max for f in fits])),
        }
        for label, fits in rows
    ]
