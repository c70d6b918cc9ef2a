"""The sweep: an Optuna study (maximize validation accuracy AND macro-F1) driven from Hydra-composed configs,
one MLflow parent run per study and one nested child run per trial.

Why not hydra-optuna-sweeper: its last release pins optuna<3. We drive `study.optimize` ourselves and compose
each trial's config with Hydra's compose API, so a trial is exactly `make train ARGS="<its overrides>"`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from sweep.config import ConfigError, flat_params, load_config
from sweep.pareto import converged, front, plot_front
from sweep.tracking import Tracker, TrackingError, log_result, redact, sqlalchemy_url

log = logging.getLogger(__name__)
OBJECTIVES = ("val_accuracy", "val_macro_f1")
PARENT_ATTR = "mlflow_parent_run_id"
MANAGED_ENV = "SWEEP_MANAGED_WORKER"  # set for workers started by run_workers: the launcher finalizes
SECRET_ENV = {"sweep.storage": "SWEEP_STORAGE", "tracking.tracking_uri": "MLFLOW_TRACKING_URI"}


# ---------------------------------------------------------------- search space and storage


def _flatten(node, prefix: str = "") -> dict[str, object]:
    """{"loss": {"_group_": x, "tau": y}} -> {"loss": x, "loss.tau": y}."""
    if isinstance(node, Mapping):
        out: dict[str, object] = {}
        for k, v in node.items():
            key = prefix if k == "_group_" else (f"{prefix}.{k}" if prefix else str(k))
            out.update(_flatten(v, key))
        return out
    return {prefix: node}


def search_space(params: Mapping) -> dict[str, BaseDistribution]:
    """Hydra sweep syntax -> Optuna distributions: interval(lo, hi), tag(log, interval(..)), range(lo, hi,
    step) and choice(a, b, ..)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    for key, text in _flatten(OmegaConf.to_container(params, resolve=True) if not isinstance(params, dict)
                              else params).items():
        text = str(text)
        try:
            value = parser.parse_override(f"{key}={text}").value()
        except Exception as exc:  # noqa: BLE001 - hydra's grammar errors have several types
            raise ConfigError(f"sweep.params.{key}={text!r} is not valid sweep syntax ({str(exc).splitlines()[0]}): "
                              "use interval(lo, hi), range(lo, hi, step) or choice(a, b)") from None
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
            raise ConfigError(f"sweep.params.{key}={text!r} is a fixed value, not a search range: use "
                              "interval(lo, hi), range(lo, hi, step) or choice(a, b), or set it as a plain override")
    if not space:
        raise ConfigError("sweep.params is empty: search at least one value, e.g. weighting.alpha: interval(0, 1)")
    return space


def check_space(cfg: DictConfig, space: Mapping[str, BaseDistribution]) -> None:
    """Every searched key must exist in the composed config (or belong to a searched config group)."""
    from sweep.config import ALPHA_RANGE, TAU_RANGE

    groups = {k for k, d in space.items() if isinstance(d, CategoricalDistribution) and "." not in k}
    for key, dist in space.items():
        if key in groups:
            continue
        if key.split(".")[0] not in groups and OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise ConfigError(f"sweep.params searches {key!r}, which this config does not have (groups: "
                              f"weighting={cfg.weighting.scheme}, loss={cfg.loss.name}): pick a config that has it, "
                              "e.g. weighting=power for weighting.alpha, loss=logit_adjusted for loss.tau")
        bounds = {"weighting.alpha": ALPHA_RANGE, "loss.tau": TAU_RANGE, "loss.posthoc_tau": TAU_RANGE}.get(key)
        if bounds and isinstance(dist, FloatDistribution | IntDistribution):
            if dist.low < bounds[0] or dist.high > bounds[1]:
                raise ConfigError(f"sweep.params.{key} searches [{dist.low}, {dist.high}], outside the allowed "
                                  f"[{bounds[0]}, {bounds[1]}]: narrow the range")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"sweep.sampler={name!r} is unknown: use tpe, nsga2 or random")


def storage_location(cfg: DictConfig) -> str:
    """The storage URL (or journal file path), unredacted: never log it without redact()."""
    if cfg.sweep.storage:
        return str(cfg.sweep.storage)
    return str(Path(cfg.paths.mlruns_dir) / "optuna" / "journal.log")


def open_storage(cfg: DictConfig) -> optuna.storages.BaseStorage:
    """Journal file by default (safe for several local processes); an RDB URL (PostgreSQL) for many machines."""
    location = storage_location(cfg)
    if "://" not in location:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK):
                raise PermissionError(13, "not writable")
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ConfigError(f"cannot use Optuna storage {path} ({exc.strerror or exc}): make {path.parent} "
                              "writable or set sweep.storage") from None
    engine_kwargs = {}
    if location.startswith("postgresql"):
        engine_kwargs = {"connect_args": {"connect_timeout": 5}, "pool_pre_ping": True}
    elif location.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        hb = int(cfg.sweep.get("heartbeat_interval", 30))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(sqlalchemy_url(location), engine_kwargs=engine_kwargs,
                                              heartbeat_interval=hb, grace_period=2 * hb)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for "cannot connect"
        msg = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise ConfigError(f"Optuna storage {redact(location)} is not reachable ({msg[:200]}): start the "
                          "database or fix sweep.storage") from None


# ---------------------------------------------------------------- MLflow parent and reconciliation


def ensure_parent(study: optuna.Study, tracker: Tracker, cfg: DictConfig, creator: bool = False,
                  wait_s: float = 120.0) -> str:
    """One parent run per study, its id kept in the study: a resumed study or a new worker reuses it.
    The process that created the study creates the parent; the others wait for its id."""
    from mlflow.exceptions import MlflowException

    deadline = time.time() + (0 if creator else wait_s)
    while True:
        run_id = optuna.load_study(study_name=study.study_name, storage=study._storage).user_attrs.get(PARENT_ATTR)
        if run_id or time.time() >= deadline:
            break
        time.sleep(0.5)
    if run_id:
        try:
            tracker.client.get_run(run_id)
            tracker.client.update_run(run_id, status="RUNNING")
            return run_id
        except MlflowException:
            log.warning("parent run %s of study %s is gone from MLflow: starting a new one", run_id, study.study_name)
    run_id = tracker.start_run(study.study_name, tags={"kind": "sweep", "study_name": study.study_name,
                                                      "optuna_storage": redact(storage_location(cfg))})
    tracker.log_params(run_id, {**flat_params(cfg), "optuna.storage": redact(storage_location(cfg)),
                                "optuna.directions": "maximize val_accuracy, maximize val_macro_f1"})
    study.set_user_attr(PARENT_ATTR, run_id)
    return run_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reconcile(study: optuna.Study, tracker: Tracker) -> int:
    """Fail trials left RUNNING by a dead worker and mark their MLflow runs KILLED. Returns how many.

    RDB storages use Optuna's heartbeat; the journal file (one machine) checks the recorded worker pid.
    """
    storage = study._storage
    if isinstance(storage, optuna.storages.RDBStorage) and storage.is_heartbeat_enabled():
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        w_host, _, w_pid = worker.rpartition(":")
        if w_host == host and w_pid.isdigit() and not _pid_alive(int(w_pid)):
            storage.set_trial_user_attr(t._trial_id, "error", "worker died (killed) during the trial")
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    fixed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        run_id = t.user_attrs.get("mlflow_run_id")
        if run_id and tracker.client.get_run(run_id).info.status == "RUNNING":
            tracker.set_tags(run_id, {"error": t.user_attrs.get("error", "trial failed (interrupted)")})
            tracker.end_run(run_id, "KILLED")
            fixed += 1
    return fixed


def sync_pareto_tags(study: optuna.Study, tracker: Tracker, known: dict[int, bool] | None = None) -> dict[int, bool]:
    """Tag `pareto=true` on exactly the current front's child runs (`false` on the other complete ones)."""
    on_front = {t.number for t in front(study)}
    state = {} if known is None else known
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        flag = t.number in on_front
        run_id = t.user_attrs.get("mlflow_run_id")
        if run_id and state.get(t.number) is not flag:
            tracker.set_tags(run_id, {"pareto": "true" if flag else "false"})
            state[t.number] = flag
    return state


# ---------------------------------------------------------------- one trial


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

    def __init__(self, cfg: DictConfig, base_overrides: list[str], space, tracker: Tracker, parent_run_id: str,
                 sampler_seed: int = 0):
        self.cfg, self.base, self.space, self.sampler_seed = cfg, base_overrides, space, sampler_seed
        self.tracker, self.parent = tracker, parent_run_id
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        from sweep.train import run

        params = suggest(trial, self.space)
        overrides = trial_overrides(self.base, params)
        trial.set_user_attr("overrides", [redact(o) for o in overrides])  # the journal is shared: no passwords
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("sampler_seed", self.sampler_seed)
        run_id = self.tracker.start_run(
            f"trial-{trial.number}", parent_run_id=self.parent,
            tags={"kind": "trial", "trial": str(trial.number), "study_name": trial.study.study_name,
                  **{f"param.{k}": str(v) for k, v in params.items()}})
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
            trial.set_user_attr("config", {
                "model": cfg.model.name, "weighting": cfg.weighting.scheme,
                "alpha": float(cfg.weighting.get("alpha", 0.0)), "loss": cfg.loss.name,
                "tau": float(cfg.loss.get("tau", 0.0)) if cfg.loss.name == "logit_adjusted" else 0.0,
                "posthoc_tau": float(cfg.loss.get("posthoc_tau", 0.0))})
            trial.set_user_attr("seconds", round(result.info["seconds"], 3))
            trial.set_user_attr("logits_cache", result.info.get("logits_cache"))
        except BaseException as exc:
            interrupted = bool(_INTERRUPTED) or not isinstance(exc, Exception)
            error = "interrupted (signal)" if interrupted else \
                redact(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")[:500]
            trial.set_user_attr("error", error)
            self.tracker.set_tags(run_id, {"error": error})
            self.tracker.end_run(run_id, "KILLED" if interrupted else "FAILED")
            if interrupted and isinstance(exc, Exception):
                raise KeyboardInterrupt(error) from exc
            raise
        self.tracker.end_run(run_id)
        return result.metrics[OBJECTIVES[0]], result.metrics[OBJECTIVES[1]]


# ---------------------------------------------------------------- the sweep


_INTERRUPTED: list[int] = []


def _raise_interrupt(signum, frame):
    """SIGINT and SIGTERM: trial failed, its run KILLED, sweep stopped. Remember the signal: an exception
    raised inside torch's C++ code can come out as another exception type."""
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def baseline_points(study: optuna.Study) -> dict[str, FrozenTrial]:
    """The enqueued baseline trials of the study (matched on their fixed params), for plot and export."""
    out = {}
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for name, fixed in study.user_attrs.get("baselines", {}).items():
        want = _flatten(fixed)
        for t in trials:
            keys = [k for k in want if k in t.params]
            if keys and all(_same(t.params[k], want[k]) for k in keys):
                out[name] = t
                break
    return out


def _same(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return str(a) == str(b)


def finalize(study: optuna.Study, tracker: Tracker, parent: str, cfg: DictConfig) -> Path | None:
    """Parent-run artifacts: the Pareto CSV and plot, the tags synced to the final front."""
    from sweep.data import load_splits
    from sweep.export import front_table

    sync_pareto_tags(study, tracker)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    from sweep.baselines import majority

    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))
    maj = majority(splits)["val"]
    marks = {"majority class": (maj["accuracy"], maj["macro_f1"])}
    marks.update({name.replace("_", " "): tuple(t.values) for name, t in baseline_points(study).items()})
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_front(study, Path(tmp) / "pareto.png", marks)
        tracker.client.log_artifact(parent, str(png))
        table = front_table(study, tracker.client)
        tracker.log_table(parent, table, "pareto.csv")
    tracker.log_metrics(parent, {"n_complete": len(study.get_trials(states=(TrialState.COMPLETE,))),
                                 "n_failed": len(study.get_trials(states=(TrialState.FAIL,))),
                                 "front_size": len(front(study))})
    return png


def run_workers(n: int, overrides: list[str], study: optuna.Study, total: int) -> int:
    """Start n local worker processes on the same study; show one progress bar for all of them."""
    from tqdm import tqdm

    # Split the cores between workers: oversubscribed torch threads spin and slow everyone down.
    threads = str(max(1, (os.cpu_count() or 1) // n))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, MANAGED_ENV: "1"}
    # URLs (with their passwords) go through the environment, not the command line that `ps` shows
    args = []
    for o in overrides:
        key, _, value = o.lstrip("+").partition("=")
        if key in SECRET_ENV:
            env[SECRET_ENV[key]] = value
        else:
            args.append(o)
    procs = [subprocess.Popen([sys.executable, "-m", "sweep", "sweep", *args, "sweep.workers=1",
                               f"sweep.worker_index={i}", "sweep.progress=false"], env=env)
             for i in range(n)]
    start_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))
    try:
        with tqdm(total=total, desc=f"{n} workers", unit="trial") as bar:
            while any(p.poll() is None for p in procs):
                time.sleep(1.0)
                done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))
                bar.n = min(total, done - start_done)
                bar.set_postfix(front=len(front(study)) if bar.n else 0)
                bar.refresh()
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    return max(p.returncode for p in procs)


def _create_or_load(name: str, storage, cfg: DictConfig) -> tuple[optuna.Study, bool, int]:
    """Create the study, or load it. The creator and managed workers seed their samplers with
    sweep.seed + worker_index (reproducible); any other process joining (a second `make sweep` started by
    hand, a resume) adds its pid, so that two processes never draw the same trials."""
    base = int(cfg.sweep.seed) + int(cfg.sweep.get("worker_index", 0))
    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=make_sampler(cfg.sweep.sampler, base),
                                    directions=["maximize", "maximize"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(OBJECTIVES))
        return study, True, base
    except optuna.exceptions.DuplicatedStudyError:
        seed = base if os.environ.get(MANAGED_ENV) == "1" else base + 1000 * (os.getpid() % 100_000) + 1
        return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(cfg.sweep.sampler, seed)), \
            False, seed


IDENTITY_ATTR = "identity"


def study_identity(cfg: DictConfig, space: Mapping[str, BaseDistribution], data_fingerprint: str) -> dict[str, str]:
    """Everything that changes what a trial's numbers mean: the data's content (texts, labels, splits), the
    model and featurization settings, the fixed (unsearched) weighting and loss values, the objectives, the
    seed. A study resumed with a different identity would mix two experiments into one front."""
    searched_groups = {k for k in space if "." not in k}
    out = {"data.content": data_fingerprint, "data.name": str(cfg.data.name), "seed": str(cfg.seed),
           "objectives": f"{', '.join(OBJECTIVES)} on "
                         + (f"{cfg.sweep.cv_folds}-fold cross-validation" if int(cfg.sweep.get("cv_folds", 1)) > 1
                            else "the validation split")}
    for group in ("model", "weighting", "loss"):
        if group in searched_groups:
            continue
        for key, value in flat_params(cfg[group]).items():
            if f"{group}.{key}" not in space:
                out[f"{group}.{key}"] = value
    return out


def check_identity(study: optuna.Study, identity: dict[str, str]) -> None:
    """A new study records its identity; a resumed one must match it (else a one-line error and the fix)."""
    known = study.user_attrs.get(IDENTITY_ATTR)
    if known is None:
        study.set_user_attr(IDENTITY_ATTR, identity)
        return
    changed = [k for k in sorted(set(known) | set(identity)) if known.get(k) != identity.get(k)]
    if changed:
        what = "; ".join(f"{k}: {known.get(k, '(unset)')} -> {identity.get(k, '(unset)')}" for k in changed[:4])
        more = "; ..." if len(changed) > 4 else ""
        raise ConfigError(f"study {study.study_name!r} was run on something else ({what}{more}): resuming would "
                          "mix both into one front; start a new study, e.g. "
                          f"sweep.study_name={study.study_name}-{identity['data.content'][:6]}")


def setup_study(study: optuna.Study, cfg: DictConfig, space: Mapping[str, BaseDistribution]) -> None:
    """A new study: remember its baselines and reference, enqueue the baselines as its first trials."""
    baselines = OmegaConf.to_container(cfg.sweep.baselines, resolve=True) if cfg.sweep.get("baselines") else {}
    study.set_user_attr("baselines", baselines)
    study.set_user_attr("reference", str(cfg.sweep.get("reference", "unweighted")))
    for fixed in baselines.values():
        params = {k: v for k, v in _flatten(fixed).items() if k in space}
        typed = {k: float(v) if isinstance(space[k], FloatDistribution) else v for k, v in params.items()}
        if typed:
            study.enqueue_trial(typed, skip_if_exists=True)


def sweep_command(argv: list[str]) -> None:
    overrides = list(argv)
    cfg = load_config(overrides)
    space = search_space(cfg.sweep.params)
    check_space(cfg, space)
    make_sampler(cfg.sweep.sampler, 0)  # an unknown sampler fails before anything is opened
    storage = open_storage(cfg)
    tracker = Tracker(cfg.tracking)
    from sweep.data import load_splits

    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))  # data errors before any trial
    name = str(cfg.sweep.study_name)
    study, created, sampler_seed = _create_or_load(name, storage, cfg)
    check_identity(study, study_identity(cfg, space, splits.fingerprint))
    if created:  # only the process that created the study sets it up: no duplicate baselines or parents
        setup_study(study, cfg, space)
    parent = ensure_parent(study, tracker, cfg, creator=created)
    try:
        _sweep(study, cfg, overrides, space, tracker, parent, sampler_seed)
    except KeyboardInterrupt:
        tracker.end_run(parent, "KILLED")
        raise
    except BaseException:  # the parent run never stays RUNNING after a crash
        tracker.end_run(parent, "FAILED")
        raise


def _sweep(study: optuna.Study, cfg: DictConfig, overrides: list[str], space, tracker: Tracker, parent: str,
           sampler_seed: int) -> None:
    killed = reconcile(study, tracker)
    if killed:
        log.info("marked %d interrupted trial(s) as failed / KILLED", killed)
    workers = int(cfg.sweep.workers)
    n_trials = int(cfg.sweep.n_trials)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    log.info("study %s in %s: %d complete trials so far; MLflow parent run %s", study.study_name,
             redact(storage_location(cfg)), done, parent)
    if workers > 1:
        rc = run_workers(workers, overrides, study, n_trials * workers)
        finalize(study, tracker, parent, cfg)
        tracker.end_run(parent)
        if rc:
            raise TrackingError(f"{workers} workers: at least one exited with status {rc}; see its log above")
        return _report(study)
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    objective = Objective(cfg, overrides, space, tracker, parent, sampler_seed)
    callbacks = []
    total = cfg.sweep.get("total_trials")
    if total:  # resume-to-target: stop once the study holds this many complete trials
        from optuna.study import MaxTrialsCallback

        callbacks.append(MaxTrialsCallback(int(total), states=(TrialState.COMPLETE,)))
        n_trials = max(0, int(total) - done)
    progress = _progress(n_trials, tracker, enabled=bool(cfg.sweep.get("progress", True)))
    try:
        study.optimize(objective, n_trials=n_trials, catch=(Exception,), callbacks=[*callbacks, progress],
                       gc_after_trial=False)
    finally:
        progress.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if os.environ.get(MANAGED_ENV) == "1":
        return  # the launching process finalizes once every worker is done
    finalize(study, tracker, parent, cfg)
    tracker.end_run(parent)
    _report(study)


class _progress:
    """tqdm bar: trials done, elapsed time, current Pareto-front size; keeps the `pareto` tags current."""

    def __init__(self, total: int, tracker: Tracker, enabled: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="trial", desc="sweep", disable=not enabled)
        self.tracker, self.tags = tracker, {}
        self.failed = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            self.failed += 1
            log.warning("trial %d failed: %s", trial.number, trial.user_attrs.get("error", "see its MLflow run"))
        if trial.state == TrialState.COMPLETE:
            self.tags = sync_pareto_tags(study, self.tracker, self.tags)
        self.bar.update(1)
        self.bar.set_postfix(front=len(front(study)), failed=self.failed)

    def close(self) -> None:
        self.bar.close()


def _report(study: optuna.Study) -> None:
    best = front(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    unconverged = sum(not converged(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    print(f"study {study.study_name}: {states.count(TrialState.COMPLETE)} complete, "
          f"{states.count(TrialState.FAIL)} failed, {unconverged} not converged (kept off the front); "
          f"Pareto front ({len(best)} trials, validation):")
    for t in best:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        print(f"  trial {t.number:4d}  accuracy {t.values[0]:.4f}  macro-F1 {t.values[1]:.4f}  {params}")
    print("browse: make ui, open the experiment under 'Model training' (runs table), expand the parent run, "
          "search tags.pareto = \"true\"; export: make export")
