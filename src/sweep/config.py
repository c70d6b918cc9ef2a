"""Compose and validate the Hydra config: every bad value fails here (validate, against schema/), in one line,
before any work. Also the command-line split (own key=value vs Hydra overrides) and the sweep syntax's keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from sweep.memo import CACHE
from sweep.schema.build import ConfigError
from sweep.schema.build import missing_key as _missing
from sweep.schema.commands import command_config, keys
from sweep.schema.data import SOURCES  # noqa: F401 - re-exported
from sweep.schema.model import KINDS as MODEL_KINDS  # noqa: F401 - re-exported
from sweep.schema.model import DecoupledModel
from sweep.schema.study import ALPHA_RANGE, SAMPLERS, TAU_RANGE, Config, gpu_list  # noqa: F401 - re-exported
from sweep.schema.study import config as typed_config

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("data", "model", "weighting", "loss", "sweep", "tracking", "paths", "seed", "task_name")  # top-level keys
MISSING_KEY = (ConfigAttributeError, ConfigKeyError)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def plain(node, resolve: bool = True):
    """A DictConfig / ListConfig as plain dicts and lists (interpolations resolved unless resolve=False); any
    other value as it is. The one place the config becomes plain containers."""
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=resolve)
    return node


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


def missing_key(exc: BaseException) -> ConfigError:
    """The one line for a config key that is not there (deleted with ~, or never set), naming it."""
    return _missing(getattr(exc, "full_key", None) or _first_line(exc))


def _model_sweep(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """A model with its own search space (model.sweep; model=precomputed_logits searches only the post-hoc tau)
    replaces sweep.params / sweep.baselines with it; what the command line sets under them still applies."""
    for key, own in (cfg.model.get("sweep") or {}).items():
        names = [(o.lstrip("+~").partition("=")[0], o.startswith("~")) for o in overrides]
        if any(name == f"sweep.{key}" for name, _ in names):  # replaced whole on the command line: that wins
            continue
        node = OmegaConf.create(plain(own, resolve=False))
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
    searched = dotted(plain(cfg.sweep.get("params") or {}))
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
    if m := re.search(r"Could not override '([\w.]+)'", str(exc)):
        return f"to add a key the config does not have, write ++{m.group(1)}=...; or pick the option that has it"
    m = re.search(r"Could not find '(\w+)/", str(exc))
    if m and (conf_dir / m.group(1)).is_dir():
        names = sorted(p.stem for p in (conf_dir / m.group(1)).glob("*.yaml"))
        return f"available: {m.group(1)}={', '.join(names)}"
    return "see the options under conf/, e.g. model=tfidf_linear weighting.alpha=0.5"


def validate(cfg: DictConfig, resolve: bool = True) -> Config:
    """Check every value a run depends on against schema/ and return the typed config; raise ConfigError naming
    the bad value and the fix. resolve=False skips the missing-value check (for a trial's copy of an already
    validated config)."""
    try:
        node = plain(cfg)  # resolves every interpolation: a bad one fails here
        missing = sorted(OmegaConf.missing_keys(cfg)) if resolve else []
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config does not resolve: {_first_line(exc)}") from None
    if missing:
        raise ConfigError(
            f"required config value(s) not set: {', '.join(missing)} (set them as overrides, e.g. {missing[0]}=...)"
        )
    typed = typed_config(node)
    if typed.model.kind == "finetune" or isinstance(typed.model, DecoupledModel):
        _check_finetune(node["model"])
    if typed.model.kind == "logits":
        _check_fixed_logits(cfg)
    if typed.sweep.cv_folds > 1 and typed.model.kind != "head":
        raise ConfigError(
            f"sweep.cv_folds={typed.sweep.cv_folds} needs a head model (tfidf_linear, minilm_head): a fine-tune "
            "per fold per trial is too costly; use sweep.cv_folds=1"
        )
    return typed


def _check_finetune(model: dict) -> None:
    """The fine-tune's own check (schema/finetune.py: the GPU bench runs it bare) at load, not at trial
    time: model.* of kind=finetune, or decoupled's model.finetune.* less its loss and seed (checked by schema/).
    Imported here only: the fine-tune package loads torch and transformers."""
    from sweep.schema.finetune import resolve_cfg

    stage = model["kind"] == "head"
    own = ("weighting", "tau", "seed")
    settings = {"name": "finetuned", **{k: v for k, v in model["finetune"].items() if k not in own}} if stage else model
    try:
        resolve_cfg(settings)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("model.", "model.finetune.", 1) if stage else str(exc)) from None


def typed(cfg: DictConfig) -> Config:
    """The typed config of an already validated DictConfig (what a stage reads instead of loose keys)."""
    return typed_config(plain(cfg))


def command_args(command: str, argv: list[str]) -> tuple[object, list[str]]:
    """export's / pick's own key=value arguments, checked (schema/commands.py), and the Hydra overrides."""
    given, overrides = split_args(argv, keys(command))
    return command_config(command, given), overrides


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
