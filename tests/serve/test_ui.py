"""`make ui` / `make dashboard` without starting a server: a port in use or a bad port is one line naming the fix,
the printed links open the runs view on the front, a wildcard bind allows the host its link names, help names them."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from sweep.cli import main
from sweep.report.links import front_view, runs_view_url, ui_base_url, view_key
from sweep.serve.ui import allowed_hosts

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_in_use_is_one_line_naming_the_fix(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for command in ("ui", "dashboard"):
            assert main([command, f"paths.root={tmp_path}", "data=synthetic", f"port={port}"]) == 2
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and f"127.0.0.1:{port}" in err and f"PORT={port + 1} make {command}" in err


def test_bad_port_and_unknown_study_are_one_line(tmp_path, capsys):
    assert main(["ui", f"paths.root={tmp_path}", "data=synthetic", "port=http"]) == 2
    assert "port='http' is not a port number" in capsys.readouterr().err
    assert main(["ui", f"paths.root={tmp_path}", "data=synthetic", f"port={free_port()}", "study=nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no study named 'nope'" in err


def test_links_open_the_runs_view_on_a_saved_view(monkeypatch):
    assert (
        runs_view_url("3", view_key="pareto-a")
        == "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning&viewStateShareKey=pareto-a"
    )
    assert runs_view_url("3").endswith("runs?workflowType=machine_learning&searchFilter=tags.pareto%20%3D%20%22true%22")
    assert view_key("cfpb-synthetic-tfidf_linear") == "pareto-cfpb-synthetic-tfidf_linear"
    assert view_key("a b") != view_key("a/b") and view_key("a b").startswith("pareto-a-b-")
    view = front_view("s1", ["weighting.alpha"])
    assert view["searchFilter"] == 'tags.pareto = "true" and tags.study_name = "s1"'
    assert view["selectedColumns"][:2] == ["metrics.`val_accuracy`", "metrics.`val_macro_f1`"]
    assert "params.`weighting.alpha`" in view["selectedColumns"] and view["orderByKey"] == "metrics.`val_macro_f1`"
    monkeypatch.setenv("SWEEP_UI_PORT", "5001")
    assert ui_base_url("sqlite:///x.db") == "http://127.0.0.1:5001"
    assert ui_base_url("http://mlflow.example:5000/") == "http://mlflow.example:5000"
    # printed by sweep, export and ui: a tracking server's credentials never reach the terminal
    assert ui_base_url("https://bob:s3cret@mlflow.example:5000/") == "https://mlflow.example:5000"


def test_a_wildcard_bind_allows_the_host_its_link_names(monkeypatch):
    import sweep.report.links

    monkeypatch.setattr(sweep.report.links.socket, "gethostname", lambda: "box")
    assert ui_base_url("sqlite:///x.db", "0.0.0.0", 5000) == "http://box:5000"
    allowed = allowed_hosts("0.0.0.0").split(",")
    assert {"box", "box:*", "localhost:*", "127.0.0.1:*"} <= set(allowed)  # MLflow answers the printed link


@pytest.mark.parametrize("argv", [["--help"], ["ui", "--help"], ["dashboard", "-h"], ["export", "--help"]])
def test_help_names_the_new_commands_and_outputs_wherever_it_is_asked(argv, capsys):
    assert main(argv) == 0  # not Hydra's "bad override in ['--help']"
    out = capsys.readouterr().out
    assert "  ui " in out and "  dashboard " in out and "pareto_meeting.md" in out and "per_class" in out


def test_make_help_names_the_new_commands_and_outputs():
    make = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    lines = dict(line.split("\t", 1) for line in make.splitlines() if "\t" in line)
    assert "ui" in lines and "dashboard" in lines
    assert "pareto_meeting.md" in lines["export"] and "per_class" in lines["export"]
