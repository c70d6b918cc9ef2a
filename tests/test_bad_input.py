"""Bad input, generated (hypothesis): CSV files (encodings, NUL bytes, quotes left open, empty labels, one huge
class, a 10 MB field) and config overrides (wrong types, out of range, unknown keys, stray syntax). Each ends in
a clean run or one `error:` line with exit code 2: never a traceback. The number of cases tried is printed
(`pytest -s`) and kept in CASES."""

from __future__ import annotations

import itertools
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweep.cli import main

CASES = {"csv": 0, "config": 0}
_counter = itertools.count()
LABELS = ["billing", "fraud", "card", "loan", "", " ", "Ünïcode", "a,b", '"q"', "0", "nan", "NULL"]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


def _one_error_or_clean(code: int, err: str) -> None:
    assert code in (0, 2), (code, err[-2000:])
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err[-2000:]
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), lines


def _csv_bytes(draw) -> bytes:
    header = draw(st.sampled_from(["text,label", "label,text", "text,label,extra", "body,queue", "text;label", ""]))
    n = draw(st.integers(0, 60))
    huge = draw(st.booleans())  # one class holding almost everything
    rows = []
    for i in range(n):
        text = draw(TEXT) if draw(st.integers(0, 4)) else f"complaint {i} about {draw(TEXT)}"
        label = "billing" if huge and i % 20 else draw(st.sampled_from(LABELS))
        quote = draw(st.sampled_from(["plain", "quoted", "open", "nul", "extra"]))
        if quote == "quoted":
            row = f'"{text.replace(chr(34), chr(34) * 2)}",{label}'
        elif quote == "open":
            row = f'"{text},{label}'  # a quote never closed
        elif quote == "nul":
            row = f"{text}\0,{label}"
        elif quote == "extra":
            row = f"{text},{label},surplus"
        else:
            row = f"{text},{label}"
        rows.append(row)
    body = "\n".join([header, *rows]) + draw(st.sampled_from(["\n", "", "\r\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    return body.encode(encoding, errors="replace")


@st.composite
def csv_files(draw) -> bytes:
    return _csv_bytes(draw)


@pytest.mark.slow  # 25-150 generated cases: the full run's (make test), not the edit loop's
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=csv_files())
def test_generated_csv_files_are_a_clean_run_or_one_error_line(data, tmp_path, capsys):
    CASES["csv"] += 1
    path = tmp_path / f"in{next(_counter)}.csv"
    path.write_bytes(data)
    capsys.readouterr()
    code = main(["data", f"paths.root={tmp_path}", "data=csv", f"data.path={path}"])
    _one_error_or_clean(code, capsys.readouterr().err)


def test_a_10mb_field_and_nul_bytes(tmp_path, capsys):
    rows = [f"complaint {i} about card {i % 7},{['card', 'loan', 'fraud'][i % 3]}" for i in range(300)]
    rows[5] = "x" * 10_000_000 + ",card"
    rows[6] = "nul \0 inside,loan"
    path = tmp_path / "big.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    CASES["csv"] += 1
    code = main(["data", f"paths.root={tmp_path}", "data=csv", f"data.path={path}"])
    _one_error_or_clean(code, capsys.readouterr().err)


KEYS = [
    "sweep.n_trials", "sweep.workers", "sweep.total_trials", "sweep.sampler", "sweep.cv_folds", "sweep.gpus",
    "sweep.storage_retry_window_s", "tracking.retry_window_s", "sweep.heartbeat_interval", "weighting.alpha",
    "loss.posthoc_tau", "model.head.l2", "model.head.max_iter", "data.val_fraction", "data.imbalance_ratio",
    "data.n_classes", "data.n_max", "seed", "sweep.params.weighting.alpha", "sweep.params.loss.posthoc_tau",
    "data.small_classes", "weighting", "loss", "model", "sweep.objectives", "sweep.seed",
    "sweep.max_failures_in_a_row", "sweep.pruner", "sweep.halving.eta", "sweep.halving.min_fraction",
    "sweep.launcher", "sweep.ray.address", "sweep.ray.gpus_per_worker", "sweep.ray.cpus_per_worker",
    "sweep.front_boot", "sweep.tied_p_front", "data.imbalance_splits", "model.head.device",
]  # fmt: skip
VALUES = st.one_of(
    st.integers(-10, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["null", "true", "[]", "[0,1]", "{}", "abc", "''", "interval(1,0)", "choice()", "${oops}",
                     "range(0,1,0)", "interval(0,9)", "tpe", "-1", "1e309", "0x10", "[a", "'x", "none", "0,1"]),
    st.text(alphabet=string.printable, max_size=12),
)  # fmt: skip


@st.composite
def overrides(draw) -> list[str]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.one_of(st.sampled_from(KEYS), st.from_regex(r"\A[a-z_]{1,8}(\.[a-z_]{1,8}){0,2}\Z")))
        prefix = draw(st.sampled_from(["", "", "+", "++", "~"]))
        out.append(f"{prefix}{key}={draw(VALUES)}")
    return out


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-config")


@pytest.mark.slow  # 25-150 generated cases: the full run's (make test), not the edit loop's
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=overrides())
def test_generated_config_overrides_are_a_clean_run_or_one_error_line(extra, shared_root, capsys):
    """`python -m sweep data` (the config composed and checked, the data generated and split) with up to 3
    generated overrides: a clean run or one line."""
    CASES["config"] += 1
    capsys.readouterr()
    code = main(["data", f"paths.root={shared_root}", "data=synthetic", "task_name=bad", *extra])
    _one_error_or_clean(code, capsys.readouterr().err)


@pytest.mark.slow  # 25-150 generated cases: the full run's (make test), not the edit loop's
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=overrides())
def test_generated_overrides_of_a_sweep_are_a_clean_start_or_one_error_line(extra, shared_root, capsys):
    """`make sweep` with sweep.n_trials=0 (the search space parsed, storage and tracking opened, no trial
    trains) and generated overrides: a clean start or one line."""
    CASES["config"] += 1
    base = [f"paths.root={shared_root}", "data=synthetic", "task_name=bad", f"sweep.study_name=s{next(_counter)}"]
    runs = ("sweep.n_trials", "sweep.total_trials", "sweep.workers")  # checked by the test above; here, no trials
    extra = [o for o in extra if o.lstrip("+~").partition("=")[0] not in runs]
    capsys.readouterr()
    code = main(["sweep", *base, "sweep.progress=false", *extra, "sweep.n_trials=0"])
    _one_error_or_clean(code, capsys.readouterr().err)


@pytest.mark.parametrize(
    "deleted", ["~weighting", "~weighting.alpha", "~model.head", "~loss.name", "~sweep.params", "~sweep.sampler"]
)
def test_a_deleted_key_is_one_line_naming_it(deleted, shared_root, capsys):
    # found by the generated overrides above: a group or key deleted with ~ was a traceback (ConfigAttributeError)
    base = [f"paths.root={shared_root}", "data=synthetic", "task_name=bad", f"sweep.study_name=s{next(_counter)}"]
    code = main(["sweep", *base, "sweep.progress=false", deleted, "sweep.n_trials=0"])
    err = capsys.readouterr().err
    _one_error_or_clean(code, err)
    assert code == 2 and f"{deleted[1:]} is missing from the composed config" in err


def test_print_the_number_of_cases_tried():
    print(f"bad inputs tried: {CASES['csv']} CSV files, {CASES['config']} override sets, none a traceback")
