"""The nightly supply-chain job, the weekly training job, the weekly lake maintenance and their schedules."""

from datetime import timedelta

import dagster as dg

from factory_assets.assembly.features import FEATURE_SETS
from factory_assets.keys import feature_set_key
from factory_assets.raw_material.assets import daily_partitions
from factory_assets.resources import FactoryStore
from factory_assets.settings import ML_TEAM, PLATFORM_TEAM, WAREHOUSE_WRITER_TAG

#: The feature-set snapshots are rebuilt nightly; training sets and models only by the training job.
FEATURE_SET_ASSETS = dg.AssetSelection.assets(*[feature_set_key(name) for name in FEATURE_SETS])

supply_chain_job = dg.define_asset_job(
    name="supply_chain_nightly",
    owners=[PLATFORM_TEAM],
    metadata={"layers": "raw_material, processing, assembly (feature sets), distribution, feedback"},
    description="Landing -> raw -> data products -> feature sets -> champion scores -> monitoring, for a day "
    "(or a range of days in one run).",
    selection=dg.AssetSelection.groups("raw_material", "processing", "distribution", "feedback") | FEATURE_SET_ASSETS,
    partitions_def=daily_partitions,
    tags={WAREHOUSE_WRITER_TAG: "true"},
)

nightly_schedule = dg.build_schedule_from_partitioned_job(
    supply_chain_job,
    name="supply_chain_nightly_schedule",
    owners=[PLATFORM_TEAM],
    metadata={"layer": "all", "runs": "supply_chain_nightly"},
    description="Every night at 02:00, runs the chain for the day that just ended.",
    hour_of_day=2,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

training_job = dg.define_asset_job(
    name="assembly_training",
    owners=[ML_TEAM],
    metadata={"layer": "assembly"},
    description="Rebuilds the feature sets and training sets, trains every use case and runs its promotion gate "
    "(the retraining sensor runs it for one use case).",
    selection=dg.AssetSelection.groups("assembly"),
    tags={WAREHOUSE_WRITER_TAG: "true"},
)

weekly_training_schedule = dg.ScheduleDefinition(
    name="assembly_training_weekly",
    owners=[ML_TEAM],
    metadata={"layer": "assembly", "runs": "assembly_training"},
    job=training_job,
    cron_schedule="0 4 * * 0",
    description="Every Sunday at 04:00, retrains every use case and runs its promotion gate.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)


@dg.op(description="Expires lake snapshots older than FACTORY_LAKE_KEEP_DAYS (default 30) except those a model "
       "version was trained at, merges small adjacent data files, deletes files no kept snapshot reads.")
def maintain_lake(context: dg.OpExecutionContext, store: FactoryStore) -> dg.Output:
    from factory_assets.lake_cli import keep_days
    from factory_assets.lib.lake_ops import maintain
    from factory_assets.settings import warehouse_kind

    if warehouse_kind() != "lake":
        context.log.info("the warehouse is a DuckDB file (FACTORY_WAREHOUSE=duckdb): no snapshots to maintain")
        return dg.Output(None, metadata={"skipped": "DuckDB file warehouse"})
    pinned = store.registry().pinned_lake_snapshots()
    with store.warehouse() as conn:
        result = maintain(conn, timedelta(days=keep_days()), pinned)
    context.log.info(f"expired {len(result.expired)} snapshot(s), kept {len(result.kept_pinned)} pinned, "
                     f"merged {result.files_merged} file(s), deleted {result.files_removed}")
    return dg.Output(None, metadata={"snapshots_expired": len(result.expired),
                                     "pinned_kept": len(result.kept_pinned),
                                     "files_merged": result.files_merged, "files_removed": result.files_removed})


@dg.job(name="lake_maintenance", description="Keeps the lake's history bounded (see the maintain_lake op).",
        owners=[PLATFORM_TEAM], tags={"layer": "platform"})
def lake_maintenance_job():
    maintain_lake()


lake_maintenance_schedule = dg.ScheduleDefinition(
    name="lake_maintenance_weekly",
    owners=[PLATFORM_TEAM],
    metadata={"runs": "lake_maintenance"},
    job=lake_maintenance_job,
    cron_schedule="0 5 * * 0",
    description="Every Sunday at 05:00 (after the weekly training), expires old lake snapshots and compacts files.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
