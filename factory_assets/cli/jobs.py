"""Running the project's Dagster jobs from the command line (`factory run`, `recover`, `demo`): on the
embedded instance, with one progress line per finished asset, failed check or step, and a report
of what the run did."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from factory_assets.cli.output import failure_text
from factory_assets.settings import FactoryPaths, apply_dagster_runtime_env, ensure_dagster_home

PARTITION_RANGE_START = "dagster/asset_partition_range_start"
PARTITION_RANGE_END = "dagster/asset_partition_range_end"
NIGHTLY_JOB = "supply_chain_nightly"
TRAINING_JOB = "assembly_training"

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # full logs are in the UI


def setup_instance(paths: FactoryPaths) -> None:
    """The embedded Dagster instance under FACTORY_HOME unless DAGSTER_HOME says otherwise."""
    os.environ.setdefault("DAGSTER_HOME", str(ensure_dagster_home(paths)))
    os.environ.setdefault("FACTORY_WAREHOUSE_PATH", str(paths.warehouse))
    apply_dagster_runtime_env()


# --------------------------------------------------------------------------------------
# Progress of a run, printed as it happens (a Dagster logger, so nothing polls)
# --------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Turns a run's Dagster events into one terminal line per finished asset, failed check or step.

    Partitioned assets materialise once per day; their days are counted and shown once, when the
    step ends."""

    started: float
    stream: object = None  # default: stdout as it is when the object is made (runs redirect stdout)
    _days: dict = field(default_factory=dict)  # step key -> {asset: [partitions]}

    def __post_init__(self) -> None:
        self.stream = self.stream or sys.stdout

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:4.0f} s] {text}", file=self.stream, flush=True)

    def on_record(self, level: int, message: str, event, run_id: str | None = None) -> None:
        if event is None:
            if level >= 30:  # warnings and errors the assets log (quarantined files, no champion, ...)
                text = message.split(" - ", 4)[-1].strip().splitlines()
                self.say(f"  {'warning' if level < 40 else 'error'}: {text[0][:300] if text else ''}")
            return
        kind, step = event.event_type_value, event.step_key
        data = event.event_specific_data
        if kind in ("RUN_START", "PIPELINE_START"):
            self.say(f"run {run_id or ''} started: {event.job_name}".replace("  ", " "))
        elif kind == "ASSET_MATERIALIZATION":
            mat = data.materialization
            key = mat.asset_key.to_user_string()
            if mat.partition is None:
                self.say(f"{key} materialized")
            else:
                self._days.setdefault(step, {}).setdefault(key, []).append(mat.partition)
        elif kind == "ASSET_CHECK_EVALUATION" and not data.passed:
            severity = getattr(getattr(data, "severity", None), "value", "ERROR")
            self.say(f"{data.asset_key.to_user_string()} check {data.check_name} FAILED"
                     f"{' (warning)' if severity == 'WARN' else ''}")
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            for key, days in self._days.pop(step, {}).items():
                days = sorted(days)
                span = days[0] if len(days) == 1 else f"{len(days)} days, {days[0]} .. {days[-1]}"
                self.say(f"{key} materialized ({span})")
            if kind == "STEP_FAILURE":
                self.say(f"step {step} FAILED: {failure_text(data)}")

    def logger_def(self):
        """A Dagster logger definition that feeds this object (pass it with run config ``loggers``)."""
        import logging

        import dagster as dg

        progress = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                meta = getattr(record, "dagster_meta", None) or {}
                event = getattr(record, "dagster_event", None) or meta.get("dagster_event")
                try:
                    progress.on_record(record.levelno, meta.get("orig_message") or record.getMessage(), event,
                                       meta.get("run_id"))
                except Exception:  # printing progress must never break a run
                    pass

        @dg.logger(description="One line per finished asset, failed check or step (factory run).")
        def factory_progress(_context):
            logger = logging.Logger("factory.progress", level=logging.DEBUG)
            logger.addHandler(_Handler())
            return logger

        return factory_progress


def _with_progress(job, progress: Progress | None):
    """The job and its run config: progress lines through our logger, or quiet console logs."""
    if progress is None:
        return job, dict(QUIET)
    return job.with_logger_defs({**job.loggers, "factory_progress": progress.logger_def()}), \
        {"loggers": {"factory_progress": {}}}


def _execute(job, progress: Progress | None, **kwargs):
    """execute_in_process; with progress lines, what steps write to stdout themselves (dbt's own
    log, which dagster-dbt echoes) is dropped: dbt keeps it in dbt_project/target/<step>-<run id>-*/dbt.log,
    and the run's events are in the UI."""
    import contextlib

    from factory_assets.execution import RUN_HOST_TAG, executor_name, this_host

    # the daemon's run monitoring marks the run failed if this process dies (kill -9, a closed terminal)
    kwargs["tags"] = {**(kwargs.get("tags") or {}), RUN_HOST_TAG: this_host()}
    if executor_name() != "in_process":
        return _execute_on_configured_executor(job.name, **kwargs)
    if progress is None:
        return job.execute_in_process(raise_on_error=False, **kwargs)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return job.execute_in_process(raise_on_error=False, **kwargs)


def _execute_on_configured_executor(job_name: str, instance, run_config=None, tags=None, asset_selection=None):
    """The run on FACTORY_EXECUTOR's engine (multiprocess, Dask): the job is loaded by reference
    (module and name), so each step's process loads the same code location. The progress logger
    lives in this process only: the run's events are printed once it ends."""
    import dagster as dg

    from factory_assets.compat import reconstructable_job

    job = reconstructable_job("factory_assets.definitions", "defs", job_name,
                              working_directory=str(Path(__file__).resolve().parents[2]))
    config = {k: v for k, v in (run_config or {}).items() if k != "loggers"}
    with dg.execute_job(job, instance=instance, run_config=config, tags=tags,
                        asset_selection=asset_selection, raise_on_error=False) as result:
        return result


# --------------------------------------------------------------------------------------
# Running the jobs (factory run, recover and demo)
# --------------------------------------------------------------------------------------


def run_supply_chain(first_day: date, last_day: date, asset_selection=None, progress: Progress | None = None):
    """Run the nightly job in this process over a range of days, as one run, on the instance."""
    import dagster as dg

    from factory_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    job, run_config = _with_progress(defs.resolve_job_def(NIGHTLY_JOB), progress)
    tags = {PARTITION_RANGE_START: first_day.isoformat(), PARTITION_RANGE_END: last_day.isoformat()}
    result = _execute(job, progress, instance=instance, tags=tags, run_config=run_config, asset_selection=asset_selection)
    if not result.success and asset_selection is None:
        # governance was abandoned with the failed steps; build it anyway (the daemon's
        # governance_after_failed_night sensor does the same for scheduled runs)
        review, review_config = _with_progress(defs.resolve_job_def("policy_review"), progress)
        if progress:
            progress.say("the night failed: building model_compliance and use_case_portfolio anyway (policy_review)")
        _execute(review, progress, instance=instance, run_config=review_config,
                 tags={"factory/after_failed_run": result.run_id})
    return result


def run_training(as_of: date | None = None, asset_selection=None, tags=None, progress: Progress | None = None):
    """Train (every use case, or a selection) and run the promotion gates, in this process.

    ``as_of``: train on what was known at the start of that day."""
    import dagster as dg

    from factory_assets.assembly.specs import USE_CASES_DIR, load_use_cases
    from factory_assets.definitions import defs

    job, config = _with_progress(defs.resolve_job_def(TRAINING_JOB), progress)
    if as_of is not None:
        config["ops"] = {f"assembly__{name}_training_set": {"config": {"as_of": as_of.isoformat()}}
                         for name in load_use_cases(USE_CASES_DIR)}
    return _execute(job, progress, instance=dg.DagsterInstance.get(), run_config=config,
                    asset_selection=asset_selection, tags=tags)


def run_requested_retraining(progress: Progress | None = None):
    """Evaluate the retraining sensor once and run what it requests (what the daemon would do)."""
    import dagster as dg

    from factory_assets.definitions import defs

    instance = dg.DagsterInstance.get()
    sensor = defs.resolve_sensor_def("retraining_on_monitoring_breach")
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    return [(request, run_training(asset_selection=list(request.asset_selection), tags=request.tags,
                                   progress=progress))
            for request in tick.run_requests]


def run_report(result, seconds: float) -> dict:
    """What a run did, from its events: materialised assets, checks, failed and skipped steps."""
    materialized: dict[str, int] = {}
    checks, failed_steps, skipped = [], [], []
    for event in result.all_events:
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            key = event.asset_key.to_user_string()
            materialized[key] = materialized.get(key, 0) + 1
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            checks.append({"asset": data.asset_key.to_user_string(), "check": data.check_name,
                           "passed": bool(data.passed),
                           "severity": getattr(getattr(data, "severity", None), "value", "ERROR")})
        elif kind == "STEP_FAILURE":
            failed_steps.append({"step": event.step_key, "error": failure_text(event.event_specific_data)})
        elif kind == "STEP_SKIPPED":
            skipped.append(event.step_key)
    passed = sum(c["passed"] for c in checks)
    errors = [c for c in checks if not c["passed"] and c["severity"] == "ERROR"]
    return {
        "run_id": result.run_id, "job": result.job_def.name, "success": bool(result.success),
        "ok": bool(result.success) and not errors,  # the exit code: 0 only when this is true
        "seconds": round(seconds, 1), "materialized": sorted(materialized),
        "materializations": sum(materialized.values()),
        "checks": {"passed": passed, "failed": len(checks) - passed,
                   "failures": [c for c in checks if not c["passed"]]},
        "failed_steps": failed_steps, "skipped_steps": sorted(skipped),
    }
