"""The embedded instance's pooled SQLite storage: same files as Dagster's, events never lost or stale."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from factory_assets import instance_storage
from factory_assets.instance_storage import (
    MAX_OPEN_SHARDS,
    EngineCache,
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
)
from factory_assets.settings import FactoryPaths, ensure_dagster_home


@dg.asset
def answer() -> int:
    return 42


@dg.asset_check(asset=answer)
def answer_is_positive(answer: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=answer > 0)


JOB = dg.Definitions(assets=[answer], asset_checks=[answer_is_positive],
                     jobs=[dg.define_asset_job("answer_job")]).resolve_job_def("answer_job")


@pytest.fixture
def home(tmp_path, monkeypatch):
    dagster_home = ensure_dagster_home(FactoryPaths(tmp_path / "factory").create())
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    return dagster_home


def test_the_embedded_instance_uses_the_pooled_storage_in_dagsters_own_folders(home):
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PooledSqliteRunStorage)
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        result = JOB.execute_in_process(instance=instance)
        assert result.success
        # the very files Dagster's default SQLite storage uses, so the UI and CLI read them alike
        assert (home / "history" / "runs.db").exists()
        assert (home / "history" / "runs" / f"{result.run_id}.db").exists()
        assert (home / "history" / "runs" / "index.db").exists()
        assert instance.get_latest_materialization_event(dg.AssetKey("answer")).run_id == result.run_id
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("answer"), "answer_is_positive")])
        assert len(check) == 1
    # Dagster's stock SQLite storage reads what the pooled one wrote
    from factory_assets.compat import DagsterSqliteStorage

    stock = DagsterSqliteStorage.from_local(str(home))
    assert [r.run_id for r in stock.run_storage.get_runs()] == [result.run_id]
    stock_events = stock.event_log_storage.get_records_for_run(result.run_id, limit=1000).records
    assert any(r.event_log_entry.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION for r in stock_events)


def test_a_kept_connection_sees_what_another_process_writes(home):
    """The webserver keeps its connections open while run workers write: no stale reads."""
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs() == []  # this process's connection is open from here on
        script = textwrap.dedent(f"""
            import dagster as dg
            from {__name__.rsplit('.', 1)[-1]} import JOB
            with dg.DagsterInstance.get() as instance:
                print(JOB.execute_in_process(instance=instance).run_id)
        """)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             cwd=str(Path(__file__).parent))
        run_id = out.stdout.strip().splitlines()[-1]
        assert [r.run_id for r in instance.get_runs()] == [run_id]
        assert instance.get_run_by_id(run_id).is_success
        assert instance.get_latest_materialization_event(dg.AssetKey("answer")).run_id == run_id


def test_run_shards_keep_at_most_max_open_shards_engines(home):
    with dg.DagsterInstance.get() as instance:
        runs = [JOB.execute_in_process(instance=instance).run_id for _ in range(MAX_OPEN_SHARDS + 3)]
        engines = instance.event_log_storage.engines
        assert len(engines) == MAX_OPEN_SHARDS + 1  # the newest run shards and the index shard
        # an evicted shard reopens: the oldest run's events are all still there
        assert instance.get_run_by_id(runs[0]).is_success
        records = instance.get_records_for_run(runs[0], limit=1000).records
        assert any(r.event_log_entry.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS for r in records)


def test_wipe_closes_connections_before_deleting_the_files(home):
    with dg.DagsterInstance.get() as instance:
        first = JOB.execute_in_process(instance=instance).run_id
        assert instance.get_records_for_run(first, limit=1000).records  # its shard's engine is open
        instance.wipe()
        assert not (home / "history" / "runs" / f"{first}.db").exists()
        # a connection kept past the delete would still read the unlinked file's events
        assert instance.get_records_for_run(first, limit=1000).records == []
        second = JOB.execute_in_process(instance=instance).run_id
        assert (home / "history" / "runs" / f"{second}.db").exists()
        assert [r.run_id for r in instance.get_runs()] == [second]


def test_engine_cache_reuses_evicts_and_drops_a_forked_parents_engines(tmp_path, monkeypatch):
    cache = EngineCache(2)
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("a", "b", "c")]
    a = cache.get(urls[0])
    assert cache.get(urls[0]) is a
    b = cache.get(urls[1])
    cache.get(urls[0])  # a is now the most recently used: b goes first
    cache.get(urls[2])
    assert len(cache) == 2 and cache.get(urls[0]) is a
    assert cache.get(urls[1]) is not b  # b was evicted and is built again
    monkeypatch.setattr(instance_storage.os, "getpid", lambda: -1)  # as seen from a forked child
    fresh = cache.get(urls[0])
    assert fresh is not a and len(cache) == 1
