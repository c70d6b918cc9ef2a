"""One trial: the search space (Hydra sweep syntax -> Optuna distributions, checked against the config), the
suggested overrides, and the Objective that trains them and logs a nested MLflow child run."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from sweep.config import ALPHA_RANGE, TAU_RANGE, ConfigError, dotted, load_config
from sweep.tracking import Tracker, log_result, redact

OBJECTIVES = ("val_accuracy", "val_macro_f1")
INTERRUPTED: list[int] = []


def raise_interrupt(signum, frame):
    """SIGINT and SIGTERM: trial failed, its run KILLED, sweep stopped. Remember the signal: an exception
    raised inside torch's C++ code can come out as another exception type."""
    INTERRUPTED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


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


class Objective:
    """Compose the trial's config, train, log a nested child run; return (val accuracy, val macro-F1)."""

    def __init__(
        self,
        cfg: DictConfig,
        base_overrides: list[str],
        space,
        tracker: Tracker,
        parent_run_id: str,
        sampler_seed: int = 0,
    ):
        self.cfg, self.base, self.space, self.sampler_seed = cfg, base_overrides, space, sampler_seed
        self.tracker, self.parent = tracker, parent_run_id
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        from sweep.models.train import run

        params = suggest(trial, self.space)
        overrides = trial_overrides(self.base, params)
        trial.set_user_attr("overrides", [redact(o) for o in overrides])  # the journal is shared: no passwords
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("sampler_seed", self.sampler_seed)
        run_id = self.tracker.start_run(
            f"trial-{trial.number}",
            parent_run_id=self.parent,
            tags={
                "kind": "trial",
                "trial": str(trial.number),
                "study_name": trial.study.study_name,
                **{f"param.{k}": str(v) for k, v in params.items()},
            },
        )
        trial.set_user_attr("mlflow_run_id", run_id)
        try:
            cfg = load_config(overrides)
            result = run(cfg)
            log_result(self.tracker, run_id, cfg, result, test_metrics=False)
            self.tracker.log_params(run_id, {"trial": str(trial.number)})
            # no test metric in the study: the export scores the points it exports, nobody picks by test
            metrics = {k: round(float(v), 6) for k, v in result.metrics.items() if not k.startswith("test_")}
            trial.set_user_attr("metrics", metrics)
            if "fit_converged" in result.metrics:  # head models: a fit stopped by its cap is not a result
                trial.set_user_attr("fit_converged", bool(result.metrics["fit_converged"]))
                trial.set_user_attr("fit_iterations", int(result.metrics["fit_iterations"]))
                trial.set_user_attr("fit_grad_max", float(result.metrics["fit_grad_max"]))
            trial.set_user_attr(
                "config",
                {
                    "model": cfg.model.name,
                    "weighting": cfg.weighting.scheme,
                    "alpha": float(cfg.weighting.get("alpha", 0.0)),
                    "loss": cfg.loss.name,
                    "tau": float(cfg.loss.get("tau", 0.0)) if cfg.loss.name == "logit_adjusted" else 0.0,
                    "posthoc_tau": float(cfg.loss.get("posthoc_tau", 0.0)),
                },
            )
            trial.set_user_attr("seconds", round(result.info["seconds"], 3))
            trial.set_user_attr("logits_cache", result.info.get("logits_cache"))
        except BaseException as exc:
            interrupted = bool(INTERRUPTED) or not isinstance(exc, Exception)
            error = (
                "interrupted (signal)"
                if interrupted
                else redact(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")[:500]
            )
            trial.set_user_attr("error", error)
            self.tracker.set_tags(run_id, {"error": error})
            self.tracker.end_run(run_id, "KILLED" if interrupted else "FAILED")
            if interrupted and isinstance(exc, Exception):
                raise KeyboardInterrupt(error) from exc
            raise
        self.tracker.end_run(run_id)
        return result.metrics[OBJECTIVES[0]], result.metrics[OBJECTIVES[1]]
