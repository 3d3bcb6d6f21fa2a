"""A real, throwaway PostgreSQL server on loopback for the production-profile tests.

Uses the system's PostgreSQL binaries (``python3 tasks.py test`` installs Debian's ``postgresql``
when they are missing). Runs as the ``postgres`` user when the tests run as root (PostgreSQL
refuses root), with password authentication: the credentials reach Dagster only through the
DAGSTER_PG_* environment variables, as in production.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder holding pg_ctl and initdb: on PATH, or Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    folder: Path
    port: int
    user: str
    password: str
    database: str

    @property
    def env(self) -> dict[str, str]:
        """What deploy/production/dagster.yaml reads."""
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USERNAME": self.user,
                "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": self.database}

    def connect(self):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname=self.database)

    def create_database(self, name: str) -> str:
        """A new empty database on this server; returns its name."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def lake_catalog(self, database: str) -> str:
        """FACTORY_LAKE_CATALOG for a DuckLake catalog in ``database`` of this server."""
        return (f"postgres:dbname={database} host=127.0.0.1 port={self.port} user={self.user} "
                f"password={self.password}")

    def query(self, sql: str, *args):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()


def _as_server_user(command: list[str]) -> list[str]:
    if os.name != "nt" and os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def start(database: str = "dagster") -> PostgresServer:
    """initdb + pg_ctl start on a free loopback port; :func:`stop` removes everything."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: run `python3 tasks.py test` (it installs Debian's "
                           "postgresql package) or install your system's PostgreSQL server.")
    folder = Path(tempfile.mkdtemp(prefix="factory-pg-", dir="/tmp"))  # the server user must reach it
    password = os.urandom(12).hex()
    (folder / "pwfile").write_text(password + "\n")
    if os.name != "nt" and os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(folder / "pwfile", "postgres", "postgres")
    server = PostgresServer(folder, free_port(), "factory", password, database)
    subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", server.user,
                                    "--auth=scram-sha-256", f"--pwfile={folder / 'pwfile'}", "-E", "UTF8"]),
                   check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {folder} -c fsync=off -c max_connections=200"
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-o", options, "-l",
                                    str(folder / "server.log"), "-w", "-t", "60", "start"]), check=True, capture_output=True)
    import psycopg2

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=server.port, user=server.user, password=password, dbname="postgres")
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    conn.close()
    return server


def stop(server: PostgresServer) -> None:
    bin_dir = postgres_bin()
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "fast", "-w", "stop"]),
                   check=False, capture_output=True)
    shutil.rmtree(server.folder, ignore_errors=True)
