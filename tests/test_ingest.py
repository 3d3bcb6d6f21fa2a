"""Landing files -> raw store: parsing, contract validation, quarantine and exactly-once ingestion."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta

import pytest

from factory_assets.lib.contracts import raw_contract
from factory_assets.raw_material.ingest import ingest_partitions
from factory_assets.raw_material.landing import LandingFileError, read_landing_file

HEADER = ("order_id,line_number,ordered_at,customer_id,customer_name,customer_email,region,product_id,"
          "warehouse_id,supplier_id,quantity,unit_price,discount_pct,promised_date,channel")


def order_line(i: int, quantity="3", price="9.50", channel="web", day="2025-03-01") -> str:
    return (f"O{1000 + i},1,{day}T10:{i % 60:02d}:00,C{i:05d},Jane Doe,jane.doe.{i:05d}@example.com,north,"
            f"P0001,W01,S001,{quantity},{price},0.0,2025-03-04,{channel}")


def write_landing(paths, source: str, name: str, header: str, rows: list[str], newline: bool = True):
    folder = paths.landing / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *rows]) + ("\n" if newline else ""))
    return path


def write_transactions(paths, name: str, rows: list[str], header: str = HEADER, newline: bool = True):
    return write_landing(paths, "transactions", name, header, rows, newline)


def raw_rows(conn, source="transactions") -> int:
    return conn.execute(f"SELECT count(*) FROM raw.{source}").fetchone()[0]


def reason_of(paths, name: str) -> dict:
    return json.loads((paths.quarantine / "transactions" / f"{name}.reason.json").read_text())


def test_valid_file_is_typed_and_ingested_with_provenance(paths, warehouse):
    write_transactions(paths, "transactions_2025-03-01.csv", [order_line(i) for i in range(3)])
    outcomes = ingest_partitions(warehouse, paths, "transactions", {date(2025, 3, 1)})
    assert [(o.status, o.rows) for o in outcomes] == [("ingested", 3)]
    row = warehouse.execute(
        "SELECT quantity, unit_price, promised_date, _source_file, _row_number, _partition_date, length(_checksum) "
        "FROM raw.transactions ORDER BY _row_number LIMIT 1").fetchone()
    assert row == (3, 9.5, date(2025, 3, 4), "transactions_2025-03-01.csv", 1, date(2025, 3, 1), 64)
    assert (paths.archive / "transactions" / "2025-03-01" / "transactions_2025-03-01.csv").exists()
    parquet = list((paths.raw / "transactions" / "partition_date=2025-03-01").glob("*.parquet"))
    assert len(parquet) == 1
    assert warehouse.execute(f"SELECT count(*) FROM read_parquet('{parquet[0]}')").fetchone()[0] == 3


def test_only_requested_days_are_ingested(paths, warehouse):
    write_transactions(paths, "transactions_2025-03-01.csv", [order_line(1)])
    write_transactions(paths, "transactions_2025-03-02.csv", [order_line(2, day="2025-03-02")])
    ingest_partitions(warehouse, paths, "transactions", {date(2025, 3, 2)})
    assert raw_rows(warehouse) == 1
    assert (paths.landing / "transactions" / "transactions_2025-03-01.csv").exists()


@pytest.mark.parametrize(
    "name, rows, kwargs, reason, words",
    [
        ("transactions_2025-03-01.csv", None, {}, "empty", ["empty"]),
        ("transactions_2025-03-01.csv", [order_line(1), "O1002,1,2025-03-01T10:00:00,C00002,Jo"], {"newline": False},
         "truncated", ["truncated"]),
        ("transactions_2025-03-01.csv", [order_line(1), 'O1002,"unterminated'], {}, "malformed", ["CSV"]),
        ("transactions_2025-03-01.csv", [order_line(1).rsplit(",", 1)[0]], {"header": HEADER.replace(",channel", "")}, "schema",
         ["missing column(s) channel"]),
        ("transactions_2025-03-01.csv", [order_line(1), order_line(2, quantity="three")], {}, "type",
         ["'quantity'", "INTEGER", "row 2", "'three'"]),
        ("transactions_2025-03-01.csv", [order_line(1), order_line(2, price="-4.0"), order_line(3, channel="fax")], {},
         "contract", ["row 2", "unit_price", "row 3", "channel"]),
        ("transactions.csv", [order_line(1)], {}, "file_name", ["no delivery date", "transactions_2025-03-01.csv"]),
    ],
    ids=["empty", "truncated", "malformed", "missing-column", "retyped-column", "contract-rows", "no-date"],
)
def test_bad_files_are_quarantined_with_a_reason_and_nothing_ingested(paths, warehouse, name, rows, kwargs, reason, words):
    write_transactions(paths, "transactions_2025-02-28.csv", [order_line(9, day="2025-02-28")])
    ingest_partitions(warehouse, paths, "transactions", None)
    if rows is None:
        (paths.landing / "transactions").mkdir(parents=True, exist_ok=True)
        (paths.landing / "transactions" / name).write_bytes(b"")
    else:
        write_transactions(paths, name, rows, **kwargs)
    [outcome] = ingest_partitions(warehouse, paths, "transactions", None)
    assert outcome.status == "quarantined" and outcome.reason == reason
    for word in words:
        assert word in outcome.detail, outcome.detail
    assert name in outcome.detail
    assert (paths.quarantine / "transactions" / name).exists()
    assert reason_of(paths, name)["reason"] == reason
    assert not (paths.landing / "transactions" / name).exists()
    assert raw_rows(warehouse) == 1  # the earlier file is intact, nothing of the bad one landed
    logged = warehouse.execute("SELECT file_name, reason FROM raw.quarantine_log").fetchall()
    assert logged == [(name, reason)]


def test_override_with_an_unknown_reason_or_use_case_is_quarantined(paths, warehouse):
    header = "override_id,created_at,use_case,entity_id,operator_id,override_label,reason"
    good = "OV00000001,2025-03-02T09:15:00,late_delivery,O00001000-1,OP07,true,carrier_reported_delay"
    write_landing(paths, "overrides", "overrides_2025-03-01.csv", header, [good.replace("2025-03-02T", "2025-03-01T")])
    name = "overrides_2025-03-02.csv"
    write_landing(paths, "overrides", name, header, [
        good.replace("OV00000001", "OV00000002"),
        "OV00000003,2025-03-02T10:00:00,late_delivery,O00001001-2,OP03,false,gut_feeling",
        "OV00000004,2025-03-02T11:00:00,churn,C00001,OP03,false,route_clear",
    ])
    ok, bad = ingest_partitions(warehouse, paths, "overrides", None)
    assert (ok.status, ok.rows) == ("ingested", 1)
    assert warehouse.execute("SELECT override_label, typeof(override_label) FROM raw.overrides").fetchall() == [(True, "BOOLEAN")]
    assert bad.status == "quarantined" and bad.reason == "contract"
    for word in (name, "row 2, column 'reason'", "gut_feeling", "row 3, column 'use_case'", "churn"):
        assert word in bad.detail, bad.detail
    assert (paths.quarantine / "overrides" / name).exists()
    assert raw_rows(warehouse, "overrides") == 1


def test_duplicate_content_under_another_name_is_quarantined(paths, warehouse):
    write_transactions(paths, "transactions_2025-03-01.csv", [order_line(1), order_line(2)])
    ingest_partitions(warehouse, paths, "transactions", None)
    write_transactions(paths, "transactions_2025-03-01.v2.csv", [order_line(1), order_line(2)])
    [outcome] = ingest_partitions(warehouse, paths, "transactions", None)
    assert outcome.status == "quarantined" and outcome.reason == "duplicate"
    assert "same content as transactions_2025-03-01.csv" in outcome.detail
    assert raw_rows(warehouse) == 2


def test_corrected_file_dropped_again_is_ingested_exactly_once(paths, warehouse):
    name = "transactions_2025-03-01.csv"
    write_transactions(paths, name, [order_line(1), order_line(2, quantity="x")])
    [bad] = ingest_partitions(warehouse, paths, "transactions", None)
    assert bad.status == "quarantined"
    fixed = write_transactions(paths, name, [order_line(1), order_line(2)])
    backup = paths.home / "copy.csv"
    shutil.copy(fixed, backup)
    [good] = ingest_partitions(warehouse, paths, "transactions", None)
    assert good.status == "ingested" and good.rows == 2
    # The same corrected file dropped a second time is not ingested again.
    shutil.copy(backup, paths.landing / "transactions" / name)
    [again] = ingest_partitions(warehouse, paths, "transactions", None)
    assert again.status == "already_ingested"
    assert raw_rows(warehouse) == 2
    assert warehouse.execute("SELECT count(*) FROM raw.ingestion_log").fetchone()[0] == 1


def test_jsonl_errors_name_the_line(paths, tmp_path):
    path = tmp_path / "telemetry_2025-03-01.jsonl"
    good = {"event_id": "E1", "shipment_id": "SH1", "order_id": "O1", "recorded_at": "2025-03-01T08:00:00",
            "region": "north", "temperature_c": 4.5, "delay_events": 0}
    path.write_text(json.dumps(good) + "\n" + '{"event_id": "E2", "shipment_id": \n')
    with pytest.raises(LandingFileError, match="line 2 is not valid JSON"):
        read_landing_file(path, raw_contract("telemetry"))
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "event_id": "E2", "delay_events": "many"}) + "\n")
    with pytest.raises(LandingFileError, match=r"'delay_events' must be INTEGER .*row 2: 'many'"):
        read_landing_file(path, raw_contract("telemetry"))
    path.write_text(json.dumps(good) + "\n")
    frame = read_landing_file(path, raw_contract("telemetry"))
    assert frame.row(0, named=True)["temperature_c"] == 4.5 and frame.columns == raw_contract("telemetry").column_names


def test_header_only_files_on_different_days_are_not_duplicates(paths, warehouse):
    write_transactions(paths, "transactions_2025-03-01.csv", [])
    write_transactions(paths, "transactions_2025-03-02.csv", [])
    outcomes = ingest_partitions(warehouse, paths, "transactions", None)
    assert [(o.status, o.rows) for o in outcomes] == [("ingested", 0), ("ingested", 0)]
    assert raw_rows(warehouse) == 0


def test_a_file_dated_before_the_first_partition_day_is_quarantined_naming_the_setting(paths, warehouse):
    from factory_assets.settings import partitions_start

    first = partitions_start()
    early = first - timedelta(days=1)
    name = f"transactions_{early}.csv"
    write_transactions(paths, name, [order_line(1, day=early)])
    write_transactions(paths, f"transactions_{first}.csv", [order_line(2, day=first)])
    # the run of the first partition (what the landing sensor requests for such a file) refuses it
    outcomes = ingest_partitions(warehouse, paths, "transactions", {first})
    assert sorted((o.file_name, o.status, o.reason) for o in outcomes) == [
        (name, "quarantined", "before_partitions_start"), (f"transactions_{first}.csv", "ingested", None)]
    detail = reason_of(paths, name)["detail"]
    for words in (name, f"FACTORY_PARTITIONS_START={first}", f"set FACTORY_PARTITIONS_START={early} or earlier",
                  "drop the file again"):
        assert words in detail, detail
    assert not (paths.landing / "transactions" / name).exists()
    assert raw_rows(warehouse) == 1
    # an explicit first day (the setting as the asset read it) is honoured the same way
    write_transactions(paths, "transactions_2025-03-01.csv", [order_line(3)])
    [late] = ingest_partitions(warehouse, paths, "transactions", None, first_day=date(2025, 3, 2))
    assert (late.status, late.reason) == ("quarantined", "before_partitions_start")
    assert "FACTORY_PARTITIONS_START=2025-03-02" in late.detail


# --------------------------------------------------------------------------------------------------
# Batches: one transaction per batch of files, landing files moved only after it commits
# --------------------------------------------------------------------------------------------------


def _five_files(paths) -> None:
    """Four good days and, on the fourth, a file whose quantity is not a number."""
    for day in range(1, 4):
        write_transactions(paths, f"transactions_2025-03-0{day}.csv", [order_line(day, day=f"2025-03-0{day}")])
    write_transactions(paths, "transactions_2025-03-04.csv", [order_line(4, quantity="x", day="2025-03-04")])
    write_transactions(paths, "transactions_2025-03-05.csv", [order_line(5, day="2025-03-05")])


def _ledger(conn) -> list[tuple]:
    return conn.execute("SELECT file_name, row_count FROM raw.ingestion_log ORDER BY file_name").fetchall()


def test_files_commit_in_batches_each_once(paths, warehouse, monkeypatch):
    from factory_assets.lib.lake import snapshots
    from factory_assets.raw_material import ingest

    monkeypatch.setattr(ingest, "BATCH_FILES", 2)
    ensure = ingest_partitions(warehouse, paths, "transactions", set())  # tables exist: count commits from here
    assert ensure == []
    before = len(snapshots(warehouse))
    _five_files(paths)
    outcomes = ingest_partitions(warehouse, paths, "transactions", None)
    assert [o.status for o in outcomes] == ["ingested", "ingested", "ingested", "quarantined", "ingested"]
    assert len(snapshots(warehouse)) - before == 3  # 5 files in batches of 2: three commits, not five
    assert raw_rows(warehouse) == 4 and len(_ledger(warehouse)) == 4
    assert warehouse.execute("SELECT count(*) FROM raw.quarantine_log").fetchone()[0] == 1
    assert sorted(p.name for p in (paths.archive / "transactions").rglob("*.csv")) == [
        f"transactions_2025-03-0{d}.csv" for d in (1, 2, 3, 5)]
    assert not list((paths.landing / "transactions").iterdir())


def test_a_crash_after_the_commit_leaves_the_files_to_be_archived_once(paths, warehouse, monkeypatch):
    from factory_assets.raw_material import ingest

    _five_files(paths)
    carry_out = ingest._carry_out

    def crash(moves):
        raise OSError("disk full while moving the landing files")

    monkeypatch.setattr(ingest, "_carry_out", crash)
    with pytest.raises(OSError, match="disk full"):
        ingest_partitions(warehouse, paths, "transactions", None)
    assert raw_rows(warehouse) == 4  # committed, but every landing file still waits in landing
    assert len(list((paths.landing / "transactions").iterdir())) == 5
    monkeypatch.setattr(ingest, "_carry_out", carry_out)
    outcomes = ingest_partitions(warehouse, paths, "transactions", None)
    assert sorted(o.status for o in outcomes) == ["already_ingested"] * 4 + ["quarantined"]
    assert raw_rows(warehouse) == 4 and len(_ledger(warehouse)) == 4
    assert not list((paths.landing / "transactions").iterdir())
    assert len(list((paths.archive / "transactions").rglob("*.csv"))) == 4


def test_a_conflicting_commit_retries_the_whole_batch_without_duplicates(paths, warehouse, monkeypatch):
    import duckdb

    from factory_assets.raw_material import ingest

    _five_files(paths)
    real, attempts = ingest.in_transaction, []

    def conflict_once(conn, work, on_retry=None):
        def attempt(c):
            result = work(c)
            attempts.append(len(result[1]))
            if len(attempts) == 1:  # another writer of the lake committed first
                raise duckdb.TransactionException("Transaction conflict: cannot commit, another writer committed first")
            return result
        return real(conn, attempt, on_retry)

    monkeypatch.setattr(ingest, "in_transaction", conflict_once)
    outcomes = ingest_partitions(warehouse, paths, "transactions", None)
    assert attempts == [5, 5]  # the whole batch, planned again from the ledger
    assert [o.status for o in outcomes] == ["ingested", "ingested", "ingested", "quarantined", "ingested"]
    assert raw_rows(warehouse) == 4
    assert _ledger(warehouse) == [(f"transactions_2025-03-0{d}.csv", 1) for d in (1, 2, 3, 5)]
    assert warehouse.execute("SELECT count(*) FROM raw.quarantine_log").fetchone()[0] == 1
    assert len(list((paths.quarantine / "transactions").glob("*.reason.json"))) == 1


def test_ledger_rows_without_event_ranges_get_them_back_from_the_raw_rows(paths, warehouse):
    from factory_assets.raw_material.ingest import ensure_raw_tables

    write_transactions(paths, "transactions_2025-03-01.csv", [order_line(i) for i in range(3)])
    write_transactions(paths, "transactions_2025-03-02.csv", [order_line(9, day="2025-03-02")])
    ingest_partitions(warehouse, paths, "transactions", {date(2025, 3, 1), date(2025, 3, 2)})
    ranges = "SELECT file_name, first_event_date, last_event_date FROM raw.ingestion_log ORDER BY file_name"
    recorded = warehouse.execute(ranges).fetchall()
    assert [r[1:] for r in recorded] == [(date(2025, 3, 1),) * 2, (date(2025, 3, 2),) * 2]
    # a ledger written before the ranges were kept: they are rebuilt from the raw rows, exactly
    warehouse.execute("UPDATE raw.ingestion_log SET first_event_date = NULL, last_event_date = NULL")
    assert ensure_raw_tables(warehouse, ["transactions", "deliveries"]) == []
    assert warehouse.execute(ranges).fetchall() == recorded
    assert warehouse.execute("SELECT count(*) FROM raw.deliveries").fetchone() == (0,)  # created, empty
    assert warehouse.execute("SELECT count(*) FROM raw.transactions").fetchone() == (4,)  # nothing added
