"""One trial: its objectives and constraints, and the Objective that composes its config (search/space.py), trains
it, logs a nested MLflow child run, and with sweep.pruner=halving scores it at its rungs (search/halving.py)."""

from __future__ import annotations

import os
import signal
import socket
from contextlib import contextmanager

import numpy as np
import optuna
from omegaconf import DictConfig

from sweep.config import ConfigError, load_trial_config
from sweep.models.metrics import bootstrap
from sweep.retry import defer_interrupt
from sweep.search.halving import PRUNED_ATTR, Pruned, halving
from sweep.search.space import suggest, trial_overrides
from sweep.tracking import Tracker, log_result, redact

OBJECTIVES = ("val_accuracy", "val_macro_f1")  # the default; sweep.objectives may add coverage
CHOICES = (["accuracy", "macro_f1"], ["accuracy", "macro_f1", "coverage"])
INTERRUPTED: list[int] = []


def objective_names(cfg: DictConfig) -> tuple[str, ...]:
    """The study's objectives from sweep.objectives, as metric names (val_accuracy, val_macro_f1[,
    val_coverage]): accuracy and macro-F1 always first (the plots, pick and the export read them there),
    coverage (classes with F1 > 0) optionally third. Checks sweep.constraints on the way."""
    names = list(cfg.sweep.get("objectives") or CHOICES[0])
    if names not in CHOICES:
        raise ConfigError(
            f"sweep.objectives={names} is not supported: use [accuracy,macro_f1] (the default) or "
            "[accuracy,macro_f1,coverage] (coverage: classes with F1 > 0 on validation)"
        )
    constraints(cfg)
    return tuple(f"val_{n}" for n in names)


def constraints(cfg: DictConfig) -> dict[str, float]:
    """sweep.constraints, checked: min_accuracy (a validation accuracy floor, a fraction) and confidence (the
    floor then holds for the one-sided lower bound of sweep.front_boot validation bootstrap resamples)."""
    given = {k: v for k, v in (cfg.sweep.get("constraints") or {}).items() if v is not None}
    unknown = sorted(set(given) - {"min_accuracy", "confidence"})
    if unknown:
        raise ConfigError(f"sweep.constraints.{unknown[0]} is unknown: use sweep.constraints.min_accuracy=0.8")
    out = {}
    for key, inside, bounds, example in (
        ("min_accuracy", lambda v: 0 <= v <= 1, "[0, 1]", 0.8),
        ("confidence", lambda v: 0.5 <= v < 1, "[0.5, 1)", 0.95),
    ):
        if key not in given:
            continue
        try:
            out[key] = float(given[key])
        except (TypeError, ValueError):
            out[key] = float("nan")
        if not inside(out[key]):  # nan fails too
            raise ConfigError(
                f"sweep.constraints.{key}={given[key]!r} is outside {bounds}: give a fraction, "
                f"e.g. sweep.constraints.{key}={example}"
            )
    if "confidence" in out and "min_accuracy" not in out:
        raise ConfigError("sweep.constraints.confidence needs a floor: add sweep.constraints.min_accuracy=0.8")
    if "confidence" in out:
        out["n_boot"] = int(cfg.sweep.get("front_boot", 1000))
    return out


def accuracy_constraint(rule: dict[str, float], accuracy: float, y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Optuna's constraint value (feasible when <= 0): the floor minus the validation accuracy, or, with
    rule["confidence"], minus its one-sided lower bound (plain bootstrap of the validation split, as `make pick`
    does: the same resamples, since both draw them from seed 0)."""
    if "confidence" in rule:
        samples = bootstrap(y, {"p": pred}, k, n_boot=int(rule["n_boot"]))["p"]["accuracy"]
        accuracy = float(np.quantile(samples, 1 - rule["confidence"]))
    return rule["min_accuracy"] - accuracy


def trial_error(exc: BaseException) -> str:
    """The reason a trial failed, as its user attr and run tag say it: the error's first line, redacted."""
    return redact(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")[:500]


def raise_interrupt(signum, frame):
    """SIGINT and SIGTERM: trial failed, its run KILLED, sweep stopped. Remember the signal: an exception
    raised inside torch's C++ code can come out as another exception type."""
    INTERRUPTED.append(signum)
    if defer_interrupt(signum):  # inside an MLflow / Optuna storage call: raised as soon as it returns
        return
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def interrupts():
    """SIGINT and SIGTERM raise KeyboardInterrupt (trial failed, run KILLED), also where SIGINT was ignored when the
    process started (`make sweep &` in a script): one worker or the launcher of many, the same."""
    previous = {sig: signal.signal(sig, raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Objective:
    """Compose the trial's config, train, log a nested child run; return the objectives (val accuracy,
    val macro-F1[, val coverage]) and record the accuracy floor of sweep.constraints for the sampler."""

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
        self.objectives, self.rule = objective_names(cfg), constraints(cfg)
        self.halving = halving(cfg)

    def _hooks(self, trial: optuna.Trial, run_id: str, cfg: DictConfig):
        """A fine-tune's hooks: the shared prefix tracked as one MLflow run (kind=prefix) by the process that
        trains it; with sweep.pruner=halving, each rung scored, logged as metric history and decided."""
        if cfg.model.get("kind") != "finetune":
            return None, None
        from sweep.models.finetune import Hooks

        def on_prefix(meta: dict) -> str:
            prefix = self.tracker.start_run(
                f"prefix-{meta['key'][:8]}",
                parent_run_id=self.parent,
                tags={"kind": "prefix", "study_name": trial.study.study_name, "prefix_key": meta["key"]},
            )
            self.tracker.log_params(
                prefix,
                {
                    "reweight_from": str(cfg.model.get("reweight_from")),
                    "steps": str(meta["step"]),
                    "of_total_steps": str(meta["total"]),
                    "trained_in_trial": str(trial.number),
                },
            )
            self.tracker.log_metrics(prefix, {"prefix_seconds": float(meta["seconds"])})
            self.tracker.end_run(prefix)
            return prefix

        hooks = Hooks(rungs=self.halving.fractions if self.halving else (), on_prefix=on_prefix)
        if self.halving is None:
            return hooks, None
        reached = [0]

        def on_score(step: int, scalars: dict) -> None:
            self.tracker.log_metrics(
                run_id, {f"val_{k}": scalars[k] for k in ("accuracy", "macro_f1", "coverage")}, step
            )
            values = [scalars[name.removeprefix("val_")] for name in self.objectives]
            reached[0] += 1
            if not self.halving.decide(trial, reached[0], step, values):
                raise Pruned(step, reached[0])

        return hooks, on_score

    def _branched(self, run_id: str, hooks, result=None) -> None:
        """Tag the run with the prefix it branched from: its own, or, from the logits cache, its logits' trial's."""
        prefix = (hooks.info.get("prefix") or {}).get("run_id") if hooks is not None else None
        prefix = prefix or (result.info.get("branched_from") if result is not None else None)
        if prefix:
            self.tracker.set_tags(run_id, {"branched_from": prefix})

    def _start_run(self, trial: optuna.Trial, params: dict) -> str:
        from sweep.search.placement import placement_tags

        tags = {"kind": "trial", "trial": str(trial.number), "study_name": trial.study.study_name}
        tags |= placement_tags()  # host, ray_node_id, cuda_visible_devices: where it ran
        tags |= {f"param.{k}": str(v) for k, v in params.items()}
        return self.tracker.start_run(f"trial-{trial.number}", parent_run_id=self.parent, tags=tags)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        from sweep.models.train import run

        params = suggest(trial, self.space)
        overrides = trial_overrides(self.base, params)
        trial.set_user_attr("overrides", [redact(o) for o in overrides])  # the journal is shared: no passwords
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("sampler_seed", self.sampler_seed)
        try:
            run_id = self._start_run(trial, params)
        except Exception as exc:  # the server away when the trial begins: the trial still says why it failed
            trial.set_user_attr("error", trial_error(exc))
            raise
        trial.set_user_attr("mlflow_run_id", run_id)
        try:
            cfg = load_trial_config(self.base, params)  # = load_config(overrides), composed once
            hooks, on_score = self._hooks(trial, run_id, cfg)
            try:
                result = run(cfg, hooks, on_score)
            except Pruned:
                self._branched(run_id, hooks)
                raise
            self._branched(run_id, hooks, result)
            if on_score is not None and "steps" in hooks.info:  # the last rung: the trial's end
                final = {k: float(result.metrics[k]) for k in ("val_accuracy", "val_macro_f1", "val_coverage")}
                self.tracker.log_metrics(run_id, final, int(hooks.info["steps"]))
            log_result(self.tracker, run_id, cfg, result, test_metrics=False, params={"trial": str(trial.number)})
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
        except Pruned as stop:  # not a failure: the run is FINISHED, the trial PRUNED, never on the front
            trial.set_user_attr(PRUNED_ATTR, stop.step)
            self.tracker.set_tags(run_id, {PRUNED_ATTR: str(stop.step)})
            self.tracker.end_run(run_id)
            raise optuna.TrialPruned(str(stop)) from None
        except BaseException as exc:
            interrupted = bool(INTERRUPTED) or not isinstance(exc, Exception)
            error = "interrupted (signal)" if interrupted else trial_error(exc)
            trial.set_user_attr("error", error)
            self.tracker.set_tags(run_id, {"error": error})
            self.tracker.end_run(run_id, "KILLED" if interrupted else "FAILED")
            if interrupted and isinstance(exc, Exception):
                raise KeyboardInterrupt(error) from exc
            raise
        if "min_accuracy" in self.rule:  # Optuna 5: the sampler steers towards feasible trials
            value = accuracy_constraint(
                self.rule,
                float(result.metrics["val_accuracy"]),
                result.splits.labels["val"],
                result.predictions["val"],
                result.splits.num_classes,
            )
            trial.set_constraint("min_accuracy", value)
            self.tracker.log_metrics(run_id, {"constraint_min_accuracy": value})
        self.tracker.end_run(run_id)
        return tuple(float(result.metrics[name]) for name in self.objectives)
