"""Which engine runs a run's steps: chosen by configuration (FACTORY_EXECUTOR), not by code.

- ``in_process`` (default): one process per run. Steps share imports (dbt, polars, evidently) and
  DuckDB's single writer is trivially respected; fastest on one machine (shared/ANCHORS.md: a
  4-asset chain took 21 s in process vs 43 s multiprocess on 2 cores).
- ``multiprocess``: Dagster's executor, one process per step on this machine.
- ``dask``: dagster-dask; each step is a task on a Dask cluster's workers. FACTORY_DASK_SCHEDULER
  is the scheduler's address (``tcp://host:8786``, a cluster started with ``dask scheduler`` /
  ``dask worker`` or by the Dask Helm chart); without it a local cluster of FACTORY_DASK_WORKERS
  worker processes is started per run. Workers need this project installed and the same
  FACTORY_HOME (a shared volume) and DAGSTER_HOME (the Postgres-backed instance).

Steps on separate workers take the warehouse's reader/writer lock before opening DuckDB
(``lib/warehouse_lock``), so they wait for each other rather than collide on its file lock.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTORS = ("in_process", "multiprocess", "dask")


def executor_name(environ: dict | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("FACTORY_EXECUTOR", "in_process").strip() or "in_process"


def executor_from_env(environ: dict | None = None) -> dg.ExecutorDefinition:
    env = os.environ if environ is None else environ
    name = executor_name(env)
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "dask":
        address = env.get("FACTORY_DASK_SCHEDULER")
        if address:
            cluster = {"existing": {"address": address}}
        else:
            workers = env.get("FACTORY_DASK_WORKERS", "2")
            if not workers.isdigit() or int(workers) < 1:  # "0", "two", "-1"
                raise ValueError(f"FACTORY_DASK_WORKERS={workers!r}: give a whole number of worker processes, at least 1.")
            cluster = {"local": {"n_workers": int(workers), "threads_per_worker": 1, "processes": True}}
        return _dask_executor(cluster)
    raise ValueError(f"FACTORY_EXECUTOR={name!r} is not an executor this project knows: choose one of "
                     f"{', '.join(EXECUTORS)} (see README, 'Going to production').")


def _dask_executor(cluster: dict) -> dg.ExecutorDefinition:
    """dagster-dask's executor, with the two fixes this project needs (see :func:`_submit_steps`)."""

    @dg.executor(name="dask", requirements=dg.multiple_process_executor_requirements())
    def dask(_init_context):
        from dagster_dask.executor import DaskExecutor  # imports dask: only when chosen

        class FactoryDaskExecutor(DaskExecutor):
            def execute(self, plan_context, execution_plan):
                yield from _submit_steps(self, plan_context, execution_plan)

        ((kind, configuration),) = cluster.items()
        return FactoryDaskExecutor(kind, configuration)

    return dask


class _Opaque:
    """Step arguments that Dask must pass through untouched (see :func:`_submit_steps`)."""

    __slots__ = ("args",)

    def __init__(self, args: tuple):
        self.args = args


def _run_step(dependencies, opaque: _Opaque):
    from dagster_dask.executor import query_on_dask_worker

    return query_on_dask_worker(dependencies, *opaque.args)


def _submit_steps(executor, plan_context, execution_plan):
    """dagster-dask's step submission, as in ``DaskExecutor.execute``, with two fixes:

    - Dask >= 2024.12 walks every tuple passed to ``Client.submit`` looking for futures; Dagster's
      run and partition records are tuples that forbid iteration, so a partitioned run (the nightly
      job) failed before its first step ("Iteration is not allowed on @record"). The arguments
      travel wrapped in one opaque object instead.
    - The Dask task key carries the run id, so two runs of the same job do not share (and skip)
      each other's tasks (dagster-io/dagster#21418).
    """
    import dask.distributed

    from dagster._core.errors import raise_execution_interrupts
    from dagster._utils import iterate_with_context
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
        for _future, events in iterate_with_context(raise_execution_interrupts,
                                                    dask.distributed.as_completed(futures, with_results=True)):
            yield from events
