"""How a plain mapping becomes a typed group: ConfigError, a field's rule (range, pattern, fix) and `build`,
which converts and checks every field of a frozen dataclass, one line per bad value naming key, value and fix."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

schema = dataclasses.dataclass(frozen=True, kw_only=True)  # every group: immutable, its fields named


class ConfigError(ValueError):
    """A bad config value or override; the message names the value and the fix."""


def spec(lo=None, hi=None, *, lo_open=False, hi_open=False, fix="", msg="", pattern="", default=dataclasses.MISSING):
    """A field's rule: the allowed range (closed unless *_open), a regex for text, the fix its one line ends
    with, or `msg` ({key}, {value}) in place of the range sentence. The yaml files are the source of defaults:
    `default` only for a key that some option files leave out."""
    rule = {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open, "fix": fix, "msg": msg, "pattern": pattern}
    return dataclasses.field(default=default, metadata=rule)


def missing_key(key: str) -> ConfigError:
    """The one line for a config key that is not there (deleted with ~, or never set), naming it."""
    return ConfigError(
        f"{key} is missing from the composed config (deleted with ~{key}?): put it back, e.g. drop the "
        "~ override, or set it as conf/ has it (python -m sweep --help lists the groups)"
    )


@functools.cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(cls, node: Mapping, prefix: str):
    """cls from the plain mapping `node` (the group at `prefix`), every field converted and checked."""
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name not in node:
            if f.default is dataclasses.MISSING:
                raise missing_key(key)
            continue
        values[f.name] = convert(key, node[f.name], _hints(cls)[f.name], f.metadata)
    return cls(**values)


def convert(key: str, value, tp, rule: Mapping) -> Any:
    """One value as type tp (int, float, bool, str, Literal, X | None, tuple[str, ...], dict, a group)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    fix = rule.get("fix", "")
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None and len(inner) < len(args):
            return None
        if len(inner) == 1:
            return convert(key, value, inner[0], rule)
        for i, option in enumerate(inner):  # the first type that takes it; the last one's error otherwise
            try:
                return convert(key, value, option, rule)
            except ConfigError:
                if i == len(inner) - 1:
                    raise
    if value is None and tp is not Any:
        raise ConfigError(f"{key} is not set: {fix or f'set it, e.g. {key}=...'}")
    if origin is Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise ConfigError(rule.get("msg", "").format(key=key, value=value) or (
            f"{key}={value!r} is unknown: use one of {', '.join(map(str, args))}"))  # fmt: skip
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # a group already built
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}={value!r} is not a group of keys: set {key}.<key>=... as conf/ has them")
        return build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} is not true or false: use {key}=true or {key}=false")
        return value
    if tp is int:
        return _checked(key, _whole(key, value, rule), value, rule)
    if tp is float:
        return _checked(key, _number(key, value, rule), value, rule)
    if tp is str:
        if isinstance(value, bool | Mapping | list | tuple):
            raise ConfigError(f"{key}={value!r} is not text: {fix or f'give one value, e.g. {key}=name'}")
        text = str(value)
        if rule.get("pattern") and not re.fullmatch(rule["pattern"], text):
            raise ConfigError(f"{key}={value!r} is unknown: {fix}")
        return text
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}={value!r} is not a list: {fix or f'give one, e.g. {key}=[a,b]'}")
        return tuple(convert(f"{key}[{i}]", v, args[0], rule) for i, v in enumerate(value))
    if tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}={value!r} is not a group of keys: {fix or 'see conf/ for its shape'}")
        return dict(value)
    return value


def _bounds(rule: Mapping) -> str:
    return f"{'(' if rule['lo_open'] else '['}{rule['lo']}, {rule['hi']}{')' if rule['hi_open'] else ']'}"


def _number(key: str, value, rule: Mapping) -> float:
    """An int or float (text is not: the stages read the same value from the DictConfig, so '0.5' stays out)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    two_sided = rule.get("lo") is not None and rule.get("hi") is not None
    fix = rule.get("fix") or (f"give a value in {_bounds(rule)}" if two_sided else f"give one, e.g. {key}=1")
    raise ConfigError(f"{key}={value!r} is not a number: {fix}")


def _whole(key: str, value, rule: Mapping) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    lo, hi = rule.get("lo"), rule.get("hi")
    want = f"one in {_bounds(rule)}" if lo is not None and hi is not None else f"one >= {lo if lo is not None else 0}"
    message = rule.get("msg", "").format(key=key, value=value)
    raise ConfigError(message or f"{key}={value!r} is not a whole number: give {want}")


def _checked(key: str, v: float, raw, rule: Mapping):
    """v inside the rule's range (a non-finite number never is), or the one line saying so."""
    lo, hi, lo_open, hi_open = rule.get("lo"), rule.get("hi"), rule.get("lo_open"), rule.get("hi_open")
    ok = math.isfinite(v) and (lo is None or (v > lo if lo_open else v >= lo))
    if ok and (hi is None or (v < hi if hi_open else v <= hi)):
        return v
    if rule.get("msg"):
        raise ConfigError(rule["msg"].format(key=key, value=raw))
    fix = rule.get("fix", "")
    if lo is not None and hi is not None:
        raise ConfigError(f"{key}={v} is outside the allowed range {_bounds(rule)}: {fix or 'pick a value inside it'}")
    side = f"> {lo}" if lo_open else f">= {lo}"
    if lo is None:
        side = f"< {hi}" if hi_open else f"<= {hi}"
    raise ConfigError(f"{key}={v} must be {side}" + (f": {fix}" if fix else ""))
