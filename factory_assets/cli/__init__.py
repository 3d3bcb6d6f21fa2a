"""`factory`: the command line of the AI Factory.

    factory data generate  write simulated landing files (demo data) under FACTORY_HOME
    factory data drop      delete the demo state under FACTORY_HOME (landing, raw, warehouse, models, runs)
    factory run            run the nightly chain, or one layer, for a day or a range of days
    factory recover        rebuild a damaged DuckDB-file warehouse from the raw store, then its products
    factory lake           the warehouse's history: snapshots, rollback, maintenance, migration
    factory use-cases      list the use cases with their risk tier, owner, champion and challenger
    factory models         list the registered versions of a use case's model (metrics, aliases)
    factory score          score a file against a registered model (distribution layer)
    factory approve        record a signed approval or rejection of a model version (append-only)
    factory promote        run a use case's promotion gate (the only way to change a champion)
    factory audit          write the audit bundle (JSON + HTML) of a model version
    factory keygen         create an approver's Ed25519 key pair and print the public key to declare
    factory ui             open the Dagster UI on the embedded instance
    factory demo           generate demo data and run the whole loop on it: products, training, nightly
                           scoring and monitoring of the last days, retraining where monitoring asks
    factory generate       same as `factory data generate`
    factory services       the catalogue of reusable services (models, sentiment): list, describe, call
    factory serve          serve the services over HTTP (OpenAPI document at /openapi.json)

A first session:

    factory data generate --days 90 --end 2025-03-31   # landing files for 2025-01-01 .. 2025-03-31
    factory run --from 2025-01-01                      # the chain up to the last landed day, one run
    factory run --layer assembly                       # train every use case, run the promotion gates
    factory use-cases                                  # champions and challengers
    factory models late_delivery --json                # its versions, metrics and aliases

Every command takes --help; listings, `run` and `data` take --json for scripts. State lives under
FACTORY_HOME (default ./.factory). Exit codes: 0 done, 1 a run failed (or one of its asset checks of
severity ERROR), 2 a mistake in the command or missing data (the message says what to do), 3 a
promotion the gate refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from factory_assets.lib.formatting import format_table
from factory_assets.settings import (
    PARTITIONS_START_FILE,
    PROJECT_ROOT,
    FactoryPaths,
    apply_dagster_runtime_env,
    default_paths,
    ensure_dagster_home,
    partitions_start,
    partitions_start_setting,
    record_partitions_start,
)

PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_RANGE_END = "dagster/asset_partition_range_end"

#: `factory run --layer`: what each layer runs. The daily-partitioned layers take a day or a range.
LAYERS = ("all", "raw_material", "processing", "assembly", "distribution", "feedback")
PARTITIONED_LAYERS = ("all", "raw_material", "distribution", "feedback")
NIGHTLY_JOB = "supply_chain_nightly"
TRAINING_JOB = "assembly_training"

#: What `factory data drop` deletes, relative to FACTORY_HOME (nothing else, nothing outside it).
DROP_NAMES = ("landing", "raw", "quarantine", "archive", "lake", "locks", "warehouse.duckdb", "warehouse.duckdb.wal",
              "artifacts", "services", "dagster_home", PARTITIONS_START_FILE)

DBT_TARGET = PROJECT_ROOT / "dbt_project" / "target"

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # full logs are in the UI


class UsageError(Exception):
    """A mistake the user can fix: the message names the problem and the fix (exit code 2)."""


# --------------------------------------------------------------------------------------
# Small pure helpers (formatting, dates, file system facts)
# --------------------------------------------------------------------------------------


def parse_day(value: str) -> date:
    """argparse type for YYYY-MM-DD; a bad value is an argparse error (exit 2, usage shown)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2025-02-04") from None


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return number


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def format_range(first: date, last: date) -> str:
    days = (last - first).days + 1
    return f"{first}" if days == 1 else f"{first} .. {last} ({days} days)"


def landed_days(paths: FactoryPaths, today: date | None = None) -> tuple[list[date], list[date]]:
    """(every day that landed, the days whose files still wait in the landing folder).

    A day has landed when a landing file, an archived file or a raw-store ledger row names it. A
    landing file named for a day after tomorrow (UTC) waits for nothing: any ingestion run
    quarantines it, so its day is not counted."""
    from factory_assets.raw_material.ingest import latest_delivery_day
    from factory_assets.raw_material.landing import partition_date_of

    latest = latest_delivery_day(today)
    waiting: set[date] = set()
    if paths.landing.is_dir():
        for folder in paths.landing.iterdir():
            if folder.is_dir():
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
        with _peek_warehouse(paths) as conn:
            return {row[0] for row in conn.execute("SELECT DISTINCT partition_date FROM raw.ingestion_log").fetchall()}
    except duckdb.Error:  # no raw store yet, or another process holds the DuckDB file's write lock
        return set()


def _peek_warehouse(paths: FactoryPaths):
    """A read-only look that never waits: the lake, or the DuckDB file opened without its lock."""
    import duckdb

    from factory_assets.lib.warehouse import open_warehouse
    from factory_assets.settings import warehouse_kind

    return open_warehouse(paths) if warehouse_kind() == "lake" else duckdb.connect(str(paths.warehouse), read_only=True)


def resolve_days(day: date | None, first: date | None, last: date | None, landed: list[date],
                 last_partition: date) -> tuple[date, date]:
    """The days a run covers: --date, or --from [--to], or the last landed day that is over.

    Without --date / --to, days that are not over yet (files of today) are left for a later run."""
    if day is not None and (first or last):
        raise UsageError("give either --date or --from/--to, not both")
    if last is not None and first is None:
        raise UsageError(f"--to {last} needs --from (the first day of the range)")
    complete = [d for d in landed if d <= last_partition]
    if day is not None:
        first = last = day
    elif first is not None:
        last = last or (max(complete) if complete else first)
    elif not complete:
        raise UsageError(f"every landed day ({landed[0]} .. {landed[-1]}) is after {last_partition} (yesterday, "
                         "UTC): run once a day is over, or name an earlier day with --date")
    else:
        first = last = max(complete)
    if first > last:
        raise UsageError(f"--from {first} is after --to {last}: swap them")
    start = partitions_start()
    if first < start:
        raise UsageError(f"{first} is before the first daily partition {start} (from {partitions_start_setting()[1]}): "
                         f"choose a later day or set FACTORY_PARTITIONS_START={first} in the environment")
    if last > last_partition:
        raise UsageError(f"{last} is not a complete day yet: the last daily partition is {last_partition} "
                         "(yesterday, UTC); choose an earlier day")
    return first, last


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


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def drop_targets(paths: FactoryPaths) -> list[Path]:
    """The demo state under FACTORY_HOME that exists; every target is a direct child of it."""
    home = paths.home
    targets = [home / name for name in DROP_NAMES if (home / name).exists() or (home / name).is_symlink()]
    for target in targets:  # defensive: DROP_NAMES are plain names, never paths
        if target.parent != home:
            raise UsageError(f"refusing to delete {target}: it is not directly under FACTORY_HOME {home}")
    return targets


def remove(path: Path) -> None:
    """Delete a file, a link (never what it points to) or a folder tree (links inside are unlinked)."""
    import shutil

    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def _emit_json(payload) -> None:
    print(json.dumps(payload, indent=2, default=str))


def _setup_instance(paths: FactoryPaths) -> None:
    """The embedded Dagster instance under FACTORY_HOME unless DAGSTER_HOME says otherwise."""
    os.environ.setdefault("DAGSTER_HOME", str(ensure_dagster_home(paths)))
    os.environ.setdefault("FACTORY_WAREHOUSE_PATH", str(paths.warehouse))
    apply_dagster_runtime_env()


# --------------------------------------------------------------------------------------
# Progress of a run, printed as it happens (a Dagster logger, so nothing polls)
# --------------------------------------------------------------------------------------


#: "No space left on device" (ENOSPC) as Python, DuckDB and dbt write it.
DISK_FULL = "No space left on device"
_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")
_CLASS_PREFIX = re.compile(r"^(?:[A-Za-z_][\w]*\.)*(?P<cls>[A-Za-z_]\w*): ")


def disk_full_text(texts, filename: str | None = None) -> str | None:
    """The disk-full cause among error messages (and dbt's log lines), with the file being written."""
    for text in texts:
        for line in str(text or "").splitlines():
            if DISK_FULL in line or "[Errno 28]" in line:
                path = filename or next((m for m in _QUOTED_PATH.findall(line)), None)
                where = f" writing {path}" if path else f" ({line.strip()[:300]})"
                return (f"{DISK_FULL}{where}: free space on that disk (or set FACTORY_HOME to a folder on a larger "
                        "one), then run again")
    return None


def _error_chain(error) -> list:
    """A Dagster SerializableErrorInfo and its causes (or the contexts they were raised in), outermost first."""
    chain = []
    while error is not None and len(chain) < 20:
        chain.append(error)
        error = getattr(error, "cause", None) or getattr(error, "context", None)
    return chain


def _error_text(error) -> str:
    """What went wrong in a step, one line: the error the step's own code raised (the first below
    Dagster's wrappers), which names the file and the field, not the library error it wraps (a
    pydantic ValidationError, a YAML parser error); a full disk whatever raised it."""
    chain = _error_chain(error)
    if not chain:
        return "unknown error"
    full = disk_full_text(getattr(e, "message", None) or str(e) for e in chain)
    if full:
        return full
    error = next((e for e in chain if not str(getattr(e, "cls_name", "") or "").startswith("Dagster")), chain[-1])
    lines = [line for line in (getattr(error, "message", None) or str(error)).strip().splitlines() if line.strip()]
    if not lines:
        return getattr(error, "cls_name", None) or "unknown error"
    first = lines[0].strip()
    match = _CLASS_PREFIX.match(first)
    if match and match["cls"] == getattr(error, "cls_name", None):
        # the project's errors say what is wrong themselves; other errors keep their short class name
        module = first[: match.start("cls")]
        first = first[match.end():] if module.startswith("factory_assets.") else f"{match['cls']}: {first[match.end():]}"
    return first[:500]


def _failure_text(data) -> str:
    failure = getattr(data, "user_failure_data", None)
    description = getattr(failure, "description", None)
    metadata = getattr(failure, "metadata", None) or {}
    full = disk_full_text([description, *(getattr(v, "value", v) for v in metadata.values())])
    if full:
        return full
    return description.strip().splitlines()[0] if description else _error_text(data.error)


@dataclass
class Progress:
    """Turns a run's Dagster events into one terminal line per finished asset, failed check or step.

    Partitioned assets materialise once per day; their days are counted and shown once, when the
    step ends."""

    started: float
    stream: object = None  # default: stdout as it is when the object is made (runs redirect stdout)
    _days: dict = field(default_factory=dict)  # step key -> {asset: [partitions]}

    def __post_init__(self) -> None:
        self.stream = self.stream or sys.stdout

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:4.0f} s] {text}", file=self.stream, flush=True)

    def on_record(self, level: int, message: str, event, run_id: str | None = None) -> None:
        if event is None:
            if level >= 30:  # warnings and errors the assets log (quarantined files, no champion, ...)
                text = message.split(" - ", 4)[-1].strip().splitlines()
                self.say(f"  {'warning' if level < 40 else 'error'}: {text[0][:300] if text else ''}")
            return
        kind, step = event.event_type_value, event.step_key
        data = event.event_specific_data
        if kind in ("RUN_START", "PIPELINE_START"):
            self.say(f"run {run_id or ''} started: {event.job_name}".replace("  ", " "))
        elif kind == "ASSET_MATERIALIZATION":
            mat = data.materialization
            key = mat.asset_key.to_user_string()
            if mat.partition is None:
                self.say(f"{key} materialized")
            else:
                self._days.setdefault(step, {}).setdefault(key, []).append(mat.partition)
        elif kind == "ASSET_CHECK_EVALUATION" and not data.passed:
            severity = getattr(getattr(data, "severity", None), "value", "ERROR")
            self.say(f"{data.asset_key.to_user_string()} check {data.check_name} FAILED"
                     f"{' (warning)' if severity == 'WARN' else ''}")
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            for key, days in self._days.pop(step, {}).items():
                days = sorted(days)
                span = days[0] if len(days) == 1 else f"{len(days)} days, {days[0]} .. {days[-1]}"
                self.say(f"{key} materialized ({span})")
            if kind == "STEP_FAILURE":
                self.say(f"step {step} FAILED: {_failure_text(data)}")

    def logger_def(self):
        """A Dagster logger definition that feeds this object (pass it with run config ``loggers``)."""
        import logging

        import dagster as dg

        progress = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                meta = getattr(record, "dagster_meta", None) or {}
                event = getattr(record, "dagster_event", None) or meta.get("dagster_event")
                try:
                    progress.on_record(record.levelno, meta.get("orig_message") or record.getMessage(), event,
                                       meta.get("run_id"))
                except Exception:  # printing progress must never break a run
                    pass

        @dg.logger(description="One line per finished asset, failed check or step (factory run).")
        def factory_progress(_context):
            logger = logging.Logger("factory.progress", level=logging.DEBUG)
            logger.addHandler(_Handler())
            return logger

        return factory_progress


def _with_progress(job, progress: Progress | None):
    """The job and its run config: progress lines through our logger, or quiet console logs."""
    if progress is None:
        return job, dict(QUIET)
    return job.with_logger_defs({**job.loggers, "factory_progress": progress.logger_def()}), \
        {"loggers": {"factory_progress": {}}}


def _execute(job, progress: Progress | None, **kwargs):
    """execute_in_process; with progress lines, what steps write to stdout themselves (dbt's own
    log, which dagster-dbt echoes) is dropped: dbt keeps it in dbt_project/target/<step>-<run id>-*/dbt.log,
    and the run's events are in the UI."""
    import contextlib

    from factory_assets.execution import RUN_HOST_TAG, executor_name, this_host

    # the daemon's run monitoring marks the run failed if this process dies (kill -9, a closed terminal)
    kwargs["tags"] = {**(kwargs.get("tags") or {}), RUN_HOST_TAG: this_host()}
    if executor_name() != "in_process":
        return _execute_on_configured_executor(job.name, **kwargs)
    if progress is None:
        return job.execute_in_process(raise_on_error=False, **kwargs)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return job.execute_in_process(raise_on_error=False, **kwargs)


def _execute_on_configured_executor(job_name: str, instance, run_config=None, tags=None, asset_selection=None):
    """The run on FACTORY_EXECUTOR's engine (multiprocess, Dask): the job is loaded by reference
    (module and name), so each step's process loads the same code location. The progress logger
    lives in this process only: the run's events are printed once it ends."""
    import dagster as dg

    from factory_assets.compat import reconstructable_job

    job = reconstructable_job("factory_assets.definitions", "defs", job_name,
                              working_directory=str(Path(__file__).resolve().parents[1]))
    config = {k: v for k, v in (run_config or {}).items() if k != "loggers"}
    with dg.execute_job(job, instance=instance, run_config=config, tags=tags,
                        asset_selection=asset_selection, raise_on_error=False) as result:
        return result


# --------------------------------------------------------------------------------------
# Running the jobs (also used by the demo)
# --------------------------------------------------------------------------------------


def run_supply_chain(first_day: date, last_day: date, asset_selection=None, progress: Progress | None = None):
    """Run the nightly job in this process over a range of days, as one run, on the instance."""
    import dagster as dg

    from factory_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    job, run_config = _with_progress(defs.resolve_job_def(NIGHTLY_JOB), progress)
    tags = {PARTITION_RANGE_START: first_day.isoformat(), PARTITION_RANGE_END: last_day.isoformat()}
    result = _execute(job, progress, instance=instance, tags=tags, run_config=run_config, asset_selection=asset_selection)
    if not result.success and asset_selection is None:
        # governance was abandoned with the failed steps; build it anyway (the daemon's
        # governance_after_failed_night sensor does the same for scheduled runs)
        review, review_config = _with_progress(defs.resolve_job_def("policy_review"), progress)
        if progress:
            progress.say("the night failed: building model_compliance and use_case_portfolio anyway (policy_review)")
        _execute(review, progress, instance=instance, run_config=review_config,
                 tags={"factory/after_failed_run": result.run_id})
    return result


def run_training(as_of: date | None = None, asset_selection=None, tags=None, progress: Progress | None = None):
    """Train (every use case, or a selection) and run the promotion gates, in this process.

    ``as_of``: train on what was known at the start of that day."""
    import dagster as dg

    from factory_assets.assembly.specs import USE_CASES_DIR, load_use_cases
    from factory_assets.definitions import defs

    job, config = _with_progress(defs.resolve_job_def(TRAINING_JOB), progress)
    if as_of is not None:
        config["ops"] = {f"assembly__{name}_training_set": {"config": {"as_of": as_of.isoformat()}}
                         for name in load_use_cases(USE_CASES_DIR)}
    return _execute(job, progress, instance=dg.DagsterInstance.get(), run_config=config,
                    asset_selection=asset_selection, tags=tags)


def run_requested_retraining(progress: Progress | None = None):
    """Evaluate the retraining sensor once and run what it requests (what the daemon would do)."""
    import dagster as dg

    from factory_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    sensor = defs.resolve_sensor_def("retraining_on_monitoring_breach")
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    return [(request, run_training(asset_selection=list(request.asset_selection), tags=request.tags,
                                   progress=progress))
            for request in tick.run_requests]


def run_report(result, seconds: float) -> dict:
    """What a run did, from its events: materialised assets, checks, failed and skipped steps."""
    materialized: dict[str, int] = {}
    checks, failed_steps, skipped = [], [], []
    for event in result.all_events:
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            key = event.asset_key.to_user_string()
            materialized[key] = materialized.get(key, 0) + 1
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            checks.append({"asset": data.asset_key.to_user_string(), "check": data.check_name,
                           "passed": bool(data.passed),
                           "severity": getattr(getattr(data, "severity", None), "value", "ERROR")})
        elif kind == "STEP_FAILURE":
            failed_steps.append({"step": event.step_key, "error": _failure_text(event.event_specific_data)})
        elif kind == "STEP_SKIPPED":
            skipped.append(event.step_key)
    passed = sum(c["passed"] for c in checks)
    errors = [c for c in checks if not c["passed"] and c["severity"] == "ERROR"]
    return {
        "run_id": result.run_id, "job": result.job_def.name, "success": bool(result.success),
        "ok": bool(result.success) and not errors,  # the exit code: 0 only when this is true
        "seconds": round(seconds, 1), "materialized": sorted(materialized),
        "materializations": sum(materialized.values()),
        "checks": {"passed": passed, "failed": len(checks) - passed,
                   "failures": [c for c in checks if not c["passed"]]},
        "failed_steps": failed_steps, "skipped_steps": sorted(skipped),
    }


def print_report(report: dict) -> None:
    checks = report["checks"]
    print()
    print(f"Run {report['run_id']} ({report['job']}): {'SUCCESS' if report['success'] else 'FAILED'} "
          f"in {report['seconds']:.0f} s")
    print(f"Materialized: {plural(len(report['materialized']), 'asset')} "
          f"({plural(report['materializations'], 'materialization')})")
    print(f"Asset checks: {checks['passed']} passed, {checks['failed']} failed")
    for c in checks["failures"]:
        print(f"  failed: {c['asset']} {c['check']}{' (warning)' if c['severity'] == 'WARN' else ''}")
    for step in report["failed_steps"]:
        print(f"Step {step['step']} failed: {step['error']}")
    if report["skipped_steps"]:
        print(f"Skipped {plural(len(report['skipped_steps']), 'step')} whose inputs were not produced (e.g. a use case "
              "without a champion scores nothing, so its checks and monitoring do not run)")
    if any("dbt" in step["step"] for step in report["failed_steps"]):
        print(f"dbt's own log: {DBT_TARGET}/*-{report['run_id'][:7]}-*/dbt.log")
    if report["success"] and not report["ok"]:
        print("Exit code 1: the run succeeded, but an asset check of severity ERROR failed")
    if not report["ok"]:
        print("Logs, failing rows and check details: `factory ui`, then Runs -> " + report["run_id"])


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------


def _simulation_config(args):
    from factory_assets.raw_material.simulator import DriftScenario, SimulationConfig

    end = args.end or date.today() - timedelta(days=1)
    start = end - timedelta(days=args.days - 1)
    drift = DriftScenario(start_date=args.drift_from) if args.drift_from else None
    return SimulationConfig(start_date=start, days=args.days, order_lines_per_day=args.lines_per_day, seed=args.seed,
                            n_products=args.products, drift=drift)


def cmd_generate(args) -> int:
    from factory_assets.raw_material.simulator import generate_demo_data

    config = _simulation_config(args)
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
        _emit_json({"landing": str(paths.landing), "files": n_files, "days": config.days,
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
            _emit_json({"home": str(paths.home), "removed": []})
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
        _emit_json({"home": str(paths.home), "removed": removed})
        return 0
    for entry in removed:
        print(f"removed {entry['path']} ({entry['files']} files, {human_bytes(entry['bytes'])})")
    print(f"Dropped the demo state under {paths.home}. Start again with `factory data generate`.")
    return 0


def check_warehouse(paths: FactoryPaths) -> None:
    """Before a run: a damaged warehouse file, or a missing one while the raw store holds ingested
    files, is a UsageError naming the file and `factory recover` (every step would fail on it, or
    rebuild the products empty). A file another process holds is left to the steps, which wait."""
    import duckdb

    from factory_assets.lib import warehouse_lock as wl
    from factory_assets.settings import warehouse_kind

    if warehouse_kind() == "lake":
        return  # many writers, no file to damage: a catalog problem shows in the first step
    if not paths.warehouse.exists():
        if wl.raw_store_holds_data(paths.raw):
            raise UsageError(str(wl.lost(paths.warehouse, paths.raw)))
        return
    try:
        duckdb.connect(str(paths.warehouse), read_only=True).close()
    except duckdb.Error as exc:
        if wl.is_damage(exc):
            raise UsageError(str(wl.damaged(paths.warehouse, exc))) from None


def cmd_recover(args) -> int:
    """`factory recover`: see warehouse_recovery's docstring (and the subcommand's --help)."""
    from factory_assets.lib import warehouse_recovery as recovery
    from factory_assets.lib.warehouse_lock import warehouse_lock

    from factory_assets.settings import warehouse_kind

    paths = default_paths()
    if warehouse_kind() == "lake":
        raise UsageError("the warehouse is a DuckLake lakehouse, not a file to rebuild: roll bad data back with "
                         "`factory lake rollback SNAPSHOT --schema raw` (`factory lake snapshots` lists them), or "
                         "restore a lost catalog from `factory lake backup`. `factory recover` serves a warehouse "
                         "kept as one DuckDB file (FACTORY_WAREHOUSE=duckdb)")
    plan = recovery.plan_recovery(paths)
    if not plan.files:
        raise UsageError(f"nothing to recover from: the raw store {paths.raw} holds no ingested files. A warehouse "
                         "without them is rebuilt by ingesting the landing files again (`factory run`)")
    with warehouse_lock(paths.warehouse, exclusive=False):
        state, why = recovery.warehouse_state(paths, plan)
    out = sys.stderr if args.json else sys.stdout
    if state == "healthy" and not args.force:
        if args.json:
            _emit_json({"warehouse": str(paths.warehouse), "state": state, "rebuilt": False, "why": why})
        else:
            print(f"The warehouse {paths.warehouse} is healthy ({why}): nothing to do. "
                  "`factory recover --force` rebuilds it anyway.")
        return 0
    needed, free = recovery.free_space_needed(plan), recovery.disk_free(paths.home)
    if free < needed:
        raise UsageError(f"{DISK_FULL} for the rebuild: it needs about {human_bytes(needed)} beside the warehouse "
                         f"in {paths.home}, {human_bytes(free)} are free. Free space on that disk, then run again")
    print(f"The warehouse {paths.warehouse} is {state}: {why}.", file=out)
    print(f"Rebuilding its raw tables from {paths.raw} ({plural(len(plan.files), 'ingested file')}) ...",
          file=out, flush=True)
    started = time.perf_counter()
    plan, restored, aside = recovery.recover_raw(paths)
    for source, rows in restored.items():
        print(f"  raw.{source:<24} {rows:>10} rows", file=out)
    for parquet, reason in plan.left_out:
        print(f"  left out {parquet}: {reason}", file=out)
    if aside:
        print(f"The old file is kept as {aside} (delete it once the rebuild is checked).", file=out)
    payload = {"warehouse": str(paths.warehouse), "state": state, "why": why, "rebuilt": True,
               "kept_as": str(aside) if aside else None, "raw_rows": restored, "files": len(plan.files),
               "left_out": [{"path": str(p), "reason": r} for p, r in plan.left_out], "products": None}
    days = sorted({f.partition_date for f in plan.files})
    ok = True
    if not args.raw_only:
        paths.create()
        _setup_instance(paths)
        from factory_assets.assembly.features import FEATURE_SETS
        from factory_assets.definitions import defs
        from factory_assets.keys import feature_set_key

        selection = _layer_selection(defs, "processing") + [feature_set_key(n) for n in FEATURE_SETS]
        print("Rebuilding the data products and feature sets (processing layer) ...", file=out, flush=True)
        # processing is not partitioned: the nightly job still wants a day, any complete landed day serves
        last = min(date.fromisoformat(days[-1]), datetime.now(timezone.utc).date() - timedelta(days=1))
        result = run_supply_chain(last, last, asset_selection=selection, progress=Progress(started, stream=out))
        report = run_report(result, time.perf_counter() - started)
        ok = report["ok"]
        payload["products"] = report
        if not args.json:
            print_report(report)
    if args.json:
        _emit_json(payload)
    else:
        print(f"Prediction products are not restored from the raw store: re-score them with `factory run --layer "
              f"distribution --from {days[0]} --to {days[-1]}` (the current champions score every day again).")
    return 0 if ok else 1


def _layer_selection(defs, layer: str):
    """Asset keys of one layer's group in the nightly job."""
    job = defs.resolve_job_def(NIGHTLY_JOB)
    graph = defs.resolve_asset_graph()
    return sorted((k for k in job.asset_layer.executable_asset_keys if graph.get(k).group_name == layer),
                  key=lambda k: k.to_user_string())


@dataclass(frozen=True)
class RunPlan:
    """What `factory run` will do, decided before anything heavy is imported."""

    layer: str
    first: date | None = None  # the partition range (None: the layer is not partitioned)
    last: date | None = None
    trained_by: date | None = None  # assembly: train on what was known by the end of this day
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        what = {"all": f"{NIGHTLY_JOB} (the whole chain)",
                "assembly": f"{TRAINING_JOB} (feature sets, training, promotion gates)"}.get(self.layer,
                                                                                        f"layer {self.layer}")
        when = (f" for {format_range(self.first, self.last)}" if self.first else
                f" on what was known by the end of {self.trained_by}" if self.trained_by else "")
        return f"{what}{when}"


def plan_run(layer: str, day: date | None, date_from: date | None, date_to: date | None, landed: list[date],
             waiting: list[date], last_partition: date, landing: Path) -> RunPlan:
    """Resolve `factory run`'s options against what has landed (UsageError for a mistake)."""
    if not landed:
        raise UsageError(f"no landed data under {landing}; run `factory data generate` first "
                         "(or drop files named <source>_YYYY-MM-DD.<csv|jsonl> into it)")
    dates_given = bool(day or date_from or date_to)
    if layer in PARTITIONED_LAYERS:
        first, last = resolve_days(day, date_from, date_to, landed, last_partition)
        notes = ()
        outside = [d for d in waiting if not first <= d <= last] if layer in ("all", "raw_material") else []
        if outside:
            notes = (f"landing files of {len(outside)} other day(s) are waiting in {landing} "
                     f"({outside[0]} .. {outside[-1]}); include them with --from {min(outside[0], first)} "
                     f"--to {max(outside[-1], last)}",)
        return RunPlan(layer, first, last, notes=notes)
    if layer == "assembly":
        trained_by = resolve_days(day, date_from, date_to, landed, last_partition)[1] if dates_given else None
        return RunPlan(layer, trained_by=trained_by)
    if layer == "processing":
        resolve_days(day, date_from, date_to, landed, last_partition)  # still refuse impossible dates
        return RunPlan(layer, notes=("processing is not partitioned: dbt rebuilds the products from everything "
                                     "in the raw store, so the dates are not used",) if dates_given else ())
    raise UsageError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")


def cmd_run(args) -> int:
    paths = default_paths()
    landed, waiting = landed_days(paths)
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    plan = plan_run(args.layer, args.date, args.date_from, args.date_to, landed, waiting, yesterday, paths.landing)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    check_warehouse(paths)
    paths.create()
    _setup_instance(paths)
    started = time.perf_counter()
    # with --json, stdout holds only the JSON object; progress goes to stderr
    progress = Progress(started, stream=sys.stderr if args.json else sys.stdout)
    print(f"Running {plan.describe()}; FACTORY_HOME={paths.home}", file=progress.stream, flush=True)
    if plan.layer == "assembly":
        result = run_training(as_of=plan.trained_by + timedelta(days=1) if plan.trained_by else None,
                              progress=progress)
    else:
        selection = None
        if plan.layer != "all":
            from factory_assets.definitions import defs

            selection = _layer_selection(defs, plan.layer)
        # processing is not partitioned: the nightly job still wants a day, any landed day serves
        first, last = (plan.first, plan.last) if plan.first else (max(landed), max(landed))
        result = run_supply_chain(first, last, asset_selection=selection, progress=progress)
    report = run_report(result, time.perf_counter() - started)
    report.update(layer=plan.layer, first_day=plan.first, last_day=plan.last, trained_by=plan.trained_by)
    if args.json:
        _emit_json(report)
    else:
        print_report(report)
    return 0 if report["ok"] else 1


def _registry():
    from factory_assets.resources import default_store

    return default_store().registry()


def _use_cases():
    from factory_assets.assembly.specs import UseCaseSpecError, load_use_cases

    try:
        return load_use_cases()
    except UseCaseSpecError as exc:
        raise UsageError(f"{exc}; fix that declaration (README: Onboard your own data)") from None


def _aliases(registry, use_case: str) -> dict[str, str]:
    return registry.aliases(use_case) if use_case in registry.use_cases() else {}


def use_case_rows(specs, registry) -> list[dict]:
    """One row per use case: its spec and what the registry holds for it."""
    rows = []
    for name, spec in specs.items():
        aliases = _aliases(registry, name)
        champion = registry.get(name, aliases["champion"]) if "champion" in aliases else None
        value = champion.metrics.get(spec.metric) if champion else None
        rows.append({"name": name, "template": spec.template, "risk_tier": spec.risk_tier,
                     "business_unit": spec.business_unit, "owner": spec.owner, "metric": spec.metric,
                     "champion": aliases.get("champion"), "champion_metric": value,
                     "challenger": aliases.get("challenger"), "description": spec.description.strip()})
    return rows


def cmd_use_cases(args) -> int:
    rows = use_case_rows(_use_cases(), _registry())
    if args.json:
        _emit_json(rows)
        return 0
    table = [[r["name"], r["template"], r["risk_tier"], r["business_unit"], r["owner"], r["champion"],
              f"{r['metric']} {r['champion_metric']:.3f}" if r["champion_metric"] is not None else None,
              r["challenger"]] for r in rows]
    print(format_table(["USE CASE", "TEMPLATE", "RISK", "BUSINESS UNIT", "OWNER", "CHAMPION", "METRIC", "CHALLENGER"],
                       table))
    if not any(r["champion"] or r["challenger"] for r in rows):
        print("\nNo models yet: train them with `factory run --layer assembly`.")
    return 0


def model_rows(registry, use_case: str) -> list[dict]:
    """The registered versions of a use case, newest first, with their aliases."""
    if use_case not in registry.use_cases():
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in sorted(_aliases(registry, use_case).items()):
        by_version.setdefault(version, []).append(alias)
    return [{"version": v.version, "created_at": v.created_at, "created_by": v.manifest.get("created_by"),
             "engine": v.engine, "metrics": v.metrics, "baseline_metrics": v.baseline_metrics,
             "aliases": by_version.get(v.version, [])} for v in registry.list_versions(use_case)]


def cmd_models(args) -> int:
    specs = _use_cases()
    registry = _registry()
    known = sorted(set(specs) | set(registry.use_cases()))
    if args.use_case not in known:
        raise UsageError(f"unknown use case {args.use_case!r}; known: {', '.join(known)} (see `factory use-cases`)")
    rows = model_rows(registry, args.use_case)
    if args.json:
        _emit_json(rows)
        return 0
    if not rows:
        print(f"No models registered for {args.use_case} yet: train one with `factory run --layer assembly`.")
        return 0
    metric = specs[args.use_case].metric if args.use_case in specs else next(iter(rows[0]["metrics"]), None)
    table = []
    for r in rows:
        value, base = r["metrics"].get(metric), r["baseline_metrics"].get(metric)
        others = ", ".join(f"{k} {v:.3f}" for k, v in r["metrics"].items() if k != metric)
        table.append([r["version"], r["created_at"][:16].replace("T", " "), r["engine"],
                      f"{value:.3f}" if value is not None else None, f"{base:.3f}" if base is not None else None,
                      others or None, ", ".join(r["aliases"]) or None])
    print(format_table(["VERSION", "CREATED (UTC)", "ENGINE", (metric or "metric").upper(), "BASELINE",
                        "OTHER METRICS", "ALIASES"], table))
    return 0


def model_summary(result) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        key = event.asset_key.path[-1]
        meta = event.materialization.metadata
        if key.endswith("_model"):
            metrics = {k.split("/", 1)[1]: v.value for k, v in meta.items() if k.startswith("metric/")}
            baseline = {k.split("/", 1)[1]: v.value for k, v in meta.items() if k.startswith("baseline/")}
            shown = ", ".join(f"{m} {metrics[m]:.3f} (baseline {baseline[m]:.3f})" for m in metrics)
            lines.append(f"  {key.removesuffix('_model'):<24} {meta['engine'].value}: {shown}")
        elif key.endswith("_champion") and meta["promoted"].value:
            lines.append(f"  {key.removesuffix('_champion'):<24} {meta['reason'].value.split(': ')[0]}")
        elif key.endswith("_champion"):
            use_case = key.removesuffix("_champion")
            lines.append(f"  {use_case:<24} stays challenger: {meta['reason'].value.split(' (gate alone')[0]}")
            if "approval" in meta["reason"].value:
                lines.append(f"  {'':<24} approve (two declared approvers, each with their key): .venv/bin/factory "
                             f"approve {use_case} challenger --approver NAME --key KEY --decision approve; then "
                             f".venv/bin/factory promote {use_case}")
    for event in result.get_asset_observation_events():  # a use case without enough history yet
        meta = event.asset_observation_data.asset_observation.metadata
        if "not_trained" in meta:
            lines.append(f"  {event.asset_key.path[-1].removesuffix('_model'):<24} skipped: "
                         f"{meta['not_trained'].value.split(' not trained: ', 1)[-1]}")
    return lines


def summarise(result) -> tuple[list[tuple[str, int]], int, int]:
    import duckdb

    from factory_assets.assembly.specs import load_use_cases
    from factory_assets.lib.contracts import prediction_contract_path, product_contract, product_contract_names

    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    passed = sum(1 for c in checks if c.passed)
    tables = [(name, product_contract(name).physical_name) for name in product_contract_names()]
    tables += [(f"{uc}_predictions", f"predictions.{uc}") for uc in load_use_cases() if prediction_contract_path(uc).is_file()]
    tables.append(("service_priority", "operations.service_priority"))
    rows = []
    with _peek_warehouse(default_paths()) as conn:
        for name, table in tables:
            try:
                rows.append((name, conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]))
            except duckdb.Error:
                rows.append((name, -1))
    return rows, passed, len(checks)


def monitoring_summary(result) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[0] != "feedback" or not event.asset_key.path[-1].endswith("_monitoring"):
            continue
        meta = event.materialization.metadata
        breaches = meta["breaches"].value if "breaches" in meta else []
        share = meta["drift_share"].value if "drift_share" in meta else float("nan")
        lines.append(f"  {event.asset_key.path[-1]:<34} {event.materialization.partition}  drift share "
                     f"{share:.2f}  {'; '.join(breaches) if breaches else 'ok'}")
    return lines


def cmd_demo(args) -> int:
    paths = default_paths().create()
    _setup_instance(paths)
    started = time.perf_counter()
    cmd_generate(args)
    config = _simulation_config(args)
    last_day = config.start_date + timedelta(days=config.days - 1)
    live_days = 0 if args.no_train else max(0, min(args.live_days, config.days - 60))
    history_end = last_day - timedelta(days=live_days)
    progress = Progress(started)
    print(f"Running supply_chain_nightly for {config.start_date} .. {history_end} (one run) ...", flush=True)
    result = run_supply_chain(config.start_date, history_end, progress=progress)
    training = live = None
    retrained = []
    if result.success and not args.no_train:
        print(f"Training the use cases on what was known by {history_end} and running the promotion gates ...", flush=True)
        training = run_training(as_of=history_end + timedelta(days=1), progress=progress)
        if training.success and live_days:
            first_live = history_end + timedelta(days=1)
            print(f"Nightly chain for {first_live} .. {last_day}: landing, products, features, scoring, monitoring ...",
                  flush=True)
            live = run_supply_chain(first_live, last_day, progress=progress)
            retrained = run_requested_retraining(progress=progress) if live.success else []
    rows, passed, total = summarise(live if live is not None else result)
    print()
    print(f"Run {result.run_id}: {'SUCCESS' if result.success else 'FAILED'} in {time.perf_counter() - started:.0f} s")
    print(f"Asset checks passed: {passed}/{total}")
    print("Data and prediction products (rows):")
    for name, count in rows:
        print(f"  {name:<32} {count if count >= 0 else 'not built':>10}")
    if training is not None:
        print(f"Models (run {training.run_id}: {'SUCCESS' if training.success else 'FAILED'}; test-window metrics):")
        print("\n".join(model_summary(training)))
        for step in run_report(training, 0)["failed_steps"]:
            print(f"  step {step['step']} failed: {step['error']}")
    if live is not None:
        print(f"Monitoring (run {live.run_id}: {'SUCCESS' if live.success else 'FAILED'}):")
        print("\n".join(monitoring_summary(live)))
        for request, run in retrained:
            gate = [e.materialization.metadata["reason"].value for e in run.get_asset_materialization_events()
                    if e.asset_key.path[-1].endswith("_champion")]
            print(f"Retraining requested for {request.tags['factory/use_case']} "
                  f"({'SUCCESS' if run.success else 'FAILED'}): {gate[0] if gate else 'no gate decision'}")
    quarantined = sorted(p.name for p in paths.quarantine.rglob("*") if p.is_file() and not p.name.endswith(".reason.json"))
    if quarantined:
        print(f"Quarantined files ({len(quarantined)}), see {paths.quarantine}: {', '.join(quarantined[:5])}")
    print()
    from factory_assets.lib.warehouse import describe_warehouse

    print(f"State lives in {paths.home} (warehouse: {describe_warehouse(paths)}).")
    print("Open the UI:  python3 tasks.py ui   (then http://127.0.0.1:3000)")
    runs = [result, training, live, *(run for _, run in retrained)]
    return 0 if all(r.success for r in runs if r is not None) else 1


def cmd_ui(args) -> int:
    paths = default_paths().create()
    embedded = str(ensure_dagster_home(paths))
    env = apply_dagster_runtime_env(dict(os.environ))
    env["DAGSTER_HOME"] = env.get("DAGSTER_HOME") or embedded  # a production DAGSTER_HOME is kept
    env.setdefault("FACTORY_WAREHOUSE_PATH", str(paths.warehouse))
    from factory_assets.lib.artifact_server import start_artifact_server

    # The monitors' report links point at FACTORY_ARTIFACTS_URL (default http://127.0.0.1:3001):
    # serve the artifacts folder there, read-only, for as long as the UI runs.
    try:
        reports = start_artifact_server(paths.artifacts, args.host, args.artifacts_port)
    except OSError as exc:
        raise UsageError(f"cannot serve the reports on {args.host}:{args.artifacts_port} ({exc.strerror}); "
                         "stop what uses that port, or pass --artifacts-port N and set FACTORY_ARTIFACTS_URL to match "
                         "for the runs that write the reports.") from exc
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
           "-h", args.host, "-p", str(args.port)]
    print(f"Starting the Dagster UI on http://{args.host}:{args.port} (FACTORY_HOME={paths.home}); reports on "
          f"http://{args.host}:{args.artifacts_port}/; Ctrl-C stops both.", flush=True)
    # `dagster dev` alone does not stop in time (see lib/process_session): it runs in a session of
    # its own, and this process alone takes Ctrl-C, a service manager's SIGTERM or a hang-up.
    import signal
    import threading

    from factory_assets.lib.process_session import stop_session

    posix = os.name == "posix"
    received: list[int] = []
    handled = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in handled:
            previous[signum] = signal.signal(signum, lambda signum, _frame: received.append(signum))

    process = None
    try:
        process = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, start_new_session=posix)
        while process.poll() is None and not received:
            time.sleep(0.1)
        return 0 if received else process.returncode
    except KeyboardInterrupt:
        return 0
    finally:
        try:
            if process is not None:
                # also when dagster dev exited alone: its code servers may not have; a second Ctrl-C
                # skips the grace period
                stop_session(process, hurry=lambda: len(received) >= 2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            reports.shutdown()
            reports.server_close()


# --------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------

#: One-line help of each subcommand, in the order `factory --help` lists them (the module
#: docstring lists the same; tests/test_cli.py keeps the two in step).
COMMANDS = {
    "data": "generate or drop demo data (landing files and all state under FACTORY_HOME)",
    "run": "run the nightly chain, or one layer, for a day or a range of days",
    "recover": "rebuild a damaged DuckDB-file warehouse from the raw store, then its products",
    "lake": "the warehouse's history: snapshots, rollback, maintenance, migration",
    "use-cases": "list the use cases with their risk tier, owner, champion and challenger",
    "models": "list the registered versions of a use case's model (metrics, aliases)",
    "score": "score a file against a registered model (distribution layer)",
    "approve": "record a signed approval or rejection of a model version (append-only)",
    "promote": "run a use case's promotion gate (the only way to change a champion)",
    "audit": "write the audit bundle (JSON + HTML) of a model version",
    "keygen": "create an approver's Ed25519 key pair and print the public key to declare",
    "ui": "open the Dagster UI on the embedded instance",
    "demo": "generate demo data and run the whole loop on it (products, training, scoring, monitoring)",
    "generate": "same as `factory data generate`",
    "services": "the catalogue of reusable services (models, sentiment): list, describe, call",
    "serve": "serve the services over HTTP (OpenAPI document at /openapi.json)",
}


class _Formatter(argparse.HelpFormatter):
    """Wrapped text, a wider help column, and room for subcommand names."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=110)

    def add_argument(self, action):
        super().add_argument(action)
        if action.help is not argparse.SUPPRESS and getattr(action, "_choices_actions", None):
            # argparse measures subcommand names without their extra indent; make room for it
            self._action_max_length = max(self._action_max_length, self._current_indent + 4 + max(
                len(a.metavar or a.dest) for a in action._choices_actions))


class _TopFormatter(argparse.RawDescriptionHelpFormatter, _Formatter):
    """The top-level help keeps the module docstring's own line breaks."""


def _json_flag(parser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON (for scripts)")


def _add_simulation_options(p) -> None:
    p.add_argument("--days", type=positive_int, default=90, help="days of history to simulate (default 90; "
                   "purchase propensity needs 28 days of history plus 30-day labels)")
    p.add_argument("--lines-per-day", type=positive_int, default=1500, help="mean order lines per day (default 1500)")
    p.add_argument("--products", type=positive_int, default=200, help="products in the catalogue (default 200; "
                   "demand is forecast per product, warehouse and day)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--end", type=parse_day, metavar="YYYY-MM-DD", help="last simulated day (default: yesterday)")
    p.add_argument("--drift-from", type=parse_day, metavar="YYYY-MM-DD",
                   help="turn on the simulator's drift scenario from this day")


def build_parser() -> argparse.ArgumentParser:
    intro, _, rest = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="factory", description=intro.strip(),
                                     epilog=rest.split("\n\n", 1)[-1].strip(), formatter_class=_TopFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    def add(name: str, **kwargs):
        line = COMMANDS[name]
        return sub.add_parser(name, help=line, description=line[0].upper() + line[1:] + ".",
                              formatter_class=_Formatter, **kwargs)

    p = add("data")
    data = p.add_subparsers(dest="data_command", required=True, metavar="ACTION", title="actions")
    g = data.add_parser("generate", help="write simulated landing files under FACTORY_HOME/landing",
                        description="Simulate a distributor's ERP, IoT, support and external feeds and write one "
                        "landing file per source and day.", formatter_class=_Formatter)
    _add_simulation_options(g)
    _json_flag(g, "what was written")
    g.set_defaults(func=cmd_generate)
    d = data.add_parser("drop", help="delete the demo state under FACTORY_HOME (needs --yes)",
                        description="Delete the demo state under FACTORY_HOME: " + ", ".join(DROP_NAMES)
                        + ". Nothing outside FACTORY_HOME is touched; without --yes nothing is deleted.",
                        formatter_class=_Formatter)
    d.add_argument("--yes", action="store_true",
                   help="really delete (without it the command only says what it would delete)")
    _json_flag(d, "what was removed")
    d.set_defaults(func=cmd_drop)

    p = add("run", epilog="Layers: all = the nightly job supply_chain_nightly (landing -> raw -> products -> feature "
            "sets -> champion scores -> monitoring); raw_material, processing, distribution, feedback = that "
            "group's assets of the nightly job; assembly = the assembly_training job (feature sets, training "
            "sets, models, promotion gates). Without a date, the last landed day is run. Exit code 0 when the run "
            "succeeded and no asset check of severity ERROR failed, 1 otherwise, 2 for a mistake in the options "
            "or no landed data.")
    p.add_argument("--layer", choices=LAYERS, default="all", metavar="LAYER",
                   help=f"what to run: {', '.join(LAYERS)} (default all: the whole chain)")
    p.add_argument("--date", type=parse_day, metavar="YYYY-MM-DD", help="one day (default: the last landed day)")
    p.add_argument("--from", dest="date_from", type=parse_day, metavar="YYYY-MM-DD",
                   help="first day of a range, run as one run")
    p.add_argument("--to", dest="date_to", type=parse_day, metavar="YYYY-MM-DD",
                   help="last day of the range (default: the last landed day)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout at the end (run_id, "
                   "success, ok, days, materialized assets, checks, failed steps, seconds) instead of the summary; "
                   "progress lines go to stderr")
    p.set_defaults(func=cmd_run)

    p = add("recover", epilog="The raw store (FACTORY_HOME/raw) keeps every ingested file as Parquet with its "
            "provenance, and the archive keeps the landing files: the raw tables are rebuilt from them to the "
            "same rows (the ingestion ledger and quarantine log too), in a new file that replaces the warehouse "
            "atomically; the old file is kept as warehouse.duckdb.damaged-<time>. Then the data products and "
            "feature sets are rebuilt by the processing layer. Prediction products are re-scored by `factory run "
            "--layer distribution --from FIRST --to LAST`. Exit code 0 when the warehouse was healthy or is rebuilt, "
            "1 when the product rebuild failed, 2 when there is nothing to recover from.")
    p.add_argument("--force", action="store_true",
                   help="rebuild even when the warehouse opens and holds every raw row (default: say so and stop)")
    p.add_argument("--raw-only", action="store_true",
                   help="restore the raw tables only; rebuild the products later with `factory run --layer processing`")
    _json_flag(p, "what was restored")
    p.set_defaults(func=cmd_recover)

    p = add("use-cases")
    _json_flag(p, "the use cases")
    p.set_defaults(func=cmd_use_cases)

    p = add("models")
    p.add_argument("use_case", metavar="USE_CASE", help="the use case, e.g. late_delivery (see `factory use-cases`)")
    _json_flag(p, "the versions (a list, newest first)")
    p.set_defaults(func=cmd_models)

    from factory_assets.distribution import service_cli
    from factory_assets import lake_cli
    from factory_assets.governance import cli as governance_cli

    service_cli.register_commands(sub, help_of=COMMANDS, formatter_class=_Formatter, only=("score", "services"))
    governance_cli.register_commands(sub, help_of=COMMANDS, formatter_class=_Formatter)
    lake_cli.register_commands(sub, COMMANDS["lake"], formatter_class=_Formatter)

    p = add("ui")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    p.add_argument("--artifacts-port", type=int, default=3001,
                   help="port of the read-only server for Evidently reports and audit bundles, which the UI's "
                   "report links point at (default 3001; see FACTORY_ARTIFACTS_URL)")
    p.set_defaults(func=cmd_ui)

    p = add("demo")
    _add_simulation_options(p)
    p.add_argument("--no-train", action="store_true", help="stop after the data products")
    p.add_argument("--live-days", type=int, default=7, help="last days run night by night after training: scored, "
                   "monitored, and retrained where monitoring asks (default 7)")
    p.set_defaults(func=cmd_demo)

    p = add("generate")
    _add_simulation_options(p)
    _json_flag(p, "what was written")
    p.set_defaults(func=cmd_generate)

    service_cli.register_commands(sub, help_of=COMMANDS, formatter_class=_Formatter, only=("serve",))
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Dagster marks some parameters of the project's assets beta/preview; a CLI user cannot act on that.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    # "Blocking asset check ... emitted no result": said when a use case without a champion scores
    # nothing; the run's progress and summary already say so.
    logging.getLogger("dagster._core.execution.plan.active").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    name = " ".join(filter(None, ["factory", args.command, getattr(args, "data_command", None),
                                  getattr(args, "lake_command", None)]))
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a message, not a traceback (FACTORY_DEBUG=1 shows it)
        if os.environ.get("FACTORY_DEBUG") == "1":
            raise
        code, message = explain_error(exc)
        print(f"{name}: error: {message}", file=sys.stderr)
        return code


#: The project's errors whose message names the file, the field and the fix (exit code 2), by class
#: name so that nothing heavy is imported to recognise them.
MESSAGE_ERRORS = frozenset({
    "PolicyError", "ContractError", "RawSchemaError", "UseCaseSpecError", "ApproversError", "AuditBundleError",
    "MonitoringConfigError", "RegistryKeyError", "RegistryIntegrityError", "ModelNotFoundError", "ScoringInputError",
    "LandingFileError", "WarehouseDamagedError", "WarehouseBusyError",
})


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        chain.append(exc)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return chain


def _validation_text(exc) -> str:
    """A pydantic ValidationError as the fields it names, one clause each."""
    try:
        errors = exc.errors()
    except Exception:
        return str(exc).splitlines()[0]
    fields = "; ".join(f"field '{'.'.join(str(p) for p in e.get('loc', ())) or '(top)'}': {e.get('msg', '')}"
                       for e in errors[:10])
    return f"invalid {getattr(exc, 'title', 'input')}: {fields}{' ...' if len(errors) > 10 else ''}"


def explain_error(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-line message) for an error a command let through: a full disk names the file
    (1); the project's own errors and invalid files say what to fix (2); anything else is one line
    with how to see the traceback (1)."""
    import errno

    chain = _exception_chain(exc)
    for error in chain:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return 1, disk_full_text([DISK_FULL], filename=error.filename) or DISK_FULL
    full = disk_full_text(str(error) for error in chain)
    if full:
        return 1, full
    for error in chain:
        if MESSAGE_ERRORS & {cls.__name__ for cls in type(error).__mro__}:
            text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
            return 2, " ".join(text.split())
    for error in chain:
        if type(error).__name__ == "ValidationError" and type(error).__module__.startswith("pydantic"):
            return 2, _validation_text(error)
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return 1, (f"{type(exc).__name__}: {first} (an unexpected error; run again with FACTORY_DEBUG=1 to see the "
               "traceback)")


if __name__ == "__main__":
    sys.exit(main())
