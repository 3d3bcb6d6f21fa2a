"""The nightly supply-chain job and its schedule."""

import dagster as dg

from factory_assets.raw_material.assets import daily_partitions
from factory_assets.settings import WAREHOUSE_WRITER_TAG

supply_chain_job = dg.define_asset_job(
    name="supply_chain_nightly",
    description="Lands and ingests a day's files, then builds the data products and checks their contracts.",
    selection=dg.AssetSelection.groups("raw_material", "processing"),
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
    description="Rebuilds the feature sets and training sets, trains every use case and runs its promotion gate.",
    selection=dg.AssetSelection.groups("assembly"),
    tags={WAREHOUSE_WRITER_TAG: "true"},
)
