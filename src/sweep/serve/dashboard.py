"""`make dashboard`: Optuna Dashboard on the harness's own Optuna storage (the journal file, or the RDB URL of
sweep.storage, PostgreSQL included), bound to 127.0.0.1 unless host= says otherwise; one process, Ctrl-C stops it."""

from __future__ import annotations

import socket
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from sweep.config import load_config, split_args
from sweep.report.links import browser_host
from sweep.search.storage import open_storage, storage_location
from sweep.serve.ui import parse_port, port_in_use, stop_signals
from sweep.tracking import redact

DASHBOARD_PORT = 8080


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # the page fetches several API routes at once; none outlives Ctrl-C


class _Server6(_Server):
    address_family = socket.AF_INET6  # host=:: or an IPv6 address


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request would bury the printed links


def dashboard_urls(storage: optuna.storages.BaseStorage, base: str) -> list[tuple[str, str]]:
    """(study, its dashboard page) for each study of the storage."""
    return [
        (s.study_name, f"{base}/studies/{storage.get_study_id_from_name(s.study_name)}")
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    ]


def dashboard_command(argv: list[str]) -> int:
    from optuna_dashboard import wsgi

    args, overrides = split_args(argv, ("host", "port"))
    cfg = load_config(overrides)
    host = args.get("host") or "127.0.0.1"
    port = parse_port(args.get("port") or DASHBOARD_PORT, "dashboard")
    storage = open_storage(cfg)
    try:
        server = make_server(
            host, port, wsgi(storage), server_class=_Server6 if ":" in host else _Server, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise port_in_use(host, port, "dashboard", exc) from None
    base = f"http://{browser_host(host)}:{port}/dashboard"
    urls = dashboard_urls(storage, base)
    if not urls:
        print(
            f"no study in {redact(storage_location(cfg))} yet: `make sweep` runs one (the dashboard shows it "
            "when it appears)"
        )
    for name, url in urls:
        print(f"study {name}, its Pareto front in Optuna Dashboard: {url}")
    print(f"Optuna Dashboard at {base} (Ctrl-C stops it)", flush=True)
    with stop_signals():  # Ctrl-C stops it, even started in the background
        try:
            server.serve_forever()
        finally:
            server.server_close()
    return 0
