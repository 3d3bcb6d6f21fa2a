"""The nightly supply-chain job, the weekly training job and their schedules."""

import dagster as dg

from factory_assets.assembly.features import FEATURE_SETS
from factory_assets.raw_material.assets import daily_partitions
from factory_assets.settings import WAREHOUSE_WRITER_TAG

#: The feature-set snapshots are rebuilt nightly; training sets and models only by the training job.
FEATURE_SET_ASSETS = dg.AssetSelection.assets(*[dg.AssetKey(["assembly", name]) for name in FEATURE_SETS])

supply_chain_job = dg.define_asset_job(
    name="supply_chain_nightly",
    description="Landing -> raw -> data products -> feature sets -> champion scores -> monitoring, for a day "
    "(or a range of days in one run).",
    selection=dg.AssetSelection.groups("raw_material", "processing", "distribution", "feedback") | FEATURE_SET_ASSETS,
    partitions_def=daily_partitions,
    tags={WAREHOUSE_WRITER_TAG: "true"},
)

nightly_schedule = dg.build_schedule_from_partitioned_job(
    supply_chain_job,
    name="supply_chain_nightly_schedule",
    description="Every night at 02:00, runs the chain for the day that just ended.",
    hour_of_day=2,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

training_job = dg.define_asset_job(
    name="assembly_training",
    description="Rebuilds the feature sets and training sets, trains every use case and runs its promotion gate "
    "(the retraining sensor runs it for one use case).",
    selection=dg.AssetSelection.groups("assembly"),
    tags={WAREHOUSE_WRITER_TAG: "true"},
)

weekly_training_schedule = dg.ScheduleDefinition(
    name="assembly_training_weekly",
    job=training_job,
    cron_schedule="0 4 * * 0",
    description="Every Sunday at 04:00, retrains every use case and runs its promotion gate.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
