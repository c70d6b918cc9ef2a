"""The run's other groups typed: weighting and loss by their scheme / name, the sweep (the study, workers,
pruner, launcher, constraints, the front's noise), tracking, paths, and the root Config that holds them all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sweep.schema.build import ConfigError, build, schema, spec
from sweep.schema.data import Data, data_config
from sweep.schema.model import Model, model_config

ALPHA_RANGE = (0.0, 2.0)
TAU_RANGE = (0.0, 5.0)
SAMPLERS = ("tpe", "nsga2", "random")
OBJECTIVES = (("accuracy", "macro_f1"), ("accuracy", "macro_f1", "coverage"))
WINDOW = 86_400  # a day: the longest retry window or heartbeat taken


@schema
class Weighting:
    scheme: Literal["power", "effective_number", "none"] = spec(
        msg="{key}={value!r} is unknown: use weighting=none, power or effective_number"
    )


@schema
class Power(Weighting):
    alpha: float = spec(*ALPHA_RANGE)


@schema
class EffectiveNumber(Weighting):
    beta: float = spec(0.0, 1.0, hi_open=True)


@schema
class Loss:
    name: Literal["ce", "logit_adjusted"] = spec(msg="{key}={value!r} is unknown: use loss=ce or loss=logit_adjusted")
    posthoc_tau: float = spec(*TAU_RANGE)


@schema
class LogitAdjusted(Loss):
    tau: float = spec(*TAU_RANGE)


@schema
class Halving:  # multi-objective asynchronous successive halving of the fine-tunes
    eta: int = spec(2, fix="keep the top 1/eta at each rung, e.g. sweep.halving.eta=3")
    min_fraction: float = spec(0.0, 1.0, lo_open=True, hi_open=True, fix="the first rung, e.g. 0.111 (1/9)")


@schema
class Ray:
    address: str
    gpus_per_worker: float = spec(0, fix="0 on CPU; 0.5 puts two workers on one GPU")
    cpus_per_worker: float = spec(0, lo_open=True, fix="e.g. sweep.ray.cpus_per_worker=1")


FRACTION = "{key}={value!r} is outside %s: give a fraction, e.g. {key}=%s"


@schema
class Constraints:
    min_accuracy: float | None = spec(0.0, 1.0, msg=FRACTION % ("[0, 1]", 0.8), fix="give a fraction, e.g. 0.8")
    confidence: float | None = spec(0.5, 1.0, hi_open=True, msg=FRACTION % ("[0.5, 1)", 0.95), fix="e.g. 0.95")


@schema
class Sweep:
    study_name: str
    n_trials: int = spec(0)
    total_trials: int | None = spec(0)
    sampler: Literal["tpe", "nsga2", "random"]
    seed: int = spec(0)
    storage: str | None
    workers: int = spec(1, 256, fix="each is a process on this host: use <= 256 per host")
    max_failures_in_a_row: int | None = spec(0)
    cv_folds: int = spec(1, 20)
    progress: bool
    worker_index: int = spec(0)
    heartbeat_interval: float = spec(1, WINDOW)
    storage_retry_window_s: float = spec(0, WINDOW)
    gpus: Any  # null, 3, "0,1,2" or [0, 1, 2]: gpu_list
    objectives: tuple[str, ...]
    pruner: Literal["none", "halving"]
    halving: Halving
    launcher: Literal["local", "ray"]
    ray: Ray
    constraints: Constraints
    front_boot: int = spec(1, fix="validation resamples behind p_front, e.g. sweep.front_boot=1000")
    tied_p_front: float = spec(0.0, 1.0, lo_open=True, fix="a share of resamples, e.g. sweep.tied_p_front=0.1")
    params: dict[str, Any] | None  # Hydra's sweep syntax: parsed into distributions by search/objective.py
    baselines: dict[str, Any] | None
    reference: str | None


@schema
class Tracking:
    tracking_uri: str
    artifact_root: str
    experiment: str
    retry_window_s: float = spec(0, WINDOW)


@schema
class Paths:
    root: str
    data_dir: str
    cache_dir: str
    mlruns_dir: str


@schema
class Config:
    data: Data
    model: Model
    weighting: Weighting
    loss: Loss
    sweep: Sweep
    tracking: Tracking
    paths: Paths
    task_name: str
    seed: int = spec(0)


def gpu_list(value) -> list[str] | None:
    """sweep.gpus as device ids: null (every visible GPU), 3, "0,1,2" or [0, 1, 2]."""
    if value is None:
        return None
    listed = hasattr(value, "__iter__") and not isinstance(value, str | bytes)  # a list, tuple or ListConfig
    items = list(value) if listed else str(value).split(",")
    ids = [str(i).strip() for i in items]
    if not ids or not all(i.isdigit() for i in ids):
        raise ConfigError(f"sweep.gpus={value!r} is not a list of GPU ids: use e.g. sweep.gpus=0,1,2,3 or null (all)")
    return ids


def _group(node: Mapping, key: str) -> Mapping:
    if key not in node:
        from sweep.schema.build import missing_key

        raise missing_key(key)
    value = node[key]
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}={value!r} is not a group: pick an option, e.g. {key}=<name> (conf/{key}/)")
    return value


def sweep_config(node: Mapping) -> Sweep:
    sweep = build(Sweep, node, "sweep")
    gpu_list(sweep.gpus)
    if sweep.objectives not in OBJECTIVES:
        raise ConfigError(
            f"sweep.objectives={list(sweep.objectives)} is not supported: use [accuracy,macro_f1] (the default) or "
            "[accuracy,macro_f1,coverage] (coverage: classes with F1 > 0 on validation)"
        )
    given = {k for k, v in node["constraints"].items() if v is not None}
    if unknown := sorted(given - {"min_accuracy", "confidence"}):
        raise ConfigError(f"sweep.constraints.{unknown[0]} is unknown: use sweep.constraints.min_accuracy=0.8")
    if sweep.constraints.confidence is not None and sweep.constraints.min_accuracy is None:
        raise ConfigError("sweep.constraints.confidence needs a floor: add sweep.constraints.min_accuracy=0.8")
    return sweep


def config(node: Mapping) -> Config:
    """The whole composed config (plain containers, resolved) as a Config: every group checked, in order."""
    weighting = _group(node, "weighting")
    scheme = build(Weighting, weighting, "weighting").scheme
    loss = _group(node, "loss")
    name = build(Loss, loss, "loss").name
    groups = {
        "data": data_config(_group(node, "data")),
        "model": model_config(_group(node, "model")),
        "weighting": build({"power": Power, "effective_number": EffectiveNumber}.get(scheme, Weighting), weighting,
                           "weighting"),
        "loss": build(LogitAdjusted if name == "logit_adjusted" else Loss, loss, "loss"),
        "sweep": sweep_config(_group(node, "sweep")),
        "tracking": build(Tracking, _group(node, "tracking"), "tracking"),
        "paths": build(Paths, _group(node, "paths"), "paths"),
    }  # fmt: skip
    return build(Config, {**node, **groups}, "")
