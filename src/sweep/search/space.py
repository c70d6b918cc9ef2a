"""The search space: Hydra's sweep syntax in sweep.params -> Optuna distributions, checked against the composed
config, and a trial's suggested values -> the overrides that compose its config."""

from __future__ import annotations

from collections.abc import Mapping

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from sweep.config import ALPHA_RANGE, TAU_RANGE, ConfigError, dotted


def search_space(params: Mapping) -> dict[str, BaseDistribution]:
    """Hydra sweep syntax -> Optuna distributions: interval(lo, hi), tag(log, interval(..)), range(lo, hi,
    step) and choice(a, b, ..)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    for key, text in dotted(
        OmegaConf.to_container(params, resolve=True) if not isinstance(params, dict) else params
    ).items():
        text = str(text)
        try:
            value = parser.parse_override(f"{key}={text}").value()
        except Exception as exc:  # noqa: BLE001 - hydra's grammar errors have several types
            raise ConfigError(
                f"sweep.params.{key}={text!r} is not valid sweep syntax ({str(exc).splitlines()[0]}): "
                "use interval(lo, hi), range(lo, hi, step) or choice(a, b)"
            ) from None
        log_scale = "log" in getattr(value, "tags", set())
        if isinstance(value, IntervalSweep):
            lo, hi = float(value.start), float(value.end)
            if lo > hi:
                raise ConfigError(f"sweep.params.{key}: interval({lo}, {hi}) has low > high: swap the bounds")
            if log_scale and lo <= 0:
                raise ConfigError(f"sweep.params.{key}: a log interval needs low > 0, got {lo}")
            space[key] = FloatDistribution(lo, hi, log=log_scale)
        elif isinstance(value, RangeSweep):
            lo, hi, step = value.start, value.stop, value.step
            if lo >= hi or step <= 0:
                raise ConfigError(f"sweep.params.{key}: range({lo}, {hi}, {step}) is empty: need low < high, step > 0")
            last = lo + step * int(round((hi - lo) / step - 0.5))  # range() excludes its stop
            if all(float(v).is_integer() for v in (lo, hi, step)):
                space[key] = IntDistribution(int(lo), int(last), step=int(step))
            else:
                space[key] = FloatDistribution(float(lo), float(last), step=float(step))
        elif isinstance(value, ChoiceSweep):
            space[key] = CategoricalDistribution([v for v in value.list])
        else:
            raise ConfigError(
                f"sweep.params.{key}={text!r} is a fixed value, not a search range: use "
                "interval(lo, hi), range(lo, hi, step) or choice(a, b), or set it as a plain override"
            )
    if not space:
        raise ConfigError("sweep.params is empty: search at least one value, e.g. weighting.alpha: interval(0, 1)")
    return space


def check_space(cfg: DictConfig, space: Mapping[str, BaseDistribution]) -> None:
    """Every searched key must exist in the composed config (or belong to a searched config group)."""
    groups = {k for k, d in space.items() if isinstance(d, CategoricalDistribution) and "." not in k}
    for key, dist in space.items():
        if key in groups:
            continue
        if key.split(".")[0] not in groups and OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise ConfigError(
                f"sweep.params searches {key!r}, which this config does not have (groups: "
                f"weighting={cfg.weighting.scheme}, loss={cfg.loss.name}): pick a config that has it, "
                "e.g. weighting=power for weighting.alpha, loss=logit_adjusted for loss.tau"
            )
        bounds = {"weighting.alpha": ALPHA_RANGE, "loss.tau": TAU_RANGE, "loss.posthoc_tau": TAU_RANGE}.get(key)
        if bounds and isinstance(dist, FloatDistribution | IntDistribution):
            if dist.low < bounds[0] or dist.high > bounds[1]:
                raise ConfigError(
                    f"sweep.params.{key} searches [{dist.low}, {dist.high}], outside the allowed "
                    f"[{bounds[0]}, {bounds[1]}]: narrow the range"
                )


def trial_overrides(base: list[str], params: Mapping[str, object]) -> list[str]:
    """Group choices (loss=logit_adjusted) first, then values; ++ so that a value of a searched group applies."""
    groups = [f"{k}={v}" for k, v in params.items() if "." not in k]
    values = [f"++{k}={v!r}" if isinstance(v, float) else f"++{k}={v}" for k, v in params.items() if "." in k]
    return [*base, *groups, *values]


def suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, object]:
    out = {}
    for key, d in space.items():
        if isinstance(d, FloatDistribution):
            out[key] = trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)
        elif isinstance(d, IntDistribution):
            out[key] = trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
        else:
            out[key] = trial.suggest_categorical(key, d.choices)
    return out
