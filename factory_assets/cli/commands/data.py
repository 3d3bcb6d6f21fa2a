"""`factory data generate` (and `factory generate`), `factory data drop`, and which days have landed."""

from __future__ import annotations

import os
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from factory_assets.cli.output import UsageError, emit_json, human_bytes, plural
from factory_assets.settings import (
    PARTITIONS_START_FILE,
    FactoryPaths,
    default_paths,
    partitions_start,
    record_partitions_start,
)

#: What `factory data drop` deletes, relative to FACTORY_HOME (nothing else, nothing outside it).
DROP_NAMES = ("landing", "raw", "quarantine", "archive", "lake", "locks", "warehouse.duckdb", "warehouse.duckdb.wal",
              "artifacts", "services", "dagster_home", PARTITIONS_START_FILE)


def simulation_config(args):
    from factory_assets.raw_material.simulator import DriftScenario, SimulationConfig

    end = args.end or date.today() - timedelta(days=1)
    start = end - timedelta(days=args.days - 1)
    drift = DriftScenario(start_date=args.drift_from) if args.drift_from else None
    return SimulationConfig(start_date=start, days=args.days, order_lines_per_day=args.lines_per_day, seed=args.seed,
                            n_products=args.products, drift=drift)


def cmd_generate(args) -> int:
    from factory_assets.raw_material.simulator import generate_demo_data

    config = simulation_config(args)
    if os.environ.get("FACTORY_PARTITIONS_START") and config.start_date < partitions_start():
        raise UsageError(f"the simulation would start on {config.start_date}, before the first daily partition "
                         f"{partitions_start()} (FACTORY_PARTITIONS_START): use fewer --days, a later --end, or "
                         "unset FACTORY_PARTITIONS_START so the partitions start with the data")
    paths = default_paths().create()
    record_partitions_start(config.start_date)  # the partitions start with the data
    as_json = getattr(args, "json", False)
    for note in _generate_notes(config.start_date, config.end_date, landed_days(paths)[0] if args.command != "demo"
                                else [], datetime.now(timezone.utc).date() - timedelta(days=1)):
        print(f"note: {note}", file=sys.stderr)
    if not as_json:
        print(f"Simulating {config.days} days x ~{config.order_lines_per_day} order lines ...", flush=True)
    started = time.perf_counter()
    written = generate_demo_data(config, paths.landing)
    n_files = sum(len(v) for v in written.values())
    seconds = time.perf_counter() - started
    if as_json:
        emit_json({"landing": str(paths.landing), "files": n_files, "days": config.days,
                    "first_day": config.start_date.isoformat(), "last_day": config.end_date.isoformat(),
                    "files_by_source": {s: len(v) for s, v in sorted(written.items())}, "seconds": round(seconds, 2)})
        return 0
    print(f"Wrote {n_files} landing files for {config.days} days from {config.start_date} "
          f"into {paths.landing} in {seconds:.1f} s")
    if getattr(args, "command", None) != "demo":
        print(f"Next: factory run --from {config.start_date} --to {config.end_date}")
    return 0


def _generate_notes(first: date, last: date, landed: list[date], last_partition: date) -> list[str]:
    """What a user should know before landing simulated days (pure)."""
    notes = []
    overlap = [d for d in landed if first <= d <= last]
    if overlap:
        notes.append(f"{plural(len(overlap), 'day')} of this simulation ({overlap[0]} .. {overlap[-1]}) landed before: "
                     "files with other content for the same day are ingested as more rows; for a clean world run "
                     "`factory data drop --yes` first")
    if last > last_partition:
        notes.append(f"days after {last_partition} (yesterday, UTC) cannot be run until they are over")
    return notes


def cmd_drop(args) -> int:
    paths = default_paths()
    targets = drop_targets(paths)
    sizes = {t: tree_size(t) for t in targets}
    if not targets:
        if args.json:
            emit_json({"home": str(paths.home), "removed": []})
        else:
            print(f"Nothing to remove: no demo state under {paths.home}")
        return 0
    files = sum(f for f, _ in sizes.values())
    total = sum(b for _, b in sizes.values())
    if not args.yes:
        raise UsageError(f"this deletes {', '.join(t.name for t in targets)} under {paths.home} ({files} files, "
                         f"{human_bytes(total)}); nothing was deleted: add --yes to delete them")
    for target in targets:
        remove(target)
    removed = [{"path": str(t), "files": sizes[t][0], "bytes": sizes[t][1]} for t in targets]
    if args.json:
        emit_json({"home": str(paths.home), "removed": removed})
        return 0
    for entry in removed:
        print(f"removed {entry['path']} ({entry['files']} files, {human_bytes(entry['bytes'])})")
    print(f"Dropped the demo state under {paths.home}. Start again with `factory data generate`.")
    return 0


def drop_targets(paths: FactoryPaths) -> list[Path]:
    """The demo state under FACTORY_HOME that exists; every target is a direct child of it."""
    home = paths.home
    targets = [home / name for name in DROP_NAMES if (home / name).exists() or (home / name).is_symlink()]
    for target in targets:  # defensive: DROP_NAMES are plain names, never paths
        if target.parent != home:
            raise UsageError(f"refusing to delete {target}: it is not directly under FACTORY_HOME {home}")
    return targets


def tree_size(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path`` without following symbolic links."""
    if path.is_symlink() or path.is_file():
        return 1, path.lstat().st_size
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            files += 1
            try:
                size += (Path(root) / name).lstat().st_size
            except OSError:
                pass
    return files, size


def remove(path: Path) -> None:
    """Delete a file, a link (never what it points to) or a folder tree (links inside are unlinked)."""
    import shutil

    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def landed_days(paths: FactoryPaths, today: date | None = None) -> tuple[list[date], list[date]]:
    """(every day that landed, the days whose files still wait in the landing folder).

    A day has landed when a landing file, an archived file or a raw-store ledger row names it. A
    landing file named for a day after tomorrow (UTC) waits for nothing: any ingestion run
    quarantines it, so its day is not counted. Only the core's sources count: a business unit's
    (in the shared landing zone) waits for that unit's own nightly job, which `factory run` does not run."""
    from factory_assets.raw_material.ingest import latest_delivery_day
    from factory_assets.raw_material.landing import partition_date_of
    from factory_assets.settings import RAW_SOURCES

    latest = latest_delivery_day(today)
    waiting: set[date] = set()
    if paths.landing.is_dir():
        for folder in paths.landing.iterdir():
            if folder.is_dir() and folder.name in RAW_SOURCES:
                waiting.update(d for f in folder.iterdir()
                               if f.is_file() and not f.name.startswith(".") and not f.name.endswith(".tmp")
                               and (d := partition_date_of(f)) and d <= latest)
    seen = set(waiting)
    if paths.archive.is_dir():
        for folder in paths.archive.iterdir():
            if folder.is_dir():
                seen.update(d for f in folder.iterdir() if (d := partition_date_of(f)))
    seen.update(_ledger_days(paths))
    return sorted(seen), sorted(waiting)


def _ledger_days(paths: FactoryPaths) -> set[date]:
    import duckdb

    from factory_assets.lib.warehouse import warehouse_exists

    if not warehouse_exists(paths):
        return set()
    try:
        with peek_warehouse(paths) as conn:
            return {row[0] for row in conn.execute("SELECT DISTINCT partition_date FROM raw.ingestion_log").fetchall()}
    except duckdb.Error:  # no raw store yet, or another process holds the DuckDB file's write lock
        return set()


def peek_warehouse(paths: FactoryPaths):
    """A read-only look that never waits: the lake, or the DuckDB file opened without its lock."""
    import duckdb

    from factory_assets.lib.warehouse import open_warehouse
    from factory_assets.settings import warehouse_kind

    return open_warehouse(paths) if warehouse_kind() == "lake" else duckdb.connect(str(paths.warehouse), read_only=True)
