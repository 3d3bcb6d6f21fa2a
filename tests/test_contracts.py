"""Contracts: loading with clear errors, and every enforcement point agreeing with the YAML."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from factory_assets.lib.contract_checks import evaluate_contract
from factory_assets.lib.contracts import (
    CONTRACTS_DIR,
    WAREHOUSE_SERVER,
    WAREHOUSE_SERVER_DATABASE,
    WAREHOUSE_SERVER_DESCRIPTION,
    ContractError,
    load_contract,
    product_contract,
    product_contract_names,
    raw_contract,
)
from factory_assets.lib.schemas import POLARS_TYPES, pandera_schema
from factory_assets.settings import RAW_SOURCES

ALL_CONTRACT_FILES = sorted(CONTRACTS_DIR.rglob("*.odcs.yaml"))


@pytest.mark.parametrize("path", ALL_CONTRACT_FILES, ids=lambda p: p.name)
def test_every_contract_loads_and_names_an_owner(path):
    contract = load_contract(path)
    assert contract.owner and contract.columns and contract.version
    assert all(c.description for c in contract.columns), "every column is documented"


def test_raw_contracts_classify_customer_name_and_email_as_pii():
    assert set(raw_contract("transactions").pii_columns) == {"customer_id", "customer_name", "customer_email"}
    assert "customer_email" in raw_contract("tickets").pii_columns


def test_products_carry_no_pii_columns():
    assert product_contract_names(), "there are product contracts"
    for name in product_contract_names():
        contract = product_contract(name)
        assert contract.pii_columns == [], name
        assert not {"customer_name", "customer_email", "customer_id", "body"} & set(contract.column_names), name


@pytest.mark.parametrize("source", list(RAW_SOURCES))
def test_pandera_schema_is_the_contract(source):
    contract = raw_contract(source)
    schema = pandera_schema(contract)
    assert list(schema.columns) == contract.column_names
    for col in contract.columns:
        pa_col = schema.columns[col.name]
        assert pa_col.dtype.type == POLARS_TYPES[col.physical_type]
        assert pa_col.nullable == (not col.required)
        assert pa_col.unique == col.unique


def _broken(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load((CONTRACTS_DIR / "raw" / "weather.odcs.yaml").read_text())
    mutate(doc)
    path = tmp_path / "weather.odcs.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["team"].update(members=[]), "role: owner"),
        (lambda d: d["schema"][0]["properties"][2].update(physicalType="VARCHAR"), "temperature_c.logicalType 'number' does not match physicalType VARCHAR"),
        (lambda d: d["schema"][0]["properties"][0].pop("name"), "missing required field 'schema.weather.name'"),
        (lambda d: d["schema"][0]["properties"][1].update(classification="secret"), "classification 'secret'"),
        (lambda d: d.update(kind="Contract"), "'kind' must be DataContract"),
    ],
)
def test_malformed_contract_names_file_and_field(tmp_path, mutate, message):
    path = _broken(tmp_path, mutate)
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_not_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "x.odcs.yaml"
    path.write_text("kind: [unclosed")
    with pytest.raises(ContractError, match="cannot read YAML"):
        load_contract(path)


def test_sql_contract_check_counts_violations_and_samples_rows():
    contract = raw_contract("weather")
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA raw")
    frame = pl.DataFrame(
        {
            "weather_date": ["2025-01-01", "2025-01-01", "2025-01-01", "2025-01-02"],
            "region": ["north", "north", "mars", "south"],
            "temperature_c": [1.0, 2.0, 99.0, None],
            "precipitation_mm": [0.0, 1.0, 2.0, 3.0],
            "storm": [False, False, True, False],
        }
    ).with_columns(pl.col("weather_date").str.to_date())
    conn.register("frame", frame.to_arrow())
    conn.execute("CREATE TABLE raw.weather AS SELECT * FROM frame")
    report = evaluate_contract(conn, contract)
    failed = {r.rule: r.failing_rows for r in report.failed_rules}
    assert report.row_count == 4 and not report.passed
    assert failed == {
        "temperature_c not null": 1,
        "temperature_c <= 60": 1,
        "region in ('north', 'south', 'east', 'west', 'central')": 1,
        "(weather_date, region) unique": 2,
    }
    sample = next(r for r in report.failed_rules if r.rule.startswith("region")).sample
    assert sample[0]["region"] == "mars"
    conn.execute("ALTER TABLE raw.weather DROP COLUMN storm")
    assert "column storm is missing" in evaluate_contract(conn, contract).schema_problems


def test_freshness_measures_lag_behind_the_newest_landed_day():
    from datetime import date

    from factory_assets.lib.contract_checks import evaluate_freshness

    contract = product_contract("daily_demand")
    assert contract.freshness_column == "demand_date" and contract.freshness_days == 1
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA raw; CREATE SCHEMA marts")
    conn.execute("CREATE TABLE raw.ingestion_log (partition_date DATE, ingested_at TIMESTAMP)")
    conn.execute("INSERT INTO raw.ingestion_log VALUES ('2025-03-01', now()), ('2025-03-10', now())")
    conn.execute("CREATE TABLE marts.daily_demand (demand_date DATE)")
    conn.execute("INSERT INTO marts.daily_demand VALUES ('2025-03-09')")
    fresh = evaluate_freshness(conn, contract)
    assert fresh.passed and fresh.lag_days == 1.0
    conn.execute("DELETE FROM marts.daily_demand; INSERT INTO marts.daily_demand VALUES ('2025-03-06')")
    stale = evaluate_freshness(conn, contract)
    assert not stale.passed and stale.lag_days == 4.0 and stale.newest_value == str(date(2025, 3, 6))
    assert stale.outside is None  # behind, but within what landed: a warning


# --------------------------------------------------------------------------------------------------
# Where a table lives: the ODCS duckdb server (`datacontract test`, tests/test_datacontract_cli.py)
# --------------------------------------------------------------------------------------------------

WAREHOUSE_SCHEMAS = {"products": "marts", "features": "features", "predictions": "predictions"}
WAREHOUSE_TABLE_CONTRACTS = [p for p in ALL_CONTRACT_FILES if p.parent.name in WAREHOUSE_SCHEMAS]


@pytest.mark.parametrize("path", WAREHOUSE_TABLE_CONTRACTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_warehouse_table_contract_names_the_warehouse_server_and_its_table_alone(path):
    schema = WAREHOUSE_SCHEMAS[path.parent.name]
    doc = yaml.safe_load(path.read_text())
    assert doc["servers"] == [{"server": WAREHOUSE_SERVER, "type": "duckdb", "description": WAREHOUSE_SERVER_DESCRIPTION,
                               "database": WAREHOUSE_SERVER_DATABASE, "schema": schema}]
    table = doc["schema"][0]["physicalName"]
    assert "." not in table, "physicalName is the table's name alone; the server carries its schema"
    contract = load_contract(path)
    assert contract.physical_name == f"{schema}.{table}"  # what the factory queries
    assert [(s.name, s.type, s.database, s.schema) for s in contract.servers] == [
        (WAREHOUSE_SERVER, "duckdb", WAREHOUSE_SERVER_DATABASE, schema)]


def test_raw_landing_contracts_keep_their_schema_in_physical_name():
    assert WAREHOUSE_TABLE_CONTRACTS and len(WAREHOUSE_TABLE_CONTRACTS) == len(ALL_CONTRACT_FILES) - len(RAW_SOURCES)
    for source in RAW_SOURCES:
        contract = raw_contract(source)
        assert contract.servers == () and contract.physical_name == f"raw.{source}"


def _broken_product(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load((CONTRACTS_DIR / "products" / "calendar.odcs.yaml").read_text())
    mutate(doc)
    path = tmp_path / "calendar.odcs.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["schema"][0].update(physicalName="marts.calendar"),
         "physicalName 'marts.calendar' must be the table's name alone: its schema is the duckdb server's ('marts')"),
        (lambda d: d["servers"][0].pop("database"), "missing required field 'servers[0].database'"),
        (lambda d: d["servers"][0].pop("server"), "missing required field 'servers[0].server'"),
        (lambda d: d.update(servers={"warehouse": {"type": "duckdb"}}), "'servers' must be a list of servers"),
        (lambda d: d["servers"].append({**d["servers"][0], "server": "copy", "schema": "staging"}),
         "the duckdb servers name different schemas ['marts', 'staging']"),
        (lambda d: d["servers"].append(dict(d["servers"][0])), "servers name the same server twice"),
    ],
)
def test_a_malformed_server_or_a_qualified_physical_name_is_refused(tmp_path, mutate, message):
    path = _broken_product(tmp_path, mutate)
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_the_server_schema_places_the_table_and_dbt_refuses_another_schema(tmp_path):
    from factory_assets.lib import dbt_contracts

    other_server = {"server": "lake", "type": "s3", "location": "s3://bucket/calendar/"}  # not the warehouse: ignored
    path = _broken_product(tmp_path, lambda d: d["servers"].append(other_server))
    assert load_contract(path).physical_name == "marts.calendar"
    path = _broken_product(tmp_path, lambda d: d["servers"][0].update(schema="staging"))
    assert load_contract(path).physical_name == "staging.calendar"
    with pytest.raises(ContractError, match="the product's table is 'staging.calendar' but must be 'marts.calendar'"):
        dbt_contracts.render_model_yaml(load_contract(path))
    # without a duckdb server, physicalName may name the schema itself (a business unit's own contracts do)
    path = _broken_product(tmp_path, lambda d: (d.pop("servers"), d["schema"][0].update(physicalName="clinic.calendar")))
    assert load_contract(path).physical_name == "clinic.calendar" and load_contract(path).servers == ()


def test_a_generated_prediction_contract_names_the_warehouse_server(tmp_path):
    from factory_assets.assembly.specs import USE_CASES_DIR, load_use_cases
    from factory_assets.distribution.prediction_contract import write_prediction_contract

    spec = load_use_cases(USE_CASES_DIR)["late_delivery"]
    rows = {"scored_date": pl.Date, "order_line_id": pl.String, "ordered_at": pl.Datetime("us"),
            "prediction": pl.Float64, "model_version": pl.String, "feature_snapshot_id": pl.String,
            "features_as_of": pl.Date, "scored_at": pl.Datetime("us")}
    contract = write_prediction_contract(spec, rows, tmp_path)
    doc = yaml.safe_load(contract.path.read_text())
    assert doc["servers"] == [{"server": WAREHOUSE_SERVER, "type": "duckdb", "description": WAREHOUSE_SERVER_DESCRIPTION,
                               "database": WAREHOUSE_SERVER_DATABASE, "schema": "predictions"}]
    assert doc["schema"][0]["physicalName"] == "late_delivery"
    assert contract.physical_name == load_contract(contract.path).physical_name == "predictions.late_delivery"
