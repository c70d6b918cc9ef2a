"""The front's export columns, named once: each column of pareto.csv a report shows (name, label, format), and
which of them each writer shows (export's printed table, report.md, the tied trials, the meeting table)."""

from __future__ import annotations

from dataclasses import dataclass

SCALED = {"pct": ("_pct", 100), "points": ("_points", 100), "share": ("_pct", 100)}


@dataclass(frozen=True)
class Column:
    """name: the pareto.csv column; label: its words for people; format: "pct" (a fraction shown in %),
    "points" (a change of a fraction shown in points), "share" (a probability shown in %), "count", "int",
    "float", "bool" or "text"; interval: name_ci_low / name_ci_high hold its 95% interval."""

    name: str
    label: str
    format: str = "float"
    interval: bool = False

    @property
    def csv_name(self) -> str:
        """The meeting CSV's column for it, in the unit it is shown in: test_accuracy -> test_accuracy_pct."""
        return self.name + SCALED.get(self.format, ("", 1))[0]

    @property
    def scale(self) -> int:
        return SCALED.get(self.format, ("", 1))[1]

    def bounds(self) -> tuple[str, str]:
        return f"{self.name}_ci_low", f"{self.name}_ci_high"


COLUMNS = {
    c.name: c
    for c in (
        Column("trial", "Trial", "int"),
        Column("mlflow_run_id", "MLflow run", "text"),
        Column("alpha", "alpha"),
        Column("tau", "tau (logit-adjusted loss)"),
        Column("posthoc_tau", "post-hoc tau"),
        Column("loss", "Loss", "text"),
        Column("weighting", "Weighting", "text"),
        Column("model", "Model", "text"),
        Column("val_accuracy", "Validation accuracy"),
        Column("val_macro_f1", "Validation macro-F1"),
        Column("val_coverage", "Validation classes detected", "count"),
        Column("p_front", "On the front in % of validation resamples", "share"),
        Column("test_accuracy", "Test accuracy %", "pct", interval=True),
        Column("test_macro_f1", "Test macro-F1 %", "pct", interval=True),
        Column("test_balanced_accuracy", "Test balanced accuracy %", "pct", interval=True),
        Column("zero_f1_classes", "Classes with test F1 0", "int"),
        Column("test_coverage", "Classes detected (F1 > 0)", "count", interval=True),
        Column("n_classes", "Classes", "int"),
        Column("deploy_accuracy", "Accuracy % on the {mix} mix", "pct", interval=True),
        Column("deploy_macro_f1", "Macro-F1 % on the {mix} mix", "pct", interval=True),
        Column("delta_test_accuracy", "Accuracy vs unweighted, points", "points", interval=True),
        Column("delta_test_macro_f1", "Macro-F1 vs unweighted, points", "points", interval=True),
        Column("within_noise", "Within noise of the unweighted model", "bool"),
        Column("delta_head_accuracy", "Head accuracy vs unweighted", "points"),
        Column("delta_head_macro_f1", "Head macro-F1 vs unweighted", "points"),
        Column("delta_tail_accuracy", "Tail accuracy vs unweighted", "points"),
        Column("delta_tail_macro_f1", "Tail macro-F1 vs unweighted", "points"),
        Column("classes_gained", "Classes gained", "text"),
        Column("classes_lost", "Classes lost", "text"),
        Column("beats_beyond_noise", "Beats beyond noise", "text"),
        Column("beaten_by_baseline", "Beaten by baseline", "text"),
    )
}


def with_intervals(*names: str) -> tuple[str, ...]:
    """The names, each column with an interval followed by its bounds: test_accuracy -> test_accuracy,
    test_accuracy_ci_low, test_accuracy_ci_high."""
    return tuple(n for name in names for n in (name, *(COLUMNS[name].bounds() if COLUMNS[name].interval else ())))


# the test figures every front row has (empty without an MLflow client), right after the study's own columns
TEST = ("test_accuracy", "test_macro_f1", "test_balanced_accuracy", "zero_f1_classes", "test_coverage")
TEST += ("delta_test_accuracy", "delta_test_macro_f1")
# `make export` prints these
PRINTED = ("trial", "alpha", "posthoc_tau", "tau", "val_accuracy", "val_macro_f1", "p_front")
PRINTED += with_intervals("test_accuracy", "test_macro_f1", "test_coverage")
PRINTED += ("deploy_accuracy", "deploy_macro_f1", "within_noise", "classes_gained", "classes_lost")
# report.md's table of the front
REPORT = ("trial", "alpha", "tau", "posthoc_tau", *with_intervals("test_accuracy", "test_macro_f1"))
REPORT += ("delta_test_accuracy", "delta_test_macro_f1", "within_noise", "delta_head_accuracy", "delta_head_macro_f1")
REPORT += ("delta_tail_accuracy", "delta_tail_macro_f1", "zero_f1_classes", "test_coverage", "p_front")
REPORT += ("deploy_accuracy", "deploy_macro_f1", "classes_gained", "classes_lost", "beats_beyond_noise")
REPORT += ("beaten_by_baseline", "mlflow_run_id")
# the trials tied with the front (pareto_tied.csv), before any further objective's val_ column
TIED = ("trial", "p_front", "alpha", "posthoc_tau", "loss", "val_accuracy", "val_macro_f1", "mlflow_run_id")
# the meeting table's figures, in its order: test, the deployment mix (when given), the change, classes, p_front
MEETING_TEST = ("test_accuracy", "test_macro_f1")
MEETING_MIX = ("deploy_accuracy", "deploy_macro_f1")
MEETING_CHANGE = ("delta_test_accuracy", "delta_test_macro_f1")
