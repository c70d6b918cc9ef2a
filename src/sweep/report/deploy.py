"""The deployment class mix (`make export ARGS="deploy_prior=uniform"`, `=train` or `=<csv with class,share>`):
the mix read and checked, and the reference re-adjusted for it without retraining (post-hoc tau 1 against
log pi_train - log pi_deploy, Menon et al. 2021); the re-weighted test figures themselves: table.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from sweep.config import ConfigError, load_config
from sweep.models.losses import log_prior, posthoc_predict

log = logging.getLogger(__name__)
ADJUSTED = "deploy_adjusted"  # the extra row's name in the baselines' table


def deploy_mix(text: str, names: list[str], train_counts: np.ndarray) -> tuple[np.ndarray, str]:
    """The class shares of `deploy_prior` in the order of `names`, summing to 1, and how to call the mix.
    uniform: 1 / C each; train: the training split's shares; otherwise a CSV with columns class, share (an
    unknown class or a bad share is a one-line error; a missing class gets share 0, shares that do not sum
    to 1 are normalized; both with a warning)."""
    if text == "uniform":
        return np.full(len(names), 1 / len(names)), "uniform"
    if text == "train":
        counts = np.asarray(train_counts, dtype=float)
        return counts / counts.sum(), "training split's"
    path = Path(text)
    if not path.is_file():
        raise ConfigError(
            f"deploy_prior={text!r} is neither uniform, train nor a CSV file: give deploy_prior=uniform, "
            "deploy_prior=train or deploy_prior=<file.csv> with columns class,share"
        )
    try:
        table = pd.read_csv(path, dtype={"class": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"deploy_prior={text}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    if not {"class", "share"} <= set(table.columns):
        raise ConfigError(f"deploy_prior={text} has columns {list(table.columns)}: it needs class,share")
    unknown = [c for c in table["class"] if c not in names]
    if unknown:
        raise ConfigError(
            f"deploy_prior={text}: class {unknown[0]!r} is not a class of this study (e.g. {names[0]!r}): "
            "fix its name or drop its row"
        )
    repeated = table["class"][table["class"].duplicated()].tolist()
    if repeated:
        raise ConfigError(f"deploy_prior={text}: class {repeated[0]!r} has two rows: keep one")
    shares = pd.to_numeric(table["share"], errors="coerce")
    bad = table["class"][~(shares >= 0) | ~np.isfinite(shares)].tolist()
    if bad:
        raise ConfigError(f"deploy_prior={text}: the share of class {bad[0]!r} is not a number >= 0: fix it")
    given = dict(zip(table["class"], shares, strict=True))
    missing = [n for n in names if n not in given]
    if missing:
        log.warning("deploy_prior=%s lacks %d class(es), given share 0: %s", text, len(missing), "; ".join(missing))
    share = np.array([given.get(n, 0.0) for n in names], dtype=float)
    if share.sum() <= 0:
        raise ConfigError(f"deploy_prior={text}: the shares sum to 0: give at least one class a share > 0")
    if abs(share.sum() - 1) > 1e-6:
        log.warning("deploy_prior=%s: the shares sum to %.4g, not 1: normalized", text, share.sum())
    return share / share.sum(), path.name


def adjusted_point(trial: optuna.trial.FrozenTrial, point: dict, share: np.ndarray, tau: float = 1.0) -> dict | None:
    """The trial's model (the unweighted reference) adjusted for the deployment mix without a refit: its test
    logits (recomputed from its stored overrides, from the logits cache when there is one) predicted as
    argmax f(x) - tau * (log pi_train - log pi_deploy), Menon et al. 2021 eq. (4) for a shifted prior; a class
    the mix never shows is never predicted. `point`: the trial's logged test predictions, for the check that
    the recomputation sees the same test split. None when it does not."""
    from sweep.models.train import run

    result = run(load_config(trial.user_attrs["overrides"]))
    if not np.array_equal(result.splits.labels["test"], point["y"]):
        log.warning("trial %d's data changed since its run: no deploy-adjusted row", trial.number)
        return None
    with np.errstate(divide="ignore"):
        shift = log_prior(point["counts"]) - np.log(share)  # +inf for a share 0
    logits = result.info["logits"]["test"]
    return {**point, "pred": posthoc_predict(logits, shift, tau)}
