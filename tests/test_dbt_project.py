"""The dbt project: contract -> dbt YAML generation, and a full `dbt build` on a tiny warehouse.

The build tests create the raw landing tables (columns from the raw contracts plus the provenance
columns the ingestion assets add) in a temporary DuckDB file, fill them with a handful of rows whose
outcomes are known exactly, run `dbt build` (models, data tests and unit tests) through dbt's Python
API, append a second ingestion batch (a late delivery, new telemetry, a new order line) and run the
incremental build again.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from factory_assets.lib.prediction_tables import ensure_prediction_tables
from factory_assets.lib import dbt_contracts
from factory_assets.lib.contracts import load_contract, product_contract, product_contract_names, raw_contract

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
MARTS = ["fct_order_lines", "customer_features", "supplier_reliability", "daily_demand", "calendar"]
SALT = "test-salt"

# --------------------------------------------------------------------------------------------------
# Contract -> dbt YAML
# --------------------------------------------------------------------------------------------------


def test_every_mart_has_a_product_contract():
    assert sorted(MARTS) == product_contract_names()
    for name in MARTS:
        contract = product_contract(name)
        assert contract.id == f"urn:ai-factory:product:{name}"
        assert contract.physical_name == f"marts.{name}"
        assert contract.pii_columns == []
        assert contract.freshness_days == 1
        assert contract.unique_together, f"{name}: the contract must declare its grain (duplicateValues)"
        assert (DBT_PROJECT_DIR / "models" / "marts" / f"{name}.sql").exists()


def test_committed_mart_yaml_equals_what_the_contracts_generate():
    assert dbt_contracts.sync_dbt_models(check=True) == [], (
        "dbt mart YAML and product contracts disagree; run `python -m factory_assets.lib.dbt_contracts`"
    )
    for name in MARTS:
        committed = (DBT_PROJECT_DIR / "models" / "marts" / f"{name}.yml").read_text()
        assert committed == dbt_contracts.render_model_yaml(product_contract(name))


def test_generated_yaml_carries_contract_metadata_constraints_and_tests():
    contract = product_contract("fct_order_lines")
    text = dbt_contracts.render_model_yaml(contract)
    assert text.startswith("# GENERATED FILE")
    assert "data_contracts/products/fct_order_lines.odcs.yaml" in text.splitlines()[1]
    assert text == dbt_contracts.render_model_yaml(contract)  # deterministic
    model = yaml.safe_load(text)["models"][0]
    assert model["config"]["contract"] == {"enforced": True}
    assert model["config"]["meta"] == {
        "contract_id": "urn:ai-factory:product:fct_order_lines",
        "contract_version": contract.version,
        "owner": "sales-data@factory.example",
    }
    assert model["data_tests"] == [
        {"unique_combination_of_columns": {"arguments": {"combination_of_columns": ["order_id", "line_number"]}}}
    ]
    columns = {c["name"]: c for c in model["columns"]}
    assert list(columns) == contract.column_names
    line_id = columns["order_line_id"]
    assert line_id["data_type"] == "varchar"
    assert line_id["constraints"] == [{"type": "not_null"}]
    assert line_id["data_tests"][0] == "unique"
    # a required column's nulls are refused by the enforced constraint (see the build test below), not tested for
    assert all("not_null" not in c.get("data_tests", []) for c in columns.values())
    assert {"matches_pattern": {"arguments": {"regex": "^O[0-9]+-[0-9]+$"}}} in line_id["data_tests"]
    assert {"accepted_range": {"arguments": {"min_value": 0, "max_value": 0.9}}} in columns["discount_pct"]["data_tests"]
    assert {"accepted_values": {"arguments": {"values": ["north", "south", "east", "west", "central"]}}} in columns[
        "region"
    ]["data_tests"]
    assert "constraints" not in columns["delivered_date"] and "data_tests" not in columns["delivered_date"]
    assert columns["customer_key"]["config"]["meta"]["classification"] == "pseudonymised"  # a salted hash of the ERP customer number


def test_an_edited_contract_is_reported_as_drift(tmp_path, capsys):
    contracts_dir = tmp_path / "products"
    shutil.copytree(REPO_ROOT / "data_contracts" / "products", contracts_dir)
    path = contracts_dir / "daily_demand.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    units = next(p for p in doc["schema"][0]["properties"] if p["name"] == "units")
    units["logicalTypeOptions"] = {"minimum": 0, "maximum": 1000000}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    edited = dbt_contracts.render_model_yaml(load_contract(path))
    committed = (DBT_PROJECT_DIR / "models" / "marts" / "daily_demand.yml").read_text()
    assert edited != committed
    assert "max_value: 1000000" in edited

    models_dir = tmp_path / "marts"
    shutil.copytree(DBT_PROJECT_DIR / "models" / "marts", models_dir)
    assert dbt_contracts.sync_dbt_models(check=True, contracts_dir=contracts_dir, models_dir=models_dir) == [
        "daily_demand"
    ]
    argv = ["--check", "--contracts-dir", str(contracts_dir), "--models-dir", str(models_dir)]
    assert dbt_contracts.main(argv) == 1
    assert "daily_demand.yml" in capsys.readouterr().err
    # regenerating fixes the drift
    assert dbt_contracts.sync_dbt_models(contracts_dir=contracts_dir, models_dir=models_dir) == ["daily_demand"]
    assert (models_dir / "daily_demand.yml").read_text() == edited
    assert dbt_contracts.main(argv) == 0


def test_cli_check_passes_on_the_committed_files():
    result = subprocess.run(
        [sys.executable, "-m", "factory_assets.lib.dbt_contracts", "--check"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_product_contract_with_a_pii_column_is_rejected(tmp_path):
    path = tmp_path / "customer_features.odcs.yaml"
    doc = yaml.safe_load((REPO_ROOT / "data_contracts" / "products" / "customer_features.odcs.yaml").read_text())
    doc["schema"][0]["properties"][0]["classification"] = "pii"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ValueError, match="must not expose PII"):
        dbt_contracts.render_model_yaml(load_contract(path))


# --------------------------------------------------------------------------------------------------
# dbt build on a hand-written warehouse
# --------------------------------------------------------------------------------------------------

RAW_TABLES = ["transactions", "deliveries", "telemetry", "tickets", "holidays", "weather", "overrides", "service_usage"]
PROVENANCE = "_source_file VARCHAR, _checksum VARCHAR, _row_number INTEGER, _partition_date DATE, _ingested_at TIMESTAMP"

D = dt.date
BATCH_1 = dt.datetime(2024, 3, 6, 1, 0)
BATCH_2 = dt.datetime(2024, 3, 9, 1, 0)

CUSTOMERS = {  # id -> (name, email)
    "C101": ("Alice Armstrong", "alice.armstrong@example.com"),
    "C202": ("Bob Bauer", "bob.bauer@example.com"),
    "C303": ("Carol Cruz", "carol.cruz@example.com"),
}


def _line(order_id, line, ordered_at, customer, region, product, warehouse, supplier, qty, price, disc, promised, channel):
    name, email = CUSTOMERS[customer]
    return (order_id, line, ordered_at, customer, name, email, region, product, warehouse, supplier, qty, price, disc,
            promised, channel)  # fmt: skip


TICKET_BODIES = {
    "T1": "Hi, this is Alice Armstrong. My order was late and I am very disappointed. Never again!",
    "T2": "Thanks, great and quick delivery. Bob",
    "T3": "Package arrived, thanks, but it was late. Reach me at alice.armstrong@example.com",
}

BATCH_1_ROWS: dict[str, list[tuple]] = {
    "transactions": [
        _line("O1", 1, dt.datetime(2024, 3, 1, 9), "C101", "north", "P1", "W1", "S1", 2, 10.0, 0.0, D(2024, 3, 3), "web"),
        _line("O1", 2, dt.datetime(2024, 3, 1, 9), "C101", "north", "P2", "W1", "S2", 1, 20.0, 0.1, D(2024, 3, 3), "web"),
        _line("O2", 1, dt.datetime(2024, 3, 2, 10), "C202", "south", "P1", "W2", "S1", 5, 10.0, 0.0, D(2024, 3, 4), "phone"),
        _line("O3", 1, dt.datetime(2024, 3, 4, 11), "C101", "north", "P1", "W1", "S1", 1, 10.0, 0.2, D(2024, 3, 6), "edi"),
        _line("O4", 1, dt.datetime(2024, 3, 5, 12), "C303", "east", "P2", "W2", "S2", 3, 20.0, 0.0, D(2024, 3, 8), "store"),
    ],
    "deliveries": [
        ("O1", 1, D(2024, 3, 3), 2),  # on time
        ("O1", 2, D(2024, 3, 5), 1),  # 2 days late
        ("O2", 1, D(2024, 3, 4), 5),  # on time
    ],
    "telemetry": [
        ("E1", "SH1", "O1", dt.datetime(2024, 3, 1, 18), "north", 4.0, 0),
        ("E2", "SH1", "O1", dt.datetime(2024, 3, 2, 18), "north", 4.5, 1),
        ("E3", "SH1", "O1", dt.datetime(2024, 3, 4, 8), "north", 5.0, 2),
        ("E4", "SH2", "O2", dt.datetime(2024, 3, 3, 8), "south", 6.0, 0),
    ],
    "tickets": [
        ("T1", dt.datetime(2024, 3, 5, 8), "C101", CUSTOMERS["C101"][1], "O1", "email", "Late order", TICKET_BODIES["T1"]),
        ("T2", dt.datetime(2024, 3, 4, 9), "C202", CUSTOMERS["C202"][1], "O2", "chat", "Feedback", TICKET_BODIES["T2"]),
        ("T3", dt.datetime(2024, 3, 5, 9), "C101", CUSTOMERS["C101"][1], None, "phone", "Delivery", TICKET_BODIES["T3"]),
    ],
    "holidays": [
        (D(2024, 3, 1), D(2024, 3, 2), "south", "Founders Day"),
        (D(2024, 3, 1), D(2024, 3, 8), "north", "Spring Day"),
        (D(2024, 3, 3), D(2024, 3, 8), "north", "Spring Festival"),  # republished under a new name
        (D(2024, 3, 3), D(2024, 3, 10), "south", "Harbour Day"),
    ],
    "weather": [
        *[(D(2024, 3, d), "north", 5.0 + d, 1.0, False) for d in (1, 2, 3, 5)],
        (D(2024, 3, 4), "north", 2.0, 42.5, True),  # storm day
        *[(D(2024, 3, d), "south", 12.0 + d, 0.0, False) for d in (1, 2, 3, 4, 5)],
    ],
    "overrides": [
        ("OV1", dt.datetime(2024, 3, 2, 9), "late_delivery", "O1-2", "OP03", True, "carrier_reported_delay"),
        ("OV2", dt.datetime(2024, 3, 3, 14), "late_delivery", "O2-1", "OP07", False, "route_clear"),
    ],
    "service_usage": [
        (dt.datetime(2024, 3, 2, 9), "customer-service", "sentiment", "lexicon-1", "http", 12, 3.5, "ok", None),
        (dt.datetime(2024, 3, 2, 10), "anonymous", "late_delivery", "v1", "http", 3, 1.0, "refused",
         "caller not allowed by the policy"),
    ],
}

BATCH_2_ROWS: dict[str, list[tuple]] = {
    "transactions": [
        _line("O5", 1, dt.datetime(2024, 3, 8, 15), "C202", "south", "P1", "W2", "S1", 4, 10.0, 0.25, D(2024, 3, 11), "web"),
    ],
    "deliveries": [("O3", 1, D(2024, 3, 8), 1)],  # O3-1 was open after batch 1; delivered 2 days late
    "telemetry": [("E5", "SH3", "O3", dt.datetime(2024, 3, 7, 8), "north", 5.0, 3)],
    "tickets": [],
    "holidays": [],
    "weather": [],
    "overrides": [("OV3", dt.datetime(2024, 3, 5, 8), "late_delivery", "O3-1", "OP03", True, "warehouse_backlog")],
    "service_usage": [],
}


def _create_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema raw")
    for table in RAW_TABLES:
        columns = ", ".join(f"{c.name} {c.physical_type}" for c in raw_contract(table).columns)
        con.execute(f"create table raw.{table} ({columns}, {PROVENANCE})")


def _append(con: duckdb.DuckDBPyConnection, batch: dict[str, list[tuple]], ingested_at: dt.datetime) -> None:
    for table, rows in batch.items():
        width = len(raw_contract(table).columns)
        for number, row in enumerate(rows, start=1):
            assert len(row) == width, (table, row)
            values = (*row, f"{table}_{ingested_at:%Y-%m-%d}.csv", "0" * 64, number, ingested_at.date(), ingested_at)
            con.execute(f"insert into raw.{table} values ({', '.join('?' * len(values))})", values)


class DbtWarehouse:
    def __init__(self, root: Path):
        self.root = root
        self.path = root / "warehouse.duckdb"
        self.events: list[Any] = []

    def dbt(self, *args: str) -> Any:
        from dbt.cli.main import dbtRunner

        def collect(event: Any) -> None:
            if event.info.level in ("warn", "error"):
                self.events.append(event)

        result = dbtRunner(callbacks=[collect]).invoke(
            [
                *args,
                "--project-dir", str(DBT_PROJECT_DIR),
                "--profiles-dir", str(DBT_PROJECT_DIR),
                "--target-path", str(self.root / "target"),
                "--log-path", str(self.root / "logs"),
                "--no-partial-parse",
                "--no-use-colors",
                "--quiet",
            ]
        )  # fmt: skip
        if not result.success:
            failures = [
                f"{r.node.unique_id}: {r.status} {r.message}"
                for r in (result.result or [])
                if str(r.status) not in ("success", "pass")
            ]
            messages = [e.info.msg for e in self.events]
            raise AssertionError(f"dbt {args[0]} failed: {result.exception}\n" + "\n".join(failures + messages))
        return result

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.path)) as con:
            return con.execute(sql, params or []).fetchall()

    def relations(self) -> dict[str, tuple[int, str]]:
        """Each dbt-built relation's catalog id and comment: a relation dbt re-created has a new id."""
        return {f"{schema}.{name}": (oid, comment) for schema, name, oid, comment in self.query(
            "select schema_name, view_name, view_oid, comment from duckdb_views() where not internal "
            "and schema_name in ('staging', 'intermediate') union all "
            "select schema_name, table_name, table_oid, comment from duckdb_tables() where schema_name = 'marts'")}

    def copy_to(self, root: Path) -> DbtWarehouse:
        with duckdb.connect(str(self.path)) as con:
            con.execute("checkpoint")  # the copy must not miss what is still in the write-ahead log
        copy = DbtWarehouse(root)
        shutil.copy(self.path, copy.path)
        return copy

    def mart(self, name: str, order_by: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.path)) as con:
            cursor = con.execute(f"select * from marts.{name} order by {order_by}")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Any:
    """Build batch 1, snapshot the marts, append batch 2 and build incrementally again."""
    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("dbt")
    wh = DbtWarehouse(root)
    # the models' SQL on one DuckDB file the test can copy and tamper with; the chain's tests run them on the lake
    monkeypatch.setenv("FACTORY_WAREHOUSE", "duckdb")
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(wh.path))
    monkeypatch.setenv("FACTORY_PII_SALT", SALT)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    try:
        with duckdb.connect(str(wh.path)) as con:
            _create_raw_schema(con)
            ensure_prediction_tables(con)  # operations models read the (still empty) prediction products
            _append(con, BATCH_1_ROWS, BATCH_1)
        wh.build_1 = wh.dbt("build")
        wh.first = {name: wh.mart(name, "all") for name in MARTS}
        wh.relations_1 = wh.relations()
        # Tamper with a line that batch 2 does not touch: an incremental run must leave it alone.
        with duckdb.connect(str(wh.path)) as con:
            con.execute("update marts.fct_order_lines set shipment_delay_events = 99 where order_line_id = 'O2-1'")
            _append(con, BATCH_2_ROWS, BATCH_2)
        wh.build_2 = wh.dbt("build")
        wh.second = {name: wh.mart(name, "all") for name in MARTS}
        wh.relations_2 = wh.relations()
        # Rebuild the fact table from all of history for comparison with the incremental result.
        wh.dbt("run", "--select", "fct_order_lines", "--full-refresh")
        wh.refreshed = wh.mart("fct_order_lines", "all")
        yield wh
    finally:
        monkeypatch.undo()


def _by(rows: list[dict], *key: str) -> dict:
    return {tuple(r[k] for k in key) if len(key) > 1 else r[key[0]]: r for r in rows}


def _hash(customer_id: str) -> str:
    import hashlib

    return hashlib.sha256((SALT + customer_id).encode()).hexdigest()[:16]


def test_dbt_build_succeeds_with_all_data_and_unit_tests(warehouse):
    for result in (warehouse.build_1, warehouse.build_2):
        statuses = {r.node.unique_id: str(r.status) for r in result.result}
        assert all(s in ("success", "pass") for s in statuses.values()), statuses
        kinds = {uid.split(".")[0] for uid in statuses}
        assert {"model", "test", "unit_test"} <= kinds
        assert sum(1 for uid in statuses if uid.startswith("unit_test.")) >= 6
    # no deprecation (e.g. test arguments outside `arguments:`) or other warning from parsing and building
    assert [f"{e.info.name}: {e.info.msg}" for e in warehouse.events] == []


def test_row_counts_per_mart(warehouse):
    first = {name: len(rows) for name, rows in warehouse.first.items()}
    second = {name: len(rows) for name, rows in warehouse.second.items()}
    assert first == {
        "fct_order_lines": 5,
        "customer_features": 3,
        "supplier_reliability": 3,  # S1 03-03, S1 03-04, S2 03-05
        "daily_demand": 4 * 5,  # 4 product/warehouse pairs x 2024-03-01..05
        "calendar": 10 * 3,  # 2024-03-01..10 (latest holiday) x north, south, east
    }
    assert second == {
        "fct_order_lines": 6,
        "customer_features": 3,
        "supplier_reliability": 4,  # + S1 03-08
        "daily_demand": 4 * 8,  # 2024-03-01..08
        "calendar": 10 * 3,
    }


def test_order_line_outcomes(warehouse):
    lines = _by(warehouse.first["fct_order_lines"], "order_line_id")
    outcome = {k: (r["is_delivered"], r["delivered_date"], r["is_late"], r["days_late"]) for k, r in lines.items()}
    assert outcome == {
        "O1-1": (True, D(2024, 3, 3), False, 0),
        "O1-2": (True, D(2024, 3, 5), True, 2),
        "O2-1": (True, D(2024, 3, 4), False, 0),
        "O3-1": (False, None, None, None),
        "O4-1": (False, None, None, None),
    }
    assert {k: r["shipment_delay_events"] for k, r in lines.items()} == {
        "O1-1": 2, "O1-2": 2, "O2-1": 0, "O3-1": None, "O4-1": None,
    }  # fmt: skip
    assert {k: r["net_amount"] for k, r in lines.items()} == {
        "O1-1": 20.0, "O1-2": 18.0, "O2-1": 50.0, "O3-1": 8.0, "O4-1": 60.0,
    }  # fmt: skip
    o1 = lines["O1-1"]
    assert (o1["order_id"], o1["line_number"], o1["order_date"], o1["ingested_at"]) == ("O1", 1, D(2024, 3, 1), BATCH_1)
    assert o1["customer_key"] == _hash("C101")


def test_incremental_run_updates_the_late_delivery_in_place(warehouse):
    rows = warehouse.second["fct_order_lines"]
    ids = [r["order_line_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 6
    lines = _by(rows, "order_line_id")
    o3 = lines["O3-1"]  # loaded open in batch 1, delivered in batch 2
    assert (o3["is_delivered"], o3["delivered_date"], o3["is_late"], o3["days_late"]) == (True, D(2024, 3, 8), True, 2)
    assert o3["shipment_delay_events"] == 3
    assert (o3["ingested_at"], o3["delivery_ingested_at"], o3["telemetry_ingested_at"]) == (BATCH_1, BATCH_2, BATCH_2)
    o5 = lines["O5-1"]  # new line, still open
    assert (o5["is_delivered"], o5["is_late"], o5["days_late"], o5["net_amount"]) == (False, None, None, 30.0)
    # lines untouched by batch 2 were not rebuilt (the tampered value survives) ...
    assert lines["O2-1"]["shipment_delay_events"] == 99
    # ... and are otherwise identical to the first build
    first = _by(warehouse.first["fct_order_lines"], "order_line_id")
    for key in ("O1-1", "O1-2", "O4-1"):
        assert lines[key] == first[key]
    reliability = _by(warehouse.second["supplier_reliability"], "supplier_id", "delivery_date")
    s1 = reliability[("S1", D(2024, 3, 8))]
    assert (s1["lines_delivered"], s1["late_lines"], s1["on_time_rate"], s1["lines_delivered_28d"]) == (1, 1, 0.0, 3)
    assert s1["on_time_rate_28d"] == pytest.approx(2 / 3)
    assert s1["avg_days_late"] == 2.0


def test_incremental_result_equals_a_full_refresh(warehouse):
    incremental = _by(warehouse.second["fct_order_lines"], "order_line_id")
    refreshed = _by(warehouse.refreshed, "order_line_id")
    assert incremental.keys() == refreshed.keys()
    assert refreshed["O2-1"]["shipment_delay_events"] == 0  # the full refresh recomputes the tampered line
    incremental["O2-1"] = {**incremental["O2-1"], "shipment_delay_events": 0}
    assert incremental == refreshed


def test_a_second_build_keeps_unchanged_views_and_replaces_only_the_rows_of_unchanged_tables(warehouse):
    """Re-creating a relation is a catalog change (on the lake every later transaction then reloads
    the catalog): a build re-creates only what changed. The marts' new rows are checked above."""
    first, second = warehouse.relations_1, warehouse.relations_2
    views = {name for name in first if not name.startswith("marts.")}
    tables = {f"marts.{name}" for name in ("calendar", "customer_features", "daily_demand", "supplier_reliability")}
    assert len(views) >= 10 and tables <= first.keys() and first.keys() == second.keys()
    assert {name: second[name][0] for name in views | tables} == {name: first[name][0] for name in views | tables}
    assert all(first[name][1].startswith("factory-view:") for name in views)
    assert all(first[name][1].startswith("factory-contract:") for name in tables)


def test_a_changed_view_or_table_definition_is_built_anew(warehouse, tmp_path, monkeypatch):
    copy = warehouse.copy_to(tmp_path)
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(copy.path))
    rows = copy.mart("calendar", "calendar_date, region")
    with duckdb.connect(str(copy.path)) as con:
        # stand-ins for an edited model: a view built from other SQL, a table with other columns,
        # a table built under another contract
        con.execute("comment on view staging.stg_erp__deliveries is 'factory-view:built from older SQL'")
        con.execute("alter table marts.daily_demand add column retired_column integer")
        con.execute("comment on table marts.calendar is 'factory-contract:an older contract'")
    before = copy.relations()
    copy.dbt("build", "--select", "stg_erp__deliveries", "stg_erp__order_lines", "daily_demand", "calendar",
             "supplier_reliability")
    after = copy.relations()
    rebuilt = {name for name in before if after[name][0] != before[name][0]}
    assert rebuilt == {"staging.stg_erp__deliveries", "marts.daily_demand", "marts.calendar"}
    assert after["staging.stg_erp__deliveries"][1] == warehouse.relations_1["staging.stg_erp__deliveries"][1]
    assert after["marts.calendar"][1] == warehouse.relations_1["marts.calendar"][1]
    assert "retired_column" not in copy.mart("daily_demand", "all")[0]
    assert copy.mart("calendar", "calendar_date, region") == rows


def test_a_null_in_a_required_product_column_fails_the_build_and_the_product_keeps_its_rows(warehouse, tmp_path,
                                                                                          monkeypatch):
    """The products' not_null rules are enforced constraints, not data tests: the insert itself fails."""
    copy = DbtWarehouse(tmp_path)
    with duckdb.connect(str(warehouse.path)) as con:
        con.execute("checkpoint")  # the copy must not miss what is still in the write-ahead log
    shutil.copy(warehouse.path, copy.path)
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(copy.path))
    before = copy.mart("fct_order_lines", "order_line_id")
    batch_3 = {  # O4-1 is delivered (its row would be replaced), and a new line arrives without a channel
        "transactions": [_line("O6", 1, dt.datetime(2024, 3, 9, 9), "C303", "east", "P2", "W2", "S2", 1, 20.0, 0.0,
                               D(2024, 3, 12), None)],
        "deliveries": [("O4", 1, D(2024, 3, 9), 3)],
    }
    with duckdb.connect(str(copy.path)) as con:
        _append(con, batch_3, dt.datetime(2024, 3, 10, 1, 0))
    refused = r"(?s)model\.ai_factory\.fct_order_lines: error .*NOT NULL constraint failed: fct_order_lines\.channel"
    with pytest.raises(AssertionError, match=refused):
        copy.dbt("build", "--select", "fct_order_lines")
    # nothing half-written: O4-1 is not deleted by the failed delete+insert, O6-1 is not there
    assert copy.mart("fct_order_lines", "order_line_id") == before


def test_supplier_reliability(warehouse):
    rows = _by(warehouse.first["supplier_reliability"], "supplier_id", "delivery_date")
    summary = {k: (r["lines_delivered"], r["late_lines"], r["on_time_rate"], r["on_time_rate_28d"], r["avg_days_late"])
               for k, r in rows.items()}  # fmt: skip
    assert summary == {
        ("S1", D(2024, 3, 3)): (1, 0, 1.0, 1.0, 0.0),
        ("S1", D(2024, 3, 4)): (1, 0, 1.0, 1.0, 0.0),
        ("S2", D(2024, 3, 5)): (1, 1, 0.0, 0.0, 2.0),
    }


def test_customer_features(warehouse):
    rows = _by(warehouse.first["customer_features"], "customer_key")
    assert set(rows) == {_hash("C101"), _hash("C202"), _hash("C303")}
    alice, bob, carol = rows[_hash("C101")], rows[_hash("C202")], rows[_hash("C303")]
    assert {r["as_of_date"] for r in rows.values()} == {D(2024, 3, 5)}
    assert (alice["region"], alice["first_order_date"], alice["last_order_date"], alice["recency_days"]) == (
        "north", D(2024, 3, 1), D(2024, 3, 4), 1,
    )  # fmt: skip
    assert (alice["orders_30d"], alice["orders_90d"], alice["lifetime_orders"]) == (2, 2, 2)
    assert (alice["monetary_90d"], alice["lifetime_revenue"]) == (46.0, 46.0)
    assert (alice["tickets_90d"], alice["negative_tickets_90d"], alice["avg_ticket_sentiment_90d"]) == (2, 1, -0.5)
    assert (bob["tickets_90d"], bob["negative_tickets_90d"], bob["avg_ticket_sentiment_90d"]) == (1, 0, 1.0)
    assert (bob["recency_days"], bob["monetary_90d"]) == (3, 50.0)
    assert (carol["region"], carol["recency_days"], carol["tickets_90d"], carol["avg_ticket_sentiment_90d"]) == (
        "east", 0, 0, 0.0,
    )  # fmt: skip
    # after batch 2 the features move to the new latest order date
    second = _by(warehouse.second["customer_features"], "customer_key")
    bob2 = second[_hash("C202")]
    assert (bob2["as_of_date"], bob2["lifetime_orders"], bob2["lifetime_revenue"], bob2["recency_days"]) == (
        D(2024, 3, 8), 2, 80.0, 0,
    )  # fmt: skip


def test_daily_demand_is_dense_and_zero_filled(warehouse):
    rows = _by(warehouse.first["daily_demand"], "product_id", "warehouse_id", "demand_date")
    assert {(p, w) for p, w, _ in rows} == {("P1", "W1"), ("P2", "W1"), ("P1", "W2"), ("P2", "W2")}
    nonzero = {k: (r["units"], r["order_lines"], r["revenue"], r["promo_active"], r["avg_discount_pct"])
               for k, r in rows.items() if r["order_lines"]}  # fmt: skip
    assert nonzero == {
        ("P1", "W1", D(2024, 3, 1)): (2, 1, 20.0, False, 0.0),
        ("P2", "W1", D(2024, 3, 1)): (1, 1, 18.0, True, 0.1),
        ("P1", "W2", D(2024, 3, 2)): (5, 1, 50.0, False, 0.0),
        ("P1", "W1", D(2024, 3, 4)): (1, 1, 8.0, True, 0.2),
        ("P2", "W2", D(2024, 3, 5)): (3, 1, 60.0, False, 0.0),
    }
    zero_rows = [r for k, r in rows.items() if k not in nonzero]
    assert len(zero_rows) == 15
    assert all((r["units"], r["order_lines"], r["revenue"], r["promo_active"], r["avg_discount_pct"])
               == (0, 0, 0.0, False, 0.0) for r in zero_rows)  # fmt: skip
    assert rows[("P1", "W1", D(2024, 3, 2))]["units"] == 0


def test_calendar_holidays_weather_and_storm(warehouse):
    rows = _by(warehouse.first["calendar"], "calendar_date", "region")
    assert {d for d, _ in rows} == {D(2024, 3, d) for d in range(1, 11)}
    assert {r for _, r in rows} == {"north", "south", "east"}
    holidays = {k: r["holiday_name"] for k, r in rows.items() if r["is_holiday"]}
    assert holidays == {
        (D(2024, 3, 2), "south"): "Founders Day",
        (D(2024, 3, 8), "north"): "Spring Festival",  # latest publication wins, listed once
        (D(2024, 3, 10), "south"): "Harbour Day",
    }
    assert all(r["holiday_name"] is None for k, r in rows.items() if k not in holidays)
    storm = rows[(D(2024, 3, 4), "north")]
    assert (storm["is_storm"], storm["precipitation_mm"], storm["temperature_c"]) == (True, 42.5, 2.0)
    assert [k for k, r in rows.items() if r["is_storm"]] == [(D(2024, 3, 4), "north")]
    assert rows[(D(2024, 3, 4), "east")]["is_storm"] is None  # east never observed
    assert rows[(D(2024, 3, 9), "north")]["temperature_c"] is None  # not observed yet
    sat = rows[(D(2024, 3, 2), "north")]
    assert (sat["day_of_week"], sat["is_weekend"]) == (6, True)
    assert (rows[(D(2024, 3, 4), "north")]["day_of_week"], rows[(D(2024, 3, 4), "north")]["is_weekend"]) == (1, False)


def test_overrides_are_staged_with_entity_ids_that_are_order_line_ids(warehouse):
    rows = warehouse.query(
        "select override_id, created_date, entity_id, override_label, reason, ingested_at "
        "from staging.stg_ops__overrides order by override_id")  # fmt: skip
    assert rows == [
        ("OV1", D(2024, 3, 2), "O1-2", True, "carrier_reported_delay", BATCH_1),
        ("OV2", D(2024, 3, 3), "O2-1", False, "route_clear", BATCH_1),
        ("OV3", D(2024, 3, 5), "O3-1", True, "warehouse_backlog", BATCH_2),
    ]
    joined = warehouse.query(
        "select count(*) from staging.stg_ops__overrides o join marts.fct_order_lines f on f.order_line_id = o.entity_id")
    assert joined == [(3,)]


def test_no_personal_data_in_any_mart(warehouse):
    forbidden = {cid for cid in CUSTOMERS} | {v for pair in CUSTOMERS.values() for v in pair}
    fragments = {"Alice", "Armstrong", "Bauer", "Cruz", "@example.com", "disappointed", "Never again"}
    with duckdb.connect(str(warehouse.path)) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables where table_schema in ('marts', 'intermediate')"
        ).fetchall()
        assert {t for s, t in tables if s == "marts"} == set(MARTS)
        for schema, table in tables:
            columns = con.execute(
                "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
                [schema, table],
            ).fetchall()
            names = {c for c, _ in columns}
            assert not names & {"customer_id", "customer_name", "customer_email", "body"}, (schema, table)
            for column, data_type in columns:
                if data_type != "VARCHAR":
                    continue
                values = {v for (v,) in con.execute(f'select distinct "{column}" from {schema}.{table}').fetchall()}
                values.discard(None)
                assert not values & forbidden, (schema, table, column)
                leaked = [v for v in values for f in fragments if f.lower() in v.lower()]
                assert leaked == [], (schema, table, column, leaked)
        # staging views do not expose the direct identifiers or the ticket text either
        staging_columns = {c for (c,) in con.execute(
            "select column_name from information_schema.columns where table_schema = 'staging'").fetchall()}  # fmt: skip
        assert not staging_columns & {"customer_id", "customer_name", "customer_email", "body"}


def test_customer_key_is_a_salted_pseudonym(warehouse):
    keys = {r["customer_key"] for r in warehouse.second["fct_order_lines"]}
    assert keys == {_hash(c) for c in CUSTOMERS}
    assert not keys & set(CUSTOMERS)
    assert all(len(k) == 16 and all(ch in "0123456789abcdef" for ch in k) for k in keys)
    unsalted = {__import__("hashlib").sha256(c.encode()).hexdigest()[:16] for c in CUSTOMERS}
    assert not keys & unsalted


def test_sources_point_dagster_lineage_at_the_raw_ingestion_assets(warehouse):
    import json

    manifest = json.loads((warehouse.root / "target" / "manifest.json").read_text())
    sources = {s["name"]: s for s in manifest["sources"].values() if s["source_name"] != "predictions"}
    assert set(sources) == set(RAW_TABLES)
    # the operations models read prediction products: their source points at the distribution asset
    predictions = [s for s in manifest["sources"].values() if s["source_name"] == "predictions"]
    assert [s["meta"]["dagster"]["asset_key"] for s in predictions] == [["distribution", "purchase_propensity_predictions"]]
    for table, source in sources.items():
        assert source["schema"] == "raw"
        meta = source["meta"]  # what dagster-dbt reads
        assert meta["dagster"]["asset_key"] == ["raw_material", table]
    for name in MARTS:
        node = manifest["nodes"][f"model.ai_factory.{name}"]
        assert node["schema"] == "marts"
        assert node["config"]["contract"]["enforced"] is True
        assert node["config"]["meta"]["contract_id"] == f"urn:ai-factory:product:{name}"
