"""The MLflow UI as a user sees it: a small sweep, a real `mlflow server` on it, headless Chromium.

Checks that the sweep's parent run shows in the experiment's runs table with its trials nested under it, and that
typing `tags.pareto = "true"` in the search box leaves exactly the trials the store tags as the Pareto front.
Screenshots go to tmp_path, or to docs/screenshots/ with SWEEP_SAVE_SCREENSHOTS=1 (what docs/ui.md shows).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sweep.cli import main
from sweep.config import load_config
from sweep.search.storage import open_storage

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STUDY = "ui-demo"
N_TRIALS = 8

pytestmark = [
    pytest.mark.system,
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="Debian's chromium is not installed (apt-get install chromium); no browser download",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sweep_summary(args: list[str]) -> dict:
    """What the store says about the finished sweep: the names the UI must show."""
    cfg = load_config(args)
    study = optuna.load_study(study_name=STUDY, storage=open_storage(cfg))
    client = MlflowClient(cfg.tracking.tracking_uri)
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    exp = parent.info.experiment_id
    kids = client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=1000)
    front = client.search_runs([exp], "tags.pareto = 'true'", max_results=1000)
    store = {
        "experiment_id": exp,
        "experiment": client.get_experiment(exp).name,
        "parent": parent.info.run_name,
        "children": {k.info.run_name for k in kids},
        "front": {r.info.run_name for r in front},
    }
    assert store["children"] == {f"trial-{n}" for n in range(N_TRIALS)}
    assert store["front"] == {f"trial-{t.number}" for t in study.best_trials}
    assert store["front"] and store["front"] < store["children"], (
        "the filter only proves something when some trials are off the front",
        store["front"],
    )
    return store


LINK = re.compile(r"^study (?P<study>\S+), its Pareto front in (?:MLflow|Optuna Dashboard): (?P<url>\S+)$", re.M)


def start(command: list[str], log_path: Path, ready: str, timeout_s: float = 120) -> tuple[subprocess.Popen, str]:
    """`python -m sweep <command>` as `make` runs it; returns the process and its output once `ready` is printed."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweep", *command], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    deadline = time.monotonic() + timeout_s
    while ready not in (text := log_path.read_text(errors="replace")):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"sweep {command[0]} not ready ({proc.returncode}):\n{text[-3000:]}")
        time.sleep(0.05)
    return proc, text


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops it (python -m sweep ui then stops the server's whole process group)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A finished 8-trial sweep on the generated data, and the link its last lines print."""
    root = tmp_path_factory.mktemp("ui")
    port = free_port()
    args = [
        f"paths.root={root}",
        "data=synthetic",
        "task_name=ui",
        f"sweep.n_trials={N_TRIALS}",
        f"sweep.study_name={STUDY}",
        "data.signal=0.12",
        "sweep.progress=false",
    ]
    out = io.StringIO()
    saved = os.environ.get("SWEEP_UI_PORT")
    os.environ["SWEEP_UI_PORT"] = str(port)  # as `make sweep` passes PORT on
    try:
        with contextlib.redirect_stdout(out):
            assert main(["sweep", *args]) == 0
    finally:
        os.environ.pop("SWEEP_UI_PORT") if saved is None else os.environ.update(SWEEP_UI_PORT=saved)
    printed = re.search(r"the front in MLflow \(make ui, then open\): (\S+)", out.getvalue())
    assert printed, out.getvalue()
    return {**sweep_summary(args), "root": root, "args": args, "port": port, "sweep_link": printed.group(1)}


@pytest.fixture(scope="module")
def ui(store) -> dict:
    """`python -m sweep ui` (what `make ui` runs) on the store: the links it prints, then its server."""
    port = store["port"]
    proc, text = start(["ui", *store["args"], f"port={port}"], store["root"] / "ui.log", "Ctrl-C stops it")
    try:
        links = {m["study"]: m["url"] for m in LINK.finditer(text)}
        yield {**store, "url": f"http://127.0.0.1:{port}", "links": links}
    finally:
        stop(proc)


def screenshot_dir(tmp_path: Path) -> Path:
    if os.environ.get("SWEEP_SAVE_SCREENSHOTS") == "1":
        out = REPO / "docs" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        return out
    return tmp_path


def run_names(page) -> list[str]:
    """Run names in the runs table, top to bottom (each name is a link to its run page)."""
    return page.locator('[role="grid"] a[href*="/runs/"]').all_inner_texts()


def show_columns(page, names: tuple[str, ...]) -> None:
    """Best effort, for the screenshots only: toggle columns in the "Columns" picker (its search box, then the name)."""
    from playwright.sync_api import Error

    try:
        page.get_by_role("button", name="Columns").click()
        search = page.get_by_placeholder("Search columns")
        for name in names:
            search.fill(name)
            page.get_by_role("dialog").get_by_text(name, exact=True).click(timeout=5_000)
        page.keyboard.press("Escape")
    except Error as exc:
        warnings.warn(f"could not set the runs table's columns for the screenshots: {exc}", stacklevel=2)
        page.keyboard.press("Escape")


def test_ui_shows_the_sweep_nested_and_the_pareto_filter(ui, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    parent, children, front = ui["parent"], ui["children"], ui["front"]
    off_front = sorted(children - front)
    shots = screenshot_dir(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 720})
            page.set_default_timeout(20_000)
            # the user's way in: the experiments list, "Model training" mode (MLflow 3 opens on GenAI), the experiment
            page.goto(f"{ui['url']}/#/experiments")
            page.get_by_text("Model training", exact=True).click()
            page.get_by_role("link", name=ui["experiment"], exact=True).click()
            expect(page).to_have_url(re.compile(rf"#/experiments/{ui['experiment_id']}\b"))
            close_assistant = page.get_by_role("button", name="Close")
            if close_assistant.count() == 1 and close_assistant.is_visible():
                close_assistant.click()  # the "MLflow Assistant" side panel: only for a wider table in the shots

            parent_link = page.get_by_role("link", name=parent, exact=True)
            expect(parent_link).to_be_visible()
            # the objectives and the tag in view; the default attribute columns out of the way
            show_columns(page, ("val_accuracy", "val_macro_f1", "pareto", "Dataset", "Source", "Models"))
            if run_names(page) == [parent]:  # MLflow 3.17 starts with the children collapsed under the parent
                page.locator('[role="row"]', has=parent_link).get_by_role("button").first.click()  # the (+)
            expect(page.get_by_role("link", name=f"trial-{N_TRIALS - 1}", exact=True)).to_be_visible()
            names = run_names(page)
            assert names[0] == parent and sorted(names[1:]) == sorted(children), names
            page.screenshot(path=str(shots / "mlflow-sweep.png"))

            box = page.get_by_test_id("search-box")
            box.fill('tags.pareto = "true"')
            box.press("Enter")
            expect(page).to_have_url(re.compile(r"searchFilter=tags\.pareto"))
            for name in off_front:
                expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
            for name in front:
                expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
            names = run_names(page)
            # the UI keeps the (untagged) parent as the row the matching children hang under
            assert names[0] == parent and set(names[1:]) == front and len(names) == len(front) + 1, (names, front)
            expect(box).to_have_value('tags.pareto = "true"')
            page.screenshot(path=str(shots / "mlflow-pareto-filter.png"))
        finally:
            browser.close()


def close_assistant(page) -> None:
    """The "MLflow Assistant" side panel: closed for a wider table (in the shots and for the user alike)."""
    button = page.get_by_role("button", name="Close")
    if button.count() == 1 and button.is_visible():
        button.click()


def test_the_printed_link_opens_the_front_in_the_runs_table(ui, tmp_path):
    """What `make ui` (and `make sweep`) print: one click from the terminal to the study's front, its objectives as
    columns, the runs table and not MLflow 3's GenAI overview."""
    from playwright.sync_api import expect, sync_playwright

    link = ui["links"][STUDY]
    assert link == ui["sweep_link"], "make sweep and make ui print the same link"
    assert link.startswith(f"{ui['url']}/#/experiments/{ui['experiment_id']}/runs?workflowType=machine_learning")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 720})
            page.set_default_timeout(20_000)
            page.goto(link)
            expect(page.get_by_role("link", name=sorted(ui["front"])[0], exact=True)).to_be_visible()
            close_assistant(page)
            expect(page.get_by_role("grid")).to_be_visible()
            expect(page.get_by_text("Traces", exact=True).and_(page.get_by_role("heading"))).to_have_count(0)
            expect(page).to_have_url(re.compile(r"#/experiments/\d+/runs\?"))
            names = run_names(page)
            # exactly the front; MLflow may keep the (untagged) parent as the row the front hangs under
            assert set(names) - {ui["parent"]} == ui["front"] and len(names) == len(set(names)), (names, ui["front"])
            expect(page.get_by_test_id("search-box")).to_have_value(
                f'tags.pareto = "true" and tags.study_name = "{STUDY}"'
            )
            headers = page.get_by_role("columnheader").all_inner_texts()
            for column in ("val_accuracy", "val_macro_f1", "weighting.alpha", "loss.posthoc_tau", "pareto"):
                assert column in headers, headers
            page.screenshot(path=str(screenshot_dir(tmp_path) / "mlflow-front-link.png"))
        finally:
            browser.close()


def test_dashboard_draws_the_pareto_front_with_the_objective_names(store, tmp_path):
    """`python -m sweep dashboard` (make dashboard) on the study's storage: the printed study page shows the
    Pareto-front plot, its axes named after the objectives."""
    from playwright.sync_api import expect, sync_playwright

    port = free_port()
    proc, text = start(["dashboard", *store["args"], f"port={port}"], tmp_path / "dashboard.log", "Ctrl-C stops it")
    try:
        links = {m["study"]: m["url"] for m in LINK.finditer(text)}
        assert links[STUDY].startswith(f"http://127.0.0.1:{port}/dashboard/studies/"), text
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 720})
                page.set_default_timeout(30_000)
                page.goto(links[STUDY])
                title = page.get_by_text("Pareto Front", exact=True)
                expect(title).to_be_visible()
                card = page.locator("div", has=title).filter(has=page.locator(".js-plotly-plot")).last
                # the objectives' names (set on the study) name the plot's axes, in its X / Y selectors
                expect(card.get_by_role("group", name="Objective X:")).to_contain_text("val_accuracy")
                expect(card.get_by_role("group", name="Objective Y:")).to_contain_text("val_macro_f1")
                expect(card.locator(".scatterlayer path.point")).to_have_count(N_TRIALS)  # one point per trial
                page.screenshot(path=str(screenshot_dir(tmp_path) / "optuna-dashboard-pareto.png"))
            finally:
                browser.close()
    finally:
        stop(proc)
    assert proc.returncode == 130
