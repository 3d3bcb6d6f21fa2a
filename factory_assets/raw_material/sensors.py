"""Notice files dropped into the landing zone and request the partitions they belong to."""


from collections import defaultdict
from collections.abc import Iterable
from datetime import date

import dagster as dg

from factory_assets.raw_material.assets import daily_partitions, raw_assets
from factory_assets.raw_material.ingest import landing_files, latest_delivery_day
from factory_assets.raw_material.landing import partition_date_of
from factory_assets.resources import FactoryStore
from factory_assets.settings import (
    PLATFORM_TEAM,
    WAREHOUSE_WRITER_TAG,
    partitions_start,
)


def pending_landing_requests(store: FactoryStore, known_partition_keys: set[str] | None = None,
                             sources: Iterable[str] | None = None, first_day: date | None = None,
                             today: date | None = None):
    """(source, partition_key, run_key) for every source and day with files waiting in landing.

    The run key encodes the files' names, sizes and modification times, so the same files never
    trigger two runs, while a corrected file dropped later triggers a new one. A file no partition
    can hold goes with a partition whose run quarantines it with the reason (ingestion quarantines
    such files whatever the days): dated before ``first_day`` (default: FACTORY_PARTITIONS_START)
    with the first partition; no calendar date in the name, or a day after tomorrow (UTC), with the
    newest partition. Files of today and tomorrow wait for their partition (listed as skipped).
    ``sources`` default: the core's raw sources.
    """
    if sources is None:
        from factory_assets.settings import raw_sources

        sources = raw_sources()
    first_day = first_day or partitions_start()
    latest = latest_delivery_day(today)
    newest = max(known_partition_keys) if known_partition_keys else first_day.isoformat()
    requests, skipped = [], []
    for source in sources:
        by_day: dict[str, list[str]] = defaultdict(list)
        for path in landing_files(store.paths, source):
            day = partition_date_of(path)
            if day is None or day > latest:
                key = newest
            else:
                key = max(day, first_day).isoformat()
            stat = path.stat()
            by_day[key].append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
        for key, signatures in sorted(by_day.items()):
            if known_partition_keys is not None and key not in known_partition_keys:
                skipped.append(f"{source} {key} (waits until the day is over)")
                continue
            requests.append((source, key, f"{source}|{key}|{'|'.join(sorted(signatures))}"))
    return requests, skipped


def landing_zone_sensor_for(assets: Iterable[dg.AssetsDefinition], name: str = "landing_zone_sensor") -> dg.SensorDefinition:
    """The landing-zone sensor of some ingestion assets (``raw_material/<source>``): one per code
    location, over the sources whose assets that location defines."""
    keys = [key for a in assets for key in a.keys]
    sources = [key.path[-1] for key in keys]

    @dg.sensor(
        name=name,
        owners=[PLATFORM_TEAM],
        metadata={"layer": "raw_material", "sources": ", ".join(sources)},
        description="Requests an ingestion run for each source and day with new files in the landing zone.",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        asset_selection=dg.AssetSelection.assets(*keys),
    )
    def _sensor(context: dg.SensorEvaluationContext, store: FactoryStore):
        known = set(daily_partitions.get_partition_keys())
        requests, skipped = pending_landing_requests(store, known, sources)
        if not requests:
            reason = "No new landing files."
            if skipped:
                reason += f" Waiting: {', '.join(skipped[:10])}" + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
            return dg.SkipReason(reason)
        return [
            dg.RunRequest(
                run_key=run_key,
                partition_key=key,
                asset_selection=[dg.AssetKey(["raw_material", source])],
                tags={WAREHOUSE_WRITER_TAG: "true", "factory/trigger": name},
            )
            for source, key, run_key in requests
        ]

    return _sensor


landing_zone_sensor = landing_zone_sensor_for(raw_assets)
