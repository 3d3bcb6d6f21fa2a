"""The warehouse on the lake (issue 21): raw history kept by snapshot and restored by rolling back,
maintenance that never expires a snapshot a model was trained at, and the one-command migration of
a DuckDB warehouse file. Real DuckLake (SQLite catalog) under each test's FACTORY_HOME."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from factory_assets.cli import main
from factory_assets.lib import lake_ops
from factory_assets.lib.warehouse import describe_warehouse, open_lake_at, open_warehouse
from factory_assets.raw_material.ingest import ensure_raw_tables, ingest_partitions
from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data

START = dt.date(2025, 3, 1)


def _land(paths, days: int, seed: int = 3) -> None:
    generate_demo_data(SimulationConfig(start_date=START, days=days, order_lines_per_day=40, seed=seed, n_products=20),
                       paths.landing)


def _raw_counts(conn) -> dict[str, int]:
    return {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in lake_ops.lake_tables(conn, "lake", ["raw"])}


def test_the_warehouse_is_a_lake_under_factory_home(paths, warehouse):
    assert describe_warehouse(paths).startswith("DuckLake, catalog sqlite:") and str(paths.home) in describe_warehouse(paths)
    ensure_raw_tables(warehouse, ["transactions"])
    assert warehouse.execute("select current_database()").fetchone()[0] == "lake"
    assert (paths.home / "lake" / "catalog.sqlite").is_file()
    assert (paths.home / "duckdb_extensions" / "installed").is_dir()  # not in the user's home


def test_a_bad_delivery_is_undone_by_rolling_raw_back_to_the_snapshot_before_it(paths, warehouse, capsys):
    _land(paths, days=4)
    first_days = {START + dt.timedelta(days=k) for k in range(2)}
    for source in ("transactions", "deliveries"):
        ingest_partitions(warehouse, paths, source, first_days)
    good = _raw_counts(warehouse)
    assert good["raw.deliveries"] > 0 and good["raw.transactions"] > 0
    before_bad = lake_ops.current_snapshot(warehouse)
    # the next two days land, then turn out to be wrong (a bad export): roll raw back past them
    for source in ("transactions", "deliveries"):
        ingest_partitions(warehouse, paths, source, None)
    later = _raw_counts(warehouse)
    assert later["raw.transactions"] > good["raw.transactions"]
    warehouse.execute("create table raw.scratch as select 1 as x")  # made after the snapshot: dropped

    assert main(["lake", "rollback", str(before_bad), "--schema", "raw", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dropped"] == ["raw.scratch"]
    assert out["tables"]["raw.transactions"] == {"before": later["raw.transactions"], "after": good["raw.transactions"]}
    assert _raw_counts(warehouse) == good  # exactly the rows of the first two days, once each
    assert warehouse.execute("select count(distinct partition_date) from raw.ingestion_log").fetchone()[0] == 2

    # the rollback is a commit of its own: rolling back to just before it restores the later state
    assert main(["lake", "rollback", str(out["new_snapshot"] - 1), "--schema", "raw"]) == 0
    assert _raw_counts(warehouse) == {**later, "raw.scratch": 1}


def test_rolling_back_to_an_unknown_snapshot_is_refused_and_changes_nothing(paths, warehouse, capsys):
    ensure_raw_tables(warehouse, ["transactions"])
    before = lake_ops.current_snapshot(warehouse)
    assert main(["lake", "rollback", "999999"]) == 2
    assert "no snapshot 999999" in capsys.readouterr().err
    assert lake_ops.current_snapshot(warehouse) == before


def test_maintenance_expires_old_snapshots_but_keeps_the_ones_models_were_trained_at(paths, warehouse):
    warehouse.execute("create schema if not exists marts")
    warehouse.execute("create table marts.facts (i integer)")
    pinned = []
    for k in range(5):
        warehouse.execute(f"insert into marts.facts select range from range({100 * (k + 1)})")
        pinned.append(lake_ops.current_snapshot(warehouse))
    keep = pinned[1]
    result = lake_ops.maintain(warehouse, dt.timedelta(0), {keep}, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    assert keep in result.kept_pinned and keep not in result.expired
    kept = {row[0] for row in warehouse.execute("select snapshot_id from ducklake_snapshots('lake')").fetchall()}
    assert keep in kept and pinned[-1] in kept and not {pinned[0], pinned[2], pinned[3]} & kept
    with open_lake_at(paths, keep) as at:  # the pinned snapshot still reads what it held
        assert at.execute("select count(*) from marts.facts").fetchone()[0] == 100 + 200
    assert warehouse.execute("select count(*) from marts.facts").fetchone()[0] == sum(100 * (k + 1) for k in range(5))
    with pytest.raises(duckdb.Error):
        warehouse.execute(f"select count(*) from marts.facts at (version => {pinned[2]})").fetchone()


def test_migrate_moves_every_row_of_a_duckdb_warehouse_once(paths, capsys):
    old = duckdb.connect(str(paths.warehouse))
    old.execute("create schema raw; create schema marts")
    old.execute("create table raw.orders as select range as order_id, 'x' || range as note from range(1234)")
    old.execute("create table marts.daily as select range as d from range(77)")
    old.execute("create view marts.v as select 1 as one")  # views are dbt's to recreate
    old.close()

    assert main(["lake", "migrate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tables"] == {"marts.daily": 77, "raw.orders": 1234}
    with open_warehouse(paths) as conn:
        assert conn.execute("select count(*), count(distinct order_id), max(note) from raw.orders").fetchone() == (
            1234, 1234, "x999")
    # a second migration would duplicate: refused, nothing written
    assert main(["lake", "migrate"]) == 2
    assert "already holds rows in marts.daily, raw.orders" in capsys.readouterr().err
    with open_warehouse(paths) as conn:
        assert conn.execute("select count(*) from raw.orders").fetchone()[0] == 1234
    assert paths.warehouse.is_file()  # the old file stays until the user deletes it


def test_migrating_a_missing_file_names_it(paths, capsys):
    assert main(["lake", "migrate", "--from", str(paths.home / "nowhere.duckdb")]) == 2
    assert "nowhere.duckdb: no DuckDB warehouse file to migrate" in capsys.readouterr().err


def test_a_lost_catalog_comes_back_from_its_backup(paths, warehouse, capsys):
    warehouse.execute("create schema if not exists marts")
    warehouse.execute("create table marts.kept as select range as i from range(321)")
    backup = paths.home / "catalog-backup.sqlite"
    assert main(["lake", "backup", "--to", str(backup)]) == 0
    warehouse.execute("insert into marts.kept select range from range(9)")  # after the backup: lost with the catalog
    from factory_assets.lib.lake import close_lakes

    close_lakes()
    catalog = paths.home / "lake" / "catalog.sqlite"
    catalog.unlink()
    backup.replace(catalog)
    with open_warehouse(paths) as conn:
        assert conn.execute("select count(*), max(i) from marts.kept").fetchone() == (321, 320)
