"""Compose and validate the Hydra config: every bad value fails here, in one line, before any work.
Also the command-line split (own key=value vs Hydra overrides) and the dotted keys of the sweep syntax."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from sweep.memo import CACHE

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

ALPHA_RANGE = (0.0, 2.0)
TAU_RANGE = (0.0, 5.0)
SAMPLERS = ("tpe", "nsga2", "random")
SOURCES = ("cfpb_sample", "csv", "hf", "synthetic")
MODEL_KINDS = ("head", "finetune", "logits")
GROUPS = ("data", "model", "weighting", "loss", "sweep", "tracking", "paths", "seed", "task_name")  # top-level keys


class ConfigError(ValueError):
    """A bad config value or override; the message names the value and the fix."""


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def load_config(overrides: Sequence[str] = (), conf_dir: Path | None = None) -> DictConfig:
    """Compose conf/config.yaml with Hydra overrides, make paths absolute and validate."""
    conf_dir = Path(conf_dir or CONF_DIR)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError, TypeError) as exc:  # `weighting=0`: a ValueError
        hint = _options_hint(conf_dir, exc)
        raise ConfigError(f"bad override in {list(overrides)}: {_first_line(exc)} ({hint})") from None
    finally:
        GlobalHydra.instance().clear()
    try:
        cfg.paths.root = str(Path(cfg.paths.root).expanduser().resolve())
        _model_sweep(cfg, overrides)
        validate(cfg)
    except MISSING_KEY as exc:  # a key or group deleted with ~, e.g. ~weighting
        raise missing_key(exc) from None
    return cfg


MISSING_KEY = (ConfigAttributeError, ConfigKeyError)


def missing_key(exc: BaseException) -> ConfigError:
    """The one line for a config key that is not there (deleted with ~, or never set), naming it."""
    key = getattr(exc, "full_key", None) or _first_line(exc)
    return ConfigError(
        f"{key} is missing from the composed config (deleted with ~{key}?): put it back, e.g. drop the "
        "~ override, or set it as conf/ has it (python -m sweep --help lists the groups)"
    )


def _model_sweep(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """A model with its own search space (model.sweep; model=precomputed_logits searches only the post-hoc tau)
    replaces sweep.params / sweep.baselines with it; what the command line sets under them still applies."""
    for key, own in (cfg.model.get("sweep") or {}).items():
        names = [(o.lstrip("+~").partition("=")[0], o.startswith("~")) for o in overrides]
        if any(name == f"sweep.{key}" for name, _ in names):  # replaced whole on the command line: that wins
            continue
        node = OmegaConf.create(OmegaConf.to_container(own, resolve=False))
        for name, deleted in names:
            if not name.startswith(f"sweep.{key}."):
                continue
            path, _, last = name[len(f"sweep.{key}.") :].rpartition(".")
            parent = OmegaConf.select(node, path) if path else node
            if deleted and parent is not None:
                parent.pop(last, None)
            elif not deleted:
                OmegaConf.update(node, f"{path}.{last}" if path else last, OmegaConf.select(cfg, name), force_add=True)
        with open_dict(cfg.sweep):
            cfg.sweep[key] = node


def _check_fixed_logits(cfg: DictConfig) -> None:
    """model.kind=logits: the logits are given, so only the post-hoc tau can change a prediction; class weights
    and a training tau would need training."""
    w, name = cfg.weighting, cfg.model.name
    if (w.scheme == "power" and float(w.alpha) > 0) or w.scheme == "effective_number":
        what = f"weighting.alpha={w.alpha}" if w.scheme == "power" else "weighting=effective_number"
        raise ConfigError(
            f"{what} with model={name}: class weights need training, and fixed logits are not trained; use "
            "weighting.alpha=0, or model=precomputed (your embeddings, a head fitted per trial) to search them"
        )
    if cfg.loss.name == "logit_adjusted":
        raise ConfigError(f"loss=logit_adjusted with model={name}: a training tau needs training; use loss=ce")
    searched = dotted(OmegaConf.to_container(cfg.sweep.get("params") or {}, resolve=True))
    trained = [k for k in searched if k.split(".")[0] in ("weighting", "loss", "model") and k != "loss.posthoc_tau"]
    if trained:
        raise ConfigError(
            f"sweep.params.{trained[0]} is searched with model={name}: fixed logits leave only "
            "loss.posthoc_tau to search; drop that override"
        )


_COMPOSED: dict[tuple, DictConfig] = CACHE.slot("config.composed")


def load_trial_config(base: Sequence[str], params: Mapping[str, object]) -> DictConfig:
    """A trial's config, the same as load_config([*base, *group choices, *++key=value]): Hydra composes
    each combination of searched groups once, then the searched values are set on a copy (composing took
    0.4-0.5 s a trial, more than a warm head fit)."""
    import copy

    groups = tuple(f"{k}={v}" for k, v in params.items() if "." not in k)
    key = (tuple(base), groups)
    if key not in _COMPOSED:
        _COMPOSED[key] = load_config([*base, *groups])
    cfg = copy.deepcopy(_COMPOSED[key])
    for k, v in params.items():
        if "." in k:
            OmegaConf.update(cfg, k, v, force_add=True)
    # The composed config resolved when load_config validated it; plain values set on it cannot break that
    # (the resolve check was ~45 ms of a ~250 ms trial on the default data): only the values are checked again.
    validate(cfg, resolve=any(isinstance(v, str) and "${" in v for v in params.values()))
    return cfg


def _options_hint(conf_dir: Path, exc: BaseException) -> str:
    """For an unknown group option, list the ones that exist."""
    import re

    if "requires --multirun" in str(exc):
        return "quote the search range so Hydra keeps it as text: 'sweep.params.weighting.alpha=\"interval(0,1)\"'"
    m = re.search(r"Could not find '(\w+)/", str(exc))
    if m and (conf_dir / m.group(1)).is_dir():
        names = sorted(p.stem for p in (conf_dir / m.group(1)).glob("*.yaml"))
        return f"available: {m.group(1)}={', '.join(names)}"
    return "see the options under conf/, e.g. model=tfidf_linear weighting.alpha=0.5"


def _check_range(name: str, value, lo: float, hi: float, hi_open: bool = False) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not a number: give a value in [{lo}, {hi}]") from None
    if not (lo <= v < hi if hi_open else lo <= v <= hi):
        bracket = ")" if hi_open else "]"
        raise ConfigError(f"{name}={v} is outside the allowed range [{lo}, {hi}{bracket}: pick a value inside it")


def _check_positive(name: str, value, fix: str) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not a number: {fix}") from None
    if not (v > 0 and v < float("inf")):
        raise ConfigError(f"{name}={v} must be > 0: {fix}")


def validate(cfg: DictConfig, resolve: bool = True) -> None:
    """Check every value a run depends on; raise ConfigError naming the bad value and the fix. resolve=False
    skips the interpolation and missing-value check (for a trial's copy of an already validated config)."""
    missing = []
    try:
        if resolve:
            OmegaConf.resolve(OmegaConf.create(OmegaConf.to_container(cfg, resolve=False)))
            missing = sorted(OmegaConf.missing_keys(cfg))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config does not resolve: {_first_line(exc)}") from None
    if missing:
        raise ConfigError(
            f"required config value(s) not set: {', '.join(missing)} (set them as overrides, e.g. {missing[0]}=...)"
        )
    if cfg.data.source not in SOURCES:
        raise ConfigError(f"data.source={cfg.data.source!r} is unknown: use one of {', '.join(SOURCES)}")
    for key in ("val_fraction", "test_fraction"):
        _check_range(f"data.{key}", cfg.data.get(key, 0.1), 0.01, 0.5)
    if cfg.data.get("imbalance_ratio") is not None:
        _check_range("data.imbalance_ratio", cfg.data.imbalance_ratio, 1.0, 1e6)
    if cfg.data.get("small_classes", "drop") not in ("drop", "merge"):
        raise ConfigError(f"data.small_classes={cfg.data.small_classes!r} is unknown: use drop or merge")
    if cfg.model.get("kind") not in MODEL_KINDS:
        raise ConfigError(f"model.kind={cfg.model.get('kind')!r} is unknown: use one of {', '.join(MODEL_KINDS)}")
    if cfg.model.kind == "head":
        _check_positive(
            "model.head.l2",
            cfg.model.head.l2,
            "an unpenalized head on separable features has no "
            "optimum; use e.g. 1e-5 (`make l2` chooses it on validation)",
        )
        _check_positive("model.head.gtol", cfg.model.head.get("gtol"), "use e.g. 1e-6")
        _check_range("model.head.max_iter", cfg.model.head.max_iter, 1, 100_000)
    scheme = cfg.weighting.scheme
    if scheme == "power":
        _check_range("weighting.alpha", cfg.weighting.alpha, *ALPHA_RANGE)
    elif scheme == "effective_number":
        _check_range("weighting.beta", cfg.weighting.beta, 0.0, 1.0, hi_open=True)
    elif scheme != "none":
        raise ConfigError(f"weighting.scheme={scheme!r} is unknown: use weighting=none, power or effective_number")
    if cfg.loss.name not in ("ce", "logit_adjusted"):
        raise ConfigError(f"loss.name={cfg.loss.name!r} is unknown: use loss=ce or loss=logit_adjusted")
    if cfg.loss.name == "logit_adjusted":
        _check_range("loss.tau", cfg.loss.tau, *TAU_RANGE)
    _check_range("loss.posthoc_tau", cfg.loss.get("posthoc_tau", 0.0), *TAU_RANGE)
    if cfg.model.kind == "logits":
        _check_fixed_logits(cfg)
    if cfg.sweep.sampler not in SAMPLERS:
        raise ConfigError(f"sweep.sampler={cfg.sweep.sampler!r} is unknown: use one of {', '.join(SAMPLERS)}")
    folds = cfg.sweep.get("cv_folds", 1)
    _check_range("sweep.cv_folds", folds, 1, 20)
    if int(folds) > 1 and cfg.model.kind != "head":
        raise ConfigError(
            f"sweep.cv_folds={folds} needs a head model (tfidf_linear, minilm_head): a fine-tune "
            "per fold per trial is too costly; use sweep.cv_folds=1"
        )
    ints = {"sweep.n_trials": 0, "sweep.workers": 1, "sweep.total_trials": 0, "seed": 0, "data.generator_seed": 0}
    ints["sweep.max_failures_in_a_row"] = 0
    optional = ("sweep.total_trials", "data.generator_seed", "sweep.max_failures_in_a_row")
    for key, lo in ints.items():
        _check_int(key, OmegaConf.select(cfg, key, default=None), lo, optional=key in optional)
    for key in ("sweep.storage_retry_window_s", "tracking.retry_window_s", "sweep.heartbeat_interval"):
        _check_range(key, OmegaConf.select(cfg, key, default=120), 0 if "retry" in key else 1, 86_400)
    if int(cfg.sweep.workers) > 256:  # each is a process on this machine
        raise ConfigError(f"sweep.workers={cfg.sweep.workers} is more than 256 local processes: use <= 256 per host")
    gpu_list(cfg.sweep.get("gpus"))


def _check_int(name: str, value, lo: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise ConfigError(f"{name}={value!r} is not a whole number: give one >= {lo}")
    if int(value) < lo:
        raise ConfigError(f"{name}={value} must be >= {lo}")


def gpu_list(value) -> list[str] | None:
    """sweep.gpus as device ids: null (every visible GPU), 3, "0,1,2" or [0, 1, 2]."""
    if value is None:
        return None
    items = list(value) if OmegaConf.is_list(value) or isinstance(value, list | tuple) else str(value).split(",")
    ids = [str(i).strip() for i in items]
    if not ids or not all(i.isdigit() for i in ids):
        raise ConfigError(f"sweep.gpus={value!r} is not a list of GPU ids: use e.g. sweep.gpus=0,1,2,3 or null (all)")
    return ids


def dotted(node, prefix: str = "") -> dict[str, object]:
    """Sweep syntax to dotted keys: {"loss": {"_group_": x, "tau": y}} -> {"loss": x, "loss.tau": y}."""
    if isinstance(node, Mapping):
        out: dict[str, object] = {}
        for k, v in node.items():
            key = prefix if k == "_group_" else (f"{prefix}.{k}" if prefix else str(k))
            out.update(dotted(v, key))
        return out
    return {prefix: node}


def split_args(argv: list[str], keys: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """`key=value` for a command's own keys; everything else is a Hydra override (storage, tracking...)."""
    mine, rest = {}, []
    for a in argv:
        k, sep, v = a.partition("=")
        if sep and k in keys:
            mine[k] = v
        elif sep and "." not in k and "=" not in k and not k.startswith("+") and k not in GROUPS:
            raise ConfigError(f"unknown argument {a!r}: use {', '.join(f'{x}=...' for x in keys)} or Hydra overrides")
        else:
            rest.append(a)
    return mine, rest
