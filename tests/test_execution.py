"""FACTORY_EXECUTOR picks the engine by configuration; a wrong value names the choices."""

from __future__ import annotations

import pytest

from factory_assets.execution import executor_from_env


def test_in_process_by_default_and_the_named_executors_otherwise():
    assert executor_from_env({}).name == "in_process"
    assert executor_from_env({"FACTORY_EXECUTOR": "multiprocess"}).name == "multiprocess"
    dask = executor_from_env({"FACTORY_EXECUTOR": "dask", "FACTORY_DASK_SCHEDULER": "tcp://10.0.0.5:8786"})
    assert dask.name == "dask"


@pytest.mark.parametrize("env, fragments", [
    ({"FACTORY_EXECUTOR": "spark"}, ["'spark'", "in_process, multiprocess, dask", "Going to production"]),
    ({"FACTORY_EXECUTOR": "dask", "FACTORY_DASK_WORKERS": "two"}, ["FACTORY_DASK_WORKERS='two'", "at least 1"]),
    ({"FACTORY_EXECUTOR": "dask", "FACTORY_DASK_WORKERS": "0"}, ["FACTORY_DASK_WORKERS='0'"]),
])
def test_a_wrong_setting_says_what_to_choose(env, fragments):
    with pytest.raises(ValueError) as error:
        executor_from_env(env)
    for fragment in fragments:
        assert fragment in str(error.value)


# ---- a run whose failures leave a step both skipped and abandoned ends (issue 19, item 7) -----


@pytest.mark.timeout(60)
def test_a_run_ends_when_its_last_failure_leaves_a_step_that_also_reads_a_skipped_one():
    """The nightly chain's shape in five assets: ``portfolio`` reads a step that is skipped (an
    asset that produced nothing, like service_priority when a use case has no champion) and one
    abandoned after a failure (monitoring after a failed prediction step). Dagster 1.13 left
    ``portfolio`` in its skip queue and looped for ever at 100 % CPU (the timeout fails the test);
    with the fix in factory_assets.execution the run fails at once, naming the failed step."""
    import dagster as dg

    import factory_assets.execution  # noqa: F401 - applies the fix

    @dg.asset(output_required=False)
    def a_quiet():
        return
        yield

    @dg.asset
    def z_fails():
        raise dg.Failure("z_fails: the champion's model file changed")

    @dg.asset(deps=[a_quiet])
    def reads_quiet():
        return None

    @dg.asset(deps=[z_fails])
    def reads_failed():
        return None

    @dg.asset(deps=[reads_quiet, reads_failed])
    def portfolio():
        return None

    result = dg.materialize([a_quiet, z_fails, reads_quiet, reads_failed, portfolio], raise_on_error=False)
    assert not result.success
    steps = {kind: sorted(e.step_key for e in result.all_events if e.event_type_value == kind)
             for kind in ("STEP_FAILURE", "STEP_SKIPPED", "STEP_SUCCESS")}
    assert steps == {"STEP_FAILURE": ["z_fails"], "STEP_SKIPPED": ["portfolio", "reads_quiet"],
                     "STEP_SUCCESS": ["a_quiet"]}


# ---- run monitoring: is a run's process alive? (issue 19, item 8) ---------------------------------


def test_a_run_worker_is_alive_until_killed_and_a_reused_pid_does_not_count():
    import os
    import subprocess
    import sys
    import time

    from factory_assets.execution import process_alive

    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_alive(child.pid, started_by=time.time())
        # /proc's start time and the event's timestamp drift apart when the wall clock is stepped
        # (a resumed VM, NTP): a live worker that seems to have started a minute late is still alive
        assert process_alive(child.pid, started_by=time.time() - 60)
        # a process that started long after the run's RUN_START is not the run's worker (a reused pid)
        assert not process_alive(child.pid, started_by=time.time() - 3600)
        child.kill()
        time.sleep(0.5)
        assert not process_alive(child.pid)  # killed and not yet reaped: a zombie is dead
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid)


def test_the_embedded_profile_watches_runs_and_retries_them(tmp_path, monkeypatch):
    """dagster.yaml as `factory` writes it: the launcher with a health check, run monitoring with a
    short poll, run retries; an unedited file of the earlier version is brought up to date."""
    import dagster as dg

    from factory_assets import settings
    from factory_assets.execution import FactoryRunLauncher

    paths = settings.FactoryPaths(tmp_path / "home")
    (paths.dagster_home).mkdir(parents=True)
    (paths.dagster_home / "dagster.yaml").write_text(
        settings._EARLIER_DAGSTER_YAML.format(tag=settings.WAREHOUSE_WRITER_TAG))
    home = settings.ensure_dagster_home(paths)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.run_launcher, FactoryRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled and instance.run_monitoring_settings["poll_interval_seconds"] == 5
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
    finally:
        instance.dispose()
    edited = tmp_path / "edited"
    (settings.FactoryPaths(edited).dagster_home).mkdir(parents=True)
    (settings.FactoryPaths(edited).dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    settings.ensure_dagster_home(settings.FactoryPaths(edited))
    assert (settings.FactoryPaths(edited).dagster_home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
