"""`make export`: the Pareto front for decision meetings, as a CSV written atomically and a report (table,
test-split plots, sentences), both logged to the study's parent run; p_front and the trials tied with the front,
the deployment mix (deploy_prior=), the bootstrap kind (bootstrap=); seeds=K re-splits and re-seeds each point."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.config import ConfigError, load_config, split_args
from sweep.environment import env_warning
from sweep.files import write_csv
from sweep.report.columns import PRINTED
from sweep.report.confidence import front_noise, tied_sentence, tied_trials
from sweep.report.dense import with_dense
from sweep.report.deploy import ADJUSTED, adjusted_point, deploy_mix
from sweep.report.document import statements, write_report
from sweep.report.links import link_or_reason
from sweep.report.meeting import write_meeting
from sweep.report.reseed import resplit_reseed
from sweep.report.sentences import context_lines
from sweep.report.table import load_predictions, scored_tables
from sweep.search.pareto import no_front_reason, reference_trial
from sweep.search.storage import load_study, running_warning
from sweep.tracking import open_client

ARGS = ("study", "out", "seeds", "n_boot", "bootstrap", "deploy_prior", "dense")


def _deployment(study, client, text: str | None) -> tuple[np.ndarray | None, str | None, dict]:
    """deploy_prior= as class shares, its name, and the extra row (the reference adjusted for the mix)."""
    if text is None:
        return None, None, {}
    ref = reference_trial(study)
    point = load_predictions(client, ref.user_attrs.get("mlflow_run_id", "")) if ref else None
    if point is None:
        raise ConfigError(
            "deploy_prior needs the unweighted reference trial with its logged predictions (the class names and "
            "training counts): this study has none; run `make sweep` with its baselines"
        )
    share, mix = deploy_mix(text, point["names"], point["counts"])
    adjusted = adjusted_point(ref, point, share)
    return share, mix, ({ADJUSTED: adjusted} if adjusted is not None else {})


def _log_p_front(client, study, noise) -> None:
    """p_front as a metric of each scored trial's MLflow run."""
    runs = {t.number: t.user_attrs.get("mlflow_run_id") for t in study.get_trials(deepcopy=False)}
    for n, p in noise.p_front.items():
        if runs.get(n) and np.isfinite(p):
            client.log_metric(runs[n], "p_front", float(p))


def export_command(argv: list[str]) -> None:
    args, overrides = split_args(argv, ARGS)
    seeds = _count(args, "seeds", 1)
    n_boot = _count(args, "n_boot", 2000)
    kind = args.get("bootstrap", "plain")
    if kind not in ("plain", "stratified"):
        raise ConfigError(f"bootstrap={kind!r} is unknown: use bootstrap=plain (the default) or bootstrap=stratified")
    cfg = load_config(overrides)  # sweep.front_boot >= 1 and sweep.tied_p_front in (0, 1]: checked there
    front_boot, threshold = int(cfg.sweep.front_boot), float(cfg.sweep.tied_p_front)
    study = load_study(cfg, args.get("study"))
    client = open_client(str(cfg.tracking.tracking_uri))
    share, mix, extra = _deployment(study, client, args.get("deploy_prior"))
    table, baselines = scored_tables(study, client, n_boot, kind == "stratified", share, extra)
    if table.empty:
        raise ConfigError(no_front_reason(study))
    noise = front_noise(study, client, front_boot)
    table["p_front"] = table["trial"].map(noise.p_front)
    if not baselines.empty:
        baselines["p_front"] = baselines["trial"].map(lambda t: noise.p_front.get(t) if pd.notna(t) else None)
    _log_p_front(client, study, noise)
    tied = tied_trials(study, noise, threshold)
    said_tied = tied_sentence(study, noise, tied, threshold)
    if seeds > 1:
        table = table.join(resplit_reseed(study, table, seeds), on="trial")
    out = write_csv(table, Path(args.get("out", Path(cfg.paths.root) / "pareto.csv")))
    tied_csv = write_csv(tied, out.with_name(f"{out.stem}_tied.csv"))
    meeting, meeting_md = write_meeting(table, baselines, out, kind, mix, said_tied)
    report = out.with_name(f"{out.stem}_report")
    p_front = {int(n): float(p) for n, p in noise.p_front.items()}
    lines, written = context_lines(kind, mix), [tied_csv]
    if args.get("dense", "0") not in ("0", ""):
        dense, said_dense = with_dense(study, client, n_boot, kind == "stratified")
        written.append(write_csv(dense, out.with_name(f"{out.stem}_dense.csv")))
        lines += said_dense
    files = write_report(study, table, client, report, baselines, p_front, mix, tied, lines)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent and (changed := env_warning(client.get_run(parent).data.tags)):  # packages, CPU, threads, GPU
        print(changed, file=sys.stderr)
    if parent:
        for f in [out, *written, *meeting, *files]:
            client.log_artifact(parent, str(f), "export")
    what = f"{len(table)} Pareto-optimal trials of study {study.study_name!r}"
    print(f"wrote {out} ({what}), {', '.join(f.name for f in written)} and {report}/report.md")
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 40):
        print(table[[c for c in PRINTED if c in table]].to_string(index=False))
        print(f"\n{said_tied}")
        if not tied.empty:
            print(tied.drop(columns="mlflow_run_id").head(20).to_string(index=False))
    for line in statements(table):
        print(line)
    if len(written) > 1:
        print("\n" + "\n".join(lines[-len(said_dense) :]))
        print(dense.drop(columns=["loss", "tau"], errors="ignore").to_string(index=False))
    print(f"\nfor the meeting: {meeting[0]} (and {meeting[1].name})\n")
    print(meeting_md)
    print(f"the front in MLflow (make ui, then open): {link_or_reason(cfg, study)}")
    warning = running_warning(study)  # last, where it is seen: the table above may already be out of date
    if warning:
        print(warning, file=sys.stderr)


def _count(args: dict[str, str], key: str, default: int) -> int:
    text = args.get(key, str(default))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{key}={text!r} must be a whole number >= 1, e.g. {key}={default}")
    return value
