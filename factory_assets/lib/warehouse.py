"""The one place a warehouse connection is built, for every layer, the CLI and dbt's profile.

Two kinds (``settings.warehouse_kind``, FACTORY_WAREHOUSE):

- ``lake`` (default): a DuckLake lakehouse (``lib/lake.py``). Its catalog is SQLite under
  FACTORY_HOME, or PostgreSQL in production (FACTORY_LAKE_CATALOG); its data are Parquet files
  (FACTORY_LAKE_DATA_PATH). Writers in many processes and machines commit at once under snapshot
  isolation; a connection is an in-memory DuckDB with the lake attached and in use, so
  ``raw.orders`` means the lake's table. No file lock is taken.
- ``duckdb``: the single DuckDB file of earlier releases, one writer at a time behind the
  reader/writer ``flock`` of ``lib/warehouse_lock.py`` (kept for it only). ``factory lake migrate``
  moves such a file onto the lake.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from factory_assets.lib.lake import Lake
from factory_assets.settings import FactoryPaths, duckdb_memory_limit, warehouse_kind

#: The catalog name of the lake in every connection and in dbt's relations.
LAKE_ALIAS = "lake"
#: Lake connections opened read-only, whose block is one read transaction (by ``id``).
_READING: set[int] = set()


def lake_of(paths: FactoryPaths) -> Lake:
    return Lake.configured(paths.home, alias=LAKE_ALIAS)


def warehouse_exists(paths: FactoryPaths) -> bool:
    """Has anything been written to this home's warehouse yet (never creates it)?"""
    if warehouse_kind() == "duckdb":
        return paths.warehouse.is_file()
    lake = lake_of(paths)
    return lake.catalog_kind != "sqlite" or Path(lake.catalog.split(":", 1)[1]).is_file()


def describe_warehouse(paths: FactoryPaths) -> str:
    """Where the warehouse is, in words (for messages), without a password."""
    if warehouse_kind() == "duckdb":
        return str(paths.warehouse)
    lake = lake_of(paths)
    catalog = lake.catalog if lake.catalog_kind == "sqlite" else "postgres:" + " ".join(
        part for part in lake.catalog.split(":", 1)[1].split() if not part.startswith("password"))
    return f"DuckLake, catalog {catalog}, data {lake.data_path}"


def database_name(paths: FactoryPaths) -> str:
    """The DuckDB catalog the warehouse's tables are in (what dbt writes into relation names)."""
    return LAKE_ALIAS if warehouse_kind() == "lake" else Path(paths.warehouse).stem


def dbt_environment(paths: FactoryPaths) -> dict[str, str]:
    """What dbt's profile (dbt_project/profiles.yml) reads to reach this home's warehouse: its own
    variables, so the public FACTORY_LAKE_* of this process stay as the user set them."""
    lake = lake_of(paths)
    return {"FACTORY_WAREHOUSE_PATH": str(paths.warehouse), "FACTORY_DBT_LAKE_CATALOG": lake.catalog,
            "FACTORY_DBT_LAKE_DATA_PATH": lake.data_path, "FACTORY_DBT_EXTENSIONS": str(lake.extensions),
            "FACTORY_DBT_EXTENSIONS_REPO": str(lake.repository)}


def prepare_dbt(paths: FactoryPaths) -> None:
    """Before dbt runs in this process: its profile reads the environment, and installs the
    lake's extensions from the local repository laid out here."""
    os.environ.update(dbt_environment(paths))
    if warehouse_kind() == "lake":
        lake_of(paths).install()


@contextmanager
def open_warehouse(paths: FactoryPaths, read_only: bool = False) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
    """A connection to ``paths``' warehouse (see the module docstring), closed after the block."""
    if warehouse_kind() == "lake":
        conn = lake_of(paths).cursor(memory_limit=duckdb_memory_limit())
        try:
            if read_only:
                # One transaction for all the block's reads: they see one snapshot, and the lake's
                # catalog is read once, not once per auto-committed statement (BENCHMARKS.md, the night).
                conn.execute("BEGIN TRANSACTION")
                _READING.add(id(conn))
            yield conn
        finally:
            if id(conn) in _READING:
                _READING.discard(id(conn))
                conn.execute("ROLLBACK")  # nothing was written: nothing to commit
            conn.close()
        return
    with open_warehouse_file(paths, read_only) as conn:
        yield conn


@contextmanager
def open_warehouse_file(paths: FactoryPaths, read_only: bool = False) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
    """The DuckDB file, once the warehouse lock is held (shared to read, exclusive to write), so
    steps on separate workers wait for each other instead of failing on DuckDB's file lock.

    A process outside the factory holding the file (DuckDB's own lock) is waited for too, with
    back-off; both waits together last at most FACTORY_WAREHOUSE_LOCK_TIMEOUT, then the error
    names the file and its holder. A damaged file, or a missing one while the raw store holds
    ingested data, is an error that points at `factory recover`."""
    import time

    import duckdb

    from factory_assets.lib import warehouse_lock as wl

    path = paths.warehouse
    deadline = time.monotonic() + wl.lock_timeout()
    with wl.warehouse_lock(path, exclusive=not read_only):
        if not path.exists() and wl.raw_store_holds_data(paths.raw):
            raise wl.lost(path, paths.raw)
        try:
            conn = wl.connect_duckdb(path, read_only=read_only, timeout_s=max(0.0, deadline - time.monotonic()))
        except duckdb.Error as exc:
            if wl.is_damage(exc):
                raise wl.damaged(path, exc) from exc
            raise
        try:
            # DuckDB's default is 80% of the machine's memory, and its buffer pool grows with the
            # history it scans; a bounded pool spills to disk instead (BENCHMARKS.md, peak memory).
            conn.execute(f"SET memory_limit = '{duckdb_memory_limit()}'")
            yield conn
        except duckdb.Error as exc:
            if wl.is_damage(exc):
                raise wl.damaged(path, exc) from exc
            raise
        finally:
            conn.close()


@contextmanager
def writer_lock(paths: FactoryPaths, holder: str) -> Iterator[None]:
    """Held around a step that writes the warehouse outside ``open_warehouse`` (dbt): the file's
    exclusive lock for the ``duckdb`` kind, nothing for the lake (snapshot isolation)."""
    if warehouse_kind() == "lake":
        yield
        return
    from factory_assets.lib.warehouse_lock import warehouse_lock

    with warehouse_lock(paths.warehouse, exclusive=True, holder=holder):
        yield


@contextmanager
def source_lock(paths: FactoryPaths, source: str, holder: str) -> Iterator[None]:
    """One writer per raw source at a time (a ``flock`` under FACTORY_HOME/locks; on a shared
    volume across machines): where the lake cannot serve, as it has no unique keys to keep a
    ledger's checksum once. Re-entrant within a process."""
    from factory_assets.lib.warehouse_lock import warehouse_lock

    folder = paths.home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with warehouse_lock(folder / f"raw_{source}", exclusive=True, holder=holder):
        yield


@contextmanager
def one_snapshot(conn) -> Iterator[int | None]:
    """Every read in the block sees one snapshot of the lake, whose id is yielded (what a training
    set records, to be read again by time travel). None for the DuckDB file, which has no history."""
    if warehouse_kind() != "lake":
        yield None
        return
    from factory_assets.lib.lake_ops import current_snapshot

    if id(conn) in _READING:  # a read-only connection: already one transaction, one snapshot
        yield current_snapshot(conn, LAKE_ALIAS)
        return
    conn.execute("BEGIN TRANSACTION")
    try:
        yield current_snapshot(conn, LAKE_ALIAS)
    finally:
        conn.execute("ROLLBACK")  # read only: nothing to commit


@contextmanager
def open_lake_at(paths: FactoryPaths, snapshot: int) -> Iterator["duckdb.DuckDBPyConnection"]:  # noqa: F821
    """A read-only connection to the lake as it was at ``snapshot`` (same table names as ever)."""
    conn = lake_of(paths).connect(snapshot)
    try:
        yield conn
    finally:
        conn.close()
