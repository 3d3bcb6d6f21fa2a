"""Raw-layer faults a real feed produces (issue 19, items 1-5): rows dated outside their file's day,
bad file names, corrected re-deliveries, contract type changes, and messages that must name the rule
and the fix without ever quoting personal data.

Most tests call the ingestion functions on a temporary FACTORY_HOME; the correction module runs the
real staging and product models with dbt on what ingestion wrote, and the PII sweep materialises the
ingestion asset into an ephemeral Dagster instance and scans every event it recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import polars as pl
import pytest
import yaml

from factory_assets.lib.contracts import (
    RAW_CONTRACTS_DIR,
    ContractError,
    load_raw_contracts,
    raw_contract,
)
from factory_assets.raw_material.ingest import (
    RawSchemaError,
    ensure_raw_tables,
    ingest_partitions,
)
from factory_assets.raw_material.landing import MESSAGE_LIMIT
from factory_assets.lib.warehouse import open_warehouse
from factory_assets.resources import FactoryStore
from factory_assets.settings import FactoryPaths

HEADER = ("order_id,line_number,ordered_at,customer_id,customer_name,customer_email,region,product_id,"
          "warehouse_id,supplier_id,quantity,unit_price,discount_pct,promised_date,channel")
#: Personal data that must never reach a message, the event log or metadata.
SECRET_NAME, SECRET_EMAIL, SECRET_ID = "Zelda Quux-Secretname", "zelda-secret-at-example.com", "CX-SECRET-ID"


def line(i: int, day: str = "2025-03-01", quantity="3", order: str | None = None, customer: str | None = None,
         name: str = "Jane Doe", email: str | None = None) -> str:
    return (f"{order or f'O{1000 + i}'},1,{day}T10:{i % 60:02d}:00,{customer or f'C{i:05d}'},{name},"
            f"{email or f'jane.doe.{i:05d}@example.com'},north,P0001,W01,S001,{quantity},9.50,0.0,2025-03-09,web")


def drop(paths, name: str, rows: list[str] | None = None, source: str = "transactions", header: str = HEADER,
         raw: bytes | None = None) -> Path:
    folder = paths.landing / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(raw if raw is not None else ("\n".join([header, *(rows or [])]) + "\n").encode())
    return path


def by_name(outcomes) -> dict:
    return {o.file_name: o for o in outcomes}


# --------------------------------------------------------------------------------------------------
# 1. Dates inside a file are checked against the file's day
# --------------------------------------------------------------------------------------------------


def test_rows_dated_outside_the_delivery_window_are_quarantined_naming_column_window_and_rows(paths, warehouse):
    drop(paths, "transactions_2025-03-01.csv", [line(1), line(2, day="2099-01-01"), line(3, day="2099-01-03")])
    drop(paths, "transactions_2025-03-03.csv", [line(4, day="2025-03-02")])  # another day's content, misnamed
    drop(paths, "transactions_2025-03-02.csv", [line(5, day="2025-03-02")])
    got = by_name(ingest_partitions(warehouse, paths, "transactions", None))
    future = got["transactions_2025-03-01.csv"]
    assert (future.status, future.reason) == ("quarantined", "event_date")
    for words in ("column 'ordered_at'", "2025-03-01 .. 2025-03-01", "the file's day only", "2 of 3 row(s)",
                  "row 2: '2099-01-01'", "row 3: '2099-01-03'", "dated 2099-01-01 .. 2099-01-03", "eventDateLagDays",
                  "transactions.odcs.yaml"):
        assert words in future.detail, future.detail
    assert got["transactions_2025-03-03.csv"].reason == "event_date"
    assert got["transactions_2025-03-02.csv"].status == "ingested"
    # the whole file is quarantined: nothing of it is in raw, nothing is lost (the file is kept whole)
    assert warehouse.execute("SELECT count(*), min(_partition_date) FROM raw.transactions").fetchone() == (1, date(2025, 3, 2))
    assert (paths.quarantine / "transactions" / "transactions_2025-03-01.csv").read_text().count("\n") == 4
    assert warehouse.execute("SELECT first_event_date, last_event_date FROM raw.ingestion_log").fetchone() == (
        date(2025, 3, 2), date(2025, 3, 2))


@pytest.mark.parametrize(
    "source, header, name, inside, outside",
    [
        ("deliveries", "order_id,line_number,delivered_date,quantity_delivered", "deliveries_2025-03-02.csv",
         "O1,1,2025-03-01,2", "O2,1,2025-02-28,2"),  # reported up to a day late (eventDateLagDays 1)
        ("holidays", "published_date,holiday_date,region,holiday_name", "holidays_2025-03-01.csv",
         "2025-03-01,2025-03-14,north,Spring Day", "2025-03-01,2025-03-15,north,Late Day"),  # up to 13 days ahead
        ("weather", "weather_date,region,temperature_c,precipitation_mm,storm", "weather_2025-03-01.csv",
         "2025-03-01,north,4.5,0.0,false", "2025-03-02,north,4.5,0.0,false"),
    ],
)
def test_each_source_window_is_the_one_its_contract_declares(paths, warehouse, source, header, name, inside, outside):
    drop(paths, name, [inside], source=source, header=header)
    [ok] = ingest_partitions(warehouse, paths, source, None)
    assert ok.status == "ingested", ok.detail
    drop(paths, name.replace(".csv", ".v2.csv"), [inside, outside], source=source, header=header)
    [bad] = ingest_partitions(warehouse, paths, source, None)
    assert (bad.status, bad.reason) == ("quarantined", "event_date")
    assert "row 2" in bad.detail and raw_contract(source).event_date_column in bad.detail


def test_every_simulated_landing_file_lies_within_its_contracts_window(tmp_path):
    """The windows are set so the simulator's own files (every source, a year boundary) all pass."""
    from factory_assets.lib.contracts import load_contract, raw_contract_dirs, raw_contract_files
    from factory_assets.raw_material.landing import (
        check_event_dates,
        parse_landing_name,
        read_landing_file,
    )
    from factory_assets.raw_material.simulator import (
        SimulationConfig,
        simulate,
        write_landing_files,
    )

    written = write_landing_files(simulate(SimulationConfig(start_date=date(2024, 12, 20), days=30,
                                                            order_lines_per_day=40, seed=5)), tmp_path)
    declared = raw_contract_files(raw_contract_dirs())  # the core's sources and the business units'
    checked = 0
    for source, files in written.items():
        contract = load_contract(declared[source])
        assert contract.event_date_column, f"{source}: the contract declares the column dating its rows"
        for path in files:
            check_event_dates(path, read_landing_file(path, contract), contract, parse_landing_name(path, contract).day)
            checked += 1
    assert checked > 150


@pytest.mark.parametrize(
    "properties, message",
    [
        ({"eventDateColumn": "nope"}, "eventDateColumn 'nope' is not a column"),
        ({"eventDateColumn": "region"}, "must be a DATE or TIMESTAMP column"),
        ({"eventDateColumn": "weather_date", "eventDateLagDays": -1}, "eventDateLagDays -1 must be a whole number"),
        ({"eventDateLeadDays": 2}, "eventDateLeadDays needs eventDateColumn"),
        ({"filePattern": "weather.csv"}, "must hold {date} once"),
        ({"filePattern": "weather_{date}.xlsx"}, "end with .csv"),
    ],
)
def test_a_raw_contract_states_its_window_and_file_pattern_correctly(tmp_path, properties, message):
    doc = yaml.safe_load((RAW_CONTRACTS_DIR / "weather.odcs.yaml").read_text())
    custom = {p["property"]: p["value"] for p in doc["customProperties"]}
    custom.pop("eventDateColumn", None)
    custom.update(properties)
    doc["customProperties"] = [{"property": k, "value": v} for k, v in custom.items()]
    (tmp_path / "weather.odcs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ContractError, match="customProperties") as err:
        load_raw_contracts(tmp_path)
    assert message in str(err.value)


def _ledger(conn, *rows) -> None:
    ensure_raw_tables(conn, [])
    for i, (day, first, last) in enumerate(rows):
        conn.execute("INSERT INTO raw.ingestion_log VALUES (?, 'holidays', ?, ?, 1, 'p', '1.1.0', now(), ?, ?)",
                     [f"c{i}", f"f{i}", day, first, last])


def test_a_product_dated_beyond_the_landed_days_fails_its_freshness_check(paths):
    from factory_assets.keys import product_key
    from factory_assets.lib.contract_checks import evaluate_freshness
    from factory_assets.lib.contracts import product_contract
    from factory_assets.processing.checks import freshness_check

    contract = product_contract("calendar")
    with open_warehouse(paths) as conn:
        # holidays published on 03-10 reach 03-23: the calendar may run that far ahead
        _ledger(conn, (date(2025, 3, 1), None, None), (date(2025, 3, 10), date(2025, 3, 10), date(2025, 3, 23)))
        conn.execute("CREATE SCHEMA marts; CREATE TABLE marts.calendar (calendar_date DATE)")
        conn.execute("INSERT INTO marts.calendar SELECT unnest(generate_series(DATE '2025-03-01', DATE '2025-03-23', "
                     "INTERVAL 1 DAY))::DATE")
        inside = evaluate_freshness(conn, contract)
        assert inside.passed and inside.outside is None and inside.landed_range == ("2025-03-01", "2025-03-23")
        conn.execute("INSERT INTO marts.calendar VALUES ('2099-01-01')")
        beyond = evaluate_freshness(conn, contract)
    assert not beyond.passed
    assert "marts.calendar.calendar_date spans 2025-03-01 .. 2099-01-01, outside the landed days 2025-03-01 .. 2025-03-23" \
        in beyond.outside
    # the product's check turns red with severity ERROR (a lag alone only warns)
    check = freshness_check(contract, product_key("calendar"))
    result = check(store=FactoryStore(home=str(paths.home)))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert "outside the landed days" in result.metadata["outside_landed_range"].value


# --------------------------------------------------------------------------------------------------
# 2. File names
# --------------------------------------------------------------------------------------------------


def test_bad_names_are_quarantined_with_a_true_reason_and_never_stop_other_days(paths, warehouse):
    bad = {
        "transactions_2099-01-01.csv": ("future_date", ["transactions_2099-01-01.csv", "dated 2099-01-01, after",
                                                        "tomorrow, UTC", "rename the file"]),
        "transactions_2026-11-31.csv": ("file_name", ["2026-11-31 is not a calendar date (the day in the file name)",
                                                      "transactions_2025-03-01.csv", "transactions_2025-03-01.v2.csv"]),
        "orders_export_2026-11-30_v2.xlsx": ("file_name", ["extension .xlsx is not .csv", "transactions_{date}.csv"]),
        "transactions.csv": ("file_name", ["carries no delivery date"]),
        "transactions_2025-03-02_part2.csv": ("file_name", ["does not follow the contract's file pattern"]),
    }
    for name in bad:
        drop(paths, name, [line(9, day="2025-03-02")])
    drop(paths, "transactions_2025-03-02.csv", [line(1, day="2025-03-02")])
    got = by_name(ingest_partitions(warehouse, paths, "transactions", {date(2025, 3, 2)}))
    assert got.pop("transactions_2025-03-02.csv").status == "ingested"  # the run of the other day goes on
    assert set(got) == set(bad)
    for name, (reason, words) in bad.items():
        assert (got[name].status, got[name].reason) == ("quarantined", reason), got[name].detail
        assert got[name].detail.startswith(name)
        for word in words:
            assert word in got[name].detail, got[name].detail
        assert (paths.quarantine / "transactions" / name).exists() and not (paths.landing / "transactions" / name).exists()
    logged = dict(warehouse.execute("SELECT file_name, reason FROM raw.quarantine_log").fetchall())
    assert logged == {name: reason for name, (reason, _) in bad.items()}


def test_a_future_dated_name_does_not_stop_the_default_run(paths):
    """`factory run` without dates runs the newest day that is over; a far-future file waits for nothing."""
    from factory_assets.cli import landed_days, plan_run

    today = datetime.now(UTC).date()
    drop(paths, "transactions_2099-01-01.csv", [line(1)])
    drop(paths, f"transactions_{today}.csv", [line(2)])  # not over yet: waits for its partition
    drop(paths, "transactions_2025-03-02.csv", [line(3, day="2025-03-02")])
    # a business unit's source waits for that unit's nightly job, not for `factory run`
    unit_file = paths.landing / "ticket_outcomes" / "ticket_outcomes_2025-03-05.csv"
    unit_file.parent.mkdir(parents=True)
    unit_file.write_text("ticket_id,closed_at,escalated,resolved_by\nT00000001,2025-03-05T10:00:00,false,delivery\n")
    landed, waiting = landed_days(paths)
    assert date(2099, 1, 1) not in landed and waiting == [date(2025, 3, 2), today]
    plan = plan_run("all", None, None, None, landed, waiting, today - timedelta(days=1), paths.landing)
    assert (plan.first, plan.last) == (date(2025, 3, 2), date(2025, 3, 2))


@pytest.mark.e2e
def test_factory_run_quarantines_the_future_file_and_exits_without_a_usage_error(tmp_path):
    home = tmp_path / "home"
    paths = SimpleNamespace(landing=home / "landing")
    drop(paths, "transactions_2099-01-01.csv", [line(1)])
    drop(paths, "transactions_2025-03-02.csv", [line(2, day="2025-03-02")])
    env = {**os.environ, "FACTORY_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
           "FACTORY_WAREHOUSE_PATH": str(home / "warehouse.duckdb")}
    env.pop("FACTORY_PARTITIONS_START", None)
    factory = Path(sys.executable).parent / "factory"
    done = subprocess.run([str(factory), "run", "--layer", "raw_material", "--json"], env=env, cwd=home, check=False,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 1, done.stderr  # ran; the quarantine fails the transactions check
    report = json.loads(done.stdout)
    assert (report["first_day"], report["last_day"]) == ("2025-03-02", "2025-03-02")
    assert report["checks"]["failures"] == [{"asset": "raw_material/transactions", "check": "landing_files_clean",
                                             "passed": False, "severity": "ERROR"}]
    assert "error: Quarantined transactions_2099-01-01.csv (future_date): transactions_2099-01-01.csv: dated 2099-01-01" \
        in done.stderr
    reason = json.loads((home / "quarantine" / "transactions" / "transactions_2099-01-01.csv.reason.json").read_text())
    assert reason["reason"] == "future_date"
    with open_warehouse(FactoryPaths(home)) as conn:
        assert conn.execute("SELECT count(*) FROM raw.transactions").fetchone()[0] == 1


# --------------------------------------------------------------------------------------------------
# 3. Corrected re-deliveries
# --------------------------------------------------------------------------------------------------


def test_a_correction_is_ingested_beside_the_original_and_an_older_or_empty_one_is_refused(paths, warehouse):
    drop(paths, "transactions_2025-03-01.csv", [line(1), line(2), line(3)])
    [first] = ingest_partitions(warehouse, paths, "transactions", None)
    assert first.supersedes is None
    drop(paths, "transactions_2025-03-01.v2.csv", [line(1, quantity="8"), line(2)])
    [fix] = ingest_partitions(warehouse, paths, "transactions", None)
    assert fix.status == "ingested" and "replaces transactions_2025-03-01.csv as the delivery of 2025-03-01" in fix.supersedes
    # raw keeps every version with its provenance; the newer one is strictly later
    versions = warehouse.execute("SELECT _source_file, count(*), min(_ingested_at) FROM raw.transactions "
                                 "GROUP BY ALL ORDER BY 3").fetchall()
    assert [(f, n) for f, n, _ in versions] == [("transactions_2025-03-01.csv", 3), ("transactions_2025-03-01.v2.csv", 2)]
    assert versions[0][2] < versions[1][2]
    # an older version arriving late (the plain name with other content) is refused: v2 stays current
    drop(paths, "transactions_2025-03-01.csv", [line(1, quantity="5")])
    [stale] = ingest_partitions(warehouse, paths, "transactions", None)
    assert (stale.status, stale.reason) == ("quarantined", "stale_version")
    assert "transactions_2025-03-01.v3.csv" in stale.detail
    # an empty file cannot silently replace a day's rows
    drop(paths, "transactions_2025-03-01.v3.csv", [])
    [empty] = ingest_partitions(warehouse, paths, "transactions", None)
    assert (empty.status, empty.reason) == ("quarantined", "empty_redelivery")
    # the same correction dropped again adds nothing (a re-run is idempotent)
    drop(paths, "transactions_2025-03-01.v2.csv", [line(1, quantity="8"), line(2)])
    assert [o.status for o in ingest_partitions(warehouse, paths, "transactions", None)] == ["already_ingested"]
    assert ingest_partitions(warehouse, paths, "transactions", None) == []
    assert warehouse.execute("SELECT count(*) FROM raw.transactions").fetchone()[0] == 5


def test_a_correction_and_its_original_dropped_together_land_in_version_order(paths, warehouse):
    drop(paths, "transactions_2025-03-01.v2.csv", [line(1, quantity="8")])
    drop(paths, "transactions_2025-03-01.csv", [line(1), line(2)])
    outcomes = ingest_partitions(warehouse, paths, "transactions", None)
    assert [(o.file_name, o.status) for o in outcomes] == [("transactions_2025-03-01.csv", "ingested"),
                                                           ("transactions_2025-03-01.v2.csv", "ingested")]


def _dbt(root: Path, *args: str) -> None:
    from dbt.cli.main import dbtRunner

    project = Path(__file__).resolve().parents[1] / "dbt_project"
    result = dbtRunner().invoke([*args, "--project-dir", str(project), "--profiles-dir", str(project),
                                 "--target-path", str(root / "target"), "--log-path", str(root / "logs"),
                                 "--no-partial-parse", "--quiet"])
    assert result.success, result.exception


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    """Day 03-01 lands with three lines and is built; then its correction (line 1's quantity
    changed, line 3 removed) lands and the products are built incrementally, as nights do."""
    from factory_assets.settings import FactoryPaths

    root = tmp_path_factory.mktemp("corrected")
    paths = FactoryPaths(root / "home").create()
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_HOME", str(paths.home))  # dbt's profile finds this home's lake
    patch.setenv("FACTORY_WAREHOUSE_PATH", str(paths.warehouse))
    patch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    select = ["--select", "stg_erp__order_lines", "fct_order_lines", "daily_demand"]
    try:
        from factory_assets.settings import RAW_SOURCES

        with open_warehouse(paths) as conn:
            ensure_raw_tables(conn, list(RAW_SOURCES))
            drop(paths, "transactions_2025-03-01.csv", [line(1), line(2), line(3)])
            drop(paths, "transactions_2025-03-02.csv", [line(4, day="2025-03-02")])
            ingest_partitions(conn, paths, "transactions", None)
        _dbt(root, "run", "--select", "+daily_demand")
        with open_warehouse(paths) as conn:
            drop(paths, "transactions_2025-03-01.v2.csv", [line(1, quantity="8"), line(2)])
            [correction] = ingest_partitions(conn, paths, "transactions", None)
        _dbt(root, "run", *select)
        def query(sql: str) -> list[tuple]:  # dbt ran in this process and holds the file: same configuration
            with open_warehouse(paths) as conn:
                return conn.execute(sql).fetchall()

        state = SimpleNamespace(
            correction=correction,
            staging=query("SELECT order_id, quantity, source_file FROM staging.stg_erp__order_lines ORDER BY 1"),
            lines=query("SELECT order_id, quantity FROM marts.fct_order_lines ORDER BY 1"),
            demand=query("SELECT demand_date, sum(units), sum(order_lines) FROM marts.daily_demand GROUP BY 1 ORDER BY 1"),
            raw=query("SELECT _source_file, count(*) FROM raw.transactions GROUP BY 1 ORDER BY 1"))
        _dbt(root, "run", *select)  # again, with nothing new: the same products
        state.lines_again = query("SELECT order_id, quantity FROM marts.fct_order_lines ORDER BY 1")
        _dbt(root, "run", *select, "--full-refresh")
        state.lines_rebuilt = query("SELECT order_id, quantity FROM marts.fct_order_lines ORDER BY 1")
        yield state
    finally:
        patch.undo()


NEWEST = [("O1001", 8), ("O1002", 3), ("O1004", 3)]


def test_staging_reads_only_the_newest_delivery_of_each_day_while_raw_keeps_every_version(corrected):
    assert corrected.correction.status == "ingested"
    assert corrected.raw == [("transactions_2025-03-01.csv", 3), ("transactions_2025-03-01.v2.csv", 2),
                             ("transactions_2025-03-02.csv", 1)]
    assert corrected.staging == [("O1001", 8, "transactions_2025-03-01.v2.csv"), ("O1002", 3, "transactions_2025-03-01.v2.csv"),
                                 ("O1004", 3, "transactions_2025-03-02.csv")]


def test_products_show_the_changed_values_of_a_correction_and_a_rerun_changes_nothing(corrected):
    lines = dict(corrected.lines)
    assert (lines["O1001"], lines["O1002"], lines["O1004"]) == (8, 3, 3)
    assert corrected.lines_again == corrected.lines
    assert corrected.lines_rebuilt == NEWEST  # a full rebuild is exactly the newest content


def test_products_drop_a_line_the_correction_removed(corrected):
    assert corrected.lines == NEWEST
    assert corrected.demand == [(date(2025, 3, 1), 11, 2), (date(2025, 3, 2), 3, 1)]


# --------------------------------------------------------------------------------------------------
# 4. Contract type changes
# --------------------------------------------------------------------------------------------------


def _contract_with(folder: Path, column: str, logical: str, physical: str, version: str):
    doc = yaml.safe_load((RAW_CONTRACTS_DIR / "transactions.odcs.yaml").read_text())
    doc["version"] = version
    prop = next(p for p in doc["schema"][0]["properties"] if p["name"] == column)
    prop.update(logicalType=logical, physicalType=physical)
    prop.pop("logicalTypeOptions", None)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transactions.odcs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_raw_contracts(folder)["transactions"]


def test_a_widened_contract_type_migrates_the_raw_column_and_records_it(paths, warehouse, tmp_path):
    drop(paths, "transactions_2025-03-01.csv", [line(1, quantity="8")])
    ingest_partitions(warehouse, paths, "transactions", None)
    widened = _contract_with(tmp_path / "c", "quantity", "number", "DOUBLE", "1.2.0")
    drop(paths, "transactions_2025-03-02.csv", [line(2, day="2025-03-02", quantity="8.5")])
    [outcome] = ingest_partitions(warehouse, paths, widened, None)
    assert outcome.status == "ingested"
    assert warehouse.execute("SELECT quantity FROM raw.transactions ORDER BY _partition_date").fetchall() == [(8.0,), (8.5,)]
    assert {r[0]: r[1] for r in warehouse.execute("DESCRIBE raw.transactions").fetchall()}["quantity"] == "DOUBLE"
    assert warehouse.execute("SELECT source, column_name, change, from_type, to_type, contract_version "
                             "FROM raw.schema_migrations").fetchall() == [
        ("transactions", "quantity", "widen", "INTEGER", "DOUBLE", "1.2.0")]


@pytest.mark.parametrize("stored, narrowed", [(("number", "DOUBLE"), ("integer", "INTEGER")),
                                              (("string", "VARCHAR"), ("integer", "INTEGER"))])
def test_a_narrowed_contract_type_is_refused_before_any_row_lands(paths, warehouse, tmp_path, stored, narrowed):
    before = _contract_with(tmp_path / "a", "line_number", *stored, "1.2.0")
    drop(paths, "transactions_2025-03-01.csv", [line(1)])
    ingest_partitions(warehouse, paths, before, None)
    after = _contract_with(tmp_path / "b", "line_number", *narrowed, "1.3.0")
    waiting = drop(paths, "transactions_2025-03-02.csv", [line(2, day="2025-03-02")])
    with pytest.raises(RawSchemaError) as err:
        ingest_partitions(warehouse, paths, after, None)
    for words in ("column line_number is INTEGER in the contract (v1.3.0)", f"stores {stored[1]}",
                  "nothing was ingested", f"Keep line_number {stored[1]} in the contract", "new column name"):
        assert words in str(err.value), str(err.value)
    assert waiting.exists() and warehouse.execute("SELECT count(*) FROM raw.transactions").fetchone()[0] == 1


# --------------------------------------------------------------------------------------------------
# 5. Messages
# --------------------------------------------------------------------------------------------------


def test_rule_failures_name_the_rule_and_the_fix_and_withhold_pii(paths, warehouse):
    drop(paths, "transactions_2025-03-01.csv", [line(1, order="X1"), line(2, customer=SECRET_ID, email=SECRET_EMAIL),
                                                line(3, quantity="0")])
    [bad] = ingest_partitions(warehouse, paths, "transactions", None)
    assert bad.reason == "contract"
    for words in ("rule `order_id must match ^O[0-9]+$` fails on 1 row(s) (row 1, column 'order_id': 'X1')",
                  "rule `customer_id must match ^C[0-9]+$` fails on 1 row(s) (row 2, column 'customer_id': (value withheld: pii))",
                  "rule `customer_email must match", "rule `quantity must be between 1 and 100000`",
                  "Fix these rows", "drop the file again"):
        assert words in bad.detail, bad.detail
    assert SECRET_ID not in bad.detail and SECRET_EMAIL not in bad.detail


def _parquet_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    pl.DataFrame({"order_id": ["O1"], "customer_email": [SECRET_EMAIL]}).write_parquet(buffer)
    return buffer.getvalue()


def _zip_bytes() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sheet.xml", SECRET_NAME)
    return buffer.getvalue()


HINTS = {
    "semicolon": ((HEADER.replace(",", ";") + "\n" + line(1).replace(",", ";") + "\n").encode(), "delimiter",
                  ["separated by ';', not by commas", "comma-separated"]),
    "latin-1": ((HEADER + "\n" + line(1) + "\n" + line(2, name="Zoë Secretname") + "\n").encode("latin-1"), "encoding",
                ["row 2 (line 3, column 'customer_name') holds bytes that are not UTF-8", "Latin-1", "Re-export it as UTF-8"]),
    "parquet": (_parquet_bytes(), "format", ["is a Parquet file, not csv", "comma-separated UTF-8 text"]),
    "xlsx": (_zip_bytes(), "format", ["ZIP archive (an Excel .xlsx workbook is one)"]),
    "unterminated-quote": ((HEADER + "\n" + line(1) + "\n" + line(2, email=f'"{SECRET_EMAIL}') + "\n" + line(3) + "\n").encode(),
                           "malformed", ["not a readable CSV file: line", "a quoted value is never closed"]),
    "no-header": ((line(1, name=SECRET_NAME, email="zelda.q@example.com") + "\n" + line(2) + "\n").encode(), "schema",
                  ["the first line names none of the 15 columns", "is the header missing?"]),
    "extra-field": ((HEADER + "\n" + line(1) + "\n" + line(2, name=f"{SECRET_NAME},Jr") + "\n").encode(), "malformed",
                    ["row 2 (line 3) has 16 field(s) but the header has 15"]),
}


@pytest.mark.parametrize("case", list(HINTS))
def test_a_file_in_the_wrong_shape_gets_a_hint_without_quoting_it(paths, warehouse, case):
    content, reason, words = HINTS[case]
    drop(paths, "transactions_2025-03-01.csv", raw=content)
    [bad] = ingest_partitions(warehouse, paths, "transactions", None)
    assert (bad.status, bad.reason) == ("quarantined", reason), bad.detail
    for word in words:
        assert word in bad.detail, bad.detail
    for secret in (SECRET_NAME, SECRET_EMAIL, "Secretname", "zelda"):
        assert secret not in bad.detail


def test_messages_are_bounded_and_count_what_they_leave_out(paths, warehouse):
    long = "W" + "x" * 5000  # breaks warehouse_id's pattern, and is long
    rows = [line(i).replace(",W01,", f",{long},") for i in range(1, 3001)]
    drop(paths, "transactions_2025-03-01.csv", rows)
    drop(paths, "transactions_2025-03-02.csv", header=HEADER + "".join(f",extra_{i:04d}_{'x' * 30}" for i in range(400)),
         rows=[])
    bad = ingest_partitions(warehouse, paths, "transactions", None)
    assert [o.reason for o in bad] == ["contract", "schema"]
    for outcome in bad:
        assert len(outcome.detail) <= MESSAGE_LIMIT + 60, len(outcome.detail)
    assert "fails on 3000 row(s)" in bad[0].detail and "..." in bad[0].detail
    assert "and 380 more" in bad[1].detail
    for detail, in warehouse.execute("SELECT detail FROM raw.quarantine_log").fetchall():
        assert len(detail) <= MESSAGE_LIMIT + 60


def _event_texts(instance) -> list[str]:
    texts = []
    for run in instance.get_runs():
        texts += [dg.serialize_value(entry) for entry in instance.all_logs(run.run_id)]
    return texts


def test_pii_sweep_quarantine_event_log_and_metadata(paths):
    """Every bad file at once, through the Dagster asset: no personal value anywhere it reports."""
    from factory_assets.raw_material.assets import raw_assets

    [asset] = [a for a in raw_assets if a.key.path[-1] == "transactions"]
    files = {
        "transactions_2025-03-01.csv": (HEADER + "\n" + line(1, customer=SECRET_ID, name=SECRET_NAME, email=SECRET_EMAIL)
                                        + "\n").encode(),
        "transactions_2025-03-01.v2.csv": (HEADER + "\n" + line(1, name=SECRET_NAME, email=f'"{SECRET_EMAIL}') + "\n").encode(),
        "transactions_2025-03-01.v3.csv": (HEADER + "\n" + line(1, name=SECRET_NAME.replace("u", "ü")) + "\n").encode("latin-1"),
        "transactions_2025-03-01.v4.csv": (HEADER + "\n" + line(1, name=SECRET_NAME, email="zelda.q@example.com", day="2099-01-01")
                                           + "\n").encode(),
        "transactions_2025-03-01.v5.csv": (HEADER + "\n" + line(1, name=f"{SECRET_NAME},{SECRET_EMAIL}") + "\n").encode(),
        "transactions_2025-03-01.v6.csv": _parquet_bytes(),
    }
    for name, content in files.items():
        drop(paths, name, raw=content)
    instance = dg.DagsterInstance.ephemeral()
    store = FactoryStore(home=str(paths.home))
    result = dg.materialize([asset], partition_key="2025-03-01", resources={"store": store}, instance=instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node(asset.op.name)
    assert materialization.metadata["files_quarantined"].value == len(files)
    [check] = result.get_asset_check_evaluations()
    assert not check.passed

    reasons = [p.read_text() for p in (paths.quarantine / "transactions").glob("*.reason.json")]
    with open_warehouse(paths) as conn:
        logged = [" ".join(map(str, row)) for row in conn.execute("SELECT * FROM raw.quarantine_log").fetchall()]
    texts = {"event log": _event_texts(instance), "quarantine reasons": reasons, "quarantine_log": logged,
             "metadata": [json.dumps({k: str(v.value) for k, v in materialization.metadata.items()}),
                          json.dumps({k: str(v.value) for k, v in check.metadata.items()})]}
    assert len(reasons) == len(logged) == len(files)
    assert any("Quarantined transactions_2025-03-01.v4.csv (event_date)" in t for t in texts["event log"])
    for where, found in texts.items():
        for text in found:
            for secret in (SECRET_ID, SECRET_NAME, SECRET_EMAIL, "Secretname", "zelda"):
                assert secret not in text, f"{secret!r} reached the {where}: {text[:300]}"


def test_a_header_only_file_warns_in_the_metadata_and_the_log(paths):
    from factory_assets.raw_material.assets import raw_assets

    [asset] = [a for a in raw_assets if a.key.path[-1] == "transactions"]
    drop(paths, "transactions_2025-03-01.csv", [])
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([asset], partition_key="2025-03-01", resources={"store": FactoryStore(home=str(paths.home))},
                            instance=instance)
    [materialization] = result.asset_materializations_for_node(asset.op.name)
    assert "transactions_2025-03-01.csv has a header but no data rows" in materialization.metadata["files_without_rows"].value
    warnings = [e.user_message for e in instance.all_logs(result.run_id) if e.level == 30]
    assert any("transactions_2025-03-01.csv has a header but no data rows" in w for w in warnings), warnings
