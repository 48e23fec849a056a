"""A team's MLflow tracking server on this machine: PostgreSQL (Debian's ``postgresql`` package, a real server)
as the backend store, and ``mlflow server`` in front of it with a served artifact store (``--serve-artifacts``
+ ``--artifacts-destination``: clients send and fetch models through the server, never touching its files),
both bound to 127.0.0.1. ``make server`` starts it; the pipeline then runs against it with
``MLFLOW_TRACKING_URI=http://127.0.0.1:PORT`` and nothing else changed.

    python -m inspectcnn.team_server start [--folder .mlflow-server] [--port 5000] [--db-port 5433]
    python -m inspectcnn.team_server stop  [--folder .mlflow-server]
    python -m inspectcnn.team_server status [--folder .mlflow-server]

The folder keeps the artifacts, the logs and ``server.json`` (ports, process ids); the database lives in
``<folder>/postgres`` (or, when this runs as root, whose PostgreSQL refuses to run, in a folder the
``postgres`` user owns). ``stop`` then ``start`` again finds every run where it was. Authentication is
PostgreSQL's ``trust`` on the loopback interface only: put a password (``--backend-store-uri
postgresql://user:${DB_PASSWORD}@host/db``) and TLS in front before the server listens anywhere else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from inspectcnn.errors import UserError

HOST = "127.0.0.1"
DATABASE = "mlflow"
STATE_FILE = "server.json"


class ServerError(UserError, RuntimeError):
    """The team server cannot start or stop (PostgreSQL missing, a port taken, a process that died)."""


@dataclass(frozen=True)
class Server:
    folder: str
    port: int
    db_port: int
    pgdata: str
    mlflow_pid: int

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def backend_store(self) -> str:
        return backend_store(self.db_port)


def backend_store(db_port: int) -> str:
    """MLflow's backend store URI for the database on ``db_port`` (psycopg 3 through SQLAlchemy)."""
    return f"postgresql://{DATABASE}@{HOST}:{db_port}/{DATABASE}"


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """The folder of initdb/pg_ctl: pg_config's, else the newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "pg_ctl").is_file():
            return Path(out.stdout.strip())
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if candidates:
        return candidates[-1].parent
    if shutil.which("pg_ctl"):
        return Path(shutil.which("pg_ctl")).parent
    raise ServerError("PostgreSQL is not installed: apt-get install postgresql (Debian's package; only its "
                      "programs are used, no system service is started)")


def _as_postgres() -> list[str]:
    """The prefix that runs a PostgreSQL program as a user it accepts (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise ServerError("running as root, and runuser (util-linux) is missing to start PostgreSQL as postgres")
    return ["runuser", "-u", "postgres", "--"]


def _pgdata(folder: Path) -> Path:
    """<folder>/postgres, or, as root when the postgres user cannot reach that folder, a fixed folder per
    server folder under /var/tmp (so a restart finds the same database)."""
    inside = folder / "postgres"
    if os.geteuid() != 0:
        return inside
    reachable = subprocess.run([*_as_postgres(), "test", "-x", str(folder)], capture_output=True).returncode == 0
    if reachable:
        return inside
    tag = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"inspectcnn-postgres-{tag}"


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServerError(f"{what} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-800:]}")


def _start_postgres(folder: Path, db_port: int) -> Path:
    binaries, prefix = postgres_bin(), _as_postgres()
    pgdata = _pgdata(folder)
    if not (pgdata / "PG_VERSION").is_file():
        pgdata.mkdir(parents=True, exist_ok=True)
        if prefix:
            shutil.chown(pgdata, "postgres", "postgres")
        _run([*prefix, str(binaries / "initdb"), "-D", str(pgdata), "-U", DATABASE, "--auth=trust", "-E", "UTF8"],
             "initdb")
    options = f"-h {HOST} -p {db_port} -k {pgdata}"
    _run([*prefix, str(binaries / "pg_ctl"), "-D", str(pgdata), "-o", options, "-l", str(pgdata / "server.log"),
          "-w", "-t", "60", "start"], f"PostgreSQL on {HOST}:{db_port}")
    exists = subprocess.run([*prefix, str(binaries / "psql"), "-h", HOST, "-p", str(db_port), "-U", DATABASE, "-d",
                             "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                            capture_output=True, text=True)
    if exists.stdout.strip() != "1":
        _run([*prefix, str(binaries / "createdb"), "-h", HOST, "-p", str(db_port), "-U", DATABASE, DATABASE],
             "createdb")
    return pgdata


def _stop_postgres(pgdata: Path) -> None:
    if (pgdata / "postmaster.pid").is_file():
        _run([*_as_postgres(), str(postgres_bin() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
             "stopping PostgreSQL")


# --------------------------------------------------------------------------- MLflow


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_healthy(uri: str, process: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"mlflow server exited ({process.returncode}); its log {log}:\n"
                              f"{log.read_text()[-1500:]}")
        try:
            if requests.get(f"{uri}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise ServerError(f"mlflow server did not answer at {uri} within {timeout_s:.0f} s; its log: {log}")


def start_mlflow(folder: Path, port: int, store: str) -> subprocess.Popen:
    """``mlflow server`` on ``store`` with artifact proxying to ``<folder>/artifacts``, without the GenAI job
    runner (as ``make ui``: :data:`inspectcnn.ui.SERVER_ENV`); returns once /health answers."""
    from inspectcnn.ui import SERVER_ENV

    artifacts = folder / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    log = folder / "mlflow-server.log"
    command = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(port),
               "--backend-store-uri", store, "--serve-artifacts",
               "--artifacts-destination", str(artifacts.resolve()), "--workers", "2"]
    with log.open("ab") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **SERVER_ENV, "MLFLOW_TRACKING_URI": ""})
    _wait_healthy(f"http://{HOST}:{port}", process, log)
    return process


def stop_mlflow(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM to the server's process group (the server and its workers), SIGKILL if it lingers."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- the pair


def read_state(folder: Path) -> Server | None:
    path = folder / STATE_FILE
    return Server(**json.loads(path.read_text())) if path.is_file() else None


def start(folder: Path, port: int = 5000, db_port: int = 5433) -> Server:
    """PostgreSQL, then the MLflow server on it; refuses ports in use before starting anything."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    running = read_state(folder)
    if running is not None and _alive(running.mlflow_pid):
        raise ServerError(f"a server of {folder} already runs at {running.uri} (stop it first)")
    port, db_port = port or free_port(), db_port or free_port()
    for what, number in (("--port", port), ("--db-port", db_port)):
        if not _port_free(number):
            raise ServerError(f"{what} {number}: something already listens on {HOST}:{number}; choose another port")
    pgdata = _start_postgres(folder, db_port)
    try:
        process = start_mlflow(folder, port, backend_store(db_port))
    except Exception:
        _stop_postgres(pgdata)
        raise
    server = Server(str(folder), port, db_port, str(pgdata), process.pid)
    (folder / STATE_FILE).write_text(json.dumps(asdict(server), indent=2) + "\n")
    return server


def stop(folder: Path) -> Server | None:
    """Stop the MLflow server, then PostgreSQL; the database and artifacts stay."""
    server = read_state(folder.resolve())
    if server is None:
        return None
    stop_mlflow(server.mlflow_pid)
    _stop_postgres(Path(server.pgdata))
    return server


def _alive(pid: int) -> bool:
    try:  # a server this process started and that exited is a zombie until reaped
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    from inspectcnn.stage_runner import run_stage

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--folder", type=Path, default=Path(".mlflow-server"))
    parser.add_argument("--port", type=int, default=5000, help="the MLflow server's (0: any free port)")
    parser.add_argument("--db-port", type=int, default=5433, help="PostgreSQL's (0: any free port)")
    args = parser.parse_args(argv)

    def work() -> None:
        if args.action == "start":
            server = start(args.folder, args.port, args.db_port)
            print(f"MLflow server at {server.uri} (backend store {server.backend_store}, artifacts proxied to "
                  f"{Path(server.folder) / 'artifacts'}); to use it:\n  export MLFLOW_TRACKING_URI={server.uri}")
        elif args.action == "stop":
            server = stop(args.folder)
            print(f"stopped the server at {server.uri}" if server else f"no server recorded in {args.folder}")
        else:
            server = read_state(args.folder.resolve())
            up = server is not None and _alive(server.mlflow_pid)
            print(f"{server.uri}: {'running' if up else 'stopped'}" if server else "no server recorded")
            if not up:
                sys.exit(1)

    run_stage("team_server", work)


if __name__ == "__main__":
    main()
