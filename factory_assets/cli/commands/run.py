"""`factory run` (the nightly chain or one layer, for a day or a range of days) and `factory recover`."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from factory_assets.cli.commands.data import landed_days
from factory_assets.cli.jobs import (
    NIGHTLY_JOB,
    TRAINING_JOB,
    Progress,
    run_report,
    run_supply_chain,
    run_training,
    setup_instance,
)
from factory_assets.cli.output import DISK_FULL, UsageError, emit_json, format_range, human_bytes, plural, print_report
from factory_assets.settings import FactoryPaths, default_paths, partitions_start, partitions_start_setting

#: `factory run --layer`: what each layer runs. The daily-partitioned layers take a day or a range.
LAYERS = ("all", "raw_material", "processing", "assembly", "distribution", "feedback")
PARTITIONED_LAYERS = ("all", "raw_material", "distribution", "feedback")


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


def cmd_run(args) -> int:
    paths = default_paths()
    landed, waiting = landed_days(paths)
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    plan = plan_run(args.layer, args.date, args.date_from, args.date_to, landed, waiting, yesterday, paths.landing)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    check_warehouse(paths)
    paths.create()
    setup_instance(paths)
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
        emit_json(report)
    else:
        print_report(report)
    return 0 if report["ok"] else 1


def _layer_selection(defs, layer: str):
    """Asset keys of one layer's group in the nightly job."""
    job = defs.resolve_job_def(NIGHTLY_JOB)
    graph = defs.resolve_asset_graph()
    return sorted((k for k in job.asset_layer.executable_asset_keys if graph.get(k).group_name == layer),
                  key=lambda k: k.to_user_string())


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
            emit_json({"warehouse": str(paths.warehouse), "state": state, "rebuilt": False, "why": why})
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
        setup_instance(paths)
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
        emit_json(payload)
    else:
        print(f"Prediction products are not restored from the raw store: re-score them with `factory run --layer "
              f"distribution --from {days[0]} --to {days[-1]}` (the current champions score every day again).")
    return 0 if ok else 1
