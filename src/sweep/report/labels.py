"""A front's points in words: each baseline's and trial's plain label, the rows the meeting table and the report
show (baselines first, then the front), and the verdict against the unweighted model from its paired interval."""

from __future__ import annotations

import pandas as pd

LABELS = {
    "majority_class": "majority class",
    "unweighted": "unweighted",
    "sqrt_inverse": "sqrt-inverse weights",
    "posthoc_tau_1": "post-hoc tau 1",
    "deploy_adjusted": "unweighted + post-hoc tau 1 for the deployment mix",
}
ORDER = list(LABELS)  # baselines first, in this order; others (configured ones) next; then the front
METRIC_WORDS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}


def _num(x: float) -> str:
    return f"{float(x):.2f}".rstrip("0").rstrip(".")


def label(row) -> str:
    """A point in words: a baseline's name, or what differs from the unweighted model, e.g.
    "alpha 0.75 + post-hoc tau 0.33" (micro-F1 equals accuracy, so neither shows up twice anywhere)."""
    name = row.get("baseline")
    if isinstance(name, str) and name:
        return LABELS.get(name, name.replace("_", " "))
    parts = []
    alpha = row.get("alpha")
    if row.get("weighting") != "none" and pd.notna(alpha) and alpha:
        parts.append(
            f"alpha {_num(alpha)}"
            if row.get("weighting") in (None, "power")
            else f"{row['weighting'].replace('_', ' ')} weights alpha {_num(alpha)}"
        )
    if row.get("loss") == "logit_adjusted":
        parts.append(f"logit-adjusted loss tau {_num(row.get('tau') or 0)}")
    if pd.notna(row.get("posthoc_tau")) and row.get("posthoc_tau"):
        parts.append(f"post-hoc tau {_num(row['posthoc_tau'])}")
    return " + ".join(parts) or "unweighted"


def verdict(row) -> str:
    """Against the unweighted model, from the paired 95% interval of the change: "yes, macro-F1",
    "yes, macro-F1; worse on accuracy", "worse on accuracy", "no (within noise)"."""
    if pd.isna(row.get("delta_test_accuracy_ci_low")):
        return "n/a"
    better = [w for m, w in METRIC_WORDS.items() if row[f"delta_test_{m}_ci_low"] > 0]
    worse = [w for m, w in METRIC_WORDS.items() if row[f"delta_test_{m}_ci_high"] < 0]
    said = ([f"yes, {' and '.join(better)}"] if better else []) + ([f"worse on {' and '.join(worse)}"] if worse else [])
    return "; ".join(said) or "no (within noise)"


def names_in(text) -> list[str]:
    """The names in a "; "-joined cell (classes_gained, beaten_by_baseline); none for an empty or missing one."""
    return [n for n in text.split("; ") if n] if isinstance(text, str) else []


def meeting_rows(
    front: pd.DataFrame, baselines: pd.DataFrame, reference: str = "unweighted", mix: str | None = None
) -> pd.DataFrame:
    """The rows to show: every baseline (majority class, unweighted, sqrt-inverse, post-hoc tau 1, and with a
    deployment mix the reference adjusted for it) then every front point that is not one of them, with `label`
    and `row` (where it comes from); the numbers as export computed them (table.scored_tables)."""
    base = baselines.copy() if not baselines.empty else pd.DataFrame(columns=["baseline", "trial"])
    base["_order"] = base["baseline"].map(lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
    base = base.sort_values("_order", kind="stable").drop(columns="_order")
    on_front = set(front["trial"].dropna().astype(int))
    base["row"] = [
        "no trial: the unweighted model re-adjusted (no refit)"
        if n == "deploy_adjusted"
        else ("reference baseline" if n == reference else "baseline")
        + (f", on the front (trial {int(t)})" if pd.notna(t) and int(t) in on_front else "")
        for n, t in zip(base["baseline"], base["trial"], strict=True)
    ]
    known = set(base["trial"].dropna().astype(int))
    rest = front[~front["trial"].isin(known)].copy()
    rest["row"] = [f"Pareto front (validation), trial {int(t)}" for t in rest["trial"]]
    rows = pd.concat([base, rest], ignore_index=True)
    rows["label"] = [
        f"unweighted + post-hoc tau 1 for the {mix} mix" if r.get("baseline") == "deploy_adjusted" and mix else label(r)
        for r in rows.to_dict("records")
    ]
    return rows
