"""The MLflow UI as a user sees it: a small sweep, a real `mlflow server` on it, headless Chromium.

Checks that the sweep's parent run shows in the experiment's runs table with its trials nested under it, and that
typing `tags.pareto = "true"` in the search box leaves exactly the trials the store tags as the Pareto front.
Screenshots go to tmp_path, or to docs/screenshots/ with SWEEP_SAVE_SCREENSHOTS=1 (what docs/ui.md shows).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sweep.cli import main
from sweep.config import load_config
from sweep.storage import open_storage

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STUDY = "ui-demo"
N_TRIALS = 8

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None,
                       reason="Debian's chromium is not installed (apt-get install chromium); no browser download"),
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
        "the filter only proves something when some trials are off the front", store["front"])
    return store


@pytest.fixture
def ui(tmp_path: Path):
    """`mlflow server` from the venv on 127.0.0.1:<free port> over a finished sweep; the server's whole process
    group is stopped afterwards. The server starts on the empty store while the sweep runs (both take ~10 s)."""
    args = [f"paths.root={tmp_path}", "data=synthetic", "task_name=ui", f"sweep.n_trials={N_TRIALS}",
            f"sweep.study_name={STUDY}", "data.signal=0.12", "sweep.progress=false"]
    cfg = load_config(args)
    Path(cfg.paths.mlruns_dir).mkdir(parents=True, exist_ok=True)
    MlflowClient(cfg.tracking.tracking_uri).search_experiments()  # creates the tables before two processes use them
    port = free_port()
    log_path = tmp_path / "mlflow-server.log"
    log = log_path.open("wb")
    cmd = [sys.executable, "-m", "mlflow", "server",
           "--backend-store-uri", cfg.tracking.tracking_uri,
           "--default-artifact-root", cfg.tracking.artifact_root,
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no huey job runner processes
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        assert main(["sweep", *args]) == 0
        store = sweep_summary(args)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n"
                            + log_path.read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow server not healthy after 60 s:\n" + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.25)
        yield {**store, "url": url}
    finally:
        # stop the process group this fixture started (mlflow server -> uvicorn), by its id
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


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
