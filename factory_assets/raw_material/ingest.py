"""Move landing files into the immutable raw store, exactly once each.

For one file: check its name against the contract's file pattern, checksum it, refuse content
that was already ingested, parse and validate it against its raw contract (rules and the delivery
window of its event dates), then write it as a Parquet file (named by checksum, never rewritten)
and append it to the warehouse's ``raw.<source>`` table together with a ledger row. A file that
fails any step moves to ``quarantine/`` whole, with a ``.reason.json`` beside it; nothing it
contained reaches the raw store.

Files are ingested in batches: one transaction per batch (retried whole when another writer of the
lake commits first), so a year of history is a few lake commits rather than one per file, and the
ledger is read once per batch rather than several times per file. Landing files move (to
``archive/`` or ``quarantine/``) only once their batch has committed: a crash before the commit
leaves them in landing with nothing written; a crash after it leaves them to be archived as
already ingested by the next run.

Because the ledger is keyed on the checksum, re-running a partition, or dropping the same content
under another name, never duplicates rows. A later delivery for the same source and day (the same
name with new content, or a correction named ``<source>_<day>.v<N>.<ext>``) is a correction: raw
keeps every version with its provenance, and staging reads only the newest delivery of each day
(the greatest ``_ingested_at``; ingestion keeps it strictly increasing per source). A version lower
than one already ingested for that day is refused, so the newest version always wins.

The raw tables follow their contracts: a new column is added and a widened type (e.g. INTEGER to
DOUBLE) is migrated in place, each change recorded in ``raw.schema_migrations``; a change that could
alter stored values (a narrowing) is refused before any row lands.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from factory_assets.lib.contracts import (
    PROVENANCE_COLUMNS,
    ContractError,
    DataContract,
    raw_contract,
)
from factory_assets.lib.lake import ddl, in_transaction, merge_small_files
from factory_assets.lib.warehouse import source_lock
from factory_assets.raw_material.landing import (
    LandingFileError,
    LandingName,
    bounded,
    check_event_dates,
    event_dates,
    example_name,
    file_checksum,
    parse_landing_name,
    read_landing_file,
)
from factory_assets.settings import FactoryPaths, partitions_start


@dataclass(frozen=True)
class FileOutcome:
    source: str
    file_name: str
    status: str  # "ingested" | "quarantined" | "already_ingested"
    rows: int
    checksum: str | None
    partition_date: str | None
    reason: str | None = None
    detail: str | None = None
    moved_to: str | None = None
    warning: str | None = None  # ingested, but someone should look (a header-only file)
    supersedes: str | None = None  # a correction: the earlier deliveries of its day it replaces


class RawSchemaError(ContractError):
    """A raw contract changed in a way the raw table cannot follow without changing stored values."""


#: (stored type, contract type) changes that keep every stored value (BIGINT -> DOUBLE is checked).
WIDENINGS = {("INTEGER", "BIGINT"), ("INTEGER", "DOUBLE"), ("BIGINT", "DOUBLE"), ("DATE", "TIMESTAMP")}
EXACT_DOUBLE = 2 ** 53


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def latest_delivery_day(today: date | None = None) -> date:
    """The latest day a landing file may be named for: tomorrow (UTC), as a day begins earlier
    east of UTC. A later date is a mistake in the name (it is quarantined), not a file to wait for."""
    return (today or datetime.now(UTC).date()) + timedelta(days=1)


def _contract_of(source: str | DataContract) -> DataContract:
    """A contract object passes through (any folder's); a name is looked up in the core's."""
    return source if isinstance(source, DataContract) else raw_contract(source)


def _raw_schema(conn) -> dict[str, dict[str, str]]:
    """Every raw table's columns and types, in one catalog read (each read of the lake's catalog
    is a round trip; one per table and question added up to seconds a night)."""
    schema: dict[str, dict[str, str]] = {}
    for table, column, data_type in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'raw' "
            "ORDER BY table_name, ordinal_position").fetchall():
        schema.setdefault(table, {})[column] = data_type
    return schema


def _refusal(contract: DataContract, column: str, stored: str, wanted: str) -> RawSchemaError:
    return RawSchemaError(
        f"{contract.path}: column {column} is {wanted} in the contract (v{contract.version}) but raw.{contract.table}."
        f"{column} stores {stored}; converting the stored values to {wanted} could change them, so nothing was "
        f"ingested. Keep {column} {stored} in the contract (or widen it: INTEGER -> BIGINT or DOUBLE, DATE -> "
        f"TIMESTAMP, anything -> VARCHAR), or give the new type a new column name and drop the file again."
    )


def _migrate_raw_table(conn, contract: DataContract, stored: dict[str, str]) -> list[dict]:
    """Bring an existing raw table (``stored``: its columns' types) to its contract: add missing
    columns, widen types, refuse the rest."""
    wanted = {c.name: c.physical_type for c in contract.columns} | PROVENANCE_COLUMNS
    changes = []
    for column, want in wanted.items():
        have = stored.get(column)
        if have == want:
            continue
        if have is None:
            changes.append((column, "add_column", None, want))
            continue
        if want != "VARCHAR" and (have, want) not in WIDENINGS:
            raise _refusal(contract, column, have, want)
        if (have, want) == ("BIGINT", "DOUBLE"):
            biggest = conn.execute(f'SELECT max(abs("{column}")) FROM raw.{contract.table}').fetchone()[0]
            if biggest is not None and biggest > EXACT_DOUBLE:
                raise _refusal(contract, column, have, want)
        changes.append((column, "widen", have, want))
    if not changes:
        return []
    now = _utcnow()

    def migrate(conn) -> list[dict]:
        records = []
        for column, change, have, want in changes:
            if change == "add_column":
                conn.execute(f'ALTER TABLE raw.{contract.table} ADD COLUMN "{column}" {want}')
            else:
                conn.execute(f'ALTER TABLE raw.{contract.table} ALTER COLUMN "{column}" SET DATA TYPE {want}')
            record = {"source": contract.table, "column_name": column, "change": change, "from_type": have,
                      "to_type": want, "contract_file": contract.path.name, "contract_version": contract.version,
                      "migrated_at": now}
            conn.execute("INSERT INTO raw.schema_migrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(record.values()))
            records.append(record)
        return records

    return in_transaction(conn, migrate)


def _sources_missing_event_ranges(conn) -> set[str]:
    return {row[0] for row in conn.execute(
        "SELECT DISTINCT source FROM raw.ingestion_log WHERE row_count > 0 AND last_event_date IS NULL").fetchall()}


def _backfill_event_ranges(conn, contract: DataContract, stored: dict[str, str]) -> None:
    """Ledger rows written before the ledger kept event-date ranges get them from the raw rows."""
    column = contract.event_date_column
    if column is not None and column in stored:
        conn.execute(
            f"""UPDATE raw.ingestion_log SET first_event_date = r.first_day, last_event_date = r.last_day
                FROM (SELECT _checksum, min(CAST("{column}" AS DATE)) AS first_day, max(CAST("{column}" AS DATE)) AS last_day
                      FROM raw.{contract.table}
                      WHERE _checksum IN (SELECT checksum FROM raw.ingestion_log
                                          WHERE source = $source AND last_event_date IS NULL)
                      GROUP BY _checksum) AS r
                WHERE ingestion_log.checksum = r._checksum AND ingestion_log.source = $source
                  AND ingestion_log.last_event_date IS NULL""", {"source": contract.table})


def ensure_raw_tables(conn, sources: Iterable[str | DataContract]) -> list[dict]:
    """Create the raw schema, one append-only table per source and the ledgers; bring an existing
    table to its contract (see module docstring). Returns the migrations applied now."""
    stored = _raw_schema(conn)
    if not _ledgers_complete(stored):
        _create_ledgers(conn)
        stored = _raw_schema(conn)
    migrations = []
    missing_ranges = _sources_missing_event_ranges(conn)
    for source in sources:
        contract = _contract_of(source)
        if contract.table in stored:
            migrations += _migrate_raw_table(conn, contract, stored[contract.table])
            if contract.table in missing_ranges:
                _backfill_event_ranges(conn, contract, stored[contract.table])
            continue
        cols = [f'"{c.name}" {c.physical_type}' for c in contract.columns]
        cols += [f"{name} {typ}" for name, typ in PROVENANCE_COLUMNS.items()]
        ddl(conn, f"CREATE TABLE IF NOT EXISTS raw.{contract.table} ({', '.join(cols)})")
    return migrations


#: The ledgers' tables and the columns added to them since they were first created.
_LEDGER_COLUMNS = {"ingestion_log": ("first_event_date", "last_event_date"), "quarantine_log": (),
                   "schema_migrations": ()}


def _ledgers_complete(stored: dict[str, dict[str, str]]) -> bool:
    return all(table in stored and all(c in stored[table] for c in added) for table, added in _LEDGER_COLUMNS.items())


def _create_ledgers(conn) -> None:
    ddl(conn, "CREATE SCHEMA IF NOT EXISTS raw")
    ddl(conn,
        """CREATE TABLE IF NOT EXISTS raw.ingestion_log (
            checksum VARCHAR NOT NULL, source VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
            partition_date DATE NOT NULL, row_count BIGINT NOT NULL, parquet_path VARCHAR NOT NULL,
            contract_version VARCHAR NOT NULL, ingested_at TIMESTAMP NOT NULL)"""
    )
    # the range of event dates a file held (its contract's eventDateColumn): the landed range
    ddl(conn, "ALTER TABLE raw.ingestion_log ADD COLUMN IF NOT EXISTS first_event_date DATE")
    ddl(conn, "ALTER TABLE raw.ingestion_log ADD COLUMN IF NOT EXISTS last_event_date DATE")
    ddl(conn,
        """CREATE TABLE IF NOT EXISTS raw.quarantine_log (
            source VARCHAR NOT NULL, file_name VARCHAR NOT NULL, checksum VARCHAR,
            partition_date DATE, reason VARCHAR NOT NULL, detail VARCHAR NOT NULL,
            quarantined_path VARCHAR NOT NULL, quarantined_at TIMESTAMP NOT NULL)"""
    )
    ddl(conn,
        """CREATE TABLE IF NOT EXISTS raw.schema_migrations (
            source VARCHAR NOT NULL, column_name VARCHAR NOT NULL, change VARCHAR NOT NULL, from_type VARCHAR,
            to_type VARCHAR NOT NULL, contract_file VARCHAR NOT NULL, contract_version VARCHAR NOT NULL,
            migrated_at TIMESTAMP NOT NULL)"""
    )


def landing_files(paths: FactoryPaths, source: str) -> list[Path]:
    folder = paths.landing / source
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".tmp"))


def _free_name(target: Path, taken: set[Path] = frozenset()) -> Path:
    if not target.exists() and target not in taken:
        return target
    stamp = _utcnow().strftime("%Y%m%dT%H%M%S%f")
    return target.with_name(f"{target.stem}.{stamp}{target.suffix}")


#: A batch ends at whichever comes first: this many files, or this many bytes of landing files.
BATCH_FILES = 64
BATCH_BYTES = 256 * 2 ** 20


@dataclass
class _Batch:
    """One transaction's landing files: the ledger rows their checks need, read once and kept
    current as the batch writes, and the moves to make once the transaction has committed."""

    seen: dict[str, list[tuple[str, datetime]]]  # checksum -> (file name, ingested at), any source
    days: dict[date, list[tuple[str, int, datetime]]]  # this source's day -> (file name, rows, ingested at)
    newest: datetime | None  # this source's latest ingested_at
    moves: list[tuple[Path, Path, dict | None]] = field(default_factory=list)  # (file, target, reason)

    @classmethod
    def read(cls, conn, source: str, checksums: list[str]) -> _Batch:
        seen: dict[str, list[tuple[str, datetime]]] = {}
        if checksums:
            for checksum, name, at in conn.execute(
                    "SELECT checksum, file_name, ingested_at FROM raw.ingestion_log WHERE list_contains(?, checksum) "
                    "ORDER BY ingested_at", [checksums]).fetchall():
                seen.setdefault(checksum, []).append((name, at))
        days: dict[date, list[tuple[str, int, datetime]]] = {}
        for name, day, rows, at in conn.execute(
                "SELECT file_name, partition_date, row_count, ingested_at FROM raw.ingestion_log WHERE source = ? "
                "ORDER BY ingested_at", [source]).fetchall():
            days.setdefault(day, []).append((name, rows, at))
        newest = max((at for rows in days.values() for *_, at in rows), default=None)
        return cls(seen, days, newest)

    def record(self, checksum: str | None, name: str, day: date, rows: int, at: datetime) -> None:
        if checksum:
            self.seen.setdefault(checksum, []).append((name, at))
        self.days.setdefault(day, []).append((name, rows, at))
        self.newest = at

    def move(self, path: Path, folder: Path, reason: dict | None = None) -> Path:
        """Plan moving ``path`` into ``folder`` after the commit; returns where it will be."""
        target = _free_name(folder / path.name, {t for _, t, _ in self.moves})
        self.moves.append((path, target, reason))
        return target


def _carry_out(moves: list[tuple[Path, Path, dict | None]]) -> None:
    for path, target, reason in moves:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        if reason is not None:
            target.with_name(target.name + ".reason.json").write_text(json.dumps(reason, indent=2))


def quarantine_file(conn, paths: FactoryPaths, source: str, path: Path, reason: str, detail: str,
                    checksum: str | None, partition: date | None, batch: _Batch) -> FileOutcome:
    detail = bounded(detail)
    now = _utcnow()
    record = {"source": source, "file_name": path.name, "checksum": checksum,
              "partition_date": partition.isoformat() if partition else None, "reason": reason,
              "detail": detail, "quarantined_at": now.isoformat(), "what_to_do": "Fix the file and drop it again into "
              f"{paths.landing / source}; it will be ingested exactly once."}
    target = batch.move(path, paths.quarantine / source, record)
    conn.execute(
        "INSERT INTO raw.quarantine_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [source, path.name, checksum, partition, reason, detail, str(target), now],
    )
    return FileOutcome(source, path.name, "quarantined", 0, checksum,
                       partition.isoformat() if partition else None, reason, detail, str(target))


def _write_parquet_atomically(frame: pl.DataFrame, target: Path) -> None:
    """Content-addressed by checksum: only reached when the ledger has no row for it, so an
    existing file is a leftover of a failed attempt holding the same rows."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, target)


def before_start_detail(name: str, day: date, first_day: date) -> str:
    """Why a file dated before the first partition day is refused, and what to do."""
    return (
        f"{name}: dated {day}, before the first partition day {first_day} (setting "
        f"FACTORY_PARTITIONS_START={first_day}), so no partition can hold it. To keep it, set "
        f"FACTORY_PARTITIONS_START={day} or earlier for the code location and the daemon, restart them "
        "and drop the file again; if the date in its name is wrong, rename it and drop it again."
    )


def future_detail(name: str, day: date, latest: date, contract: DataContract) -> str:
    """Why a file named for a day that has not begun is refused, and what to do."""
    return (
        f"{name}: dated {day}, after {latest} (tomorrow, UTC): no delivery can cover a day that has not begun. "
        f"If the date is a mistake, rename the file (like {example_name(contract)}) and drop it again; a source "
        "that publishes ahead (e.g. holidays) names each file by its publication day and declares how far ahead "
        f"its rows reach with eventDateLeadDays in {contract.path.name}."
    )


def _version_of(file_name: str, contract: DataContract) -> int:
    try:
        return parse_landing_name(Path(file_name), contract).version
    except LandingFileError:  # ingested before names were checked
        return 1


def _ingest_file(conn, paths: FactoryPaths, source: str, path: Path, checksum: str | None, contract: DataContract,
                 first_day: date, today: date | None, batch: _Batch) -> FileOutcome:
    """Ingest one landing file within its batch's transaction (see module docstring). Never raises
    for a bad file: quarantines it.

    A file whose name breaks the contract's pattern, names no calendar date, a day after tomorrow
    (UTC) or a day before ``first_day`` (default: FACTORY_PARTITIONS_START) is quarantined: no
    partition would ever pick it up, and waiting in landing it would go unnoticed."""
    def quarantine(reason: str, detail: str, partition: date | None) -> FileOutcome:
        return quarantine_file(conn, paths, source, path, reason, detail, checksum, partition, batch)

    try:
        name = parse_landing_name(path, contract)
    except LandingFileError as exc:
        return quarantine(exc.reason, str(exc), None)
    partition = name.day
    if partition > latest_delivery_day(today):
        return quarantine("future_date", future_detail(path.name, partition, latest_delivery_day(today), contract),
                          partition)
    if partition < first_day:
        return quarantine("before_partitions_start", before_start_detail(path.name, partition, first_day), partition)
    seen = batch.seen.get(checksum, []) if checksum else []
    if any(seen_name == path.name for seen_name, _ in seen):
        # Ingested before the landing file could be archived (e.g. a crash in between), or the
        # very same file dropped again: nothing to add.
        target = batch.move(path, paths.archive / source / partition.isoformat())
        return FileOutcome(source, path.name, "already_ingested", 0, checksum, partition.isoformat(), moved_to=str(target))
    try:
        frame = read_landing_file(path, contract)
    except LandingFileError as exc:
        return quarantine(exc.reason, str(exc), partition)
    if seen and frame.height > 0:
        # Files without data rows (a header only) are legitimately identical from day to day.
        first_name, first_at = seen[0]
        return quarantine(
            "duplicate",
            f"{path.name}: same content as {first_name}, ingested at {first_at:%Y-%m-%d %H:%M:%S} UTC. "
            "Nothing was ingested twice; delete this copy or, if it should differ, re-export it.",
            partition,
        )
    try:
        check_event_dates(path, frame, contract, partition)
    except LandingFileError as exc:
        return quarantine(exc.reason, str(exc), partition)
    earlier = list(batch.days.get(partition, []))
    versions = [(_version_of(f, contract), f) for f, _, _ in earlier]
    current_version, current_file = max(versions) if versions else (0, None)
    if current_version > name.version:
        return quarantine(
            "stale_version",
            f"{path.name}: version {name.version} of {partition}, but version {current_version} ({current_file}) was "
            f"already ingested for that day and stays the current delivery. A correction needs a higher version: "
            f"name it like {example_name(contract, partition, current_version + 1)} and drop it again.",
            partition,
        )
    if frame.height == 0 and any(rows for _, rows, _ in earlier):
        current = earlier[-1]
        return quarantine(
            "empty_redelivery",
            f"{path.name}: a header without rows, but {current[0]} delivered {current[1]} row(s) for {partition}; "
            "an empty file cannot replace a day's rows, so they stay current. If the day really has no rows, ask the "
            f"source's owner ({contract.owner}); otherwise re-export the file with its rows and drop it again.",
            partition,
        )

    # strictly increasing per source, so "the newest delivery of a day" is never a tie
    now = _utcnow() if batch.newest is None else max(_utcnow(), batch.newest + timedelta(microseconds=1))
    dates = event_dates(frame, contract)
    first_event, last_event = (dates.min(), dates.max()) if dates is not None and frame.height else (None, None)
    frame = frame.with_columns(
        pl.lit(path.name).alias("_source_file"),
        pl.lit(checksum).alias("_checksum"),
        pl.int_range(1, frame.height + 1, dtype=pl.Int32).alias("_row_number"),
        pl.lit(partition).alias("_partition_date"),
        pl.lit(now).cast(pl.Datetime("us")).alias("_ingested_at"),
    )
    parquet = paths.raw / source / f"partition_date={partition.isoformat()}" / f"{checksum[:20]}.parquet"
    _write_parquet_atomically(frame, parquet)
    conn.register("incoming_rows", frame.to_arrow())
    try:
        conn.execute(f"INSERT INTO raw.{source} BY NAME SELECT * FROM incoming_rows")
    finally:
        conn.unregister("incoming_rows")
    conn.execute(
        "INSERT INTO raw.ingestion_log (checksum, source, file_name, partition_date, row_count, parquet_path, "
        "contract_version, ingested_at, first_event_date, last_event_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [checksum, source, path.name, partition, frame.height, str(parquet), contract.version, now,
         first_event, last_event],
    )
    batch.record(checksum, path.name, partition, frame.height, now)
    target = batch.move(path, paths.archive / source / partition.isoformat())
    warning = (f"{path.name} has a header but no data rows: nothing landed for {partition}. If the day should have "
               "rows, re-export it (a later file for the day replaces this one).") if frame.height == 0 else None
    supersedes = (f"{path.name} replaces {', '.join(f for f, _, _ in earlier)} as the delivery of {partition} "
                  "(raw keeps every version; products read the newest)") if earlier else None
    return FileOutcome(source, path.name, "ingested", frame.height, checksum, partition.isoformat(),
                       moved_to=str(target), warning=warning, supersedes=supersedes)


def _landing_name(path: Path, contract: DataContract) -> LandingName | None:
    try:
        return parse_landing_name(path, contract)
    except LandingFileError:
        return None


def ingest_partitions(conn, paths: FactoryPaths, source: str | DataContract, days: set[date] | None,
                      first_day: date | None = None, today: date | None = None) -> list[FileOutcome]:
    """Ingest every landing file of ``source`` whose name falls on one of ``days`` (None: all).

    ``source`` is a core source's name or any raw contract (a business unit's). Files whose name
    breaks the contract's pattern or names a day no partition can hold (before ``first_day``,
    default FACTORY_PARTITIONS_START, or after tomorrow) are quarantined whatever the days. Files of
    one day go in version order, so a correction dropped with its original lands after it.
    """
    contract = _contract_of(source)
    name, first_day = contract.table, first_day or partitions_start()
    ensure_raw_tables(conn, [contract])
    latest = latest_delivery_day(today)
    queue = []
    for path in landing_files(paths, name):
        parsed = _landing_name(path, contract)
        if parsed is not None and first_day <= parsed.day <= latest and days is not None and parsed.day not in days:
            continue
        queue.append(((parsed.day, parsed.version) if parsed else (date.min, 0), path.name, path))
    # The ledger's "once per checksum" is a read then a write, and the lake has no unique keys: one
    # ingesting process per source at a time (a file lock under FACTORY_HOME/locks), every other
    # source and layer writing meanwhile.
    files = [path for *_, path in sorted(queue)]
    with source_lock(paths, name, holder="raw ingestion"):
        outcomes: list[FileOutcome] = []
        for batch_files in _batches(files):
            outcomes += _ingest_batch(conn, paths, contract, batch_files, first_day, today)
        merge_small_files(conn, "raw", name)  # each ingested day is a file that every read opens
        return outcomes


def _batches(files: list[Path]) -> Iterable[list[Path]]:
    batch, size = [], 0
    for path in files:
        if batch and (len(batch) >= BATCH_FILES or size + path.stat().st_size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(path)
        size += path.stat().st_size
    if batch:
        yield batch


def _ingest_batch(conn, paths: FactoryPaths, contract: DataContract, files: list[Path], first_day: date,
                  today: date | None) -> list[FileOutcome]:
    """Ingest ``files`` in one transaction; move them to archive or quarantine once it has committed."""
    source = contract.table
    checksums = {path: file_checksum(path) if path.stat().st_size else None for path in files}

    def ingest(conn) -> tuple[list[FileOutcome], list]:  # retried whole on a conflict: start from the ledger
        batch = _Batch.read(conn, source, [c for c in checksums.values() if c])
        outcomes = [_ingest_file(conn, paths, source, path, checksums[path], contract, first_day, today, batch)
                    for path in files]
        return outcomes, batch.moves

    outcomes, moves = in_transaction(conn, ingest)
    _carry_out(moves)
    return outcomes


def outcomes_as_records(outcomes: list[FileOutcome]) -> list[dict]:
    return [asdict(o) for o in outcomes]
