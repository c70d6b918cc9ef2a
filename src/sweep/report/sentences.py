"""The words under the meeting table: which baseline beats which front point on test, what the intervals are, which
class mix the figures are for, what classes detected and p_front mean."""

from __future__ import annotations

import pandas as pd

from sweep.report.labels import LABELS, meeting_rows, names_in

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
        for entry in names_in(r.beaten_by_baseline):
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
