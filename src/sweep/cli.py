"""Command line: `python -m sweep <command> [hydra overrides...]`, each command mapped to the module that owns
it (train, baselines and sweep here); every known failure is one line on stderr."""

from __future__ import annotations

import logging
import os
import sys
import time

COMMANDS = ("train", "baselines", "sweep", "export", "pick", "ui", "dashboard", "bench", "data", "l2")
MODULES = {
    "export": "report.export",
    "pick": "report.pick",
    "ui": "serve.ui",
    "dashboard": "serve.dashboard",
    "bench": "bench.bench",
    "l2": "models.select_l2",
}  # command -> module


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "mlflow", "urllib3", "httpx", "optuna", "datasets", "filelock", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials: one line each, from study.py
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a remote server's "View run" lines


def one_line(text: str) -> str:
    """The message on one line whatever it quotes: a CSV's column named with a control character (\x1e splits
    lines for Python) is shown escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text.strip())


def fault_line(exc: BaseException, rest: list[str]) -> str:
    """The one line for a fault: a service's own message, or for a full disk the path and its free space."""
    import errno
    import shutil
    from pathlib import Path

    if not (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        return str(exc)
    paths = [Path(str(f)) for f in (exc.filename2, exc.filename) if f]  # a copy's target, then its source
    try:
        from sweep.config import load_config

        cfg = load_config([a for a in rest if "=" in a and a.split("=")[0] not in ("study", "out", "seeds")])
        paths += [Path(cfg.paths.mlruns_dir), Path(cfg.paths.cache_dir), Path(cfg.tracking.artifact_root)]
    except Exception:  # noqa: BLE001 - the line names what it can
        pass
    paths += [Path(a.partition("=")[2]).parent for a in rest if a.startswith("out=")]
    free = {}
    for path in paths:
        here = next((p for p in (path, *path.parents) if p.exists()), Path("."))
        free[path] = shutil.disk_usage(here).free
    path = min(free, key=free.get) if free else Path(".")  # the full one
    return (
        f"no space left on the device of {path} ({free.get(path, 0) / 2**20:.1f} MiB free): free some space "
        "there, then run the same command again (a sweep resumes where it stopped)"
    )


def train_command(overrides: list[str]) -> None:
    from sweep.config import load_config
    from sweep.models.train import run
    from sweep.tracking import Tracker, log_result

    cfg = load_config(overrides)
    tracker = Tracker(cfg.tracking)  # an unusable store fails here, before any training
    result = run(cfg)  # bad data fails here, before any MLflow run exists
    run_name = f"{cfg.model.name}-{cfg.weighting.scheme}-{cfg.loss.name}"
    run_id = tracker.start_run(run_name, tags={"kind": "train"})
    try:
        log_result(tracker, run_id, cfg, result)
    except BaseException:
        tracker.end_run(run_id, "FAILED")
        raise
    tracker.end_run(run_id)
    m = result.metrics
    print(f"run {run_id} ({run_name}) in {result.info['seconds']:.1f}s, logits {result.info['logits_cache']}")
    for split in ("val", "test"):
        print(
            f"  {split:5s} accuracy {m[f'{split}_accuracy']:.4f}  macro-F1 {m[f'{split}_macro_f1']:.4f}  "
            f"balanced acc {m[f'{split}_balanced_accuracy']:.4f}  zero-F1 classes "
            f"{int(m[f'{split}_zero_f1_classes'])}/{result.splits.num_classes}"
        )


def baselines_command(overrides: list[str]) -> None:
    from sweep.config import load_config
    from sweep.models.baselines import baselines
    from sweep.tracking import Tracker, flat_params, log_result

    cfg = load_config(overrides)
    tracker = Tracker(cfg.tracking)
    table, detail = baselines(cfg)
    parent = tracker.start_run(f"baselines-{cfg.data.name}-{cfg.model.name}", tags={"kind": "baselines"})
    try:
        tracker.log_params(parent, flat_params(cfg))
        tracker.log_table(parent, table.reset_index(names="baseline"), "baselines_test.csv")
        for name, row in detail["rows"].items():
            tracker.log_metrics(parent, {f"{name}.{s}_{k}": v for s in row for k, v in row[s].items()})
        for name, (vcfg, result) in detail["runs"].items():
            child = tracker.start_run(name, tags={"kind": "baseline", "baseline": name}, parent_run_id=parent)
            log_result(tracker, child, vcfg, result)
            tracker.end_run(child)
    except BaseException:
        tracker.end_run(parent, "FAILED")
        raise
    tracker.end_run(parent)
    sizes = next(iter(detail["runs"].values()))[1].splits.info
    print(f"Baselines on the test split ({cfg.data.name}, {sizes}):")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"logged as MLflow run {parent}")


def sweep_command(overrides: list[str]) -> None:
    """The study (search/study.py), ended by the report layer: the parent run's front table and plot, then the
    front printed with its MLflow link (report/finish.py); search imports nothing of report, so cli joins them."""
    from sweep.report.finish import finalize, print_front
    from sweep.search.study import run_sweep

    run_sweep(overrides, finalize, print_front)


HELP = """usage: python -m sweep <command> [hydra overrides...]   (make <command> ARGS="...")

commands (what each writes):
  sweep      the multi-objective study: trials in mlruns/optuna/journal.log, runs in mlruns/mlflow.db
  export     the Pareto front: pareto.csv (for scripts), pareto_meeting.md/.csv (baselines and front, one
             readable table), pareto_report/ (report.md, per_class.md/.csv, plots); also on the parent run
  pick       the best validation macro-F1 under min_accuracy=<x> / max_accuracy_loss=<x> (exit 1: none)
  ui         the MLflow UI on the store (host=, port=; Ctrl-C stops it), after a link to each study's front
  dashboard  Optuna Dashboard on the Optuna storage (host=, port=, default 127.0.0.1:8080): the Pareto front
  train      one tracked run (MLflow)
  baselines  the test-split baseline table (one MLflow run with children)
  l2         choose model.head.l2 on validation (prints a table)
  bench      harness vs naive sweep at the same converged answer (prints a table); trials=N naive_every=K
             ideas=0 (skip the start-strategy comparison); grid=1: cost at 8/32/113 classes x 10K-58K texts
  data       fetch and split the data, print the split sizes

overrides people use most:
  sweep.n_trials=50  sweep.study_name=<name>  sweep.cv_folds=5  sweep.sampler=tpe|nsga2|random
  data=cfpb_sample|csv|cfpb_csv|hf|synthetic  data.path=<file.csv>  data.imbalance_ratio=50
  model=tfidf_linear|minilm_head|minilm_decoupled|minilm_finetune|precomputed|precomputed_logits  model.path=<file>
  model.head.l2=3.16e-6  model.head.device=auto|cpu|cuda  sweep.objectives=[accuracy,macro_f1,coverage]
  weighting=power|effective_number|none  loss=ce|logit_adjusted  seed=0
  export / pick: study=<name> out=<path.csv> seeds=K bootstrap=plain|stratified deploy_prior=uniform|train|<csv>
                 dense=1 (export: the front over every fit's tau curve); min_accuracy=<x> confidence=0.95 (pick)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] == "help" or {"-h", "--help"} & set(argv)):  # `sweep ui --help` too: no Hydra error
        print(HELP, end="")
        return 0
    if not argv or argv[0] not in COMMANDS:
        print(
            f"usage: python -m sweep {{{','.join(COMMANDS)}}} [hydra overrides...]; python -m sweep --help "
            "lists what each does",
            file=sys.stderr,
        )
        return 2
    _setup_logging()
    from sweep.allocator import keep_freed_memory

    keep_freed_memory()  # the head's evaluations reuse freed blocks instead of page-faulting fresh ones
    command, rest = argv[0], argv[1:]
    from sweep.config import MISSING_KEY, ConfigError, missing_key
    from sweep.data.encoders import EncoderError
    from sweep.data.splits import DataError
    from sweep.tracking import TrackingError, redact

    start = time.perf_counter()
    code = 0
    try:
        if command == "train":
            train_command(rest)
        elif command == "baselines":
            baselines_command(rest)
        elif command == "sweep":
            sweep_command(rest)
        elif command == "data":
            from sweep.config import load_config
            from sweep.data.splits import load_splits

            cfg = load_config(rest)
            splits = load_splits(cfg.data, cfg.paths.data_dir)
            print(f"{cfg.data.name}: {splits.info}, {splits.num_classes} classes, fingerprint {splits.fingerprint}")
        else:
            if command in ("export", "pick"):  # their own key=value arguments, checked before any study is read
                from sweep.config import command_args

                command_args(command, rest)
            module = __import__(f"sweep.{MODULES[command]}", fromlist=["main"])
            returned = getattr(module, f"{command}_command")(rest)
            if command in ("pick", "bench"):  # 1: no point meets the constraint / a bench check failed
                code = int(returned or 0)
    except (ConfigError, DataError, EncoderError, TrackingError, *MISSING_KEY) as exc:
        exc = missing_key(exc) if isinstance(exc, MISSING_KEY) else exc  # e.g. ~sweep.params, read later
        print(f"error: {one_line(redact(str(exc)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a fault outside the harness (a service away, a full disk): one line, exit 1
        from sweep.search.loop import fatal

        if (fault := fatal(exc)) is None:
            raise
        line = one_line(redact(fault_line(fault, rest)))
        if os.environ.get("SWEEP_FAULT_FILE"):  # a local worker: its launcher says it, once (search/workers.py)
            with open(os.environ["SWEEP_FAULT_FILE"], "a") as f:
                f.write(line + "\n")
            logging.getLogger("sweep").warning("worker stopped: %s", line)
        else:
            print(f"error: {line}", file=sys.stderr)
        return 1
    logging.getLogger("sweep").info("%s done in %.1fs", command, time.perf_counter() - start)
    return code


if __name__ == "__main__":
    sys.exit(main())
