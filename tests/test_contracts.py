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
    with pytest.raises(ContractError, match="not valid YAML"):
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
