"""DuckLake offline (issue 21's first step): the extensions come from their Python packages into a
repository under FACTORY_HOME, several processes write one table at once with conflicts retried,
and every snapshot stays readable by time travel. Exact row counts throughout."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pytest

from factory_assets.lib.lake import Lake, extension_repository, insert_rows, is_conflict, merge_small_files, replace_table, snapshots, with_retries

WRITERS, BATCHES, ROWS = 3, 20, 500

#: One writer process: BATCHES transactions of ROWS rows each, through the factory's retrying insert.
WRITER = """
import json, sys
from pathlib import Path
from factory_assets.lib import lake as lk
writer, batches, rows = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
conn = lk.Lake.embedded(Path(sys.argv[1])).connect()
retried = []
for batch in range(batches):
    lk.insert_rows(conn, "lake.lines", "SELECT ?, range FROM range(?, ?)", [writer, batch * rows, (batch + 1) * rows],
                   on_retry=lambda n, e: retried.append(n))
print(json.dumps({"writer": writer, "retries": len(retried)}))
"""


def test_the_extensions_are_laid_out_under_factory_home_and_load_without_a_network(tmp_path):
    repository = extension_repository(tmp_path / "repo")
    files = sorted(p.name for p in repository.rglob("*.duckdb_extension"))
    assert files == ["ducklake.duckdb_extension", "postgres_scanner.duckdb_extension", "sqlite_scanner.duckdb_extension"]
    conn = Lake.embedded(tmp_path / "home").connect()
    installed = dict(conn.execute("SELECT extension_name, install_path FROM duckdb_extensions() WHERE loaded").fetchall())
    assert {"ducklake", "sqlite_scanner"} <= set(installed)
    assert all(str(tmp_path / "home" / "duckdb_extensions") in installed[name] for name in ("ducklake", "sqlite_scanner"))


def test_three_writer_processes_into_one_table_lose_and_duplicate_nothing(tmp_path):
    home = tmp_path / "home"
    conn = Lake.embedded(home).connect()
    conn.execute("CREATE TABLE lake.lines (writer INTEGER, i BIGINT)")
    before = snapshots(conn)[-1]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(w), str(BATCHES), str(ROWS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(WRITERS)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    conn = Lake.embedded(home).connect()  # a fresh reader sees every commit
    per_writer = dict(conn.execute("SELECT writer, count(*) FROM lake.lines GROUP BY writer").fetchall())
    assert per_writer == {w: BATCHES * ROWS for w in range(WRITERS)}
    assert conn.execute("SELECT count(*) FROM (SELECT DISTINCT writer, i FROM lake.lines)").fetchone()[0] \
        == WRITERS * BATCHES * ROWS
    # one snapshot per committed batch, and the table as it was before any of them
    assert len([s for s in snapshots(conn) if s > before]) == WRITERS * BATCHES
    assert conn.execute(f"SELECT count(*) FROM lake.lines AT (VERSION => {before})").fetchone()[0] == 0
    print("conflicts retried:", sum(r["retries"] for r in reports))


#: One process attaching a lake nobody has created yet, at the same instant as the others.
FIRST_ATTACH = """
import sys, time
from pathlib import Path
from factory_assets.lib import lake as lk
lk.Lake.embedded(Path(sys.argv[1])).install()
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
conn = lk.Lake.embedded(Path(sys.argv[1])).connect()
lk.ddl(conn, "CREATE TABLE IF NOT EXISTS lake.attached (process INTEGER)")
lk.insert_rows(conn, "lake.attached", "SELECT " + str(int(sys.argv[2])))
"""


@pytest.mark.parametrize("round_", range(3))
def test_processes_attaching_a_new_lake_at_once_all_create_it_as_one(tmp_path, round_):
    """The first attach creates the catalog's tables: several processes doing it at the same instant
    (two locations' first nights) once failed with 'database is locked' while initialising DuckLake."""
    import time

    home, processes = tmp_path / "home", 6
    Lake.embedded(home).install()  # the extensions, so every process reaches the attach together
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_ATTACH, str(home), str(p), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(processes)]
    errors = [err[-1500:] for proc in procs for _, err in [proc.communicate(timeout=120)] if proc.returncode]
    assert not errors, errors[0]
    conn = Lake.embedded(home).connect()
    assert sorted(p for (p,) in conn.execute("SELECT process FROM lake.attached").fetchall()) == list(range(processes))


def test_a_conflict_is_retried_and_anything_else_raised_at_once(tmp_path):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise duckdb.TransactionException("Transaction conflict: cannot commit, another writer committed first")
        return "committed"

    assert with_retries(flaky, first_delay_s=0.001) == "committed" and len(calls) == 3
    assert is_conflict(duckdb.IOException("database is locked"))
    assert not is_conflict(duckdb.ConstraintException("NOT NULL constraint failed: lines.i"))
    conn = Lake.embedded(tmp_path / "home").connect()
    conn.execute("CREATE TABLE lake.lines (writer INTEGER NOT NULL, i BIGINT)")
    with pytest.raises(duckdb.ConstraintException):
        insert_rows(conn, "lake.lines", "SELECT NULL, 1")
    assert insert_rows(conn, "lake.lines", "SELECT 1, range FROM range(7)") == 7
    assert conn.execute("SELECT count(*) FROM lake.lines").fetchone()[0] == 7  # the failed insert left nothing


def test_a_table_with_the_same_columns_gets_new_rows_without_a_schema_change(tmp_path):
    conn = Lake.embedded(tmp_path / "home").connect()
    conn.execute("USE lake")
    conn.execute("CREATE SCHEMA features")

    def schema_version() -> int:
        return conn.execute("SELECT max(schema_version) FROM ducklake_snapshots('lake')").fetchone()[0]

    assert replace_table(conn, "features", "daily", "SELECT range AS day, range * 2.5 :: DOUBLE AS amount FROM range(5)") == "table"
    version = schema_version()
    assert replace_table(conn, "features", "daily", "SELECT range + 10 AS day, 1.5 :: DOUBLE AS amount FROM range(3)") == "rows"
    assert schema_version() == version  # no catalog change: other processes keep their cached catalog
    assert conn.execute("SELECT day, amount FROM features.daily ORDER BY day").fetchall() == [(10, 1.5), (11, 1.5), (12, 1.5)]
    # a changed column list (a new column, or a changed type) replaces the table itself
    assert replace_table(conn, "features", "daily", "SELECT range AS day, 'x' AS amount, 1 AS n FROM range(2)") == "table"
    assert schema_version() > version
    assert conn.execute("SELECT * FROM features.daily ORDER BY day").fetchall() == [(0, "x", 1), (1, "x", 1)]
    # a failing query leaves the rows as they were (one transaction)
    with pytest.raises(duckdb.Error):
        replace_table(conn, "features", "daily", "SELECT range AS day, 'x' AS amount, 1 / 0 :: INTEGER AS n FROM range(2) "
                      "WHERE error('boom') IS NULL")
    assert conn.execute("SELECT count(*) FROM features.daily").fetchone()[0] == 2


def test_small_files_of_an_append_only_table_are_merged_keeping_rows_and_history(tmp_path):
    conn = Lake.embedded(tmp_path / "home").connect()
    conn.execute("USE lake")
    conn.execute("CREATE TABLE lines (day INTEGER, i BIGINT)")
    for day in range(7):  # one commit (and one data file) per ingested day
        conn.execute(f"INSERT INTO lines SELECT {day}, range FROM range(1000)")
    assert merge_small_files(conn, "main", "lines") == 0  # below the threshold: left alone
    after_seven = snapshots(conn)[-1]
    conn.execute("INSERT INTO lines SELECT 7, range FROM range(1000)")

    def files() -> int:
        return conn.execute("SELECT count(*) FROM ducklake_list_files('lake', 'lines')").fetchone()[0]

    assert files() == 8
    assert merge_small_files(conn, "main", "lines") == 8 and files() == 1
    assert conn.execute("SELECT day, count(*), sum(i) FROM lines GROUP BY day ORDER BY day").fetchall() == [
        (day, 1000, 499500) for day in range(8)]
    assert conn.execute(f"SELECT count(*) FROM lines AT (VERSION => {after_seven})").fetchone()[0] == 7000
    plain = duckdb.connect()
    plain.execute("CREATE TABLE lines AS SELECT 1 AS i")
    assert merge_small_files(plain, "main", "lines") == 0  # a DuckDB file has no data files to merge


@pytest.mark.parametrize("kind", ["file", "lake"])
def test_relation_columns_binds_tables_and_views_and_a_missing_name_leaves_the_transaction_usable(tmp_path, kind):
    """What the layers ask of one relation (its columns, or whether it exists) without listing the
    catalog (information_schema): the same names and types, for tables and views, on both kinds."""
    from factory_assets.lib.warehouse_sql import relation_columns, table_exists

    conn = duckdb.connect(str(tmp_path / "w.duckdb")) if kind == "file" else Lake.embedded(tmp_path / "home").connect()
    if kind == "lake":
        conn.execute("USE lake")
    conn.execute('CREATE SCHEMA "my schema"')
    conn.execute('CREATE TABLE "my schema".t (id BIGINT, amount DECIMAL(18,2), seen_at TIMESTAMPTZ, tags VARCHAR[])')
    conn.execute('CREATE VIEW "my schema".v AS SELECT id, amount FROM "my schema".t')
    listed = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_schema = 'my schema' AND table_name = 't' ORDER BY ordinal_position").fetchall())
    assert relation_columns(conn, "my schema.t") == listed == {
        "id": "BIGINT", "amount": "DECIMAL(18,2)", "seen_at": "TIMESTAMP WITH TIME ZONE", "tags": "VARCHAR[]"}
    assert list(relation_columns(conn, "my schema.v")) == ["id", "amount"]
    conn.execute("BEGIN TRANSACTION")
    assert relation_columns(conn, "my schema.gone") is None and not table_exists(conn, "no_schema.t")
    conn.execute('INSERT INTO "my schema".t (id) VALUES (1), (2)')  # the transaction survived both misses
    conn.execute("COMMIT")
    assert table_exists(conn, "my schema.v") and conn.execute('SELECT count(*) FROM "my schema".v').fetchone() == (2,)
