"""Multi-objective asynchronous successive halving (sweep.pruner=halving; Schmucker et al. 2021, MOASHA): a
fine-tune is scored on validation at rungs of its steps and goes on only while it ranks in the top 1/eta of
the trials that reached that rung, by non-dominated sorting, ties by crowding distance (NSGA-II's order).

Optuna cannot take multi-objective intermediate values (trial.report raises), so each rung's values live in the
trial's user attributes, `rung_<k>` = {"step", "values"}: in the study's own storage, seen by every worker and
kept across a resume. A trial that failed (a killed worker) does not compete; a pruned one does."""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import TrialState

from sweep.config import ConfigError

RUNG_ATTR = "rung_{}"
PRUNED_ATTR = "pruned_at"
COMPETING = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class Pruned(Exception):
    """Raised from a rung's callback: the trial stops here (Optuna PRUNED, its MLflow run FINISHED)."""

    def __init__(self, step: int, rung: int):
        super().__init__(f"pruned at step {step} (rung {rung})")
        self.step, self.rung = step, rung


def nondominated_ranks(values: np.ndarray) -> np.ndarray:
    """values (n, m), higher is better: 0 for the non-dominated points, 1 for those dominated only by rank 0, ..."""
    v = np.asarray(values, dtype=float)
    geq = (v[:, None, :] >= v[None, :, :]).all(-1)
    gt = (v[:, None, :] > v[None, :, :]).any(-1)
    dominates = geq & gt  # [i, j]: i dominates j
    ranks, left, rank = np.full(len(v), -1), np.ones(len(v), dtype=bool), 0
    while left.any():
        current = left & ~dominates[left].any(0)  # dominated by none of the points still unranked
        ranks[current] = rank
        left &= ~current
        rank += 1
    return ranks


def crowding(values: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance within one front (n, m): the boundary points of each objective are infinite."""
    v = np.asarray(values, dtype=float)
    n, m = v.shape
    out = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(v[:, j], kind="stable")
        span = v[order[-1], j] - v[order[0], j]
        out[order[0]] = out[order[-1]] = np.inf
        if span > 0:
            out[order[1:-1]] += (v[order[2:], j] - v[order[:-2], j]) / span
    return out


def keeps(values: np.ndarray, me: int, eta: int) -> bool:
    """Whether point `me` is among the top max(1, n // eta) of `values` (rank, then crowding); a point tied with
    the last one kept is kept too (two non-dominated boundary points both go on)."""
    v = np.asarray(values, dtype=float)
    ranks = nondominated_ranks(v)
    crowd = np.zeros(len(v))
    for r in np.unique(ranks):
        crowd[ranks == r] = crowding(v[ranks == r])
    keys = sorted((ranks[i], -crowd[i]) for i in range(len(v)))
    last_kept = keys[max(1, len(v) // eta) - 1]
    return (ranks[me], -crowd[me]) <= last_kept


class Halving:
    """The rungs and the decision at each; sweep.halving.eta (>= 2) and sweep.halving.min_fraction (0, 1)."""

    def __init__(self, eta: int = 3, min_fraction: float = 1 / 9):
        if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
            raise ConfigError(f"sweep.halving.eta={eta!r} is invalid: use a whole number >= 2, e.g. 3")
        if not isinstance(min_fraction, int | float) or not 0 < float(min_fraction) < 1:
            raise ConfigError(f"sweep.halving.min_fraction={min_fraction!r} is invalid: use a fraction in (0, 1)")
        self.eta, self.min_fraction = eta, float(min_fraction)

    @property
    def fractions(self) -> list[float]:
        """min_fraction * eta^k below 1 (the last rung is the trial's end): 1/9, 1/3 for eta 3."""
        out, f = [], self.min_fraction
        while f < 1 - 1e-9:
            out.append(f)
            f *= self.eta
        return out

    def decide(self, trial: optuna.Trial, rung: int, step: int, values: list[float]) -> bool:
        """Record this trial's values at the rung, then whether it goes on (a pruned trial raises Pruned)."""
        trial.set_user_attr(RUNG_ATTR.format(rung), {"step": int(step), "values": [float(v) for v in values]})
        others = [
            t.user_attrs[RUNG_ATTR.format(rung)]["values"]
            for t in trial.study.get_trials(deepcopy=False, states=COMPETING)
            if t.number != trial.number and RUNG_ATTR.format(rung) in t.user_attrs
        ]
        return keeps(np.array([*others, values]), len(others), self.eta)


def halving(cfg) -> Halving | None:
    """sweep.pruner: none (default) or halving, for fine-tune models only."""
    name = str(cfg.sweep.get("pruner", "none") or "none")
    if name == "none":
        return None
    if name != "halving":
        raise ConfigError(f"sweep.pruner={name!r} is unknown: use none or halving")
    if cfg.model.get("kind") != "finetune":
        raise ConfigError(
            f"sweep.pruner=halving stops fine-tunes between their steps, and model={cfg.model.name} "
            f"(kind: {cfg.model.get('kind')}) takes none: use a kind: finetune model, or sweep.pruner=none"
        )
    settings = cfg.sweep.get("halving") or {}
    return Halving(settings.get("eta", 3), settings.get("min_fraction", 1 / 9))


class CompleteGamma:
    """TPE's share of "good" trials counted over the COMPLETE trials only. Optuna's default counts pruned trials
    in n and fills the good set with them once the complete ones run out; pruned trials of a multi-objective
    study carry no values (they all tie), so a trial stopped at the first rung would count as good."""

    def __init__(self) -> None:
        self.study: optuna.Study | None = None

    def __call__(self, n: int) -> int:
        if self.study is None:
            return math.ceil(0.1 * n)
        complete = len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return math.ceil(0.1 * complete)
