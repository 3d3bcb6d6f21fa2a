"""What a lake's history is for: reading at a snapshot, rolling back to one, keeping it bounded,
and moving a DuckDB warehouse file onto the lake. Plain functions on a DuckDB connection.

Every commit to a DuckLake makes a snapshot; older snapshots stay readable (time travel) until
they are expired. The factory pins the snapshot each model's training set was read at (its
manifest's ``data_versions.lake_snapshot``), so maintenance never expires a pinned snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from factory_assets.lib.lake import in_transaction
from factory_assets.lib.warehouse_sql import quoted_relation

#: Schemas the factory owns in a warehouse (a migration copies every schema it finds).
INTERNAL_SCHEMAS = ("information_schema", "pg_catalog")


def current_snapshot(conn: duckdb.DuckDBPyConnection, alias: str = "lake") -> int:
    """The snapshot a connection reads now (within a transaction: the one it started at)."""
    return int(conn.execute(f"SELECT id FROM {alias}.current_snapshot()").fetchone()[0])


def lake_tables(conn: duckdb.DuckDBPyConnection, catalog: str, schemas: Iterable[str] | None = None) -> list[str]:
    """``schema.table`` of every base table in ``catalog`` (optionally only in ``schemas``)."""
    rows = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = ? "
        "AND table_type = 'BASE TABLE' ORDER BY 1, 2", [catalog]).fetchall()
    wanted = None if schemas is None else set(schemas)
    return [f"{s}.{t}" for s, t in rows if s not in INTERNAL_SCHEMAS and (wanted is None or s in wanted)]


def _count(conn, relation: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0])


@dataclass
class Rollback:
    snapshot: int  # rolled back to
    new_snapshot: int  # the commit that did it (itself undoable)
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (rows before, rows after)
    dropped: list[str] = field(default_factory=list)  # created after the snapshot


def rollback(conn: duckdb.DuckDBPyConnection, snapshot: int, schemas: Iterable[str] | None = None,
             alias: str = "lake") -> Rollback:
    """Make the lake's tables (in ``schemas``, default all) hold what they held at ``snapshot``, as
    one new commit: history is kept, so a rollback can be rolled back too. Tables created after the
    snapshot are dropped; views are left to dbt, which recreates them."""
    known = {row[0] for row in conn.execute(f"SELECT snapshot_id FROM ducklake_snapshots('{alias}')").fetchall()}
    if snapshot not in known:
        raise ValueError(f"the lake has no snapshot {snapshot} (expired, or never made): "
                         f"`factory lake snapshots` lists those kept ({min(known)}..{max(known)})")
    schemas = None if schemas is None else list(schemas)
    then = set(_tables_at(conn, alias, snapshot, schemas))
    now = set(lake_tables(conn, alias, schemas))

    def work(c) -> Rollback:
        result = Rollback(snapshot=snapshot, new_snapshot=-1)
        for table in sorted(now - then):
            c.execute(f"DROP TABLE {alias}.{quoted_relation(table)}")
            result.dropped.append(table)
        for table in sorted(then):
            target = f"{alias}.{quoted_relation(table)}"
            before = _count(c, target) if table in now else 0
            c.execute(f"CREATE SCHEMA IF NOT EXISTS {alias}.\"{table.split('.')[0]}\"")
            c.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {target} AT (VERSION => {int(snapshot)})")
            result.tables[table] = (before, _count(c, target))
        return result

    result = in_transaction(conn, work)
    result.new_snapshot = current_snapshot(conn, alias)
    return result


def _tables_at(conn, alias: str, snapshot: int, schemas: list[str] | None) -> list[str]:
    """``schema.table`` of the tables that existed at ``snapshot``, from the lake's own catalog."""
    rows = conn.execute(
        f"""SELECT s.schema_name, t.table_name
            FROM __ducklake_metadata_{alias}.ducklake_table t
            JOIN __ducklake_metadata_{alias}.ducklake_schema s USING (schema_id)
            WHERE t.begin_snapshot <= $n AND (t.end_snapshot IS NULL OR t.end_snapshot > $n)
              AND s.begin_snapshot <= $n AND (s.end_snapshot IS NULL OR s.end_snapshot > $n)""",
        {"n": int(snapshot)}).fetchall()
    return sorted(f"{s}.{t}" for s, t in rows if schemas is None or s in schemas)


@dataclass
class Maintenance:
    expired: list[int]
    kept_pinned: list[int]
    files_merged: int
    files_removed: int


def maintain(conn: duckdb.DuckDBPyConnection, older_than: dt.timedelta, pinned: Iterable[int],
             alias: str = "lake", now: dt.datetime | None = None) -> Maintenance:
    """Expire snapshots older than ``older_than`` except the ``pinned`` ones (and the newest), merge
    small adjacent data files, then delete the files no kept snapshot reads any more."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - older_than
    rows = conn.execute(f"SELECT snapshot_id, snapshot_time FROM ducklake_snapshots('{alias}') ORDER BY 1").fetchall()
    newest = rows[-1][0] if rows else None
    pinned = set(pinned)
    old = [sid for sid, at in rows if at is not None and at < cutoff and sid != newest]
    expire = [sid for sid in old if sid not in pinned]
    if expire:
        conn.execute(f"CALL ducklake_expire_snapshots('{alias}', versions => {sorted(expire)})")
    merged = conn.execute(f"CALL ducklake_merge_adjacent_files('{alias}')").fetchall()
    removed = conn.execute(f"CALL ducklake_cleanup_old_files('{alias}', cleanup_all => true)").fetchall()
    return Maintenance(expired=sorted(expire), kept_pinned=sorted(set(old) & pinned),
                       files_merged=sum(int(r[-2]) for r in merged if len(r) >= 2), files_removed=len(removed))


def migrate_duckdb_file(conn: duckdb.DuckDBPyConnection, source: Path, alias: str = "lake") -> dict[str, int]:
    """Copy every table of the DuckDB file ``source`` into the lake, in one commit, and check each
    table's row count on both sides. A lake that already holds one of those tables with rows is
    refused (nothing is written): migrating twice must not duplicate a row."""
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no DuckDB warehouse file to migrate")
    conn.execute(f"ATTACH '{str(source).replace(chr(39), chr(39) * 2)}' AS migrating (READ_ONLY)")
    try:
        tables = lake_tables(conn, "migrating")
        present = set(lake_tables(conn, alias))
        occupied = [t for t in tables if t in present and _count(conn, f"{alias}.{quoted_relation(t)}")]
        if occupied:
            raise ValueError(f"the lake already holds rows in {', '.join(occupied[:5])}"
                             f"{' and more' if len(occupied) > 5 else ''}: {source} was migrated before, or the lake "
                             "is in use. Nothing was copied")

        def work(c) -> dict[str, int]:
            copied = {}
            for table in tables:
                schema = table.split(".")[0]
                c.execute(f'CREATE SCHEMA IF NOT EXISTS {alias}."{schema}"')
                c.execute(f"CREATE OR REPLACE TABLE {alias}.{quoted_relation(table)} AS "
                          f"SELECT * FROM migrating.{quoted_relation(table)}")
                copied[table] = _count(c, f"{alias}.{quoted_relation(table)}")
                if copied[table] != _count(c, f"migrating.{quoted_relation(table)}"):
                    raise RuntimeError(f"{table}: row counts differ after the copy; nothing was committed")
            return copied

        return in_transaction(conn, work)
    finally:
        conn.execute("DETACH migrating")


def backup_sqlite_catalog(catalog: Path, target: Path) -> Path:
    """A consistent copy of a SQLite lake catalog (SQLite's online backup: safe while writers
    commit). The data files are not copied: they are immutable, and maintenance deletes only those
    no kept snapshot reads, so keep backups younger than the snapshots kept."""
    import sqlite3

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    source, copy = sqlite3.connect(catalog), sqlite3.connect(partial)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    partial.replace(target)
    return target
