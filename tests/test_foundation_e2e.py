"""Layers 1-2 end to end: simulated landing files -> raw store -> dbt data products, through Dagster.

One shared materialisation of three weeks of small-scale data (module fixture), then later days
arrive with bad files and with a contract violation, in order, as they would in production.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest

from factory_assets.definitions import build_definitions
from factory_assets.lib.contracts import product_contract, product_contract_names, raw_contract
from factory_assets.raw_material.landing import partition_date_of
from factory_assets.raw_material.simulator import SimulationConfig, simulate, write_landing_files
from factory_assets.resources import FactoryStore
from factory_assets.settings import RAW_SOURCES, FactoryPaths
from factory_assets.lib.warehouse import open_warehouse

pytestmark = pytest.mark.e2e

START = date(2025, 3, 3)
DAYS = 21  # ingested by the first run
HELD_BACK = 2  # later days, landed by the later tests
BAD_DAY = START + timedelta(days=DAYS)
VIOLATION_DAY = BAD_DAY + timedelta(days=1)


def read_landing(path: Path) -> pl.DataFrame:
    if path.suffix == ".jsonl":
        return pl.read_ndjson(path)
    return pl.read_csv(path, infer_schema=False)


def run_days(defs: dg.Definitions, instance, first: date, last: date):
    job = defs.resolve_job_def("supply_chain_nightly")
    tags = {"dagster/asset_partition_range_start": first.isoformat(), "dagster/asset_partition_range_end": last.isoformat()}
    return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)


def check_results(result) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            out[(ev.asset_key.to_user_string(), ev.check_name)] = ev
    return out


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    home = tmp_path_factory.mktemp("factory")
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_HOME", str(home))
    patch.setenv("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    patch.setenv("FACTORY_DBT_COLUMN_METADATA", "1")  # the UI's column schema and lineage, tested here
    paths = FactoryPaths(home).create()
    data = simulate(SimulationConfig(start_date=START, days=DAYS + HELD_BACK, order_lines_per_day=150, seed=11))
    write_landing_files(data, paths.landing)
    held = home / "held_back"
    landed_rows = {s: 0 for s in RAW_SOURCES}
    for source in RAW_SOURCES:
        for path in sorted((paths.landing / source).iterdir()):
            if partition_date_of(path) >= BAD_DAY:
                (held / source).mkdir(parents=True, exist_ok=True)
                shutil.move(path, held / source / path.name)
            else:
                landed_rows[source] += read_landing(path).height
    defs = build_definitions(FactoryStore(home=str(home)))
    instance = dg.DagsterInstance.ephemeral()
    result = run_days(defs, instance, START, BAD_DAY - timedelta(days=1))
    yield SimpleNamespace(paths=paths, data=data, held=held, landed_rows=landed_rows, defs=defs, instance=instance, result=result)
    patch.undo()


def query(paths: FactoryPaths, sql: str):
    with open_warehouse(paths) as conn:
        return conn.execute(sql).fetchall()


def test_first_run_succeeds_with_every_check_passing(factory):
    assert factory.result.success
    checks = check_results(factory.result)
    for name in product_contract_names():
        assert checks[(f"processing/{name}", "contract")].passed, name
    for source in RAW_SOURCES:
        assert checks[(f"raw_material/{source}", "landing_files_clean")].passed
    failed = [k for k, v in checks.items() if not v.passed]
    assert failed == []
    assert len(checks) > 40  # contract checks + dbt tests as asset checks


def test_exact_row_counts_from_landing_to_raw_to_products(factory):
    paths, landed = factory.paths, factory.landed_rows
    for source in RAW_SOURCES:
        assert query(paths, f"SELECT count(*) FROM raw.{source}")[0][0] == landed[source], source
        assert not any((paths.landing / source).iterdir()), f"{source}: every landing file was archived"
    assert not any(paths.quarantine.rglob("*.csv")) and not any(paths.quarantine.rglob("*.jsonl"))
    lines = landed["transactions"]
    assert lines > 2000
    assert query(paths, "SELECT count(*), count(delivered_date), sum(quantity) FROM marts.fct_order_lines") == [
        (lines, landed["deliveries"], query(paths, "SELECT sum(quantity) FROM raw.transactions")[0][0])
    ]
    assert query(paths, "SELECT sum(units), sum(order_lines) FROM marts.daily_demand")[0] == (
        query(paths, "SELECT sum(quantity) FROM raw.transactions")[0][0], lines)
    assert query(paths, "SELECT sum(lines_delivered) FROM marts.supplier_reliability")[0][0] == landed["deliveries"]
    n_customers = query(paths, "SELECT count(DISTINCT customer_id) FROM raw.transactions")[0][0]
    assert query(paths, "SELECT count(*), count(DISTINCT customer_key) FROM marts.customer_features")[0] == (n_customers, n_customers)
    pairs, days = query(paths, "SELECT count(DISTINCT (product_id, warehouse_id)), count(DISTINCT order_date) FROM marts.fct_order_lines")[0]
    assert query(paths, "SELECT count(*) FROM marts.daily_demand")[0][0] == pairs * days


def test_service_usage_reaches_the_feedback_layer_with_exact_counts(factory):
    paths, usage = factory.paths, factory.data.service_usage
    landed = usage.filter(pl.col("called_at").dt.date() < BAD_DAY)
    assert query(paths, "SELECT count(*) FROM raw.service_usage")[0][0] == factory.landed_rows["service_usage"] == landed.height
    daily = query(paths, "SELECT sum(calls), sum(ok_calls), sum(rows_served) FROM feedback.service_usage_daily")[0]
    ok = landed.filter(pl.col("status") == "ok")
    assert daily == (landed.height, ok.height, ok["rows"].sum())
    by_caller = dict(query(paths, "SELECT caller, sum(calls) FROM feedback.service_usage_daily GROUP BY 1"))
    assert by_caller == dict(landed.group_by("caller").len().iter_rows())
    assert factory.result.asset_materializations_for_node("feedback__service_usage")


def test_the_sentiment_service_gives_the_score_of_the_nightly_tickets_product(factory):
    from factory_assets.distribution.services import sentiment_scores

    nightly = dict(query(factory.paths, "SELECT ticket_id, sentiment_score FROM intermediate.int_tickets__scored"))
    tickets = query(factory.paths, "SELECT ticket_id, body FROM raw.tickets ORDER BY ticket_id")
    service = sentiment_scores([body for _, body in tickets])["sentiment"].to_list()
    assert len(nightly) == len(tickets) > 20 and len({round(v, 3) for v in nightly.values()}) > 3
    assert dict(zip([t for t, _ in tickets], service, strict=True)) == pytest.approx(nightly, abs=1e-12)


def test_every_product_row_traces_back_to_an_ingested_landing_file(factory):
    paths = factory.paths
    orphans = query(paths, """
        SELECT count(*) FROM marts.fct_order_lines f
        LEFT JOIN raw.transactions t ON t.order_id = f.order_id AND t.line_number = f.line_number
        LEFT JOIN raw.ingestion_log l ON l.checksum = t._checksum
        WHERE l.checksum IS NULL""")[0][0]
    assert orphans == 0
    for source, file_name in query(paths, "SELECT source, file_name FROM raw.ingestion_log"):
        day = partition_date_of(Path(file_name))
        assert (paths.archive / source / day.isoformat() / file_name).exists()


def test_lineage_runs_from_raw_ingestion_to_every_product(factory):
    graph = factory.defs.resolve_asset_graph()

    def ancestors(key: dg.AssetKey) -> set[str]:
        seen, todo = set(), [key]
        while todo:
            for parent in graph.get(todo.pop()).parent_keys:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return {k.to_user_string() for k in seen}

    expected = {
        "fct_order_lines": {"transactions", "deliveries", "telemetry"},
        "customer_features": {"transactions", "tickets"},
        "supplier_reliability": {"transactions", "deliveries"},
        "daily_demand": {"transactions"},
        "calendar": {"holidays", "weather"},
    }
    for product, sources in expected.items():
        up = ancestors(dg.AssetKey(["processing", product]))
        assert {f"raw_material/{s}" for s in sources} <= up, product
        assert graph.get(dg.AssetKey(["processing", product])).group_name == "processing"
    for source in RAW_SOURCES:
        assert graph.get(dg.AssetKey(["raw_material", source])).group_name == "raw_material"
    # overrides feed no product yet; their staging model is already wired to the raw asset
    assert "raw_material/overrides" in ancestors(dg.AssetKey(["processing", "stg_ops__overrides"]))


def test_products_show_row_counts_schema_column_lineage_and_contract_in_the_ui(factory):
    events = {e.asset_key.to_user_string(): e.materialization for e in factory.result.get_asset_materialization_events()}
    fct = events["processing/fct_order_lines"].metadata
    rows = query(factory.paths, "SELECT count(*) FROM marts.fct_order_lines")[0][0]
    assert fct["dagster/row_count"].value == rows
    schema = {c.name: c.type.lower() for c in fct["dagster/column_schema"].value.columns}
    columns = {name: kind.lower() for name, kind in query(factory.paths, "SELECT column_name, data_type FROM "
               "information_schema.columns WHERE table_schema = 'marts' AND table_name = 'fct_order_lines' ORDER BY ordinal_position")}
    assert list(schema) == list(columns)  # every column, in table order (types in the adapter's spelling)
    assert schema["quantity"] == columns["quantity"] == "integer"
    # column-level lineage from the compiled SQL: days_late comes from delivery and promise dates
    deps = {(d.asset_key.to_user_string(), d.column_name)
            for d in fct["dagster/column_lineage"].value.deps_by_column["days_late"]}
    assert deps == {("processing/stg_erp__deliveries", "delivered_date"), ("processing/stg_erp__order_lines", "promised_date")}
    staged = events["processing/stg_erp__order_lines"].metadata["dagster/column_lineage"].value.deps_by_column
    assert {(d.asset_key.to_user_string(), d.column_name) for d in staged["customer_key"]} == {
        ("raw_material/transactions", "customer_id")}  # pseudonymised from the raw id, and the UI shows it
    spec = factory.defs.resolve_asset_graph().get(dg.AssetKey(["processing", "fct_order_lines"]))
    assert spec.metadata["contract"] == "fct_order_lines.odcs.yaml" and spec.metadata["contract_version"]
    assert all(events[k].tags.get("dagster/data_version") for k in events if k.startswith("processing/"))


def test_no_pii_value_reaches_a_data_product(factory):
    raw = factory.data.transactions
    secrets = set(raw["customer_name"]) | set(raw["customer_email"]) | set(raw["customer_id"])
    secrets |= set(factory.data.tickets["body"]) if factory.data.tickets.height else set()
    with open_warehouse(factory.paths) as conn:
        for name in product_contract_names():
            relation = product_contract(name).physical_name
            for col in product_contract(name).columns:
                if col.physical_type != "VARCHAR":
                    continue
                values = {r[0] for r in conn.execute(f'SELECT DISTINCT "{col.name}" FROM {relation}').fetchall()}
                assert not values & secrets, f"{relation}.{col.name} leaks PII"


def _land(factory, source: str, day: date) -> Path:
    src = next((factory.held / source).glob(f"{source}_{day.isoformat()}.*"))
    target = factory.paths.landing / source / src.name
    shutil.copy(src, target)
    return target


def test_bad_files_are_quarantined_while_the_chain_goes_on(factory):
    paths, day = factory.paths, BAD_DAY
    before = {s: query(paths, f"SELECT count(*) FROM raw.{s}")[0][0] for s in RAW_SOURCES}
    for source in ("deliveries", "telemetry", "holidays", "weather", "overrides"):
        _land(factory, source, day)
    good_tx = _land(factory, "transactions", day)
    good_bytes = good_tx.read_bytes()
    good_tx.write_bytes(good_bytes[: len(good_bytes) // 2])  # truncated transfer
    # tickets: the previous day's content again under this day's name (a duplicate export)
    shutil.copy(paths.archive / "tickets" / (day - timedelta(days=1)).isoformat() / f"tickets_{(day - timedelta(days=1)).isoformat()}.jsonl",
                paths.landing / "tickets" / f"tickets_{day.isoformat()}.jsonl")
    result = run_days(factory.defs, factory.instance, day, day)
    checks = check_results(result)
    assert not checks[("raw_material/transactions", "landing_files_clean")].passed
    assert not checks[("raw_material/tickets", "landing_files_clean")].passed
    assert checks[("raw_material/weather", "landing_files_clean")].passed
    assert (paths.quarantine / "transactions" / good_tx.name).exists()
    reasons = dict(query(paths, "SELECT source, reason FROM raw.quarantine_log"))
    assert reasons == {"transactions": "truncated", "tickets": "duplicate"}
    after = {s: query(paths, f"SELECT count(*) FROM raw.{s}")[0][0] for s in RAW_SOURCES}
    assert after["transactions"] == before["transactions"] and after["tickets"] == before["tickets"]
    for source in ("weather", "overrides"):
        held = read_landing(next((factory.held / source).glob(f"*{day}*")))
        assert after[source] == before[source] + held.height, source
    # products still build from the good data, and still satisfy their contracts
    assert all(checks[(f"processing/{n}", "contract")].passed for n in product_contract_names())

    # the corrected file, dropped again (twice), is ingested exactly once
    for _ in range(2):
        (paths.landing / "transactions" / good_tx.name).write_bytes(good_bytes)
        again = run_days(factory.defs, factory.instance, day, day)
        assert again.success
    added = query(paths, "SELECT count(*) FROM raw.transactions")[0][0] - before["transactions"]
    assert added == read_landing(next((factory.held / "transactions").glob(f"*{day}*"))).height
    assert query(paths, "SELECT count(*) FROM marts.fct_order_lines")[0][0] == query(paths, "SELECT count(*) FROM raw.transactions")[0][0]


def _column_messages(instance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if "column schema and lineage" in (e.user_message or "")]


def test_column_lineage_is_fetched_once_per_code_version_then_carried_forward(factory):
    """Fetching column lineage costs ~1 s per model; it only changes with a model's SQL."""
    assert any("fetched" in m for m in _column_messages(factory.instance, factory.result.run_id))
    night = run_days(factory.defs, factory.instance, BAD_DAY, BAD_DAY)  # nothing in dbt_project changed
    assert night.success
    assert any("carried" in m for m in _column_messages(factory.instance, night.run_id))
    key = "processing/fct_order_lines"
    first = {e.asset_key.to_user_string(): e.materialization for e in factory.result.get_asset_materialization_events()}[key]
    latest = {e.asset_key.to_user_string(): e.materialization for e in night.get_asset_materialization_events()}[key]
    for name in ("dagster/column_schema", "dagster/column_lineage"):
        assert latest.metadata[name] == first.metadata[name], name
    assert latest.metadata["dagster/row_count"].value == query(factory.paths, "SELECT count(*) FROM marts.fct_order_lines")[0][0]


def test_the_orchestrated_build_runs_the_data_tests_and_leaves_the_unit_tests_to_ci(factory):
    """dbt's unit tests prove the SQL on fixtures (tests/test_dbt_project.py runs them); nights test the data."""
    said = next(e.user_message for e in factory.instance.all_logs(factory.result.run_id)
                if (e.user_message or "").startswith("dbt build --exclude path:models/operations"))
    assert "--exclude-resource-type unit_test" in said
    target = Path(said.split("dbt's log in ")[1].rstrip(")"))
    ran = {r["unique_id"].split(".")[0] for r in json.loads((target / "run_results.json").read_text())["results"]}
    assert ran == {"model", "test"}
    assert len(json.loads((target / "manifest.json").read_text())["unit_tests"]) >= 6  # left out, not missing


def test_a_product_contract_violation_blocks_downstream(factory):
    paths, day = factory.paths, VIOLATION_DAY
    for source in ("deliveries", "telemetry", "tickets", "holidays", "weather", "overrides"):
        _land(factory, source, day)
    tx = _land(factory, "transactions", day)
    frame = pl.read_csv(tx, infer_schema=False)
    bad_order = frame["order_id"][0]
    # 50,000 units passes the raw contract (the ERP accepts it) but not the product contract.
    raw_max = raw_contract("transactions").column("quantity").maximum
    product_max = product_contract("fct_order_lines").column("quantity").maximum
    assert product_max < 50_000 <= raw_max
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("50000")).otherwise(pl.col("quantity")).alias("quantity"))
    frame.write_csv(tx)
    before_features = query(paths, "SELECT count(*) FROM marts.customer_features")[0][0]

    result = run_days(factory.defs, factory.instance, day, day)
    assert not result.success
    checks = check_results(result)
    contract = checks[("processing/fct_order_lines", "contract")]
    assert not contract.passed
    failing = contract.metadata[f"failing: quantity <= {product_max}"].value
    assert failing["failing_rows"] == 1 and failing["sample"][0]["order_id"] == bad_order
    done = materialized(result)
    assert "raw_material/transactions" in done and "processing/fct_order_lines" in done
    for downstream in ("customer_features", "daily_demand", "supplier_reliability"):
        assert f"processing/{downstream}" not in done, downstream
    assert query(paths, "SELECT count(*) FROM marts.customer_features")[0][0] == before_features


def test_a_range_run_plans_each_asset_once_for_all_its_days(factory):
    """One planned event per asset, carrying the partition range, not one per asset and day:
    13,104 SQLite writes (4 min 15 s) before a 365-day history run's first step otherwise."""
    records = factory.instance.get_records_for_run(
        factory.result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    planned = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    keys = [p.asset_key.to_user_string() for p in planned]
    assert len(keys) == len(set(keys)) > 30
    ingestion = next(p for p in planned if p.asset_key == dg.AssetKey(["raw_material", "transactions"]))
    days = sorted(ingestion.partitions_subset.get_partition_keys())
    assert days[0] == START.isoformat() and days[-1] == (BAD_DAY - timedelta(days=1)).isoformat()
    assert len(days) == (BAD_DAY - START).days
