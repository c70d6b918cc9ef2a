"""The dense front (`make export ARGS="dense=1"`): every fitted trial's post-hoc tau curve (tau_curve.csv on its
run: alpha x a fine tau grid, no refit) pooled, its non-dominated points on validation, each re-scored on test,
and the warning that a front read off that many candidates flatters its own validation figures."""

from __future__ import annotations

import optuna
import pandas as pd

from sweep.config import load_config
from sweep.models.metrics import bootstrap, coverage_interval, evaluate, interval
from sweep.search.pareto import candidates, front, p_front


def tau_curves(study: optuna.Study, client) -> pd.DataFrame:
    """Every candidate trial's tau curve, one row per (trial, post-hoc tau), with the trial's alpha and loss."""
    frames = []
    for t in candidates(study):
        try:
            curve = pd.read_csv(client.download_artifacts(t.user_attrs.get("mlflow_run_id", ""), "tau_curve.csv"))
        except Exception:  # noqa: BLE001 - a run from before the curves were logged: not a candidate here
            continue
        c = t.user_attrs.get("config", {})
        frames.append(curve.assign(trial=t.number, alpha=c.get("alpha"), loss=c.get("loss"), tau=c.get("tau")))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def dense_front(curves: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated (validation accuracy, macro-F1) points of the pooled curves, one row per distinct
    point (the first trial and the smallest tau reaching it), highest accuracy first; `candidates`: how many
    (trial, tau) pairs reach it."""
    if curves.empty:
        return curves
    scores = curves[["val_accuracy", "val_macro_f1"]].to_numpy()[None]
    best = curves[p_front(scores) == 1.0]
    shared = best.groupby(["val_accuracy", "val_macro_f1"]).size().rename("candidates")
    first = best.sort_values(["trial", "posthoc_tau"]).drop_duplicates(["val_accuracy", "val_macro_f1"])
    out = first.join(shared, on=["val_accuracy", "val_macro_f1"])
    return out.sort_values(["val_accuracy", "val_macro_f1"], ascending=False).reset_index(drop=True)


def rescored(study: optuna.Study, points: pd.DataFrame, n_boot: int = 2000, stratified: bool = False) -> pd.DataFrame:
    """Each dense point as a model: its trial's config at its post-hoc tau (the trial's logits, from the logits
    cache; no refit where the cache has them), exact validation figures and test figures with 95% intervals."""
    from sweep.models.train import run

    trials = {t.number: t for t in study.trials}
    rows = []
    for r in points.to_dict("records"):
        cfg = load_config(
            [*trials[int(r["trial"])].user_attrs["overrides"], f"++loss.posthoc_tau={r['posthoc_tau']!r}"]
        )
        result = run(cfg)
        y, pred, names = result.splits.labels["test"], result.predictions["test"], result.splits.class_names
        scores = evaluate(y, pred, names)[0]
        samples = bootstrap(y, {"p": pred}, len(names), n_boot=n_boot, stratified=stratified)["p"]
        row = {**r, "val_accuracy": result.metrics["val_accuracy"], "val_macro_f1": result.metrics["val_macro_f1"]}
        for m in ("accuracy", "macro_f1"):
            row[f"test_{m}"] = scores[m]
            row[f"test_{m}_ci_low"], row[f"test_{m}_ci_high"] = interval(samples[m])
        row["test_coverage"] = scores["coverage"]
        row["test_coverage_ci_low"], row["test_coverage_ci_high"] = coverage_interval(
            samples["coverage"], scores["coverage"]
        )
        rows.append(row)
    return pd.DataFrame(rows)


def dense_sentences(study: optuna.Study, curves: pd.DataFrame, dense: pd.DataFrame) -> list[str]:
    """What the dense front adds over the sampled one, and the winner's curse, in words."""
    if dense.empty:
        return ["Dense front: no trial logged its post-hoc tau curve (tau_curve.csv), so there is none."]
    sampled = front(study)
    fits = curves["trial"].nunique()
    lines = [
        f"Dense front: {len(dense)} points non-dominated on validation among {len(curves):,} candidates "
        f"({fits} fits x their post-hoc tau curves, no refit), against {len(sampled)} on the sampled front; "
        f"best validation macro-F1 {dense['val_macro_f1'].max():.4f} (sampled front: "
        f"{max(t.values[1] for t in sampled):.4f}), best validation accuracy {dense['val_accuracy'].max():.4f} "
        f"(sampled: {max(t.values[0] for t in sampled):.4f}).",
        f"Winner's curse: each dense point is the best of {len(curves):,} noisy validation estimates, so its "
        "validation figures overstate what it will do; its test columns (the held-out split, never used to "
        "choose) say what holds. A validation gain over the sampled front smaller than the validation "
        "bootstrap's noise (see p_front) is no gain.",
    ]
    if len(study.directions) > 2:
        lines.append("The dense front uses accuracy and macro-F1 only: the tau curves do not hold coverage.")
    if "test_macro_f1" in dense:
        top = dense.loc[dense["val_macro_f1"].idxmax()]
        lines.append(
            f"On test, the dense point with the best validation macro-F1 (trial {int(top['trial'])}'s fit at post-hoc "
            f"tau {top['posthoc_tau']:.2f}) scores macro-F1 {top['test_macro_f1']:.4f} "
            f"[{top['test_macro_f1_ci_low']:.4f}, {top['test_macro_f1_ci_high']:.4f}], accuracy "
            f"{top['test_accuracy']:.4f} [{top['test_accuracy_ci_low']:.4f}, {top['test_accuracy_ci_high']:.4f}]."
        )
    return lines


def with_dense(study: optuna.Study, client, n_boot: int = 2000, stratified: bool = False) -> tuple[pd.DataFrame, list]:
    """The dense front re-scored, and its sentences (export's dense=1)."""
    curves = tau_curves(study, client)
    dense = dense_front(curves)
    if not dense.empty:
        dense = rescored(study, dense, n_boot, stratified)
    return dense, dense_sentences(study, curves, dense)
