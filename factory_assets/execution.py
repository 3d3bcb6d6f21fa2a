"""Which engine runs a run's steps: chosen by configuration (FACTORY_EXECUTOR), not by code.

- ``in_process`` (default): one process per run. Steps share imports (dbt, polars, evidently) and
  DuckDB's single writer is trivially respected; fastest on one machine, where a process per step
  pays those imports again for every step (README, "Steps on separate workers (Dask)").
- ``multiprocess``: Dagster's executor, one process per step on this machine.
- ``dask``: dagster-dask; each step is a task on a Dask cluster's workers. FACTORY_DASK_SCHEDULER
  is the scheduler's address (``tcp://host:8786``, a cluster started with ``dask scheduler`` /
  ``dask worker`` or by the Dask Helm chart); without it a local cluster of FACTORY_DASK_WORKERS
  worker processes is started per run. Workers need this project installed and the same
  FACTORY_HOME (a shared volume) and DAGSTER_HOME (the Postgres-backed instance).

Steps on separate workers take the warehouse's reader/writer lock before opening DuckDB
(``lib/warehouse_lock``), so they wait for each other rather than collide on its file lock.

Which process runs a run (its "run worker") is watched by the instance's run monitoring through
``FactoryRunLauncher`` (named in dagster.yaml): a run whose process died is marked failed, so it
frees the one warehouse-writer slot of the run queue, and the daemon retries it where it can.
"""

from __future__ import annotations

import os
import socket
import time

import dagster as dg
from factory_assets.compat import (
    CheckRunHealthResult,
    WorkerStatus,
    dask_executor,
    launcher_instance,
    settle_skips_after_abandons,
)

EXECUTORS = ("in_process", "multiprocess", "dask")


# A fix for Dagster 1.13 (issue 19, item 7): a run whose failures leave a step both skipped and
# abandoned ends instead of looping for ever (factory_assets.compat.settle_skips_after_abandons).
settle_skips_after_abandons()


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
    """dagster-dask's executor, with the two fixes this project needs (factory_assets.compat.dask_executor)."""

    @dg.executor(name="dask", requirements=dg.multiple_process_executor_requirements())
    def dask(_init_context):
        return dask_executor(cluster)

    return dask


# --------------------------------------------------------------------------------------
# Run monitoring: is the process that runs a run still alive?
# --------------------------------------------------------------------------------------

#: Run tag: the machine whose processes run the run (set by the launcher and by ``factory run``).
#: Only runs of this machine are health-checked here; a run elsewhere is never judged by its pid.
RUN_HOST_TAG = "factory/run_host"


def this_host() -> str:
    """This machine's name and, where Linux shows it, its process-id namespace: two containers
    that share a host name (host networking) do not see each other's pids, so neither judges the
    other's runs."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()} {namespace}"


def _process_start_epoch(pid: int) -> float | None:
    """When a process started (seconds since the epoch), from /proc; None where /proc is missing."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether ``pid`` is a live process of this machine; with ``started_by`` (an epoch time), one
    that was already running then, so a pid the kernel gave to a new process does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    try:
        if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # killed, not yet reaped by its parent
    except (OSError, IndexError):
        pass
    if started_by is not None:
        start = _process_start_epoch(pid)
        if start is not None and start > started_by + PID_REUSE_SLACK_S:
            return False
    return True


#: How much later than a run's RUN_START its worker may seem to have started and still be that
#: worker. /proc dates a process from the boot time, which moves when the wall clock is stepped (a
#: virtual machine resumed, NTP): with a 2 s slack a live worker on a busy VM was once judged gone
#: and its successful run marked failed. A pid the kernel hands out again comes only after the pid
#: space wraps, much later than this.
PID_REUSE_SLACK_S = 300.0


def run_worker_health(instance, run) -> CheckRunHealthResult:
    """The health of the process that started ``run`` (its RUN_START event's pid), on this machine."""
    host = run.tags.get(RUN_HOST_TAG)
    if host != this_host():
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run of host {host or 'unknown'}: not checked here")
    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
    if not records or records[0].event_log_entry.dagster_event is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START event yet")
    entry = records[0].event_log_entry
    pid = entry.dagster_event.pid
    if pid is None:  # nothing to judge by (run monitoring fails any status but RUNNING and SUCCESS)
        return CheckRunHealthResult(WorkerStatus.RUNNING, "RUN_START carries no pid: not checked")
    if process_alive(pid, started_by=entry.timestamp):
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"the process that ran this run (pid {pid} on {host}) is gone: it was killed or crashed (kill -9, "
        f"out of memory, a closed terminal); noticed {time.time() - entry.timestamp:.0f} s after the run started")


class FactoryRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default launcher (runs start in a subprocess of the code server), with run worker
    health checks for run monitoring.

    The default launcher has none, so with it Dagster's run monitoring never looks at a STARTED
    run: a run whose process was killed (``kill -9``, the OOM killer, a closed terminal running
    ``factory run``) stayed STARTED for ever, and with one warehouse-writer slot in the run queue every
    later schedule, sensor and UI launch waited behind it. Here the daemon's run monitoring checks
    the pid of the run's RUN_START event on this machine and marks the run failed once that process
    is gone; run retries (dagster.yaml ``run_retries``) then relaunch runs that have a code location
    origin (schedules, sensors, the UI), and the queue moves on."""

    def launch_run(self, context) -> None:
        origin = context.dagster_run.remote_job_origin
        location = origin.repository_origin.code_location_origin.location_name if origin else None
        client = (getattr(context.workspace.get_code_location(location), "client", None)
                  if location and context.workspace else None)
        if _local_address(getattr(client, "host", None)):
            launcher_instance(self).add_run_tags(context.dagster_run.run_id, {RUN_HOST_TAG: this_host()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        return run_worker_health(launcher_instance(self), run)


def _local_address(host: str | None) -> bool:
    """A code server on this machine (``dagster dev`` and ``dagster-daemon run -w workspace.yaml``
    start theirs on loopback or a socket): its run workers are this machine's processes."""
    return host in (None, "", "localhost", "127.0.0.1", "::1", socket.gethostname())
