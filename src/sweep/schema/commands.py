"""The arguments of `python -m sweep export` and `pick` (key=value beside the Hydra overrides) typed: defaults
here, as no yaml holds them; command_args checks them before the command reads its study."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Literal

from sweep.schema.build import ConfigError, build, schema, spec

WHOLE = "{key}={value!r} must be a whole number >= 1, e.g. {key}=%s"
ACCURACY = "give a validation accuracy as a fraction"


@schema
class ExportArgs:
    study: str | None = None  # default: the last study
    out: str | None = None  # default: <paths.root>/pareto.csv
    seeds: int = spec(1, msg=WHOLE % 1, default=1)
    n_boot: int = spec(1, msg=WHOLE % 2000, default=2000)
    bootstrap: Literal["plain", "stratified"] = spec(
        msg="bootstrap={value!r} is unknown: use bootstrap=plain (the default) or bootstrap=stratified", default="plain"
    )
    deploy_prior: str | None = None  # uniform | train | a CSV of class,share
    dense: str = "0"  # anything but 0 or empty: the front over every fit's tau curve


@schema
class PickArgs:
    study: str | None = None
    min_accuracy: float | None = spec(
        0.0,
        1.0,
        fix=f"{ACCURACY}, e.g. min_accuracy=0.8",
        msg="{key}={value} is outside [0, 1], so no point can meet it: " + f"{ACCURACY}, e.g. min_accuracy=0.8 for 80%",
        default=None,
    )
    max_accuracy_loss: float | None = spec(
        0.0,
        fix=f"{ACCURACY}, e.g. max_accuracy_loss=0.01",
        msg="{key}={value} is negative: give the validation accuracy you accept to lose against the reference as "
        "a fraction >= 0, e.g. max_accuracy_loss=0.01 for one point",
        default=None,
    )
    confidence: float | None = spec(
        0.5,
        1.0,
        hi_open=True,
        fix="give a confidence level as a fraction, e.g. confidence=0.95",
        msg="{key}={value} is outside [0.5, 1): give the share of validation resamples on which the constraint "
        "must hold, e.g. confidence=0.95",
        default=None,
    )


COMMANDS = {"export": ExportArgs, "pick": PickArgs}
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _parsed(text: str):
    """A number written as one ("2", "0.8", "1e-2") as an int or float; anything else stays text (nan too)."""
    if not NUMBER.fullmatch(text.strip()):
        return text
    return int(text) if re.fullmatch(r"[-+]?\d+", text.strip()) else float(text)


def keys(command: str) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(COMMANDS[command]))


def command_config(command: str, given: Mapping[str, str]):
    """export's or pick's own key=value arguments (text, as typed on the command line) as their dataclass."""
    args = build(COMMANDS[command], {k: _parsed(v) for k, v in given.items()}, "")
    if command == "pick" and args.min_accuracy is None and args.max_accuracy_loss is None:
        raise ConfigError(
            "give a constraint: min_accuracy=<x> and/or max_accuracy_loss=<x> (against the "
            "unweighted reference, validation accuracy)"
        )
    return args
