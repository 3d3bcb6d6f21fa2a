"""What the open-source Dagster UI shows of the factory's assets: column lineage as a table,
column descriptions, classifications and contract types, raw row counts named for what they are,
one metadata name per quantity, rounded floats, and dbt checks named in full.

Pure tests of the helpers, then one small world (four days of simulated data, 40 lines a day):
the raw assets land it, and the order-lines models build twice, first through dagster-dbt (column
schema and lineage fetched) and then in process (carried forward), as on the first and a later night.
"""

from __future__ import annotations

import math
import sys
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from factory_assets.lib.metadata import round_float, round_metadata, unify_names
from factory_assets.processing.dbt_manifest import load_manifest
from factory_assets.processing.dbt_metadata import (
    CLASSIFICATION_TAG,
    LineageTracer,
    check_names_for_model,
    duckdb_type,
    lineage_markdown,
    readable_check_name,
)
from factory_assets.settings import DBT_PROJECT_DIR
from factory_assets.lib.warehouse import open_warehouse

FCT = dg.AssetKey(["processing", "fct_order_lines"])
STG_LINES = dg.AssetKey(["processing", "stg_erp__order_lines"])
STG_DELIVERIES = dg.AssetKey(["processing", "stg_erp__deliveries"])
TRANSACTIONS = dg.AssetKey(["raw_material", "transactions"])


# --------------------------------------------------------------------------------------------------
# Rounding and names
# --------------------------------------------------------------------------------------------------

def test_floats_are_rounded_to_four_significant_digits_or_three_decimals_and_seconds_to_hundredths():
    assert round_float(44.852945507000186) == 44.853
    assert round_float(0.87345123) == 0.8735
    assert round_float(0.000123456) == 0.0001235
    assert round_float(-0.5123456) == -0.5123
    assert round_float(123456.789123) == 123456.789  # integer digits are never rounded away
    assert round_float(0.0) == 0.0 and math.isnan(round_float(float("nan"))) and round_float(float("inf")) == float("inf")
    rounded = round_metadata({
        "execution_duration": dg.MetadataValue.float(44.852945507000186),
        "training_seconds": 3.14159,
        "drift_share": dg.MetadataValue.float(0.123456789),
        "auc": 0.87345123,
        "rows": dg.MetadataValue.int(146020),
        "plain_int": 7,
        "flag": True,
        "text": "44.852945507000186",
        "sample": dg.MetadataValue.json({"unit_price": 12.3456789}),  # data values stay as they are
        "nan": dg.MetadataValue.float(float("nan")),
    })
    assert rounded["execution_duration"] == dg.MetadataValue.float(44.85)
    assert rounded["training_seconds"] == 3.14
    assert rounded["drift_share"] == dg.MetadataValue.float(0.1235)
    assert rounded["auc"] == 0.8735
    assert rounded["rows"] == dg.MetadataValue.int(146020) and rounded["plain_int"] == 7 and rounded["flag"] is True
    assert rounded["text"] == "44.852945507000186"
    assert rounded["sample"].value == {"unit_price": 12.3456789}
    assert math.isnan(rounded["nan"].value)


def test_dagster_dbt_metadata_keys_take_the_factorys_one_name_per_quantity():
    unified = unify_names({"Execution Duration": 1.5, "dagster_dbt/failed_row_count": 3, "status": "fail",
                           "unique_id": "test.x"})
    assert unified == {"execution_duration": 1.5, "failing_rows": 3, "dbt_status": "fail", "unique_id": "test.x"}
    assert unify_names({"execution_duration": 2.0, "Execution Duration": 1.5}) == {"execution_duration": 2.0}


def test_catalog_types_are_spelled_as_duckdb_and_the_contracts_spell_them():
    assert duckdb_type("character varying(256)") == "VARCHAR"
    assert duckdb_type("character varying") == "VARCHAR"
    assert duckdb_type("integer") == "INTEGER" and duckdb_type("DECIMAL(12,2)") == "DECIMAL(12,2)"
    assert duckdb_type("timestamp without time zone") == "TIMESTAMP" and duckdb_type("?") is None


# --------------------------------------------------------------------------------------------------
# Check names
# --------------------------------------------------------------------------------------------------

def _generic(name: str, test: str, model: str, namespace: str | None = None, **kwargs) -> dict:
    return {"name": name, "unique_id": f"test.p.{name}.{abs(hash(name)) % 10**10:010d}",
            "test_metadata": {"name": test, "namespace": namespace, "kwargs": {"model": f"{{{{ get_where_subquery(ref('{model}')) }}}}", **kwargs}}}


def test_a_dbt_test_is_named_by_its_test_and_columns_not_by_dbts_truncated_name():
    model = "fct_order_lines"
    values = _generic("accepted_values_fct_order_lines_channel__web__phone__edi__store__marketplace", "accepted_values",
                      model, column_name="channel", values=["web", "phone", "edi", "store", "marketplace"])
    combination = _generic("dbt_utils_unique_combination_of_columns_fct_order_lines_order_id__line_number",
                           "unique_combination_of_columns", model, namespace="dbt_utils",
                           combination_of_columns=["order_id", "line_number"])
    relation = _generic("relationships_fct_order_lines_customer_key__customer_key__ref_dim_customers_", "relationships",
                        model, column_name="customer_key", to="ref('dim_customers')", field="customer_key")
    named = _generic("channel_is_known", "accepted_values", model, column_name="channel", values=["web"])
    singular = {"name": "assert_no_negative_revenue", "unique_id": "test.p.assert_no_negative_revenue", "test_metadata": {}}
    assert readable_check_name(values, model) == "accepted_values__channel"
    assert readable_check_name(combination, model) == "unique__order_id__line_number"
    assert readable_check_name(relation, model) == "relationships__customer_key__to__dim_customers"
    assert readable_check_name(named, model) == "channel_is_known"  # an explicit `name:` is kept
    assert readable_check_name(singular, model) == "assert_no_negative_revenue"


def test_two_tests_that_would_share_a_name_on_one_asset_keep_their_arguments():
    model = "fct_order_lines"
    low = _generic("accepted_range_fct_order_lines_days_late__0", "accepted_range", model, column_name="days_late",
                   min_value=0)
    high = _generic("accepted_range_fct_order_lines_days_late__3650", "accepted_range", model, column_name="days_late",
                    max_value=3650)
    other = _generic("not_null_fct_order_lines_days_late", "not_null", model, column_name="days_late")
    names = check_names_for_model([low, high, other], model)
    assert names == {low["unique_id"]: "accepted_range_days_late__0", high["unique_id"]: "accepted_range_days_late__3650",
                     other["unique_id"]: "not_null__days_late"}


def test_every_dbt_check_has_a_whole_readable_name_unique_on_its_asset_and_selects_its_dbt_test():
    from factory_assets.processing.dbt_assets import DbtStep, dbt_selection, operations_dbt_models, processing_dbt_models
    from factory_assets.processing.dbt_metadata import dbt_check_names

    manifest = load_manifest()
    for assets_def in (processing_dbt_models, operations_dbt_models):
        keys = [spec.key for spec in assets_def.check_specs]
        assert len(keys) == len(set(keys)) == len(assets_def.check_keys) > 0
        for spec in assets_def.check_specs:  # nothing for the UI to cut: <test>__<column(s)>, not dbt's name
            assert len(spec.name) <= 50 and "__" in spec.name and spec.name != spec.metadata["dbt_test"], spec.key
    fct = {k.name for k in processing_dbt_models.check_keys if k.asset_key == FCT}
    assert {"accepted_values__channel", "accepted_values__region", "unique__order_line_id",
            "unique__order_id__line_number", "accepted_range__days_late",
            "matches_pattern__customer_key"} <= fct
    spec = next(s for s in processing_dbt_models.check_specs if s.key == dg.AssetCheckKey(FCT, "accepted_values__channel"))
    dbt_name = "accepted_values_fct_order_lines_channel__web__phone__edi__store__marketplace"
    assert spec.metadata["dbt_test"] == dbt_name and dbt_name in spec.description
    assert "on column channel" in spec.description and "marketplace" in spec.description
    assert any(n["name"] == dbt_name for n in manifest["nodes"].values())
    # a check re-run on its own selects its dbt test by dbt's name
    uid = next(n["unique_id"] for n in manifest["nodes"].values() if n["name"] == dbt_name)
    names = dbt_check_names(manifest, ["model.ai_factory.fct_order_lines"])
    step = DbtStep(whole=["--exclude", "path:models/operations"], model_by_key={FCT: "fct_order_lines"},
                   check_keys=frozenset(names.values()), dbt_tests={k: manifest["nodes"][u]["name"] for u, k in names.items()})
    assert names[uid] == dg.AssetCheckKey(FCT, "accepted_values__channel")
    assert dbt_selection(step, set(), {names[uid]}) == ["--select", dbt_name]


def test_a_subset_of_several_models_is_one_select_value_that_dagster_dbt_passes_whole():
    """dagster-dbt reads one value after --select: further names reached dbt as stray arguments."""
    from dagster_dbt.asset_utils import extract_runtime_selection_from_args

    from factory_assets.processing.dbt_assets import DbtStep, dbt_selection

    step = DbtStep(whole=["--exclude", "path:models/operations"],
                   model_by_key={FCT: "fct_order_lines", STG_LINES: "stg_erp__order_lines", STG_DELIVERIES: "x"},
                   check_keys=frozenset())
    args = ["build", *dbt_selection(step, {FCT, STG_LINES}, set()), "--exclude-resource-type", "unit_test"]
    assert args[1:3] == ["--select", "fct_order_lines stg_erp__order_lines"]
    cleaned, selects, _ = extract_runtime_selection_from_args(args)
    assert cleaned == ["build", "--exclude-resource-type", "unit_test"]
    assert selects == ["fct_order_lines", "stg_erp__order_lines"]


# --------------------------------------------------------------------------------------------------
# Columns at definition time, and lineage as a table
# --------------------------------------------------------------------------------------------------

def test_the_asset_definition_shows_each_columns_contract_description_classification_and_type():
    from factory_assets.lib.contracts import product_contract
    from factory_assets.processing.dbt_assets import processing_dbt_models

    contract = product_contract("fct_order_lines")
    schema = processing_dbt_models.specs_by_key[FCT].metadata["dagster/column_schema"]
    columns = {c.name: c for c in schema.columns}
    assert list(columns) == contract.column_names and len(columns) >= 24
    for column in contract.columns:
        shown = columns[column.name]
        assert shown.description == column.description and shown.description
        assert shown.type == column.physical_type
        assert shown.tags[CLASSIFICATION_TAG] == column.classification
    assert columns["customer_key"].type == "VARCHAR" and "Pseudonymised" in columns["customer_key"].description
    staged = {c.name: c for c in processing_dbt_models.specs_by_key[STG_LINES].metadata["dagster/column_schema"].columns}
    assert staged["customer_key"].description == "Pseudonymised customer (macro pseudonymise)."  # the dbt YAML's


def _dep(key: dg.AssetKey, column: str) -> dg.TableColumnDep:
    return dg.TableColumnDep(asset_key=key, column_name=column)


def test_column_lineage_table_traces_each_column_through_the_models_to_raw_columns():
    staged = dg.TableColumnLineage({"customer_key": [_dep(TRANSACTIONS, "customer_id")],
                                    "promised_date": [_dep(TRANSACTIONS, "promised_date")]})
    fct = dg.TableColumnLineage({
        "customer_key": [_dep(STG_LINES, "customer_key")],
        "days_late": [_dep(STG_DELIVERIES, "delivered_date"), _dep(STG_LINES, "promised_date")],
    })
    tracer = LineageTracer(lambda key: staged if key == STG_LINES else None, pii={(TRANSACTIONS, "customer_id")})
    table = lineage_markdown(FCT, fct, ["customer_key", "days_late", "is_constant"], tracer).splitlines()
    assert table[0] == "| column | computed from | traces back to |"
    assert table[2] == ("| customer_key | processing/stg_erp__order_lines.customer_key "
                        "| raw_material/transactions.customer_id (pii) |")
    assert table[3] == ("| days_late | processing/stg_erp__deliveries.delivered_date, processing/stg_erp__order_lines."
                        "promised_date | processing/stg_erp__deliveries.delivered_date, raw_material/transactions.promised_date |")
    assert table[4] == "| is_constant | (no input column) |  |"


# --------------------------------------------------------------------------------------------------
# One small world: raw landing, then the order-lines models on a first and a later night
# --------------------------------------------------------------------------------------------------

START, DAYS = date(2025, 3, 3), 4
ORDER_LINE_MODELS = ["stg_erp__order_lines", "stg_erp__deliveries", "stg_telemetry__shipment_readings", "fct_order_lines"]


def _range(first: date, last: date) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first.isoformat(), "dagster/asset_partition_range_end": last.isoformat()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from factory_assets.processing.dbt_assets import processing_dbt_models
    from factory_assets.raw_material.assets import raw_assets
    from factory_assets.raw_material.simulator import SimulationConfig, simulate, write_landing_files
    from factory_assets.resources import DbtRunner, FactoryStore
    from factory_assets.settings import FactoryPaths

    home = tmp_path_factory.mktemp("metadata") / "home"
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_HOME", str(home))
    patch.setenv("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    patch.setenv("FACTORY_DBT_COLUMN_METADATA", "1")
    paths = FactoryPaths(home).create()
    write_landing_files(simulate(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=40, seed=5)),
                        paths.landing)
    store = FactoryStore(home=str(home))
    instance = dg.DagsterInstance.ephemeral()
    last = START + timedelta(days=DAYS - 1)
    sources = [a for a in raw_assets if a.key.path[-1] in ("transactions", "deliveries", "telemetry")]  # what they read
    landed = dg.materialize(sources, instance=instance, resources={"store": store}, tags=_range(START, last))
    # the same days again: every file was archived, so nothing is appended
    again = dg.materialize([a for a in raw_assets if TRANSACTIONS in a.keys], instance=instance,
                           resources={"store": store}, tags=_range(START, last))
    runner = DbtRunner(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                       dbt_executable=str(Path(sys.executable).parent / "dbt"))
    selection = dg.AssetSelection.assets(*(dg.AssetKey(["processing", m]) for m in ORDER_LINE_MODELS))
    nights = [dg.materialize([processing_dbt_models], selection=selection, instance=instance,
                             resources={"dbt": runner, "store": store}, raise_on_error=False) for _ in range(2)]
    yield SimpleNamespace(paths=paths, instance=instance, landed=landed, again=again, first=nights[0], later=nights[1])
    patch.undo()


def _materialization(result, key: dg.AssetKey) -> dg.AssetMaterialization:
    return next(e.materialization for e in result.get_asset_materialization_events() if e.asset_key == key)


def _raw_rows(world, table: str) -> int:
    with open_warehouse(world.paths) as conn:
        return conn.execute(f"select count(*) from raw.{table}").fetchone()[0]


def test_a_raw_assets_row_count_is_what_its_table_holds_and_rows_appended_is_this_runs(world):
    assert world.landed.success and world.again.success
    held = _raw_rows(world, "transactions")
    first, again = _materialization(world.landed, TRANSACTIONS), _materialization(world.again, TRANSACTIONS)
    assert held > 100
    assert first.metadata["dagster/row_count"].value == held and first.metadata["rows_appended"].value == held
    assert again.metadata["rows_appended"].value == 0
    assert again.metadata["dagster/row_count"].value == held  # "Row count" in the UI: the table, not the run


@pytest.mark.parametrize("night", ["first", "later"])
def test_fct_order_lines_shows_its_column_lineage_as_a_table_and_contract_columns(world, night):
    """The first night fetches schema and lineage through dagster-dbt; a later one carries them forward."""
    from factory_assets.lib.contracts import product_contract

    result = getattr(world, night)
    assert result.success
    metadata = _materialization(result, FCT).metadata
    assert "dagster/column_lineage" in metadata  # kept for Dagster+
    rows = {line.split(" | ")[0].strip("| "): line for line in metadata["column_lineage"].value.splitlines()[2:]}
    contract = product_contract("fct_order_lines")
    assert list(rows) == contract.column_names  # a row per column, in the table's order
    assert rows["days_late"] == ("| days_late | processing/stg_erp__deliveries.delivered_date, processing/stg_erp__order_lines."
                                 "promised_date | raw_material/deliveries.delivered_date, raw_material/transactions.promised_date |")
    assert rows["customer_key"].endswith("| processing/stg_erp__order_lines.customer_key "
                                         "| raw_material/transactions.customer_id (pii) |")
    columns = {c.name: c for c in metadata["dagster/column_schema"].value.columns}
    assert list(columns) == contract.column_names  # the table's columns, in its order
    for column in contract.columns:
        shown = columns[column.name]
        assert (shown.description, shown.type, shown.tags.get(CLASSIFICATION_TAG)) == (
            column.description, column.physical_type, column.classification), column.name
    staged = {c.name: c for c in _materialization(result, STG_LINES).metadata["dagster/column_schema"].value.columns}
    assert staged["customer_key"].description == "Pseudonymised customer (macro pseudonymise)."
    assert staged["customer_key"].type == "VARCHAR" and staged["region"].type == "VARCHAR"  # not character varying(256)
    first = _materialization(world.first, FCT).metadata
    for key in ("dagster/column_schema", "dagster/column_lineage", "column_lineage"):  # carried forward unchanged
        assert metadata[key] == first[key], key


@pytest.mark.parametrize("night", ["first", "later"])
def test_dbt_results_use_the_factorys_names_rounded_and_checks_their_readable_names(world, night):
    result = getattr(world, night)
    metadata = _materialization(result, FCT).metadata
    assert "Execution Duration" not in metadata and "status" not in metadata
    duration = metadata["execution_duration"].value
    assert duration == round(duration, 2) and metadata["dbt_status"].value == "success"
    checks = {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == FCT}
    assert {"accepted_values__channel", "unique__order_id__line_number",
            "accepted_range__days_late"} <= set(checks)
    assert all(len(name) <= 60 for name in checks)
    for check in checks.values():
        assert check.metadata["failing_rows"].value == 0, check.check_name
        assert "dagster_dbt/failed_row_count" not in check.metadata and "status" not in check.metadata
