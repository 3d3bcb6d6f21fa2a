"""A damaged or lost warehouse has a way back: `factory recover` (issue 19, item 12).

One small world for the module, built with the CLI as a user would: 12 simulated days through the
whole chain (with one file quarantined), then the warehouse file is truncated. `factory run` then
refuses with a message naming the file and `factory recover`; `factory recover` rebuilds the raw
tables from the raw store to the same rows (row counts and an order-independent checksum of every
column, the ingestion ledger and the quarantine log too) and the data products and feature sets to
the same row counts. A deleted warehouse is refused and recovered the same way.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

pytestmark = pytest.mark.e2e

from factory_cli import FACTORY, factory  # noqa: E402,F401 - the shared CLI runner
FIRST, LAST = date(2025, 1, 1), date(2025, 1, 12)
BAD_FILE = f"weather_{LAST - timedelta(days=1)}_resend.csv"  # quarantined: breaks its contract



def tables(conn, schema: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                                       "AND table_type = 'BASE TABLE' ORDER BY 1", [schema]).fetchall()]


def fingerprint(conn, table: str, leave_out: tuple[str, ...] = ()) -> tuple[int, int]:
    """(rows, a checksum of every row and column that ignores row order)."""
    frame = conn.execute(f"SELECT * FROM {table}").pl().drop(list(leave_out), strict=False)
    return frame.height, int(frame.hash_rows(seed=0).sum()) if frame.height else 0


def state(home: Path) -> dict:
    """What the warehouse holds: raw tables fingerprinted, the ledgers row by row, product row counts."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        raw = {t: fingerprint(conn, f"raw.{t}") for t in tables(conn, "raw")
               if t not in ("schema_migrations", "ingestion_log")}  # the ledger is compared row by row
        ledger = conn.execute("SELECT * FROM raw.ingestion_log ORDER BY checksum, file_name").pl()
        quarantine = conn.execute("SELECT * FROM raw.quarantine_log ORDER BY file_name").pl()
        products = {f"{s}.{t}": conn.execute(f"SELECT count(*) FROM {s}.{t}").fetchone()[0]
                    for s in ("marts", "features") for t in tables(conn, s)}
    return {"raw": raw, "ledger": ledger, "quarantine": quarantine, "products": products}


@pytest.fixture(scope="module", autouse=True)
def _duckdb_file_warehouse():
    """`factory recover` rebuilds a warehouse kept as one DuckDB file (FACTORY_WAREHOUSE=duckdb); the
    lake's recovery is rolling back to a snapshot or restoring its catalog (test_lake_warehouse)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_WAREHOUSE", "duckdb")
    yield
    patch.undo()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("recovery") / "home"
    done = factory(home, "data", "generate", "--days", (LAST - FIRST).days + 1, "--lines-per-day", 60, "--end", LAST)
    assert done.returncode == 0, done.stderr
    (home / "landing" / "weather" / BAD_FILE).write_text("station;reading\n1;2\n")
    chain = factory(home, "run", "--from", FIRST, "--json")
    assert chain.returncode == 1 and json.loads(chain.stdout)["success"], chain.stderr  # a failed check: exit 1
    return SimpleNamespace(home=home, before=state(home), warehouse=home / "warehouse.duckdb")


def test_a_truncated_warehouse_is_refused_naming_the_file_and_recover(world):
    with open(world.warehouse, "r+b") as fh:
        fh.truncate(world.warehouse.stat().st_size // 3)
    done = factory(world.home, "run", "--layer", "processing")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"the warehouse {world.warehouse} is damaged" in done.stderr and "factory recover" in done.stderr


def test_recover_rebuilds_the_raw_tables_to_the_same_rows_and_the_products(world):
    done = factory(world.home, "recover", "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "damaged" and result["rebuilt"] and result["left_out"] == []
    assert Path(result["kept_as"]).is_file() and Path(result["kept_as"]).name.startswith("warehouse.duckdb.damaged-")
    assert result["products"]["success"] and result["products"]["ok"]
    after = state(world.home)
    before = world.before
    # raw: the same rows, column for column (provenance included), source by source
    assert after["raw"] == before["raw"] and before["raw"]["transactions"][0] > 0
    assert result["raw_rows"] == {t: n for t, (n, _) in before["raw"].items() if t != "quarantine_log"}
    # the ledger: every column the same; a header-only file's time is its Parquet file's (milliseconds later)
    assert before["quarantine"].height == 1 and after["quarantine"].equals(before["quarantine"])
    ledger_b, ledger_a = before["ledger"], after["ledger"]
    assert ledger_a.drop("ingested_at").equals(ledger_b.drop("ingested_at"))
    with_rows = ledger_b["row_count"] > 0
    assert ledger_a.filter(with_rows)["ingested_at"].equals(ledger_b.filter(with_rows)["ingested_at"])
    lag = (ledger_a["ingested_at"] - ledger_b["ingested_at"]).dt.total_seconds().abs().max()
    assert lag < 5
    # the data products and feature sets: the same row counts
    assert after["products"] == before["products"] and before["products"]["marts.fct_order_lines"] > 0


def test_a_healthy_warehouse_is_left_alone(world):
    done = factory(world.home, "recover")
    assert done.returncode == 0 and "is healthy" in done.stdout and "nothing to do" in done.stdout, done.stderr


def test_a_deleted_warehouse_is_refused_and_recovered(world):
    for path in world.home.glob("warehouse.duckdb*"):
        path.unlink()
    done = factory(world.home, "run", "--layer", "processing")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"the warehouse {world.warehouse} is missing" in done.stderr and "factory recover" in done.stderr
    done = factory(world.home, "recover", "--raw-only")
    assert done.returncode == 0, done.stderr
    assert "is missing" in done.stdout and "raw.transactions" in done.stdout
    assert state(world.home)["raw"] == world.before["raw"]


def test_recover_without_a_raw_store_says_there_is_nothing_to_recover_from(tmp_path):
    done = factory(tmp_path / "empty", "recover")
    assert done.returncode == 2 and "nothing to recover from" in done.stderr and "Traceback" not in done.stderr
