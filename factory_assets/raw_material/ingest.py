"""Move landing files into the immutable raw store, exactly once each.

For one file: checksum it, refuse content that was already ingested, parse and validate it
against its raw contract, then write it as a Parquet file (named by checksum, never rewritten)
and append it to the DuckDB ``raw.<source>`` table together with a ledger row, in one
transaction. The landing file then moves to ``archive/``. A file that fails any step moves to
``quarantine/`` with a ``.reason.json`` beside it; nothing it contained reaches the raw store.

Because the ledger is keyed on the checksum, re-running a partition, or dropping the same content
under another name, never duplicates rows; a corrected file (new content) is ingested once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from factory_assets.lib.contracts import PROVENANCE_COLUMNS, DataContract, raw_contract
from factory_assets.raw_material.landing import (
    LandingFileError,
    file_checksum,
    partition_date_of,
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


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _contract_of(source: str | DataContract) -> DataContract:
    """A contract object passes through (any folder's); a name is looked up in the core's."""
    return source if isinstance(source, DataContract) else raw_contract(source)


def ensure_raw_tables(conn, sources: Iterable[str | DataContract]) -> None:
    """Create the raw schema, one append-only table per source, and the ingestion ledgers."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for source in sources:
        contract = _contract_of(source)
        cols = [f'"{c.name}" {c.physical_type}' for c in contract.columns]
        cols += [f"{name} {typ}" for name, typ in PROVENANCE_COLUMNS.items()]
        conn.execute(f"CREATE TABLE IF NOT EXISTS raw.{contract.table} ({', '.join(cols)})")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS raw.ingestion_log (
            checksum VARCHAR NOT NULL, source VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
            partition_date DATE NOT NULL, row_count BIGINT NOT NULL, parquet_path VARCHAR NOT NULL,
            contract_version VARCHAR NOT NULL, ingested_at TIMESTAMP NOT NULL,
            PRIMARY KEY (checksum, file_name))"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS raw.quarantine_log (
            source VARCHAR NOT NULL, file_name VARCHAR NOT NULL, checksum VARCHAR,
            partition_date DATE, reason VARCHAR NOT NULL, detail VARCHAR NOT NULL,
            quarantined_path VARCHAR NOT NULL, quarantined_at TIMESTAMP NOT NULL)"""
    )


def landing_files(paths: FactoryPaths, source: str) -> list[Path]:
    folder = paths.landing / source
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".tmp"))


def _free_name(target: Path) -> Path:
    if not target.exists():
        return target
    stamp = _utcnow().strftime("%Y%m%dT%H%M%S%f")
    return target.with_name(f"{target.stem}.{stamp}{target.suffix}")


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder / path.name)
    shutil.move(str(path), target)
    return target


def quarantine_file(conn, paths: FactoryPaths, source: str, path: Path, reason: str, detail: str,
                    checksum: str | None, partition: date | None) -> FileOutcome:
    target = _move(path, paths.quarantine / source)
    now = _utcnow()
    record = {"source": source, "file_name": path.name, "checksum": checksum,
              "partition_date": partition.isoformat() if partition else None, "reason": reason,
              "detail": detail, "quarantined_at": now.isoformat(), "what_to_do": "Fix the file and drop it again into "
              f"{paths.landing / source}; it will be ingested exactly once."}
    target.with_name(target.name + ".reason.json").write_text(json.dumps(record, indent=2))
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


def ingest_file(conn, paths: FactoryPaths, source: str, path: Path, contract: DataContract | None = None,
                first_day: date | None = None) -> FileOutcome:
    """Ingest one landing file (see module docstring). Never raises for a bad file: quarantines it.

    A file dated before ``first_day`` (default: FACTORY_PARTITIONS_START) is quarantined: no
    partition would ever pick it up, and waiting in landing it would go unnoticed."""
    contract = contract or raw_contract(source)
    first_day = first_day or partitions_start()
    partition = partition_date_of(path)
    if partition is None:
        return quarantine_file(
            conn, paths, source, path, "file_name",
            f"{path.name}: the file name carries no delivery date. Rename it like "
            f"{contract.custom.get('filePattern', source + '_{date}.csv').format(date='2025-03-01')} and drop it again.",
            None, None,
        )
    checksum = file_checksum(path) if path.stat().st_size else None
    if partition < first_day:
        return quarantine_file(conn, paths, source, path, "before_partitions_start",
                               before_start_detail(path.name, partition, first_day), checksum, partition)
    seen = conn.execute(
        "SELECT file_name, ingested_at FROM raw.ingestion_log WHERE checksum = ? ORDER BY ingested_at", [checksum]
    ).fetchall() if checksum else []
    if any(name == path.name for name, _ in seen):
        # Ingested before the landing file could be archived (e.g. a crash in between), or the
        # very same file dropped again: nothing to add.
        target = _move(path, paths.archive / source / partition.isoformat())
        return FileOutcome(source, path.name, "already_ingested", 0, checksum, partition.isoformat(), moved_to=str(target))
    try:
        frame = read_landing_file(path, contract)
    except LandingFileError as exc:
        return quarantine_file(conn, paths, source, path, exc.reason, str(exc), checksum, partition)
    if seen and frame.height > 0:
        # Files without data rows (a header only) are legitimately identical from day to day.
        first_name, first_at = seen[0]
        return quarantine_file(
            conn, paths, source, path, "duplicate",
            f"{path.name}: same content as {first_name}, ingested at {first_at:%Y-%m-%d %H:%M:%S} UTC. "
            "Nothing was ingested twice; delete this copy or, if it should differ, re-export it.",
            checksum, partition,
        )

    now = _utcnow()
    frame = frame.with_columns(
        pl.lit(path.name).alias("_source_file"),
        pl.lit(checksum).alias("_checksum"),
        pl.int_range(1, frame.height + 1, dtype=pl.Int32).alias("_row_number"),
        pl.lit(partition).alias("_partition_date"),
        pl.lit(now).cast(pl.Datetime("us")).alias("_ingested_at"),
    )
    parquet = paths.raw / source / f"partition_date={partition.isoformat()}" / f"{checksum[:20]}.parquet"
    _write_parquet_atomically(frame, parquet)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.register("incoming_rows", frame.to_arrow())
        conn.execute(f"INSERT INTO raw.{source} SELECT * FROM incoming_rows")
        conn.unregister("incoming_rows")
        conn.execute(
            "INSERT INTO raw.ingestion_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [checksum, source, path.name, partition, frame.height, str(parquet), contract.version, now],
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    target = _move(path, paths.archive / source / partition.isoformat())
    return FileOutcome(source, path.name, "ingested", frame.height, checksum, partition.isoformat(), moved_to=str(target))


def ingest_partitions(conn, paths: FactoryPaths, source: str | DataContract, days: set[date] | None,
                      first_day: date | None = None) -> list[FileOutcome]:
    """Ingest every landing file of ``source`` whose name falls on one of ``days`` (None: all).

    ``source`` is a core source's name or any raw contract (a business unit's). Files whose name
    carries no date, or a date before ``first_day`` (default: FACTORY_PARTITIONS_START), are
    quarantined whatever the days, since no partition could ever pick them up.
    """
    contract = _contract_of(source)
    name, first_day = contract.table, first_day or partitions_start()
    ensure_raw_tables(conn, [contract])
    outcomes = []
    for path in landing_files(paths, name):
        day = partition_date_of(path)
        if day is not None and day >= first_day and days is not None and day not in days:
            continue
        outcomes.append(ingest_file(conn, paths, name, path, contract, first_day))
    return outcomes


def outcomes_as_records(outcomes: list[FileOutcome]) -> list[dict]:
    return [asdict(o) for o in outcomes]
