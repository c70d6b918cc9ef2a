"""The sweep: an Optuna study (maximize validation accuracy AND macro-F1) created or resumed under a checked
identity, one MLflow parent run per study, local workers, progress; its end (the parent's artifacts, the front
printed) is handed in by the caller (cli: report/finish.py), since it needs the report layer.

Why not hydra-optuna-sweeper: its last release pins optuna<3. We drive `study.optimize` ourselves and compose
each trial's config with Hydra's compose API, so a trial is exactly `make train ARGS="<its overrides>"`.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState

from sweep.config import ConfigError, dotted, load_config
from sweep.environment import env_tags
from sweep.search.halving import CompleteGamma, halving
from sweep.search.launch import check_launcher, launch
from sweep.search.loop import fatal, run_trials
from sweep.search.objective import Objective, constraints, interrupts, objective_names
from sweep.search.placement import node_summary, trials_by_node
from sweep.search.progress import Progress
from sweep.search.space import check_space, search_space
from sweep.search.storage import fail_stale_trials, open_storage, storage_location
from sweep.search.workers import managed
from sweep.tracking import Tracker, TrackingError, flat_params, redact

log = logging.getLogger(__name__)
IDENTITY_ATTR = "identity"
PARENT_ATTR = "mlflow_parent_run_id"  # the study's user attr naming its MLflow parent run
Finalize = Callable[[optuna.Study, Tracker, str, DictConfig], object]  # the parent's artifacts, before it ends
Report = Callable[[optuna.Study, DictConfig], None]  # the front printed, after


def make_sampler(name: str, seed: int, gamma: CompleteGamma | None = None) -> optuna.samplers.BaseSampler:
    """With the halving pruner, TPE counts its good trials among the complete ones (search/halving.py)."""
    if name == "tpe":
        if gamma is None:
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
        with warnings.catch_warnings():  # gamma is deprecated for Optuna 6 (pinned < 6): the only way in
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, gamma=gamma)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"sweep.sampler={name!r} is unknown: use tpe, nsga2 or random")


def ensure_parent(
    study: optuna.Study, tracker: Tracker, cfg: DictConfig, creator: bool = False, wait_s: float = 120.0
) -> str:
    """One parent run per study, its id kept in the study: a resumed study or a new worker reuses it.
    The process that created the study creates the parent; the others wait for its id."""
    deadline = time.time() + (0 if creator else wait_s)
    while True:
        run_id = optuna.load_study(study_name=study.study_name, storage=study._storage).user_attrs.get(PARENT_ATTR)
        if run_id or time.time() >= deadline:
            break
        time.sleep(0.5)
    if run_id:
        if tracker.reopen(run_id):
            return run_id
        log.warning("parent run %s of study %s is gone from MLflow: starting a new one", run_id, study.study_name)
    run_id = tracker.start_run(
        study.study_name,
        tags={"kind": "sweep", "study_name": study.study_name, "optuna_storage": redact(storage_location(cfg))}
        | env_tags(int(cfg.sweep.workers)),  # what this study ran on (environment.py); a resumed parent keeps its own
    )
    tracker.log_params(
        run_id,
        {
            **flat_params(cfg),
            "optuna.storage": redact(storage_location(cfg)),
            "optuna.directions": ", ".join(f"maximize {n}" for n in objective_names(cfg)),
        },
    )
    study.set_user_attr(PARENT_ATTR, run_id)
    return run_id


def reconcile(study: optuna.Study, tracker: Tracker) -> int:
    """Fail trials left RUNNING by a dead worker and mark KILLED the MLflow runs left RUNNING by finished trials
    (a trial failed while the tracking server was away; a run created twice across an outage). Returns how many."""
    fail_stale_trials(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    name = study.study_name.replace("'", "\\'")
    running = f"attributes.status = 'RUNNING' and tags.kind = 'trial' and tags.study_name = '{name}'"
    fixed = 0
    for run in tracker.client.search_runs([tracker.experiment_id], running, max_results=5000):
        if (t := trials.get(int(run.data.tags.get("trial", -1)))) is not None:
            tracker.set_tags(run.info.run_id, {"error": t.user_attrs.get("error", "trial failed (interrupted)")})
            tracker.end_run(run.info.run_id, "KILLED")
            fixed += 1
    return fixed


def _create_or_load(name: str, storage, cfg: DictConfig) -> tuple[optuna.Study, bool, int]:
    """Create the study, or load it. The creator and managed workers seed their samplers with
    sweep.seed + worker_index (reproducible); any other process joining (a second `make sweep` started by
    hand, a resume) adds its pid, so that two processes never draw the same trials."""
    base = int(cfg.sweep.seed) + int(cfg.sweep.get("worker_index", 0))
    gamma = CompleteGamma() if halving(cfg) else None
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=make_sampler(cfg.sweep.sampler, base, gamma),
            directions=["maximize"] * len(objective_names(cfg)),
        )
        created, seed = True, base
    except optuna.exceptions.DuplicatedStudyError:
        seed = base if managed() else base + 1000 * (os.getpid() % 100_000) + 1
        study = optuna.load_study(
            study_name=name, storage=storage, sampler=make_sampler(cfg.sweep.sampler, seed, gamma)
        )
        created = False
    if gamma is not None:
        gamma.study = study
    if study.metric_names is None:  # a study made before the names were set: Optuna Dashboard's axis titles
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objective_names(cfg)))
    return study, created, seed


WHERE_NOT_WHAT = {"model.head.device", "model.gpu_memory_gib"}  # where a fit runs, not what it computes


def study_identity(cfg: DictConfig, space: Mapping[str, BaseDistribution], splits) -> dict[str, str]:
    """Everything that changes what a trial's numbers mean: the data's content (texts, labels, splits), the
    model and featurization settings, the content of the files a precomputed model reads, the fixed
    (unsearched) weighting and loss values, the objectives, the seed. A study resumed with a different identity
    would mix two experiments into one front."""
    from sweep.data.precomputed import files_content

    searched_groups = {k for k in space if "." not in k}
    out = {
        "data.content": splits.fingerprint,
        "data.name": str(cfg.data.name),
        "seed": str(cfg.seed),
        "objectives": f"{', '.join(objective_names(cfg))} on "
        + (
            f"{cfg.sweep.cv_folds}-fold cross-validation"
            if int(cfg.sweep.get("cv_folds", 1)) > 1
            else "the validation split"
        ),
    }
    if content := files_content(cfg.model, splits):  # model.path names a file: a rewrite is another experiment
        out["model.files_content"] = content
    rule = constraints(cfg)  # a floor changes which trials count: only set when there is one
    if rule:
        out["constraints"] = ", ".join(f"{k}={v}" for k, v in sorted(rule.items()))
    for group in ("model", "weighting", "loss"):
        if group in searched_groups:
            continue
        for key, value in flat_params(cfg[group]).items():
            if f"{group}.{key}" not in space and f"{group}.{key}" not in WHERE_NOT_WHAT:
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
        raise ConfigError(
            f"study {study.study_name!r} was run on something else ({what}{more}): resuming would "
            "mix both into one front; start a new study, e.g. "
            f"sweep.study_name={study.study_name}-{identity['data.content'][:6]}"
        )


def setup_study(study: optuna.Study, cfg: DictConfig, space: Mapping[str, BaseDistribution]) -> None:
    """A new study: remember its baselines and reference, enqueue the baselines as its first trials."""
    baselines = OmegaConf.to_container(cfg.sweep.baselines, resolve=True) if cfg.sweep.get("baselines") else {}
    study.set_user_attr("baselines", baselines)
    study.set_user_attr("reference", str(cfg.sweep.get("reference", "unweighted")))
    for fixed in baselines.values():
        params = {k: v for k, v in dotted(fixed).items() if k in space}
        typed = {k: float(v) if isinstance(space[k], FloatDistribution) else v for k, v in params.items()}
        if typed:
            study.enqueue_trial(typed, skip_if_exists=True)


def run_sweep(argv: list[str], finalize: Finalize, report: Report) -> None:
    """`python -m sweep sweep`: open or resume the study, run its trials (here or in local workers), then
    finalize the parent run and report, both given by the caller (cli.sweep_command: report/finish.py)."""
    overrides = list(argv)
    cfg = load_config(overrides)
    space = search_space(cfg.sweep.params)
    check_space(cfg, space)
    objective_names(cfg)  # bad objectives or constraints fail before anything is opened
    halving(cfg)  # and a pruner that the model cannot take
    make_sampler(cfg.sweep.sampler, 0)  # an unknown sampler fails before anything is opened
    check_launcher(cfg)  # sweep.launcher=ray without Ray, or a bad sweep.ray: one line, nothing opened
    wait = managed()  # its launcher reached both services: an outage is waited for
    storage, tracker = open_storage(cfg, wait=wait), Tracker(cfg.tracking, wait=wait)
    from sweep.data.splits import load_splits

    splits = load_splits(cfg.data, cfg.paths.data_dir, int(cfg.seed))  # data errors before any trial
    from sweep.models.train import check_inputs

    check_inputs(cfg, splits)  # and a precomputed file's (rows, NaN, ids): one line, not every trial failed
    name = str(cfg.sweep.study_name)
    study, created, sampler_seed = _create_or_load(name, storage, cfg)
    check_identity(study, study_identity(cfg, space, splits))
    if created:  # only the process that created the study sets it up: no duplicate baselines or parents
        setup_study(study, cfg, space)
    parent = ensure_parent(study, tracker, cfg, creator=created)
    try:
        _sweep(study, cfg, overrides, space, tracker, parent, sampler_seed, finalize, report)
    except KeyboardInterrupt:
        tracker.end_run(parent, "KILLED")
        raise
    except BaseException as exc:  # the parent run never stays RUNNING after a crash
        if fatal(exc) is not None:  # a fault: one try, not another retry window (the resume reopens the parent)
            tracker.retry.window_s = 0
        try:
            tracker.end_run(parent, "FAILED")
        except Exception:  # noqa: BLE001 - the tracking server is away: the fault's own line is the one to show
            if fatal(exc) is None:
                raise
        raise


def _sweep(
    study: optuna.Study,
    cfg: DictConfig,
    overrides: list[str],
    space,
    tracker: Tracker,
    parent: str,
    sampler_seed: int,
    finalize: Finalize,
    report: Report,
) -> None:
    killed = reconcile(study, tracker)
    if killed:
        log.info("marked %d interrupted trial(s) as failed / KILLED", killed)
    workers = int(cfg.sweep.workers)
    n_trials = int(cfg.sweep.n_trials)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    log.info(
        "study %s in %s: %d complete trials so far; MLflow parent run %s",
        study.study_name,
        redact(storage_location(cfg)),
        done,
        parent,
    )
    on_ray = cfg.sweep.get("launcher", "local") == "ray"
    if workers > 1 or on_ray:
        with interrupts():  # Ctrl-C or SIGTERM: each worker fails its trial, marks its run KILLED and stops
            rc = launch(cfg, overrides, study, done, tracker, reconcile)  # local processes or Ray tasks: launch.py
        finalize(study, tracker, parent, cfg)
        tracker.end_run(parent)
        if rc:
            raise TrackingError(f"{workers} workers: at least one exited with status {rc}; see its log above")
        report(study, cfg)
        return print(node_summary(trials_by_node(study, tracker))) if on_ray else None
    objective = Objective(cfg, overrides, space, tracker, parent, sampler_seed)
    total = cfg.sweep.get("total_trials")
    if total:  # resume-to-target: trials until the study holds this many complete ones, however many workers
        n_trials = max(0, int(total) - done)
    progress = Progress(n_trials, tracker, enabled=bool(cfg.sweep.get("progress", True)))
    with interrupts():
        try:
            stop_after = int(cfg.sweep.get("max_failures_in_a_row", 5) or 0)  # absent: 5; null or 0: never
            run_trials(study, objective, n_trials, int(total) if total else None, [progress], stop_after)
        finally:
            progress.close()
    if managed():
        return  # the launching process finalizes once every worker is done
    finalize(study, tracker, parent, cfg)
    tracker.end_run(parent)
    report(study, cfg)
