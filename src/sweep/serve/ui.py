"""`make ui`: print the link to each study's Pareto front, then serve the project's MLflow store with `mlflow server`
in its own process group (serve/guard.py), stopped as a whole on Ctrl-C, SIGTERM, SIGHUP or this process's death."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import optuna
from omegaconf import DictConfig

from sweep.config import ConfigError, load_config, split_args
from sweep.report.links import UI_HOST, UI_PORT, browser_host, link_or_reason, ui_base_url
from sweep.search.storage import open_storage, storage_location
from sweep.serve.guard import stop_group
from sweep.tracking import TrackingError, redact, sqlalchemy_url


def parse_port(value, command: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise ConfigError(f"port={value!r} is not a port number: use e.g. PORT=5001 make {command}")
    return port


def local_host(host: str) -> str:
    """Where this machine reaches a server bound to host (a wildcard bind: the loopback address)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, browser_host(host))


LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(host: str) -> str:
    """MLflow's Host-header allow list for a server bound beyond loopback: its defaults answer only localhost and
    private addresses, so the printed link (this machine's name for a wildcard bind) would get "Invalid Host
    header" without it."""
    names = ["localhost", "127.0.0.1", "[::1]", browser_host(host)]
    private = ["192.168.*", "10.*", *[f"172.{i}.*" for i in range(16, 32)]]  # as MLflow's defaults: the LAN too
    return ",".join([*dict.fromkeys(f"{n}{port}" for n in names for port in ("", ":*")), *private])


def check_port(host: str, port: int, command: str) -> None:
    """Fail in one line when something already listens on host:port (another `make ui`?)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError as exc:
            raise port_in_use(host, port, command, exc) from None


def port_in_use(host: str, port: int, command: str, exc: OSError) -> ConfigError:
    return ConfigError(
        f"cannot listen on {host}:{port} ({exc.strerror}): stop what holds it (another `make "
        f"{command}`?) or choose another port, e.g. PORT={port + 1} make {command}"
    )


def study_links(cfg: DictConfig, name: str | None = None, base_url: str | None = None) -> list[tuple[str, str]]:
    """(study, link) for each study of the storage (or the one named); a study without runs gets the reason."""
    storage = open_storage(cfg)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name is not None and name not in names:
        raise ConfigError(f"no study named {name!r} in the storage; it has: {', '.join(names[:10]) or 'none'}")
    return [
        (n, link_or_reason(cfg, optuna.load_study(study_name=n, storage=storage), base_url))
        for n in ([name] if name else names)
    ]


def print_links(links: list[tuple[str, str]], cfg: DictConfig) -> None:
    if not links:
        where = redact(storage_location(cfg))
        print(f"no study in {where} yet: `make sweep` runs one (the UI starts anyway)")
    for name, link in links:
        print(f"study {name}, its Pareto front in MLflow: {link}")


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise TrackingError(f"mlflow server exited with status {proc.returncode}: see its log above")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TrackingError(f"mlflow server not answering on {url} after {timeout_s:.0f}s: see its log above")
        time.sleep(0.25)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def stop_signals():
    """Inside, Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt, even in a shell's background job (which starts
    with SIGINT ignored, so Python would raise nothing); the previous handlers come back on the way out."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(cmd: list[str], env: dict[str, str], url: str, what: str) -> int:
    """Run cmd under sweep.serve.guard in a new session; stop its whole group however this process ends. The guard
    watches a pipe whose only writer is this process: when we die, even by SIGKILL, the guard stops the group."""
    read_end, write_end = os.pipe()  # not inherited by other children (PEP 446)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweep.serve.guard", *cmd], stdin=read_end, env=env, start_new_session=True
    )
    os.close(read_end)
    with stop_signals():
        try:
            wait_healthy(url, proc)
            print(f"{what} at {url} (Ctrl-C stops it)", flush=True)
            return proc.wait()
        finally:
            stop_group(proc.pid)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            os.close(write_end)


def ui_command(argv: list[str]) -> int:
    args, overrides = split_args(argv, ("study", "host", "port"))
    cfg = load_config(overrides)
    host = args.get("host") or os.environ.get("SWEEP_UI_HOST") or UI_HOST
    port = parse_port(args.get("port") or os.environ.get("SWEEP_UI_PORT") or UI_PORT, "ui")
    uri = str(cfg.tracking.tracking_uri)
    remote = uri.startswith(("http://", "https://"))
    if not remote:
        check_port(host, port, "ui")
    print_links(study_links(cfg, args.get("study"), ui_base_url(uri, host, port)), cfg)
    if remote:
        print(f"the store is served by {redact(uri)}: open the links there (make ui serves a local store)")
        return 0
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--default-artifact-root",
        str(cfg.tracking.artifact_root),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # one worker and no job runner: starts in seconds, stops cleanly (the harness uses no MLflow jobs); the store
    # URL in the environment, not in argv, where `ps` would show a PostgreSQL password to every user
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_BACKEND_STORE_URI": sqlalchemy_url(uri)}
    if host not in LOOPBACK and "MLFLOW_SERVER_ALLOWED_HOSTS" not in env:
        env["MLFLOW_SERVER_ALLOWED_HOSTS"] = allowed_hosts(host)
    code = serve(cmd, env, f"http://{local_host(host)}:{port}", "MLflow UI")
    if code:
        raise TrackingError(f"mlflow server exited with status {code}: see its log above")
    return 0
