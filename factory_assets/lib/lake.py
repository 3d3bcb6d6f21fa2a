"""DuckLake, offline: the extension binaries from their Python packages, a lake attached to a DuckDB
connection, and writes retried on a snapshot conflict.

DuckLake keeps its catalog in a SQL database (SQLite under FACTORY_HOME for the embedded default,
where several local processes may write; PostgreSQL in production) and its data as Parquet files.
``INSTALL ducklake`` would download the extension; the ``duckdb-extension-*`` packages ship the
binaries matching the pinned duckdb instead, and :func:`extension_repository` lays them out as a
local extension repository, so ``INSTALL <name> FROM '<repository>'`` works without a network. The
installed extensions live under FACTORY_HOME too (DuckDB's ``extension_directory``), not in the
user's home.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import platform
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

#: DuckDB extension -> its package; an extension's file is named after its entry point
#: (the SQLite extension's is ``sqlite_scanner``).
EXTENSIONS = {"ducklake": "duckdb_extension_ducklake", "sqlite_scanner": "duckdb_extension_sqlite",
              "postgres_scanner": "duckdb_extension_postgres"}
_PACKAGE_FILE = {"ducklake": "ducklake", "sqlite_scanner": "sqlite", "postgres_scanner": "postgres"}
#: The catalog kinds a lake can have, and the extension each needs.
CATALOG_EXTENSION = {"sqlite": "sqlite_scanner", "postgres": "postgres_scanner"}

T = TypeVar("T")


def duckdb_platform() -> str:
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]
    system = {"Linux": "linux", "Darwin": "osx", "Windows": "windows"}[platform.system()]
    return f"{system}_{machine}"


def extension_repository(root: Path) -> Path:
    """``root`` laid out as a DuckDB extension repository (``<root>/<version>/<platform>/<name>.duckdb_extension``)
    holding the binaries of the installed ``duckdb-extension-*`` packages; copied once per version."""
    version = f"v{duckdb.__version__}"
    target = root / version / duckdb_platform()
    target.mkdir(parents=True, exist_ok=True)
    for name, package in EXTENSIONS.items():
        wanted = target / f"{name}.duckdb_extension"
        if wanted.is_file():
            continue
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"the package {package.replace('_', '-')} is not installed: run `python3 tasks.py setup`")
        source = (Path(next(iter(spec.submodule_search_locations))) / "extensions" / version
                  / f"{_PACKAGE_FILE[name]}.duckdb_extension")
        if not source.is_file():
            raise RuntimeError(f"{source} is missing: the {package} package must match duckdb {duckdb.__version__}")
        partial = wanted.with_suffix(".partial")
        shutil.copyfile(source, partial)
        partial.replace(wanted)  # another process copying at the same time writes the same bytes
    return root


def shared_repository() -> Path | None:
    """Where the extension repository is laid out once per Python environment (``tasks.py setup``
    does it; dbt's profile finds it there), or None where that folder cannot be written."""
    import sys

    root = Path(sys.prefix) / "duckdb_extensions"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return root if os.access(root, os.W_OK) else None


@dataclass(frozen=True)
class Lake:
    """Where a lake's catalog and data files are, and where its extensions are kept.

    ``catalog``: ``sqlite:<file>`` or ``postgres:<libpq connection string>``; ``data_path``: a
    folder (or an object-store URL) for the Parquet files; ``extensions``: a folder under
    FACTORY_HOME (the local repository and DuckDB's extension_directory)."""

    catalog: str
    data_path: str
    extensions: Path
    alias: str = "lake"

    @classmethod
    def embedded(cls, home: Path, alias: str = "lake") -> Lake:
        """The embedded default: a SQLite catalog and the data files under ``home``."""
        return cls(catalog=f"sqlite:{home / 'lake' / 'catalog.sqlite'}", data_path=str(home / "lake" / "data"),
                   extensions=home / "duckdb_extensions", alias=alias)

    @classmethod
    def configured(cls, home: Path, alias: str = "lake") -> Lake:
        """The lake this home is set up for: FACTORY_LAKE_CATALOG (``sqlite:<file>`` or
        ``postgres:<libpq string>``) and FACTORY_LAKE_DATA_PATH (a folder or an object-store URL),
        each defaulting to the embedded lake under ``home``."""
        embedded = cls.embedded(home, alias)
        return cls(catalog=os.environ.get("FACTORY_LAKE_CATALOG") or embedded.catalog,
                   data_path=os.environ.get("FACTORY_LAKE_DATA_PATH") or embedded.data_path,
                   extensions=embedded.extensions, alias=alias)

    @property
    def repository(self) -> Path:
        return shared_repository() or self.extensions / "repository"

    @property
    def installed(self) -> Path:
        return self.extensions / "installed"

    @property
    def catalog_kind(self) -> str:
        kind = self.catalog.split(":", 1)[0]
        if kind not in CATALOG_EXTENSION:
            raise ValueError(f"lake catalog {self.catalog!r}: give sqlite:<file> or postgres:<connection string>")
        return kind

    def attach(self, conn: duckdb.DuckDBPyConnection, snapshot: int | None = None) -> duckdb.DuckDBPyConnection:
        """Install (from the local repository) and load the extensions, then attach the lake as
        ``alias`` (read-only as it was at ``snapshot``, when given); returns ``conn``."""
        self.install()
        # no bound parameters on this path: DuckDB's Python client imports pandas (a second or more)
        # at a process's first parameterised statement, and every step process attaches the lake
        conn.execute(f"SET extension_directory = '{_quoted(str(self.installed))}'")
        for name in ("ducklake", CATALOG_EXTENSION[self.catalog_kind]):
            conn.execute(f"LOAD {name}")
        if "://" not in self.data_path:
            Path(self.data_path).mkdir(parents=True, exist_ok=True)
        at = "" if snapshot is None else f", SNAPSHOT_VERSION {int(snapshot)}, READ_ONLY"
        statement = (f"ATTACH 'ducklake:{_quoted(self.catalog)}' AS {self.alias} "
                     f"(DATA_PATH '{_quoted(self.data_path.rstrip('/') + '/')}'{at})")

        def attach_once() -> None:
            try:
                conn.execute(statement)
            except duckdb.Error:
                conn.execute(f"DETACH DATABASE IF EXISTS {self.alias}")
                raise

        if self.catalog_kind == "sqlite":
            catalog = Path(self.catalog.split(":", 1)[1])
            sqlite_catalog_in_wal_mode(catalog)
            with _creating(catalog):  # the first attach creates the catalog's tables: one process at a time
                with_retries(attach_once)
        else:  # a catalog being created by another process, or busy: retried like a commit
            with_retries(attach_once)
        return conn

    def connect(self, snapshot: int | None = None) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB connection with the lake attached (each process or thread its
        own); at ``snapshot``, read-only, the lake as it was then (time travel)."""
        conn = self.attach(duckdb.connect(), snapshot)
        if snapshot is not None:
            conn.execute(f"USE {self.alias}")
        return conn

    def install(self) -> None:
        """Install every lake extension into ``installed`` from the local repository, once per
        process, under a file lock: a process loading an extension file while another copies it
        over crashes."""
        key = (os.getpid(), str(self.extensions))
        if key in _INSTALLED:
            return
        self.extensions.mkdir(parents=True, exist_ok=True)
        with open(self.extensions / ".install.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                repository = extension_repository(self.repository)
                conn = duckdb.connect()
                try:
                    conn.execute(f"SET extension_directory = '{_quoted(str(self.installed))}'")
                    for name in EXTENSIONS:
                        conn.execute(f"INSTALL {name} FROM '{_quoted(str(repository))}'")
                finally:
                    conn.close()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        _INSTALLED.add(key)

    def cursor(self, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A connection (a cursor of one in-memory DuckDB per process and lake, the lake attached
        and in use). Loading the extensions into a new database costs a quarter of a second, a
        cursor of an existing one a few milliseconds; each thread takes its own cursor."""
        key = (os.getpid(), self.catalog, self.data_path, str(self.extensions), self.alias)
        with _DATABASES_MUTEX:
            database = _DATABASES.get(key)
            if database is None:
                database = self.connect()
                if memory_limit:
                    database.execute(f"SET memory_limit = '{memory_limit}'")
                _DATABASES[key] = database
                for old in [k for k in _DATABASES if k[0] != key[0]]:
                    _DATABASES.pop(old)  # a forked child's copy of its parent's database: never used
                while len(_DATABASES) > _KEPT_DATABASES:
                    _DATABASES.pop(next(iter(_DATABASES))).close()
        cursor = database.cursor()
        cursor.execute(f"USE {self.alias}")
        return cursor


_INSTALLED: set[tuple[int, str]] = set()
_DATABASES: dict[tuple, duckdb.DuckDBPyConnection] = {}
_DATABASES_MUTEX = threading.Lock()
#: Lakes a process keeps attached at once (tests switch FACTORY_HOME many times in one process).
_KEPT_DATABASES = 4


def close_lakes() -> None:
    """Detach every lake this process keeps open (before its files are moved or removed)."""
    with _DATABASES_MUTEX:
        while _DATABASES:
            _DATABASES.popitem()[1].close()


def sqlite_catalog_in_wal_mode(path: Path) -> None:
    """Put a SQLite catalog in write-ahead-log mode (kept in the file), creating it if need be. In
    SQLite's default mode a reader holds off every writer: one long read of the lake (a training
    set read at one snapshot) would block every other process's commit until it ended."""
    import sqlite3

    if (os.getpid(), str(path)) in _WAL_CATALOGS:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    catalog = sqlite3.connect(path, timeout=30)
    try:
        if catalog.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            catalog.execute("PRAGMA journal_mode=WAL")
    finally:
        catalog.close()
    _WAL_CATALOGS.add((os.getpid(), str(path)))


_WAL_CATALOGS: set[tuple[int, str]] = set()


@contextmanager
def _creating(catalog: Path) -> Iterator[None]:
    """Holds an exclusive lock beside a SQLite catalog while it has no DuckLake tables yet. Processes
    attaching a new lake at the same instant each run DuckLake's catalog creation, and all but one
    failed with 'database is locked' (SQLite's busy wait does not cover it); once the catalog exists,
    attaching only reads it and takes no lock."""
    import sqlite3

    if str(catalog) in _CREATED_CATALOGS:
        yield
        return
    with open(catalog.with_name(catalog.name + ".create.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    probe = sqlite3.connect(catalog, timeout=30)
    try:
        if probe.execute("SELECT 1 FROM sqlite_master WHERE name = 'ducklake_metadata'").fetchone():
            _CREATED_CATALOGS.add(str(catalog))
    finally:
        probe.close()


_CREATED_CATALOGS: set[str] = set()


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def is_conflict_message(text: str) -> bool:
    """Says a write lost a race for the lake's next snapshot (another writer committed first), or
    that its SQLite catalog was busy: retrying the whole transaction is safe."""
    text = text.lower()
    return any(marker in text for marker in ("conflict", "database is locked", "busy", "failed to commit"))


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.Error) and is_conflict_message(str(exc))


def with_retries(write: Callable[[], T], *, attempts: int = 16, first_delay_s: float = 0.05,
                 max_delay_s: float = 5.0, on_retry: Callable[[int, BaseException], None] | None = None) -> T:
    """Run ``write`` (one transaction: it must roll back on failure) until it commits; a conflict
    is retried after an exponential, jittered back-off, anything else is raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except duckdb.Error as exc:
            if not is_conflict(exc) or attempt == attempts:
                raise
            if on_retry:
                on_retry(attempt, exc)
            time.sleep(min(max_delay_s, first_delay_s * 2 ** (attempt - 1)) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def ddl(conn: duckdb.DuckDBPyConnection, sql: str) -> None:
    """One idempotent DDL statement (``CREATE ... IF NOT EXISTS``), retried when another writer
    created the same thing in the same instant: the retry then finds it there."""
    with_retries(lambda: conn.execute(sql))


def in_transaction(conn: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], T],
                   on_retry: Callable[[int, BaseException], None] | None = None) -> T:
    """``work(conn)`` in one transaction, committed, retried whole on a conflict (``with_retries``)."""
    def attempt() -> T:
        conn.execute("BEGIN TRANSACTION")
        try:
            result = work(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except duckdb.TransactionException:
                pass  # a failed COMMIT has ended the transaction already
            raise

    return with_retries(attempt, on_retry=on_retry)


def insert_rows(conn: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: list | None = None,
                on_retry: Callable[[int, BaseException], None] | None = None) -> int:
    """``INSERT INTO table <select_sql>`` in one transaction, retried on a conflict; returns the rows inserted."""
    return in_transaction(conn, lambda c: int(c.execute(f"INSERT INTO {table} {select_sql}", params or []).fetchone()[0]),
                          on_retry=on_retry)


def replace_table(conn: duckdb.DuckDBPyConnection, schema: str, table: str, select_sql: str) -> str:
    """Make ``schema.table`` hold exactly the rows of ``select_sql``, in one transaction retried on a
    conflict; returns ``"rows"`` or ``"table"``, what was replaced.

    When the table exists with the query's columns (names and types, in order) only its rows are
    replaced: on the lake a new table is a schema change, and every later transaction of every
    process then reloads the whole catalog. A table whose columns differ is created anew."""
    def work(c: duckdb.DuckDBPyConnection) -> str:
        from factory_assets.lib.warehouse_sql import relation_columns

        wanted = [(row[0], row[1]) for row in c.execute(f"DESCRIBE {select_sql}").fetchall()]
        if list((relation_columns(c, f"{schema}.{table}") or {}).items()) == wanted:
            c.execute(f'DELETE FROM "{schema}"."{table}"')
            c.execute(f'INSERT INTO "{schema}"."{table}" {select_sql}')
            return "rows"
        c.execute(f'CREATE OR REPLACE TABLE "{schema}"."{table}" AS {select_sql}')
        return "table"

    return in_transaction(conn, work)


#: A table's data files below this size are merged (into files up to it) ...
SMALL_FILE_BYTES = 16 * 1024 * 1024
#: ... once it holds this many: every read opens each file, and an append-only table gains one per commit.
SMALL_FILES_BEFORE_MERGE = 8


def merge_small_files(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> int:
    """Merge the small data files of ``schema.table`` once there are SMALL_FILES_BEFORE_MERGE of them;
    returns how many were merged (0 on a DuckDB file, which has no data files). The rows, their
    row ids and every snapshot stay as they were; only files at or above SMALL_FILE_BYTES are left
    alone, so the nightly cost is bounded by the small tail, not by the table's history."""
    alias = conn.execute("SELECT database_name FROM duckdb_databases() WHERE database_name = current_database() "
                         "AND type = 'ducklake'").fetchone()
    if alias is None:
        return 0
    target = f"'{_quoted(alias[0])}', '{_quoted(table)}', schema => '{_quoted(schema)}'"  # literals: see attach
    small = conn.execute(f"SELECT count(*) FROM ducklake_list_files({target}) "
                         f"WHERE data_file_size_bytes < {SMALL_FILE_BYTES}").fetchone()[0]
    if small < SMALL_FILES_BEFORE_MERGE:
        return 0
    merged = with_retries(lambda: conn.execute(
        f"CALL ducklake_merge_adjacent_files({target}, max_file_size => {SMALL_FILE_BYTES})").fetchall())
    return sum(int(row[2]) for row in merged)


def snapshots(conn: duckdb.DuckDBPyConnection, alias: str = "lake") -> list[int]:
    """The lake's snapshot ids, oldest first (each commit makes one; time travel reads ``AT (VERSION => n)``)."""
    rows = conn.execute(f"SELECT snapshot_id FROM ducklake_snapshots('{alias}') ORDER BY snapshot_id").fetchall()
    return [row[0] for row in rows]
