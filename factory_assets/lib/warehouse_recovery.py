"""Rebuild a damaged or lost DuckDB warehouse from the immutable raw store (``factory recover``).

The raw tables live in the same DuckDB file as the products, so a truncated, overwritten or deleted
``warehouse.duckdb`` used to take the raw data with it: the products rebuilt with 0 rows and the
feature steps crashed. But ingestion keeps every file twice outside the warehouse:

* ``raw/<source>/partition_date=<day>/<checksum[:20]>.parquet``: the file's rows exactly as they
  were appended to ``raw.<source>``, provenance columns included (``_source_file``, ``_checksum``,
  ``_row_number``, ``_partition_date``, ``_ingested_at``), written before the rows were committed;
* ``archive/<source>/<day>/<file>``: the landing file itself, moved there once its rows were
  committed; ``quarantine/<source>/<file>.reason.json``: every refusal with its reason.

Recovery builds a new warehouse file beside the old one from these: each raw table from its contract
and the Parquet files (the same rows, provenance included), the ingestion ledger from the Parquet
files' provenance (checksum, file, day, rows, path, ingested at; the event-date range from the
rows; the contract version is the contract's current one), and the quarantine log from the
``.reason.json`` files. A Parquet file whose landing file still waits in ``landing/`` and was never
archived is a leftover of an ingestion that did not commit: it is left out (the next run ingests
that file). The new file replaces the old one atomically, under the warehouse's write lock; the old
one is kept as ``warehouse.duckdb.damaged-<time>``. The CLI then rebuilds the data products and
feature sets from the restored raw tables (the processing layer). Not restored: the prediction
products (re-scored by ``factory run --layer distribution``), governance tables (rebuilt by the next
nightly run) and ``raw.schema_migrations`` (the new tables are created at the contracts' current
types, so nothing is left to migrate).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from factory_assets.settings import FactoryPaths

#: The name ingestion gives a landing file archived under a name already taken there.
_STAMPED = re.compile(r"^(?P<stem>.+)\.\d{8}T\d{12}(?P<suffix>\.[^.]+)$")

LEDGER_COLUMNS = ("checksum", "source", "file_name", "partition_date", "row_count", "parquet_path",
                  "contract_version", "ingested_at", "first_event_date", "last_event_date")
QUARANTINE_COLUMNS = ("source", "file_name", "checksum", "partition_date", "reason", "detail", "quarantined_path",
                      "quarantined_at")


@dataclass(frozen=True)
class RawFile:
    """One ingested file as the raw store keeps it."""

    source: str
    parquet: Path
    partition_date: str
    checksum: str
    file_name: str
    rows: int
    ingested_at: datetime


@dataclass
class RecoveryPlan:
    """What the raw store holds, source by source, and what is left out (with the reason)."""

    paths: FactoryPaths
    files: list[RawFile] = field(default_factory=list)
    left_out: list[tuple[Path, str]] = field(default_factory=list)
    quarantined: list[Path] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        return sorted({f.source for f in self.files})

    def rows_by_source(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.source] = out.get(f.source, 0) + f.rows
        return dict(sorted(out.items()))


def _checksums(folder: Path) -> dict[tuple[str, str], Path]:
    """(folder name, checksum) -> path of the files under ``folder`` (one source's landing or archive
    folder; archived files sit in a folder per day, and an empty file's content recurs from day to day)."""
    from factory_assets.raw_material.landing import file_checksum

    out = {}
    if folder.is_dir():
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            out[(path.parent.name, file_checksum(path))] = path
    return out


def _original_name(name: str) -> str:
    match = _STAMPED.match(name)
    return f"{match['stem']}{match['suffix']}" if match else name


def plan_recovery(paths: FactoryPaths) -> RecoveryPlan:
    """Read the raw store's Parquet files (their provenance) and match them with the archive."""
    import duckdb

    plan = RecoveryPlan(paths)
    conn = duckdb.connect()  # in memory: only reads Parquet files
    try:
        for folder in sorted(p for p in paths.raw.iterdir() if p.is_dir()) if paths.raw.is_dir() else []:
            source = folder.name
            parquets = sorted(folder.glob("partition_date=*/*.parquet"))
            if not parquets:
                continue
            archived = _checksums(paths.archive / source)
            archived_sums = {c for _, c in archived}
            waiting = {c: path for (_, c), path in _checksums(paths.landing / source).items()}
            for parquet in parquets:
                day = parquet.parent.name.removeprefix("partition_date=")
                prefix = parquet.stem
                rows = conn.execute("SELECT count(*) FROM read_parquet(?)", [str(parquet)]).fetchone()[0]
                if rows:
                    checksum, name, at = conn.execute(
                        "SELECT any_value(_checksum), any_value(_source_file), max(_ingested_at) FROM read_parquet(?)",
                        [str(parquet)]).fetchone()
                else:  # a header-only file: its checksum and name from the day's archive, its time from the file
                    match = next(((c, p) for (d, c), p in archived.items() if d == day and c.startswith(prefix)), None)
                    if match is None:
                        plan.left_out.append((parquet, "no rows, and no archived landing file of its day with its "
                                                       "checksum (its ledger row cannot be rebuilt)"))
                        continue
                    checksum, name = match[0], _original_name(match[1].name)
                    at = datetime.fromtimestamp(parquet.stat().st_mtime, timezone.utc).replace(tzinfo=None)
                if checksum in waiting and checksum not in archived_sums:
                    plan.left_out.append((parquet, f"its landing file {waiting[checksum]} was never archived: "
                                                   "an ingestion that did not commit (the next run ingests it)"))
                    continue
                plan.files.append(RawFile(source, parquet, day, checksum, name, int(rows), at))
    finally:
        conn.close()
    if paths.quarantine.is_dir():
        plan.quarantined = sorted(paths.quarantine.glob("*/*.reason.json"))
    return plan


def _contracts_by_source() -> dict:
    """Every raw contract of the project (core and business units), by source name."""
    from factory_assets.lib.contracts import load_contract, raw_contract_dirs, raw_contract_files

    return {name: load_contract(path) for name, path in raw_contract_files(raw_contract_dirs()).items()}


def _table_columns(conn, schema: str, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position", [schema, table]).fetchall()]


def _insert_records(conn, table: str, columns: Iterable[str], records: list[dict]) -> None:
    """Insert ``records`` by name, with only the columns the table has (others stay NULL)."""
    if not records:
        return
    schema, name = table.split(".")
    present = [c for c in columns if c in _table_columns(conn, schema, name)]
    placeholders = ", ".join("?" for _ in present)
    conn.executemany(f"INSERT INTO {table} ({', '.join(present)}) VALUES ({placeholders})",
                     [[r.get(c) for c in present] for r in records])


def build_warehouse(plan: RecoveryPlan, target: Path) -> dict[str, int]:
    """Write a new warehouse at ``target`` with the raw schema restored; rows per raw table."""
    import json

    import duckdb

    from factory_assets.raw_material.ingest import ensure_raw_tables

    contracts = _contracts_by_source()
    target.unlink(missing_ok=True)
    Path(f"{target}.wal").unlink(missing_ok=True)
    conn = duckdb.connect(str(target))
    restored: dict[str, int] = {}
    try:
        ensure_raw_tables(conn, [contracts[s] for s in plan.sources if s in contracts])
        conn.execute("BEGIN TRANSACTION")
        for source in plan.sources:
            files = [f for f in plan.files if f.source == source]
            parquets = [str(f.parquet) for f in files]
            read = "read_parquet(?, union_by_name = true)"
            if source in contracts:
                have = set(_table_columns(conn, "raw", source))
                columns = [r[0] for r in conn.execute(f"DESCRIBE SELECT * FROM {read}", [parquets]).fetchall()
                           if r[0] in have]
                names = ", ".join(f'"{c}"' for c in columns)
                conn.execute(f"INSERT INTO raw.{source} ({names}) SELECT {names} FROM {read}", [parquets])
            else:  # a source whose contract is gone: its rows as the Parquet files hold them
                conn.execute(f"CREATE TABLE raw.{source} AS SELECT * FROM {read}", [parquets])
            restored[source] = conn.execute(f"SELECT count(*) FROM raw.{source}").fetchone()[0]
            event_column = getattr(contracts.get(source), "event_date_column", None)
            ranges = {}
            if event_column and event_column in _table_columns(conn, "raw", source):
                ranges = {c: (lo, hi) for c, lo, hi in conn.execute(
                    f'SELECT _checksum, min(CAST("{event_column}" AS DATE)), max(CAST("{event_column}" AS DATE)) '
                    f"FROM raw.{source} GROUP BY _checksum").fetchall()}
            version = getattr(contracts.get(source), "version", "unknown")
            _insert_records(conn, "raw.ingestion_log", LEDGER_COLUMNS, [
                {"checksum": f.checksum, "source": source, "file_name": f.file_name, "partition_date": f.partition_date,
                 "row_count": f.rows, "parquet_path": str(f.parquet), "contract_version": version,
                 "ingested_at": f.ingested_at, "first_event_date": ranges.get(f.checksum, (None, None))[0],
                 "last_event_date": ranges.get(f.checksum, (None, None))[1]} for f in files])
        quarantined = []
        for reason_file in plan.quarantined:
            record = json.loads(reason_file.read_text())
            record["quarantined_path"] = str(reason_file.with_name(reason_file.name.removesuffix(".reason.json")))
            quarantined.append(record)
        _insert_records(conn, "raw.quarantine_log", QUARANTINE_COLUMNS, quarantined)
        conn.execute("COMMIT")
        conn.execute("CHECKPOINT")
    except BaseException:
        conn.close()
        target.unlink(missing_ok=True)
        Path(f"{target}.wal").unlink(missing_ok=True)
        raise
    conn.close()
    return restored


def warehouse_state(paths: FactoryPaths, plan: RecoveryPlan) -> tuple[str, str]:
    """("healthy" | "missing" | "damaged" | "incomplete", why) of the current warehouse file."""
    import duckdb

    from factory_assets.lib.warehouse_lock import connect_duckdb

    if not paths.warehouse.exists():
        return "missing", f"{paths.warehouse} does not exist"
    try:
        conn = connect_duckdb(paths.warehouse, read_only=True)
    except duckdb.Error as exc:
        return "damaged", (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    try:
        short = []
        for source, rows in plan.rows_by_source().items():
            try:
                have = conn.execute(f"SELECT count(*) FROM raw.{source}").fetchone()[0]
            except duckdb.Error as exc:
                return "damaged" if "Catalog Error" not in str(exc) else "incomplete", \
                    f"raw.{source} cannot be read ({str(exc).splitlines()[0]})"
            if have != rows:
                short.append(f"raw.{source} has {have} rows, the raw store {rows}")
    finally:
        conn.close()
    if short:
        return "incomplete", "; ".join(short)
    return "healthy", "every raw table holds the raw store's rows"


def replace_warehouse(paths: FactoryPaths, rebuilt: Path) -> Path | None:
    """Move the current warehouse file (and its WAL) aside and the rebuilt one into place; the old
    file's new name, or None when there was none."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    aside = paths.warehouse.with_name(f"{paths.warehouse.name}.damaged-{stamp}")
    wal = Path(f"{paths.warehouse}.wal")
    moved = None
    if paths.warehouse.exists():
        os.replace(paths.warehouse, aside)
        moved = aside
    if wal.exists():  # never let DuckDB replay the old file's log into the rebuilt one
        os.replace(wal, f"{aside}.wal")
    os.replace(rebuilt, paths.warehouse)
    return moved


def recover_raw(paths: FactoryPaths) -> tuple[RecoveryPlan, dict[str, int], Path | None]:
    """Plan, build beside the warehouse and swap it in, holding the warehouse's write lock."""
    from factory_assets.lib.warehouse_lock import warehouse_lock

    with warehouse_lock(paths.warehouse, exclusive=True, holder="factory recover"):
        plan = plan_recovery(paths)
        rebuilt = paths.warehouse.with_name(f"{paths.warehouse.name}.recovering")
        restored = build_warehouse(plan, rebuilt)
        aside = replace_warehouse(paths, rebuilt)
    return plan, restored, aside


def free_space_needed(plan: RecoveryPlan) -> int:
    """Bytes the rebuilt raw tables need, about: the Parquet files' size, twice (DuckDB is less dense)."""
    return 2 * sum(f.parquet.stat().st_size for f in plan.files)


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free
