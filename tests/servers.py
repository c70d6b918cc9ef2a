"""Real servers for the integration and fault tests: a throwaway PostgreSQL cluster (Debian's `postgresql`
binaries; as root they run as the `postgres` user) that a test may restart, and an `mlflow server` from this venv
that a test may SIGKILL and start again on the same port. Both listen on 127.0.0.1 only."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

USER, PASSWORD = "sweep", "s3cr3t-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> Path | None:
    env = os.environ.get("PG_BINDIR")
    candidates = [Path(env)] if env else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    if shutil.which("pg_ctl"):
        candidates.append(Path(shutil.which("pg_ctl")).resolve().parent)
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file() and (d / "postgres").is_file():
            return d
    return None


def as_pg_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as `postgres` then."""
    if os.geteuid() != 0:
        return cmd
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "running as root and there is no `postgres` user to run PostgreSQL as: install Debian's "
            "postgresql package (it creates the user) or run the tests as a normal user"
        )
    return ["runuser", "-u", "postgres", "--", *cmd]


class Postgres:
    """A cluster of our own on a free port, password authentication, databases `optuna` and `mlflow`."""

    def __init__(self, bindir: Path):
        self.bindir, self.port, self.host = bindir, free_port(), "127.0.0.1"
        self.base = Path(tempfile.mkdtemp(prefix="sweep-pg-"))  # not under pytest's tmp: that is root-only (0700)
        self.data, self.log = self.base / "data", self.base / "server.log"

    def url(self, db: str = "optuna", scheme: str = "postgresql") -> str:
        return f"{scheme}://{USER}:{PASSWORD}@{self.host}:{self.port}/{db}"

    def _ctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]
        return subprocess.run(as_pg_user(cmd), capture_output=True, text=True, timeout=timeout)

    def init(self) -> Postgres:
        pwfile = self.base / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(self.base, 0o700)
        os.chmod(pwfile, 0o600)
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}"]
        initdb += ["--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8", "--no-sync"]
        subprocess.run(as_pg_user(initdb), check=True, capture_output=True, text=True, timeout=120)
        self.start()
        import psycopg2

        conn = psycopg2.connect(
            host=self.host, port=self.port, user=USER, password=PASSWORD, dbname="postgres", connect_timeout=10
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna")
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        return self

    def _opts(self) -> str:
        return f"-c listen_addresses={self.host} -p {self.port} -k {self.base} -c fsync=off -c max_connections=300"

    def start(self) -> None:
        out = self._ctl("-l", str(self.log), "-o", self._opts(), "-w", "-t", "60", "start")
        if out.returncode:
            log = self.log.read_text() if self.log.exists() else ""
            pytest.fail(f"pg_ctl start failed: {out.stdout}{out.stderr}\n{log[-3000:]}")

    def up(self) -> None:
        """start() unless it is running (`pg_ctl status`: 0 when it runs)."""
        if self._ctl("status").returncode != 0:
            self.start()

    def down(self) -> None:
        """`pg_ctl stop -m fast`, the data kept: every connection is cut until start()."""
        out = self._ctl("-m", "fast", "-w", "-t", "60", "stop")
        assert out.returncode == 0, out.stdout + out.stderr

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop", timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


def postgres_or_skip() -> Postgres:
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl, postgres) not found under /usr/lib/postgresql/*/bin or "
            "on PATH: `apt-get install postgresql` (or set PG_BINDIR)"
        )
    return Postgres(bindir).init()


class MlflowServer:
    """`mlflow server` on a backend store (PostgreSQL or SQLite) with proxied artifacts; kill() is SIGKILL to its
    whole process group, start() brings it back on the same port and store."""

    def __init__(self, backend_uri: str, folder: Path, workers: int = 2):
        self.backend, self.folder, self.workers = backend_uri, Path(folder), workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = self.folder / "server.log"

    def start(self, timeout: float = 120) -> MlflowServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        mlflow_bin = Path(sys.executable).with_name("mlflow")  # the venv's, not one on PATH
        launcher = [str(mlflow_bin)] if mlflow_bin.exists() else [sys.executable, "-m", "mlflow"]
        cmd = [*launcher, "server", "--backend-store-uri", self.backend]
        cmd += ["--artifacts-destination", str(self.folder / "artifacts"), "--default-artifact-root"]
        cmd += ["mlflow-artifacts:/", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        # no job runner (MLflow's GenAI jobs: a consumer process per queue, which the harness never uses), as
        # `make ui` starts it: the server is up in seconds and a kill takes all of it
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.folder, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if urllib.request.urlopen(self.url + "/health", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)  # a refused connection returns at once: polling costs nothing
        pytest.fail(f"mlflow server not healthy at {self.url} after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server and its workers (its own process group only), as an OOM killer or a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
