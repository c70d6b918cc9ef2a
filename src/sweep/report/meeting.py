"""The front for people: pareto_meeting.md / .csv (one row per baseline and per front point, plain labels, test
figures in % with intervals, classes detected, p_front, the deployment mix when given, a verdict against the
unweighted model in words, and under it what the intervals are and which class mix the figures are for)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sweep.report.table import write_atomic

LABELS = {
    "majority_class": "majority class",
    "unweighted": "unweighted",
    "sqrt_inverse": "sqrt-inverse weights",
    "posthoc_tau_1": "post-hoc tau 1",
    "deploy_adjusted": "unweighted + post-hoc tau 1 for the deployment mix",
}
ORDER = list(LABELS)  # baselines first, in this order; others (configured ones) next; then the front
MIX_COLUMNS = ("Accuracy % on the {mix} mix [95% CI]", "Macro-F1 % on the {mix} mix [95% CI]")
COLUMNS = [
    "Model",
    "Kind",
    "Test accuracy % [95% CI]",
    "Test macro-F1 % [95% CI]",
    "Accuracy vs unweighted, points [95% CI]",
    "Macro-F1 vs unweighted, points [95% CI]",
    "Classes detected (F1 > 0) [95% CI]",
    "Classes gained / lost",
    "On the front in % of validation resamples",
    "Beats unweighted beyond noise?",
]
METRIC_WORDS = {"accuracy": "accuracy", "macro_f1": "macro-F1"}
INTERVALS = {
    "plain": (
        "Intervals: 95% paired bootstrap of the test examples, resampled with replacement, so each class's "
        "test count varies as it would on another test set of the same size (a class with one test example is "
        "absent from about a third of the resamples): tiny-class noise is in the intervals. They hold the "
        'train / validation split fixed; `make export ARGS="seeds=5"` re-splits and re-fits each point to '
        "show that spread."
    ),
    "stratified": (
        "Intervals: 95% stratified bootstrap of the test examples (each class keeps its test count, so a "
        "constant predictor such as the majority class gets a zero-width interval, and a class with a handful "
        "of test examples varies less than on another test set: the intervals understate tiny-class noise). "
        "They hold the split fixed: a class with a handful of test examples can flip its F1 with one example "
        'on another split; `make export ARGS="seeds=5"` re-splits and re-fits each point to show that spread.'
    ),
}


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


def _pct(v, lo, hi) -> str:
    if pd.isna(v):
        return "n/a"
    return f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _points(v, lo, hi) -> str:
    if pd.isna(v):
        return "n/a"
    f = [100 * x + 0.0 for x in (v, lo, hi)]  # + 0.0: an exact 0 is "+0.0"; a tiny negative stays "-0.0"
    return f"{f[0]:+.1f} [{f[1]:+.1f}, {f[2]:+.1f}]"


def verdict(row) -> str:
    """Against the unweighted model, from the paired 95% interval of the change: "yes, macro-F1",
    "yes, macro-F1; worse on accuracy", "worse on accuracy", "no (within noise)"."""
    if pd.isna(row.get("delta_test_accuracy_ci_low")):
        return "n/a"
    better = [w for m, w in METRIC_WORDS.items() if row[f"delta_test_{m}_ci_low"] > 0]
    worse = [w for m, w in METRIC_WORDS.items() if row[f"delta_test_{m}_ci_high"] < 0]
    said = ([f"yes, {' and '.join(better)}"] if better else []) + ([f"worse on {' and '.join(worse)}"] if worse else [])
    return "; ".join(said) or "no (within noise)"


def _names(text) -> list[str]:
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


def _detected(r: dict) -> str:
    if pd.isna(r.get("test_coverage")):
        return "n/a"
    lo, hi = r.get("test_coverage_ci_low"), r.get("test_coverage_ci_high")
    return f"{int(r['test_coverage'])} of {int(r['n_classes'])}" + (f" [{lo:.0f}, {hi:.0f}]" if pd.notna(lo) else "")


def _share(p) -> str:
    return "n/a" if p is None or pd.isna(p) else f"{100 * p:.0f}"


def meeting_table(
    front: pd.DataFrame, baselines: pd.DataFrame, reference: str = "unweighted", mix: str | None = None
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The table's cells (COLUMNS, and with a deployment mix `mix` two columns for it after the test ones), the
    footnotes naming the classes gained / lost, and the sentences saying whether a baseline beats the
    validation-chosen front on test."""
    rows = meeting_rows(front, baselines, reference, mix)
    deploy = mix is not None and "deploy_accuracy" in rows
    columns = COLUMNS[:4] + ([c.format(mix=mix) for c in MIX_COLUMNS] if deploy else []) + COLUMNS[4:]
    cells, notes = [], []
    for r in rows.to_dict("records"):
        gained, lost = _names(r.get("classes_gained")), _names(r.get("classes_lost"))
        moved = f"{len(gained)} / {len(lost)}" if "classes_gained" in r and pd.notna(r.get("test_accuracy")) else "n/a"
        if gained or lost:
            notes.append(
                f"[{len(notes) + 1}] {r['label']}: gained {'; '.join(gained) or 'none'}. "
                f"Lost {'; '.join(lost) or 'none'}."
            )
            moved += f" [{len(notes)}]"
        is_ref = r.get("baseline") == reference
        figures = [
            _pct(r.get(f"{split}_{m}"), r.get(f"{split}_{m}_ci_low"), r.get(f"{split}_{m}_ci_high"))
            for split in ("test", *(["deploy"] if deploy else []))
            for m in METRIC_WORDS
        ]
        cells.append(
            [
                r["label"],
                r["row"],
                *figures,
                *(
                    "0.0 (reference)"
                    if is_ref
                    else _points(
                        r.get(f"delta_test_{m}"), r.get(f"delta_test_{m}_ci_low"), r.get(f"delta_test_{m}_ci_high")
                    )
                    for m in METRIC_WORDS
                ),
                _detected(r),
                moved,
                _share(r.get("p_front")),
                "reference" if is_ref else verdict(r),
            ]
        )
    return pd.DataFrame(cells, columns=columns), notes, beaten_sentences(front, baselines)


def beaten_sentences(front: pd.DataFrame, baselines: pd.DataFrame) -> list[str]:
    """Plainly, from the front rows' beaten_by_baseline: which baseline beats which validation-chosen front
    point on test, and how (beyond noise on a metric, or better on both within noise)."""
    if "beaten_by_baseline" not in front:
        return []
    scored = front[front["beaten_by_baseline"].map(lambda v: isinstance(v, str))]
    rows = meeting_rows(front, baselines)
    labels = {int(t): name for t, name in zip(rows["trial"], rows["label"], strict=True) if pd.notna(t)}
    on_front = dict(zip(baselines.get("baseline", []), baselines.get("trial", []), strict=True))
    by: dict[str, dict[str, list[str]]] = {}
    for r in scored.itertuples():
        for entry in _names(r.beaten_by_baseline):
            name, _, how = entry.partition(" on ")
            by.setdefault(name, {}).setdefault(how, []).append(labels[int(r.trial)])
    if not by:
        which = (
            "the validation-chosen front point"
            if len(scored) == 1
            else f"any of the {len(scored)} validation-chosen front points"
        )
        return [f"On test, no baseline beats {which}, neither beyond noise on a metric nor on both metrics."]
    out = []
    for name, hows in by.items():
        others = sum(1 for t in scored["trial"] if not _same_trial(on_front.get(name), t))
        n = sum(len(v) for v in hows.values())
        how = "; ".join(f"{' and '.join(points)} on {h}" for h, points in hows.items())
        out.append(
            f"On test, the baseline {LABELS.get(name, name.replace('_', ' '))} beats {n} of the {others} "
            f"validation-chosen front point{'s' if others > 1 else ''}: {how}."
        )
    if all("beyond noise" not in h for hows in by.values() for h in hows):
        out.append(
            "Within noise means the 95% interval of the difference contains 0: on this test split the "
            "front is no better than that baseline, but the baseline is not reliably better either."
        )
    return out


def _same_trial(a, b) -> bool:
    return a is not None and pd.notna(a) and pd.notna(b) and int(a) == int(b)


def markdown(cells: pd.DataFrame, notes: list[str], sentences: list[str], title: str, lines: list[str] = ()) -> str:
    """One GitHub table, the footnotes under it, then the sentences, then `lines` (what the intervals are, the
    class mix, the trials tied with the front)."""
    out = [f"### {title}", "", cells.to_markdown(index=False), ""]
    if notes:
        out += [
            "Classes gained / lost: F1 from 0 on the unweighted model to above 0, and back.",
            "",
            *[f"{n}  " for n in notes],
            "",
        ]
    return "\n".join([*out, *sentences, "", *(f"{line}\n" for line in lines)])


def context_lines(bootstrap: str = "plain", mix: str | None = None, tied: str | None = None) -> list[str]:
    """The lines under the table: which bootstrap the intervals come from, which class mix the figures are
    for, what p_front is and which trials are tied with the front."""
    lines = [INTERVALS[bootstrap]]
    natural = "Class mix: the test columns are for the test split's own class mix (the natural one)"
    if mix:
        lines.append(
            f"{natural}; the two {mix}-mix columns re-weight each test example by share_{mix}(class) / "
            "share_test(class) (the same resamples), macro-F1 over the classes the mix has. The row "
            f'"unweighted + post-hoc tau 1 for the {mix} mix" predicts argmax f(x) - (log pi_train - '
            f"log pi_{mix}) with the unweighted model's logits (Menon et al. 2021), no refit."
        )
    else:
        lines.append(natural + '; `make export ARGS="deploy_prior=uniform"` re-scores it for another mix.')
    lines.append(
        "Classes detected: classes with test F1 > 0. Its interval reaches down to what a same-size test set may "
        "show (a class with one or two correct test predictions loses them, or its examples, in many resamples) "
        "and up to the observed count: resampling cannot give a class a hit the test split never had. A "
        "resample without a class scores it F1 0, as the export does on any split: with one or two test "
        "examples, a class's gain can rest on an example a same-size test set would lack. On the front in % of "
        "validation resamples (p_front): how often the trial is non-dominated on the study's objectives when the "
        "validation split is resampled (1,000 paired resamples by default); 100 for a point no resample moves."
    )
    if tied:
        lines.append(tied)
    return lines


def write_meeting(
    front: pd.DataFrame,
    baselines: pd.DataFrame,
    csv_path: Path,
    bootstrap: str = "plain",
    mix: str | None = None,
    tied: str | None = None,
) -> tuple[list[Path], str]:
    """<stem>_meeting.md and <stem>_meeting.csv beside the CSV (pareto.csv -> pareto_meeting.md), each written
    atomically; returns the files and the markdown (which export prints). bootstrap, mix, tied: what the
    lines under the table say (context_lines)."""
    cells, notes, sentences = meeting_table(front, baselines, mix=mix)
    title = "Test split: baselines and the validation-chosen Pareto front" + (
        f", on the natural and the {mix} class mix" if mix else ""
    )
    text = markdown(cells, notes, sentences, title, context_lines(bootstrap, mix, tied))
    csv_path = Path(csv_path)
    md = write_atomic(csv_path.with_name(f"{csv_path.stem}_meeting.md"), lambda tmp: tmp.write_text(text))
    csv = write_atomic(csv_path.with_name(f"{csv_path.stem}_meeting.csv"), lambda tmp: cells.to_csv(tmp, index=False))
    return [md, csv], text
