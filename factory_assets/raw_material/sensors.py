"""Notice files dropped into the landing zone and request the partitions they belong to."""


from collections import defaultdict

import dagster as dg

from factory_assets.raw_material.assets import daily_partitions
from factory_assets.raw_material.ingest import landing_files
from factory_assets.raw_material.landing import partition_date_of
from factory_assets.resources import FactoryStore
from factory_assets.settings import PLATFORM_TEAM, RAW_SOURCES, WAREHOUSE_WRITER_TAG


def pending_landing_requests(store: FactoryStore, known_partition_keys: set[str] | None = None):
    """(source, partition_key, run_key) for every source and day with files waiting in landing.

    The run key encodes the files' names, sizes and modification times, so the same files never
    trigger two runs, while a corrected file dropped later triggers a new one.
    """
    requests, undated = [], []
    for source in RAW_SOURCES:
        by_day: dict[str, list[str]] = defaultdict(list)
        for path in landing_files(store.paths, source):
            day = partition_date_of(path)
            if day is None:
                undated.append(path.name)
                continue
            stat = path.stat()
            by_day[day.isoformat()].append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
        for key, signatures in sorted(by_day.items()):
            if known_partition_keys is not None and key not in known_partition_keys:
                undated.append(f"{source} {key} (outside the partitions)")
                continue
            requests.append((source, key, f"{source}|{key}|{'|'.join(sorted(signatures))}"))
    return requests, undated


@dg.sensor(
    name="landing_zone_sensor",
    owners=[PLATFORM_TEAM],
    metadata={"layer": "raw_material"},
    description="Requests an ingestion run for each source and day with new files in the landing zone.",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    asset_selection=dg.AssetSelection.groups("raw_material"),
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, store: FactoryStore):
    keys = set(daily_partitions.get_partition_keys())
    requests, skipped = pending_landing_requests(store, keys)
    if not requests:
        reason = "No new landing files."
        if skipped:
            reason += f" Ignored (rename with a YYYY-MM-DD delivery date): {', '.join(skipped[:10])}"
        return dg.SkipReason(reason)
    return [
        dg.RunRequest(
            run_key=run_key,
            partition_key=key,
            asset_selection=[dg.AssetKey(["raw_material", source])],
            tags={WAREHOUSE_WRITER_TAG: "true", "factory/trigger": "landing_zone_sensor"},
        )
        for source, key, run_key in requests
    ]
