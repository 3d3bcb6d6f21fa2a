"""`factory lake ...`: the warehouse's history (``lib/lake_ops.py``) from the command line.

    factory lake snapshots [--last N] [--json]       the snapshots kept, newest last, and what each changed
    factory lake rollback SNAPSHOT [--schema S ...]  tables back to what they held at SNAPSHOT (a new commit)
    factory lake maintain [--keep-days D] [--json]   expire old snapshots (never a pinned one), merge, clean up
    factory lake migrate [--from FILE] [--json]      copy a DuckDB warehouse file's tables onto the lake
    factory lake backup [--to FILE]                  a consistent copy of the SQLite catalog
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

from factory_assets.settings import default_paths

#: Days of snapshots kept by maintenance (FACTORY_LAKE_KEEP_DAYS): time travel reaches this far back,
#: and further only to the snapshots model versions were trained at.
DEFAULT_KEEP_DAYS = 30


def keep_days() -> int:
    value = os.environ.get("FACTORY_LAKE_KEEP_DAYS", str(DEFAULT_KEEP_DAYS))
    if not value.isdigit():
        raise ValueError(f"FACTORY_LAKE_KEEP_DAYS={value!r}: give a whole number of days")
    return int(value)


def register_commands(subparsers, help_text: str, formatter_class=None) -> None:
    extra = {"formatter_class": formatter_class} if formatter_class else {}
    lake = subparsers.add_parser(
        "lake", help=help_text, **extra,
        description="The warehouse is a DuckLake lakehouse: every commit makes a snapshot, and older snapshots "
        "stay readable until maintenance expires them. These commands list, roll back to, and maintain them, "
        "and move a DuckDB warehouse file of an earlier release onto the lake.")
    sub = lake.add_subparsers(dest="lake_command", required=True, metavar="COMMAND")
    p = sub.add_parser("snapshots", help="list the snapshots kept, newest last", **extra)
    p.add_argument("--last", type=int, default=20, help="how many (default 20; 0 for all)")
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.set_defaults(func=cmd_snapshots)
    p = sub.add_parser("rollback", help="make tables hold what they held at a snapshot (one new commit)", **extra,
                       description="Every table (or those of --schema) is set to its content at SNAPSHOT in one "
                       "commit; tables created since are dropped. History is kept, so the rollback itself can be "
                       "rolled back. Run `factory run --layer processing` afterwards to rebuild products on it.")
    p.add_argument("snapshot", type=int, help="the snapshot id (see `factory lake snapshots`)")
    p.add_argument("--schema", action="append", help="only this schema (repeatable), e.g. raw")
    p.add_argument("--json", action="store_true", help="print what changed as JSON")
    p.set_defaults(func=cmd_rollback)
    p = sub.add_parser("maintain", help="expire old snapshots, merge small files, delete unread files", **extra,
                       description="Expires snapshots older than --keep-days except those a registered model "
                       "version was trained at (its audit rebuilds its training set from them), merges small "
                       "adjacent data files and deletes the files no kept snapshot reads. The lake_maintenance "
                       "job runs the same every week.")
    p.add_argument("--keep-days", type=int, default=None,
                   help=f"days of history kept (default FACTORY_LAKE_KEEP_DAYS, else {DEFAULT_KEEP_DAYS})")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=cmd_maintain)
    p = sub.add_parser("migrate", help="copy a DuckDB warehouse file's tables onto the lake", **extra,
                       description="Copies every table of FACTORY_HOME/warehouse.duckdb (or --from) onto the lake "
                       "in one commit, checking each table's row count; refused, with nothing written, when the "
                       "lake already holds rows in one of them. The file is left in place.")
    p.add_argument("--from", dest="source", type=Path, help="the DuckDB file (default FACTORY_HOME/warehouse.duckdb)")
    p.add_argument("--json", action="store_true", help="print the tables and their rows as JSON")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("backup", help="a consistent copy of the lake's SQLite catalog", **extra,
                       description="Copies the SQLite catalog with SQLite's online backup (safe while writers commit) "
                       "to --to, default FACTORY_HOME/lake/backups/catalog-<time>.sqlite. Restoring is copying it "
                       "back over lake/catalog.sqlite (its -wal and -shm files deleted) while nothing runs. "
                       "A PostgreSQL catalog is backed up with "
                       "the server's own tools (pg_dump, point-in-time recovery).")
    p.add_argument("--to", type=Path, help="the copy's path")
    p.set_defaults(func=cmd_backup)


def _lake():
    """The lake of FACTORY_HOME, as every layer opens it (``lib/warehouse.open_warehouse``)."""
    from factory_assets.lib.warehouse import open_warehouse

    return open_warehouse(default_paths())


def _fail(message: str) -> int:
    print(f"factory lake: error: {message}", file=sys.stderr)
    return 2


def pinned_snapshots(artifacts: Path) -> set[int]:
    from factory_assets.assembly.registry import ModelRegistry

    return ModelRegistry(artifacts / "models").pinned_lake_snapshots()


def cmd_snapshots(args) -> int:
    with _lake() as conn:
        rows = conn.execute("SELECT snapshot_id, snapshot_time, changes FROM ducklake_snapshots('lake') "
                            "ORDER BY snapshot_id").fetchall()
    rows = rows[-args.last:] if args.last else rows
    pinned = pinned_snapshots(default_paths().artifacts)
    listed = [{"snapshot": sid, "at": at.isoformat() if at else None, "pinned": sid in pinned,
               "changes": {k: list(v) for k, v in (changes or {}).items()}} for sid, at, changes in rows]
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    for row in listed:
        what = "; ".join(f"{k.replace('_', ' ')}: {', '.join(v)[:80]}" for k, v in row["changes"].items())
        print(f"{row['snapshot']:>8}  {row['at'][:19] if row['at'] else '':19}  {'pinned ' if row['pinned'] else ''}{what}")
    return 0


def cmd_rollback(args) -> int:
    from factory_assets.lib.lake_ops import rollback

    try:
        with _lake() as conn:
            result = rollback(conn, args.snapshot, args.schema)
    except ValueError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps({"snapshot": result.snapshot, "new_snapshot": result.new_snapshot,
                          "tables": {t: {"before": b, "after": a} for t, (b, a) in result.tables.items()},
                          "dropped": result.dropped}, indent=2))
        return 0
    print(f"Rolled back to snapshot {result.snapshot} as snapshot {result.new_snapshot} "
          f"(undo: `factory lake rollback {result.new_snapshot - 1}`).")
    for table, (before, after) in result.tables.items():
        if before != after:
            print(f"  {table:<40} {before:>10} -> {after:>10} rows")
    for table in result.dropped:
        print(f"  {table:<40} dropped (created after snapshot {result.snapshot})")
    return 0


def cmd_maintain(args) -> int:
    from factory_assets.lib.lake_ops import maintain

    try:
        days = keep_days() if args.keep_days is None else args.keep_days
    except ValueError as exc:
        return _fail(str(exc))
    if days < 0:
        return _fail("--keep-days must be 0 or more")
    with _lake() as conn:
        result = maintain(conn, dt.timedelta(days=days), pinned_snapshots(default_paths().artifacts))
    payload = {"keep_days": days, "expired": len(result.expired), "kept_pinned": result.kept_pinned,
               "files_merged": result.files_merged, "files_removed": result.files_removed}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(f"Expired {len(result.expired)} snapshot(s) older than {days} day(s); kept "
              f"{len(result.kept_pinned)} pinned by model versions; merged {result.files_merged} file(s); "
              f"deleted {result.files_removed} file(s) no snapshot reads.")
    return 0


def cmd_migrate(args) -> int:
    from factory_assets.lib.lake_ops import migrate_duckdb_file

    paths = default_paths()
    source = args.source or paths.warehouse
    try:
        with _lake() as conn:
            copied = migrate_duckdb_file(conn, source)
    except (ValueError, FileNotFoundError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps({"from": str(source), "tables": copied}, indent=2))
        return 0
    print(f"Copied {len(copied)} table(s), {sum(copied.values())} rows, from {source} onto the lake:")
    for table, rows in copied.items():
        print(f"  {table:<40} {rows:>10} rows")
    print(f"{source} is left in place; delete it once you have checked the lake (`factory run`).")
    return 0


def cmd_backup(args) -> int:
    from factory_assets.lib.lake_ops import backup_sqlite_catalog
    from factory_assets.lib.warehouse import lake_of

    lake = lake_of(default_paths())
    if lake.catalog_kind != "sqlite":
        return _fail("the lake's catalog is in PostgreSQL: back it up with the server's tools (pg_dump, "
                     "point-in-time recovery)")
    catalog = Path(lake.catalog.split(":", 1)[1])
    if not catalog.is_file():
        return _fail(f"{catalog} does not exist yet: nothing to back up")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = backup_sqlite_catalog(catalog, args.to or catalog.parent / "backups" / f"catalog-{stamp}.sqlite")
    print(f"Backed up {catalog} to {target}. To restore: stop the factory's processes, delete {catalog.name}-wal and "
          f"{catalog.name}-shm if present, and copy the backup over {catalog}.")
    return 0
