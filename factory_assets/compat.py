"""Every use of a framework's private API, in one place: Dagster, dagster-dask and dbt-duckdb.

Private (underscore) modules, attributes and methods change without notice between releases, and a
change breaks silently: nothing fails at import, a run hangs or a file stays locked. So no other
module of this project imports a private name from dagster or dbt (tests/test_compat.py scans the
source), and tests/test_compat.py pins the installed dagster, dagster-dask, dbt-core, dbt-duckdb and
dagster-dbt to the versions in requirements.lock: whoever upgrades one of them re-checks this file,
section by section, against the new release (each section says what it relies on and why it exists).

The rest of the code calls the names in ``__all__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

# ----------------------------------------------------------------------------------------------
# Run monitoring (execution.FactoryRunLauncher): the result type of a run worker health check.
# Why private: Dagster 1.13 exports RunLauncher.check_run_worker_health's return type and its status
# enum only from dagster._core.launcher. No upstream issue found asking to export them.
# ----------------------------------------------------------------------------------------------
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

# ----------------------------------------------------------------------------------------------
# The embedded instance's pooled SQLite storage (instance_storage.py).
# Why: Dagster's SQLite run and event-log storages open a new engine and SQLite connection for every
# write (NullPool); instance_storage.py's module doc gives the cost and BENCHMARKS.md the measurement.
# Relies on: the storage classes' module paths; SqliteEventLogStorage._connect(shard) being the one
# place shards are connected, with _db_lock, _initialized_dbs and _initdb; SqliteRunStorage's
# _conn_string and connect(); DagsterSqliteStorage's attributes _run_storage, _event_log_storage,
# _schedule_storage, _inst_data and the sqlite_storage module's _*_directory helpers.
# No upstream issue found for a pooled SQLite storage (searched dagster-io/dagster issues).
# ----------------------------------------------------------------------------------------------
from dagster._config import StringSource
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)

__all__ = [
    "CheckRunHealthResult",
    "DagsterSqliteStorage",
    "PooledSqliteEventLogStorage",
    "PooledSqliteRunStorage",
    "PooledSqliteStorage",
    "WorkerStatus",
    "close_dbt_duckdb_environment",
    "dask_executor",
    "launcher_instance",
    "reconstructable_job",
    "settle_skips_after_abandons",
]


# Run monitoring (execution.FactoryRunLauncher), continued.
def launcher_instance(launcher) -> dg.DagsterInstance:
    """The instance a run launcher was configured by. Why private: RunLauncher keeps it only in
    MayHaveInstanceWeakref's ``_instance`` (Dagster's own launchers read it there); the health check
    gets no context to take it from."""
    return launcher._instance


def _engine_cache(max_engines: int):
    from factory_assets.instance_storage import EngineCache  # instance_storage imports this module

    return EngineCache(max_engines)


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's run-sharded SQLite event log, keeping one engine per shard (instance_storage.py)."""

    def __init__(self, base_dir: str, inst_data=None):
        from factory_assets.instance_storage import MAX_OPEN_SHARDS

        self.engines = _engine_cache(MAX_OPEN_SHARDS + 1)  # + the index shard; the parent connects
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator:
        with self._db_lock:
            engine = self.engines.get(self.conn_string_for_shard(shard), SQLITE_BUSY_TIMEOUT_SECONDS)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def wipe(self) -> None:
        self.engines.close_all()  # no open handle may outlive the files wipe deletes
        super().wipe()

    def dispose(self) -> None:
        self.engines.close_all()
        super().dispose()


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage, keeping its engine (instance_storage.py)."""

    def __init__(self, conn_string: str, inst_data=None):
        self.engines = _engine_cache(1)
        super().__init__(conn_string, inst_data=inst_data)

    @contextmanager
    def connect(self) -> Iterator:
        engine = self.engines.get(self._conn_string)
        with engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engines.close_all()
        super().dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """``DagsterSqliteStorage`` (same folders: ``history/``, ``history/runs/``, ``schedules/``) with
    pooled run and event-log connections. ``base_dir`` is the instance's DAGSTER_HOME.

    dagster.yaml names it as ``factory_assets.instance_storage.PooledSqliteStorage`` (re-exported there)."""

    def __init__(self, base_dir: str, inst_data=None):
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def config_type(cls):
        return {"base_dir": StringSource}

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        import os

        os.makedirs(config_value["base_dir"], exist_ok=True)
        return cls(config_value["base_dir"], inst_data=inst_data)


# ----------------------------------------------------------------------------------------------
# A run whose failures leave a step both skipped and abandoned must end (execution.py, issue 19 item 7).
# Why: in Dagster 1.13 ActiveExecution.plan_events_iterator emits pending skips, then pending abandons,
# and stops; an abandon can make a step ready to be skipped that nothing processes again, and the
# in-process executor loops for ever at 100 % CPU. Relies on: ActiveExecution's module path, the
# plan_events_iterator(job_context) generator and its _pending_skip / _pending_abandon queues.
# Upstream: probably dagster-io/dagster#33661 ("Graph execution hangs when upstream tasks fails and
# downstream tasks are skipped", open); tests/test_execution.py reproduces this project's case.
# ----------------------------------------------------------------------------------------------


def settle_skips_after_abandons() -> None:
    """Make Dagster's plan bookkeeping settle completely after each step (a fix for Dagster 1.13).

    After a step ends, ``ActiveExecution.plan_events_iterator`` first emits every skip (a step whose
    input was not produced), then every abandon (a step whose input failed), and stops. Abandoning a
    step can make a third step ready to be *skipped*: one that also reads a skipped step. In the
    nightly chain, ``feedback/use_case_portfolio`` reads ``operations/service_priority`` (skipped when
    no use case without champion scored) and every use case's monitoring (abandoned when its
    prediction step fails); when the last failing prediction step ran after the skip, the portfolio
    waited in the skip queue that nothing processed again. The in-process executor then found no step
    to run, nothing in flight and the plan not complete, and looped forever at 100 % CPU in
    ``ActiveExecution._update`` (issue 19, item 7). Here both phases repeat until neither moves a
    step, so every skip and abandon is reported and the run ends with its failures. Idempotent.
    """
    from dagster._core.execution.plan.active import ActiveExecution

    original = ActiveExecution.plan_events_iterator
    if getattr(original, "_factory_settles", False):
        return

    def plan_events_iterator(self, job_context):
        yield from original(self, job_context)
        while self._pending_skip or self._pending_abandon:  # queued by the last abandon
            yield from original(self, job_context)

    plan_events_iterator._factory_settles = True
    plan_events_iterator._factory_original = original  # what the tests put back to show the hang
    ActiveExecution.plan_events_iterator = plan_events_iterator


# ----------------------------------------------------------------------------------------------
# dagster-dask's executor with DaskExecutor.execute re-implemented (execution.py, FACTORY_EXECUTOR=dask).
# Why: (1) Dask >= 2024.12 walks every tuple passed to Client.submit looking for futures; Dagster's run
# and partition records are tuples that forbid iteration ("Iteration is not allowed on @record"), so a
# partitioned run failed before its first step: the arguments travel wrapped in one opaque object.
# No upstream issue found for that failure; dagster-io/dagster#33771 reports the same @record guard
# breaking dask's sizeof. (2) The Dask task key carries the run id, so two runs of one job do not share
# (and skip) each other's tasks: dagster-io/dagster#21418.
# Relies on: DaskExecutor's cluster_type, cluster_configuration and build_dict(job_name);
# dagster_dask.executor's query_on_dask_worker and get_dask_resource_requirements; the plan context's
# reconstructable_job, dagster_run, run_config, instance and the plan's known_state.
# ----------------------------------------------------------------------------------------------


def dask_executor(cluster: dict):
    """dagster-dask's executor for ``cluster`` ({"existing": {...}} or {"local": {...}}), submitting
    steps with the two fixes above."""
    from dagster_dask.executor import DaskExecutor  # imports dask: only when chosen

    class FactoryDaskExecutor(DaskExecutor):
        def execute(self, plan_context, execution_plan):
            yield from _submit_steps(self, plan_context, execution_plan)

    ((kind, configuration),) = cluster.items()
    return FactoryDaskExecutor(kind, configuration)


class _Opaque:
    """Step arguments that Dask must pass through untouched (see :func:`_submit_steps`)."""

    __slots__ = ("args",)

    def __init__(self, args: tuple):
        self.args = args


def _run_step(dependencies, opaque: _Opaque):
    from dagster_dask.executor import query_on_dask_worker

    return query_on_dask_worker(dependencies, *opaque.args)


def _with_execution_interrupts(iterator):
    """Each ``next`` under Dagster's public ``raise_execution_interrupts`` (what the private
    ``dagster._utils.iterate_with_context`` does in ``DaskExecutor.execute``)."""
    while True:
        with dg.raise_execution_interrupts():
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item


def _submit_steps(executor, plan_context, execution_plan):
    """dagster-dask's step submission, as in ``DaskExecutor.execute``, with the two fixes above."""
    import dask.distributed
    from dagster_dask.executor import get_dask_resource_requirements

    if not plan_context.instance.is_persistent:
        raise dg.DagsterInvariantViolationError(
            "the Dask executor needs a persistent Dagster instance: set DAGSTER_HOME to a folder with a dagster.yaml "
            "(deploy/production/dagster.yaml for PostgreSQL).")
    if executor.cluster_type == "existing":
        cluster = executor.cluster_configuration["address"]
    else:
        from dask.distributed import LocalCluster

        cluster = LocalCluster(**executor.build_dict(plan_context.job_name))
    run = plan_context.dagster_run
    with dask.distributed.Client(cluster) as client:
        futures, by_step = [], {}
        for level in execution_plan.get_steps_to_execute_by_level():
            for step in level:
                dependencies = [by_step[key] for step_input in step.step_inputs for key in step_input.dependency_keys]
                args = (plan_context.reconstructable_job, run, plan_context.run_config, [step.key],
                        plan_context.instance.get_ref(), execution_plan.known_state)
                future = client.submit(_run_step, dependencies, _Opaque(args), key=f"{run.run_id}.{step.key}",
                                       resources=get_dask_resource_requirements(step.tags), pure=False)
                futures.append(future)
                by_step[step.key] = future
        for _future, events in _with_execution_interrupts(dask.distributed.as_completed(futures, with_results=True)):
            yield from events


# ----------------------------------------------------------------------------------------------
# A job of the code location by reference, for executors that load it in other processes (cli/jobs.py).
# Why private: ReconstructableRepository.for_module points at the whole `defs` of a module, so each
# step process loads the same code location and the run can select assets of any job. The public
# dg.build_reconstructable_job / dg.reconstructable rebuild one job alone (an ephemeral repository);
# not switched to them here because the multiprocess and Dask paths (tests/test_production_profile.py,
# PostgreSQL) were not re-run with them. No upstream issue found.
# ----------------------------------------------------------------------------------------------


def reconstructable_job(module: str, attribute: str, job_name: str, working_directory: str):
    """The job ``job_name`` of the Definitions ``module.attribute``, loadable in another process."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repository = ReconstructableRepository.for_module(module, attribute, working_directory=working_directory)
    return repository.get_reconstructable_job(job_name)


# ----------------------------------------------------------------------------------------------
# dbt-duckdb keeps one DuckDB database open for the whole process (processing/dbt_cli.py).
# Why: after dbtRunner is done, the open database still holds the warehouse file's write lock, so this
# process's read-only connections fail ("different configuration") and other processes cannot write.
# The public DuckDBConnectionManager.close_all_connections() (dbt-duckdb 1.11.1) only drops the
# reference, leaving the file open until garbage collection; this closes it. Relies on the class
# attributes _LOCK and _ENV (an Environment with close()). Upstream: duckdb/dbt-duckdb#616 (closed;
# the maintainer suggests close_all_connections or keep_open: false).
# ----------------------------------------------------------------------------------------------


def close_dbt_duckdb_environment() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process; nothing when another adapter
    is installed instead."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter (production warehouse): nothing process-wide to release
        return
    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None
