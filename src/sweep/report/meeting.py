"""The front for people: pareto_meeting.md (one row per baseline and per front point, plain labels, test figures in
% with intervals, classes detected, p_front, the deployment mix when given, a verdict in words, and under it what
the intervals are) and pareto_meeting.csv, the same rows with each estimate and bound a number in its own column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sweep.files import frame_csv, markdown_table, md_text, write_atomic
from sweep.report.columns import COLUMNS, MEETING_CHANGE, MEETING_MIX, MEETING_TEST
from sweep.report.labels import meeting_rows, names_in, verdict
from sweep.report.sentences import beaten_sentences, context_lines

GAINED_LOST = "Classes gained / lost"
VERDICT = "Beats unweighted beyond noise?"


def _pct(v, lo, hi) -> str:
    if pd.isna(v):
        return "n/a"
    return f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _points(v, lo, hi) -> str:
    if pd.isna(v):
        return "n/a"
    f = [100 * x + 0.0 for x in (v, lo, hi)]  # + 0.0: an exact 0 is "+0.0"; a tiny negative stays "-0.0"
    return f"{f[0]:+.1f} [{f[1]:+.1f}, {f[2]:+.1f}]"


def _detected(r: dict) -> str:
    if pd.isna(r.get("test_coverage")):
        return "n/a"
    lo, hi = r.get("test_coverage_ci_low"), r.get("test_coverage_ci_high")
    return f"{int(r['test_coverage'])} of {int(r['n_classes'])}" + (f" [{lo:.0f}, {hi:.0f}]" if pd.notna(lo) else "")


def _share(p) -> str:
    return "n/a" if p is None or pd.isna(p) else f"{100 * p:.0f}"


def _figures(rows: pd.DataFrame, mix: str | None) -> list:
    """The registry's columns of the figures shown, in order: test, the deployment mix (when scored), change."""
    deploy = mix is not None and "deploy_accuracy" in rows
    return [COLUMNS[n] for n in (*MEETING_TEST, *(MEETING_MIX if deploy else ()), *MEETING_CHANGE)]


def meeting_table(
    front: pd.DataFrame, baselines: pd.DataFrame, reference: str = "unweighted", mix: str | None = None
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The Markdown table's cells (Model, Kind, the figures with their intervals as text, classes detected,
    gained / lost, p_front, the verdict), the footnotes naming the classes gained / lost, and the sentences
    saying whether a baseline beats the validation-chosen front on test."""
    rows = meeting_rows(front, baselines, reference, mix)
    figures = _figures(rows, mix)
    columns = ["Model", "Kind", *(f"{c.label.format(mix=mix)} [95% CI]" for c in figures)]
    columns += [f"{COLUMNS['test_coverage'].label} [95% CI]", GAINED_LOST, COLUMNS["p_front"].label, VERDICT]
    cells, notes = [], []
    for r in rows.to_dict("records"):
        gained, lost = names_in(r.get("classes_gained")), names_in(r.get("classes_lost"))
        moved = f"{len(gained)} / {len(lost)}" if "classes_gained" in r and pd.notna(r.get("test_accuracy")) else "n/a"
        if gained or lost:
            notes.append(
                md_text(
                    f"[{len(notes) + 1}] {r['label']}: gained {'; '.join(gained) or 'none'}. "
                    f"Lost {'; '.join(lost) or 'none'}."
                )
            )
            moved += f" [{len(notes)}]"
        is_ref = r.get("baseline") == reference
        shown = [
            "0.0 (reference)"
            if is_ref and c.format == "points"
            else (_points if c.format == "points" else _pct)(r.get(c.name), *(r.get(b) for b in c.bounds()))
            for c in figures
        ]
        verdict_words = "reference" if is_ref else verdict(r)
        cells.append([r["label"], r["row"], *shown, _detected(r), moved, _share(r.get("p_front")), verdict_words])
    return pd.DataFrame(cells, columns=columns), notes, beaten_sentences(front, baselines)


def meeting_numbers(
    front: pd.DataFrame, baselines: pd.DataFrame, reference: str = "unweighted", mix: str | None = None
) -> pd.DataFrame:
    """The CSV's rows, those of meeting_table: each figure in its unit (test_accuracy_pct and its _low / _high
    bounds, delta_test_accuracy_points, ...) as a number, classes detected as counts, the classes gained / lost
    by name, p_front in %, the verdict in words."""
    rows = meeting_rows(front, baselines, reference, mix)

    def numbers(name: str, scale: float = 1, digits: int = 2) -> pd.Series:
        values = pd.to_numeric(rows[name], errors="coerce") if name in rows else pd.Series(float("nan"), rows.index)
        return (scale * values).round(digits) + 0.0  # + 0.0: no "-0.0"

    out = pd.DataFrame({"model": rows["label"], "kind": rows["row"]})
    for c in _figures(rows, mix):
        for name, suffix in zip((c.name, *c.bounds()), ("", "_low", "_high"), strict=True):
            out[c.csv_name + suffix] = numbers(name, c.scale)
    for name, suffix in zip(("test_coverage", *COLUMNS["test_coverage"].bounds()), ("", "_low", "_high"), strict=True):
        out["classes_detected" + suffix] = numbers(name, digits=0).astype("Int64")
    out["n_classes"] = numbers("n_classes", digits=0).astype("Int64")
    for name in ("classes_gained", "classes_lost"):
        out[name] = rows[name] if name in rows else ""
    out[COLUMNS["p_front"].csv_name] = numbers("p_front", 100, 1)
    out["verdict"] = ["reference" if r.get("baseline") == reference else verdict(r) for r in rows.to_dict("records")]
    return out


def markdown(cells: pd.DataFrame, notes: list[str], sentences: list[str], title: str, lines: list[str] = ()) -> str:
    """One GitHub table, the footnotes under it, then the sentences, then `lines` (what the intervals are, the
    class mix, the trials tied with the front)."""
    out = [f"### {title}", "", markdown_table(cells), ""]
    if notes:
        out += [
            "Classes gained / lost: F1 from 0 on the unweighted model to above 0, and back.",
            "",
            *[f"{n}  " for n in notes],
            "",
        ]
    return "\n".join([*out, *sentences, "", *(f"{line}\n" for line in lines)])


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
    md = write_atomic(csv_path.with_name(f"{csv_path.stem}_meeting.md"), text)
    table = frame_csv(meeting_numbers(front, baselines, mix=mix))
    return [md, write_atomic(csv_path.with_name(f"{csv_path.stem}_meeting.csv"), table)], text
