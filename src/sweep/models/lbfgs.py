"""A lean L-BFGS for the head's millions of parameters, on the CPU or a GPU: the memory in compact form
(Byrd, Nocedal & Schnabel 1994) as float32 matrices, so that a direction costs four matrix-vector products
instead of torch.optim.LBFGS's ~80 fresh full-size vector passes; a Wolfe line search that switches to
Hager & Zhang's approximate Wolfe test (2005) where function values are too close to tell apart.

The caller's `fg(theta, grad, exact) -> f` evaluates the objective and writes the gradient in place; `exact`
asks for full float64 arithmetic. The fit stops only on max|gradient| <= gtol, checked with exact=True.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Objective = Callable[[torch.Tensor, torch.Tensor, bool], float]


@dataclass
class Result:
    x: torch.Tensor
    f: float
    grad_max: float  # max |gradient| at x, from an exact evaluation when converged
    iterations: int
    evaluations: int
    converged: bool
    polished: bool  # the last iterations ran with exact products (the mixed ones could not reach gtol)


class Memory:
    """The last m steps s and gradient changes y as rows of (m, N) matrices, with S^T Y and Y^T Y (m x m)."""

    def __init__(self, m: int, n: int, device: torch.device):
        self.m, self.slots = m, []  # slot indices, oldest first
        self.s = torch.zeros(m, n, dtype=torch.float32, device=device)
        self.y = torch.zeros(m, n, dtype=torch.float32, device=device)
        self.sy = torch.zeros(m, m, dtype=torch.float64)
        self.yy = torch.zeros(m, m, dtype=torch.float64)
        self.gamma = 1.0

    def add(self, s: torch.Tensor, y: torch.Tensor, sy: float, yy: float) -> None:
        i = len(self.slots) if len(self.slots) < self.m else self.slots.pop(0)
        self.s[i].copy_(s)
        self.y[i].copy_(y)
        self.sy[:, i] = (self.s @ self.y[i]).double().cpu()
        self.sy[i, :] = (self.y @ self.s[i]).double().cpu()
        self.yy[:, i] = self.yy[i, :] = (self.y @ self.y[i]).double().cpu()
        self.sy[i, i], self.yy[i, i] = sy, yy  # the curvature pair's own products in float64
        self.slots.append(i)
        self.gamma = sy / yy

    def direction(self, g: torch.Tensor, out: torch.Tensor) -> None:
        """out = -H g, H the L-BFGS inverse Hessian: gamma I + [S gamma Y] M [S gamma Y]^T (compact form)."""
        if not self.slots:
            torch.neg(g, out=out)
            return
        o, used, gm = self.slots, slice(0, max(self.slots) + 1), self.gamma
        g32 = g.float()
        p_s = (self.s[used] @ g32).double().cpu()[o]
        p_y = (self.y[used] @ g32).double().cpu()[o]
        sy = self.sy[o][:, o]
        r, dg = torch.triu(sy), torch.diag(torch.diag(sy))
        r_inv_ps = torch.linalg.solve_triangular(r, p_s[:, None], upper=True)
        inner = (dg + gm * self.yy[o][:, o]) @ r_inv_ps - gm * p_y[:, None]
        c_s = torch.zeros(used.stop, dtype=torch.float64)
        c_y = torch.zeros(used.stop, dtype=torch.float64)
        c_s[o] = torch.linalg.solve_triangular(r.T, inner, upper=False).squeeze(1)
        c_y[o] = -gm * r_inv_ps.squeeze(1)
        dev = self.s.device
        comb = self.s[used].T @ c_s.float().to(dev)
        comb.addmv_(self.y[used].T, c_y.float().to(dev))
        torch.add(comb.double(), g, alpha=gm, out=out)
        out.neg_()


def minimize(
    fg: Objective,
    x: torch.Tensor,
    gtol: float,
    max_iter: int,
    memory: int = 10,
    exact: bool = False,
    at_x: tuple[float, torch.Tensor] | None = None,
) -> Result:
    """Minimize a smooth convex function from x (float64, modified) until max|gradient| <= gtol.

    Iterates with exact=False (the caller's fast products) and, once those report convergence, checks the
    gradient with exact=True; if that check fails (or the line search stalls on rounding), it goes on with
    exact products. `converged` is true only on an exact gradient within gtol. at_x: (f, gradient) at x from
    the same (fast) products, when the caller has them already (the start's choice evaluated it)."""
    mem = Memory(memory, x.numel(), x.device)
    g_new, x_new, d = (torch.empty_like(x) for _ in range(3))
    if at_x is not None and not exact:
        (f, g), evals = at_x, 0
    else:
        g = torch.empty_like(x)
        f, evals = fg(x, g, exact), 1
    it, polished = 0, False
    while True:
        grad_max = float(g.abs().max())
        if grad_max <= gtol:
            if exact:
                return Result(x, f, grad_max, it, evals, True, polished)
            f, evals, exact = fg(x, g, True), evals + 1, True  # the check: converged only on exact terms
            polished = float(g.abs().max()) > gtol
            continue
        if it >= max_iter:
            break
        mem.direction(g, d)
        slope = float(g.dot(d))
        if not slope < 0:  # rounding spoilt the memory: restart from steepest descent
            mem.slots.clear()
            torch.neg(g, out=d)
            slope = float(g.dot(d))
        step = 1.0 if mem.slots else min(1.0, 1.0 / grad_max)
        found, f_new, tried = _line_search(fg, x, f, d, slope, step, x_new, g_new, exact)
        evals += tried
        if not found:
            if exact:
                break
            f, evals, exact, polished = fg(x, g, True), evals + 1, True, True
            continue
        torch.sub(x_new, x, out=x)  # x holds s, g holds y: no new full-size allocations
        torch.sub(g_new, g, out=g)
        sy, yy = float(x.dot(g)), float(g.dot(g))
        if sy > 1e-12 * math.sqrt(yy) * float(x.norm()):
            mem.add(x, g, sy, yy)
        x, x_new, g, g_new, f, it = x_new, x, g_new, g, f_new, it + 1
    if not exact:
        f, evals = fg(x, g, True), evals + 1
    return Result(x, f, float(g.abs().max()), it, evals, False, exact)


def _line_search(
    fg: Objective, x, f: float, d, slope: float, step: float, x_new, g_new, exact: bool
) -> tuple[bool, float, int]:
    """A step along d with sufficient decrease (Armijo, or approximate Wolfe within 1e-7 * |f| of f) and the
    curvature condition; bracketing by the directional derivative, which stays accurate when f does not."""
    lo, d_lo, hi, d_hi = 0.0, slope, math.inf, 0.0
    for tried in range(1, 41):
        torch.add(x, d, alpha=step, out=x_new)
        f_new = fg(x_new, g_new, exact)
        d_new = float(g_new.dot(d))
        decrease = f_new <= f + 1e-4 * step * slope or (d_new <= -0.8 * slope and f_new <= f + 1e-7 * abs(f))
        if decrease and d_new >= 0.9 * slope:
            return True, f_new, tried
        if decrease:  # still steep: a longer step
            lo, d_lo = step, d_new
            step = 4 * step if hi == math.inf else 0.5 * (lo + hi)
        else:  # too far: secant on the derivative, kept inside the bracket
            hi, d_hi = step, d_new
            step = lo - d_lo * (hi - lo) / (d_hi - d_lo) if d_hi > d_lo else 0.5 * (lo + hi)
            step = min(max(step, lo + 0.1 * (hi - lo)), hi - 0.1 * (hi - lo))
    return False, f, 40
