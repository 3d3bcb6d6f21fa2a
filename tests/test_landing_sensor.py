"""The landing-zone sensor requests exactly the partitions that have new files."""

from __future__ import annotations

import os
from datetime import UTC, timedelta

import dagster as dg

from factory_assets.raw_material.sensors import landing_zone_sensor
from factory_assets.resources import FactoryStore


def _drop(paths, source: str, name: str, text: str = "x\n"):
    folder = paths.landing / source
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def _evaluate(paths):
    context = dg.build_sensor_context(resources={"store": FactoryStore(home=str(paths.home))})
    return landing_zone_sensor(context)


def test_requests_one_run_per_source_and_day(paths):
    _drop(paths, "transactions", "transactions_2025-03-01.csv")
    _drop(paths, "transactions", "transactions_2025-03-01_part2.csv")
    _drop(paths, "weather", "weather_2025-03-02.csv")
    requests = _evaluate(paths)
    got = sorted((r.asset_selection[0].to_user_string(), r.partition_key) for r in requests)
    assert got == [("raw_material/transactions", "2025-03-01"), ("raw_material/weather", "2025-03-02")]
    assert all(r.tags["factory/warehouse_writer"] == "true" for r in requests)


def test_same_files_give_the_same_run_key_and_a_changed_file_a_new_one(paths):
    path = _drop(paths, "weather", "weather_2025-03-02.csv")
    [first] = _evaluate(paths)
    [second] = _evaluate(paths)
    assert first.run_key == second.run_key  # Dagster drops the repeated request
    path.write_text("corrected,content\n")
    os.utime(path, ns=(1, 1))
    [third] = _evaluate(paths)
    assert third.run_key != first.run_key


def test_nothing_to_do_and_files_of_days_not_over_are_explained(paths):
    from datetime import datetime

    assert isinstance(_evaluate(paths), dg.SkipReason)
    today = datetime.now(UTC).date()
    _drop(paths, "tickets", f"tickets_{today}.jsonl")  # its partition exists tomorrow: it waits
    skip = _evaluate(paths)
    assert isinstance(skip, dg.SkipReason) and f"tickets {today} (waits until the day is over)" in skip.skip_message


def test_a_file_no_partition_can_hold_requests_the_newest_partition_whose_run_quarantines_it(paths):
    """Undated, impossible or far-future names are never left waiting unnoticed (test_raw_faults)."""
    from factory_assets.raw_material.assets import daily_partitions

    newest = daily_partitions.get_partition_keys()[-1]
    for name in ("tickets_latest.jsonl", "tickets_2026-11-31.jsonl", "tickets_2099-01-01.jsonl"):
        path = _drop(paths, "tickets", name)
        [request] = _evaluate(paths)
        assert (request.asset_selection[0].to_user_string(), request.partition_key) == ("raw_material/tickets", newest)
        assert name in request.run_key
        path.unlink()


def test_a_file_dated_before_the_first_partition_day_requests_the_first_partition(paths):
    """Its run quarantines the file with the reason (test_ingest), rather than leaving it unnoticed."""
    from factory_assets.settings import partitions_start

    first = partitions_start()
    _drop(paths, "weather", f"weather_{first - timedelta(days=400)}.csv")
    [request] = _evaluate(paths)
    assert (request.asset_selection[0].to_user_string(), request.partition_key) == ("raw_material/weather", first.isoformat())
