"""The production profile, for real on loopback: a PostgreSQL-backed Dagster instance
(deploy/production/dagster.yaml, credentials only from the environment) and the nightly chain's
steps on separate Dask workers, with no code change, only configuration.

One PostgreSQL server and one small world (28 days x 40 order lines) for the module. The chain
first runs six days in process against Postgres; then the last day runs on a Dask cluster of three
worker processes (a scheduler and `dask worker`s started as a user would), with the same code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import postgres_server
from factory_assets.lib.warehouse import open_warehouse
from factory_assets.settings import FactoryPaths

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIRST, LAST = date(2025, 1, 1), date(2025, 1, 28)
PROFILE = ROOT / "deploy" / "production" / "dagster.yaml"
LAKE_DATABASE = "factory_lake"


def _env(home: Path, server: postgres_server.PostgresServer, **extra) -> dict:
    env = {**os.environ, "FACTORY_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
           "FACTORY_WAREHOUSE_PATH": str(home / "warehouse.duckdb"), **server.env,
           "FACTORY_LAKE_CATALOG": server.lake_catalog(LAKE_DATABASE), **extra,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FACTORY_PARTITIONS_START", None)
    return env


@contextmanager
def _lake(world):
    """The world's warehouse: the lake whose catalog is in the module's PostgreSQL server."""
    saved = os.environ.get("FACTORY_LAKE_CATALOG")
    os.environ["FACTORY_LAKE_CATALOG"] = world.env["FACTORY_LAKE_CATALOG"]
    try:
        with open_warehouse(FactoryPaths(world.home)) as conn:
            yield conn
    finally:
        if saved is None:
            os.environ.pop("FACTORY_LAKE_CATALOG")
        else:
            os.environ["FACTORY_LAKE_CATALOG"] = saved


def factory(env: dict, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "factory"), *map(str, args)], env=env, cwd=env["FACTORY_HOME"],
                          capture_output=True, text=True, timeout=timeout)
    return done


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="module")
def server():
    started = postgres_server.start()
    started.create_database(LAKE_DATABASE)  # the lake's catalog: its own database beside Dagster's
    yield started
    postgres_server.stop(started)


@pytest.fixture(scope="module")
def world(tmp_path_factory, server):
    home = tmp_path_factory.mktemp("production") / "home"
    (home / "dagster_home").mkdir(parents=True)
    shutil.copy(PROFILE, home / "dagster_home" / "dagster.yaml")
    env = _env(home, server)
    ok(factory(env, "data", "generate", "--days", (LAST - FIRST).days + 1, "--lines-per-day", 40, "--end", LAST, "--json"))
    landed = {p.name: p.read_text().count("\n") - 1 for p in (home / "landing" / "transactions").iterdir()}
    first_run = ok(factory(env, "run", "--from", LAST - timedelta(days=6), "--to", LAST - timedelta(days=1), "--json"))
    return SimpleNamespace(home=home, env=env, landed=landed, first=json.loads(first_run.stdout))


def _instance(world):
    import dagster as dg

    saved = {k: os.environ.get(k) for k in world.env if k.startswith("DAGSTER_PG_")}
    os.environ.update({k: v for k, v in world.env.items() if k.startswith("DAGSTER_PG_")})
    try:
        return dg.DagsterInstance.from_config(str(world.home / "dagster_home"))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_runs_and_materializations_are_stored_in_postgres_not_sqlite(world, server):
    report = world.first
    assert report["ok"] and report["materializations"] > 30
    assert server.query("select count(*) from runs where run_id = %s", report["run_id"]) == [(1,)]
    stored = server.query("select count(*) from event_logs where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'",
                          report["run_id"])[0][0]
    assert stored == report["materializations"]
    checks = server.query("select count(*) from event_logs where run_id = %s and dagster_event_type = 'ASSET_CHECK_EVALUATION'",
                          report["run_id"])[0][0]
    assert checks == report["checks"]["passed"] + report["checks"]["failed"] > 60
    keys = {row[0] for row in server.query("select asset_key from asset_keys")}
    assert '["processing", "fct_order_lines"]' in keys and '["feedback", "model_compliance"]' in keys
    # the embedded SQLite storage was never created, and no credential is written in the file
    assert not (world.home / "dagster_home" / "history").exists()
    assert server.password not in PROFILE.read_text() and "DAGSTER_PG_PASSWORD" in PROFILE.read_text()


def test_the_run_queue_lets_warehouse_writers_run_at_once_on_the_lake(world):
    import dagster as dg

    instance = _instance(world)
    coordinator = instance.run_coordinator
    assert isinstance(coordinator, dg.QueuedRunCoordinator)
    queue = instance.get_concurrency_config().run_queue_config
    assert not queue.tag_concurrency_limits  # the lake takes writers at once; a DuckDB file would need one
    assert queue.max_concurrent_runs == 8
    from factory_assets.definitions import defs

    for job in ("supply_chain_nightly", "assembly_training"):
        assert defs.resolve_job_def(job).tags.get("factory/warehouse_writer") == "true", job
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2


@pytest.fixture(scope="module")
def dask_cluster(world, server):
    """A Dask scheduler and three worker processes on loopback, started with the `dask` CLI."""
    port = postgres_server.free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = _env(world.home, server, FACTORY_EXECUTOR="dask", FACTORY_DASK_SCHEDULER=address)
    logs = world.home / "dask"
    logs.mkdir()
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=env, stdout=(logs / "scheduler.log").open("w"), stderr=subprocess.STDOUT)]
    workers = [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                 "--name", f"worker-{i}"], env=env, stdout=(logs / f"worker-{i}.log").open("w"),
                                stderr=subprocess.STDOUT) for i in range(3)]
    procs += workers
    try:
        from distributed import Client

        deadline = time.monotonic() + 120
        with Client(address, timeout=60) as client:
            while len(client.scheduler_info()["workers"]) < 3:
                assert time.monotonic() < deadline, "the Dask workers did not join: see " + str(logs)
                time.sleep(0.5)
        yield SimpleNamespace(address=address, env=env, worker_pids={w.pid for w in workers}, logs=logs)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def dask_night(world, dask_cluster):
    done = factory(dask_cluster.env, "run", "--date", LAST, "--json")
    return SimpleNamespace(done=done, report=json.loads(done.stdout) if done.stdout.strip().startswith("{") else None)


def test_the_nightly_chain_runs_its_steps_on_separate_dask_workers(world, dask_cluster, dask_night):
    ok(dask_night.done)
    report = dask_night.report
    assert report["ok"] and report["failed_steps"] == []
    instance = _instance(world)
    import dagster as dg

    starts = instance.all_logs(report["run_id"], of_type=dg.DagsterEventType.STEP_START)
    pids = {entry.dagster_event.pid for entry in starts}
    assert len(starts) > 20
    assert pids <= dask_cluster.worker_pids and len(pids) >= 2, (pids, dask_cluster.worker_pids)
    # the same assets as the in-process nights materialised, for that day
    assert {"processing/fct_order_lines", "raw_material/transactions", "assembly/customer_activity"} <= set(report["materialized"])


def test_steps_on_separate_workers_write_the_warehouse_once_and_completely(world, dask_night, server):
    ok(dask_night.done)
    with _lake(world) as conn:
        per_day = dict(conn.execute("select _partition_date::varchar, count(*) from raw.transactions group by 1").fetchall())
        lines, distinct = conn.execute("select count(*), count(distinct order_line_id) from marts.fct_order_lines").fetchone()
    expected = {name.removeprefix("transactions_").split(".")[0]: rows for name, rows in world.landed.items()}
    run_days = {str(LAST - timedelta(days=k)) for k in range(7)}
    assert per_day == {day: rows for day, rows in expected.items() if day in run_days}
    assert lines == distinct > 0  # no order line twice
    # the lake's catalog is the PostgreSQL database, not a file under FACTORY_HOME
    assert not (world.home / "lake" / "catalog.sqlite").exists()
    lake_db = postgres_server.PostgresServer(**{**vars(server), "database": LAKE_DATABASE})
    assert lake_db.query("select count(*) from ducklake_snapshot")[0][0] > 10


def _counts(world, day: date) -> tuple[int, int, int]:
    with _lake(world) as conn:
        raw = conn.execute("select count(*) from raw.transactions where _partition_date = ?", [day]).fetchone()[0]
        lines, distinct = conn.execute("select count(*), count(distinct order_line_id) from marts.fct_order_lines").fetchone()
    return raw, lines, distinct


def test_a_worker_killed_mid_step_is_replaced_and_a_rerun_changes_nothing(world, dask_cluster, dask_night, server):
    """SIGKILL the worker running the dbt step (and, with it, its dbt): Dask runs the step again on
    another worker, the run succeeds, every table is whole, and running the day again adds nothing."""
    import signal

    import dagster as dg

    ok(dask_night.done)
    day = LAST - timedelta(days=7)  # still waiting in the landing zone
    proc = subprocess.Popen([str(BIN / "factory"), "run", "--date", str(day), "--json"], env=dask_cluster.env,
                            cwd=world.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    instance = _instance(world)
    known = {r.run_id for r in instance.get_runs()}
    victim, deadline = None, time.monotonic() + 300
    while victim is None:
        assert proc.poll() is None and time.monotonic() < deadline, "the dbt step never started"
        for run in instance.get_runs(limit=3):
            if run.run_id in known:
                continue
            starts = [e for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                      if e.step_key == "processing_dbt_models"]
            if starts:
                victim, run_id = starts[0].dagster_event.pid, run.run_id
        time.sleep(0.3)
    time.sleep(2.0)  # dbt is building now
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-5000:]}"
    report = json.loads(out)
    assert report["run_id"] == run_id and report["ok"]
    dbt_starts = [e.dagster_event.pid for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
                  if e.step_key == "processing_dbt_models"]
    assert dbt_starts[0] == victim and len(dbt_starts) == 2 and dbt_starts[1] in dask_cluster.worker_pids - {victim}
    raw, lines, distinct = _counts(world, day)
    assert raw == world.landed[f"transactions_{day}.csv"] and lines == distinct
    again = ok(factory(dask_cluster.env, "run", "--date", day, "--json"))
    assert json.loads(again.stdout)["ok"]
    assert _counts(world, day) == (raw, lines, distinct)  # nothing twice
