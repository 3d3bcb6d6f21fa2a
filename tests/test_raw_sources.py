"""A raw source is a contract file plus its landing folder: assets, sensor and dbt sources follow."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from factory_assets.lib import dbt_contracts
from factory_assets.lib.contracts import (
    PROVENANCE_COLUMNS,
    RAW_CONTRACTS_DIR,
    ContractError,
    core_raw_contracts,
    load_raw_contracts,
)
from factory_assets.raw_material.assets import raw_assets, raw_assets_from_contracts
from factory_assets.raw_material.sensors import landing_zone_sensor_for
from factory_assets.resources import FactoryStore
from factory_assets.settings import RAW_SOURCES
from factory_assets.lib.warehouse import open_warehouse

OWNER = "environment-data@factory.example"


def write_air_quality_contract(folder: Path) -> Path:
    """A new source in its own folder: the weather contract renamed, with columns of its own."""
    doc = yaml.safe_load((RAW_CONTRACTS_DIR / "weather.odcs.yaml").read_text())
    doc.update(id="urn:ai-factory:raw:air_quality", name="raw_air_quality", domain="environment")
    doc["team"] = {"name": "environment", "members": [{"username": OWNER, "role": "owner"}]}
    doc["slaProperties"] = [{"property": "frequency", "value": 1, "unit": "d"}]
    doc["customProperties"] = [
        {"property": "landingFormat", "value": "csv"},
        {"property": "filePattern", "value": "air_quality_{date}.csv"},
        {"property": "sourceKind", "value": "iot"},
    ]
    doc["schema"] = [{
        "name": "air_quality", "physicalName": "raw.air_quality", "physicalType": "table",
        "description": "One row per station and hour.",
        "properties": [
            {"name": "station_id", "logicalType": "string", "physicalType": "VARCHAR", "required": True,
             "description": "Measuring station.", "logicalTypeOptions": {"pattern": "^ST[0-9]+$"}},
            {"name": "measured_at", "logicalType": "timestamp", "physicalType": "TIMESTAMP", "required": True,
             "description": "Start of the hour measured."},
            {"name": "pm25", "logicalType": "number", "physicalType": "DOUBLE", "required": False,
             "description": "Fine particles in ug/m3.", "logicalTypeOptions": {"minimum": 0}},
        ],
        "quality": [{"type": "library", "metric": "duplicateValues",
                     "arguments": {"properties": ["station_id", "measured_at"]}, "mustBe": 0}],
    }]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "air_quality.odcs.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_core_assets_and_raw_sources_are_the_contract_files():
    names = sorted(p.name.removesuffix(".odcs.yaml") for p in RAW_CONTRACTS_DIR.glob("*.odcs.yaml"))
    assert sorted(RAW_SOURCES) == sorted(core_raw_contracts()) == names
    assert {a.key.path[-1]: a.tags_by_key[a.key]["source_kind"] for a in raw_assets} == RAW_SOURCES
    assert RAW_SOURCES["telemetry"] == "iot" and RAW_SOURCES["overrides"] == "feedback"


def test_a_new_raw_contract_becomes_an_ingestion_asset_that_ingests_its_landing_files(tmp_path, paths):
    folder = tmp_path / "unit" / "data_contracts" / "raw"
    write_air_quality_contract(folder)

    [asset] = raw_assets_from_contracts(folder)  # checked against the core's names too: no clash
    key = dg.AssetKey(["raw_material", "air_quality"])
    assert asset.key == key
    assert asset.specs_by_key[key].owners == [OWNER]
    assert asset.tags_by_key[key]["source_kind"] == "iot"
    assert asset.group_names_by_key[key] == "raw_material"
    assert [c.name for c in asset.check_specs] == ["landing_files_clean"]
    assert asset.metadata_by_key[key]["contract"] == "air_quality.odcs.yaml"

    landing = paths.landing / "air_quality"
    landing.mkdir(parents=True)
    rows = ["ST1,2025-03-01T00:00:00,4.5", "ST1,2025-03-01T01:00:00,", "ST2,2025-03-01T00:00:00,12.25"]
    (landing / "air_quality_2025-03-01.csv").write_text("\n".join(["station_id,measured_at,pm25", *rows]) + "\n")
    (landing / "air_quality_2025-03-02.csv").write_text("station_id,measured_at,pm25\nST1,2025-03-02T00:00:00,1.0\n")

    # the landing sensor of that folder's assets requests each day with files
    store = FactoryStore(home=str(paths.home))
    sensor = landing_zone_sensor_for([asset], name="unit_landing_zone_sensor")
    requests = sensor(dg.build_sensor_context(resources={"store": store}))
    assert sorted((r.asset_selection[0].to_user_string(), r.partition_key) for r in requests) == [
        ("raw_material/air_quality", "2025-03-01"), ("raw_material/air_quality", "2025-03-02")]

    result = dg.materialize([asset], partition_key="2025-03-01", resources={"store": store})
    assert result.success
    [materialization] = result.asset_materializations_for_node(asset.op.name)
    assert materialization.metadata["dagster/row_count"].value == 3
    assert materialization.metadata["files_quarantined"].value == 0
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "landing_files_clean" and check.passed

    with open_warehouse(paths) as conn:
        got = conn.execute("SELECT station_id, pm25, _row_number FROM raw.air_quality ORDER BY _row_number").fetchall()
        columns = [r[0] for r in conn.execute("DESCRIBE raw.air_quality").fetchall()]
    assert got == [("ST1", 4.5, 1), ("ST1", None, 2), ("ST2", 12.25, 3)]
    assert columns == ["station_id", "measured_at", "pm25", *PROVENANCE_COLUMNS]
    assert (landing / "air_quality_2025-03-02.csv").exists()  # another partition's file waits for its run
    assert (paths.archive / "air_quality" / "2025-03-01" / "air_quality_2025-03-01.csv").exists()


def test_a_source_name_declared_in_two_folders_fails_naming_both_files(tmp_path):
    first = write_air_quality_contract(tmp_path / "one")
    second = write_air_quality_contract(tmp_path / "two")
    with pytest.raises(ContractError) as err:
        load_raw_contracts(tmp_path / "two", others=[tmp_path / "one"])
    assert "'air_quality' is declared twice" in str(err.value)
    assert str(first) in str(err.value) and str(second) in str(err.value)

    # a business unit's folder may not reuse a core source either (one landing zone, one raw schema)
    unit = tmp_path / "unit"
    unit.mkdir()
    (unit / "weather.odcs.yaml").write_text((RAW_CONTRACTS_DIR / "weather.odcs.yaml").read_text())
    with pytest.raises(ContractError) as err:
        raw_assets_from_contracts(unit)
    assert str(RAW_CONTRACTS_DIR / "weather.odcs.yaml") in str(err.value) and str(unit / "weather.odcs.yaml") in str(err.value)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["customProperties"].__setitem__(2, {"property": "sourceKind", "value": "mainframe"}),
         "sourceKind 'mainframe' must be one of"),
        (lambda d: d["customProperties"].pop(2), "sourceKind None must be one of"),
        (lambda d: d["customProperties"].__setitem__(0, {"property": "landingFormat", "value": "xlsx"}),
         "landingFormat 'xlsx' must be one of"),
        (lambda d: d["schema"][0].update(name="aq"), "schema[0].name 'aq' must equal the file's source name 'air_quality'"),
        (lambda d: d["schema"][0].update(physicalName="staging.air_quality"), "must be 'raw.air_quality'"),
        (lambda d: d["schema"][0]["properties"][2].update(name="_checksum"), "reserved for the provenance"),
    ],
)
def test_a_raw_contract_says_what_ingestion_needs(tmp_path, mutate, message):
    path = write_air_quality_contract(tmp_path)
    doc = yaml.safe_load(path.read_text())
    mutate(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ContractError) as err:
        load_raw_contracts(tmp_path)
    assert str(path) in str(err.value) and message in str(err.value)


# --------------------------------------------------------------------------------------------------
# dbt sources from the raw contracts
# --------------------------------------------------------------------------------------------------


def test_committed_dbt_sources_equal_what_the_raw_contracts_generate():
    assert dbt_contracts.sync_dbt_sources(check=True) == [], (
        "dbt sources and raw contracts disagree; run `python -m factory_assets.lib.dbt_contracts`"
    )
    declared = {}
    for path in dbt_contracts.STAGING_MODELS_DIR.glob("*/_*__sources.yml"):
        for source in yaml.safe_load(path.read_text())["sources"]:
            for table in source["tables"]:
                declared[table["name"]] = (source["name"], table)
    assert set(declared) == set(RAW_SOURCES)
    for name, contract in core_raw_contracts().items():
        dbt_source, table = declared[name]
        assert dbt_source == contract.dbt_source
        assert table["config"]["meta"]["dagster"]["asset_key"] == ["raw_material", name]
        assert [(c["name"], c["data_type"]) for c in table["columns"]] == [
            *((c.name, c.physical_type.lower()) for c in contract.columns),
            *((n, t.lower()) for n, t in PROVENANCE_COLUMNS.items())]


def test_a_new_raw_contract_gets_its_dbt_source_and_a_removed_one_loses_it(tmp_path):
    contracts, staging = tmp_path / "raw", tmp_path / "staging"
    write_air_quality_contract(contracts)
    assert dbt_contracts.sync_dbt_sources(contracts_dir=contracts, staging_dir=staging) == ["air_quality"]
    path = staging / "air_quality" / "_air_quality__sources.yml"  # dbtSource defaults to the source's name
    text = path.read_text()
    assert text.startswith(dbt_contracts.GENERATED_MARKER) and "data_contracts/raw/air_quality.odcs.yaml" in text
    [source] = yaml.safe_load(text)["sources"]
    assert (source["name"], source["schema"], source["config"]["loaded_at_field"]) == ("air_quality", "raw", "_ingested_at")
    [table] = source["tables"]
    assert table["config"]["meta"]["dagster"] == {"asset_key": ["raw_material", "air_quality"]}
    assert table["config"]["meta"]["owner"] == OWNER
    assert [(c["name"], c["data_type"]) for c in table["columns"][:3]] == [
        ("station_id", "varchar"), ("measured_at", "timestamp"), ("pm25", "double")]
    assert dbt_contracts.sync_dbt_sources(check=True, contracts_dir=contracts, staging_dir=staging) == []

    (contracts / "air_quality.odcs.yaml").unlink()
    assert dbt_contracts.sync_dbt_sources(check=True, contracts_dir=contracts, staging_dir=staging) == ["air_quality"]
    dbt_contracts.sync_dbt_sources(contracts_dir=contracts, staging_dir=staging)
    assert not path.exists()


def test_the_generator_command_checks_sources_and_says_which_file_drifted(tmp_path, capsys):
    contracts, staging = tmp_path / "raw", tmp_path / "staging"
    write_air_quality_contract(contracts)
    args = ["--sources-only", "--raw-contracts-dir", str(contracts), "--staging-dir", str(staging)]
    assert dbt_contracts.main(["--check", *args]) == 1
    assert "_air_quality__sources.yml" in capsys.readouterr().err
    assert dbt_contracts.main(args) == 0
    assert dbt_contracts.main(["--check", *args]) == 0
