"""The nightly dbt step's own dbt runner: run_results.json read back, row counts, a dbt that fails."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pytest

from factory_assets.processing.dbt_cli import (
    DbtBuild,
    ModelResult,
    build_args,
    model_errors,
    parse_run_results,
    run_build,
    table_row_counts,
)
from factory_assets.processing.dbt_manifest import load_manifest, retarget_manifest
from factory_assets.settings import DBT_PROJECT_DIR

FCT = "model.ai_factory.fct_order_lines"
STG = "model.ai_factory.stg_erp__deliveries"


def _test_of(manifest, model: str, prefix: str) -> str:
    return next(uid for uid, n in manifest["nodes"].items()
                if n["resource_type"] == "test" and n["name"].startswith(prefix) and n.get("attached_node") == model)


def test_run_results_become_model_and_test_results_with_their_tested_model():
    manifest = load_manifest()
    unique = _test_of(manifest, FCT, "unique_fct_order_lines_order_line_id")
    pattern = _test_of(manifest, FCT, "matches_pattern_fct_order_lines_order_line_id")
    results = {"results": [
        {"unique_id": STG, "status": "success", "execution_time": 0.25, "message": "OK"},
        {"unique_id": FCT, "status": "error", "execution_time": 1.5, "message": "Binder Error: column x"},
        {"unique_id": unique, "status": "fail", "failures": 3, "message": "Got 3 results"},
        {"unique_id": pattern, "status": "warn", "failures": 1},
        {"unique_id": "unit_test.ai_factory.fct_order_lines.net_amount", "status": "pass"},
    ]}
    models, tests = parse_run_results(results, manifest)
    assert [(m.unique_id, m.status, m.materialized, m.relation) for m in models] == [
        (STG, "success", "view", '"staging"."stg_erp__deliveries"'),
        (FCT, "error", "incremental", '"marts"."fct_order_lines"')]
    assert [(t.name, t.tested_unique_id, t.status, t.failures, t.passed) for t in tests] == [
        (manifest["nodes"][unique]["name"], FCT, "fail", 3, False),
        (manifest["nodes"][pattern]["name"], FCT, "warn", 1, False)]  # unit tests are not data checks
    assert model_errors(models) == [f"{FCT}: Binder Error: column x"]


def test_row_counts_are_exact_for_tables_and_leave_views_out():
    conn = duckdb.connect()
    conn.execute("create schema marts; create table marts.t as select range as i from range(1234); "
                 "create view marts.v as select * from marts.t")
    models = [ModelResult("model.p.t", "success", 0.1, "incremental", '"marts"."t"'),
              ModelResult("model.p.v", "success", 0.1, "view", '"marts"."v"'),
              ModelResult("model.p.gone", "skipped", 0.0, "table", '"marts"."gone"')]
    assert table_row_counts(conn, models) == {"model.p.t": 1234}


def test_artifacts_and_dbt_log_go_to_the_invocation_folder(tmp_path):
    command = build_args(["build", "--select", "calendar"], DBT_PROJECT_DIR, DBT_PROJECT_DIR, tmp_path, target="prod")
    assert command[:3] == ["build", "--select", "calendar"]
    assert command[command.index("--target-path") + 1] == str(tmp_path) == command[command.index("--log-path") + 1]
    assert command[-2:] == ["--target", "prod"]


def test_a_dbt_that_cannot_start_names_its_log_and_the_cause(tmp_path):
    """A missing profile makes real dbt exit before building anything: an error, not an empty success."""
    empty_profiles = tmp_path / "profiles"
    empty_profiles.mkdir()
    target = tmp_path / "run"
    with pytest.raises(RuntimeError) as error:
        run_build(build_args(["build"], DBT_PROJECT_DIR, empty_profiles, target), target, load_manifest())
    message = str(error.value)
    assert "without writing run_results.json" in message and str(target / "dbt_stdout.log") in message
    assert "ai_factory" in message  # dbt's own words: the profile it could not find


def test_summary_names_tests_that_did_not_pass(tmp_path):
    from factory_assets.processing.dbt_cli import TestResult

    build = DbtBuild(1, tmp_path, 2.0, models=[ModelResult("model.p.a", "success", 1.0, "table", "a"),
                                               ModelResult("model.p.b", "skipped", 0.0, "table", "b")],
                     tests=[TestResult("test.p.ok", "ok", "model.p.a", "pass", 0),
                            TestResult("test.p.dup", "unique_a_id", "model.p.a", "fail", 2),
                            TestResult("test.p.later", "not_null_b_id", "model.p.b", "skipped", None)])
    assert build.summary() == "dbt build: 1/2 models built, 1/3 tests passed, not passing: unique_a_id (2.0 s)"


def _materialize_dbt(tmp_path, model: str):
    import dagster as dg

    from factory_assets.processing.dbt_assets import processing_dbt_models
    from factory_assets.resources import DbtRunner, FactoryStore

    runner = DbtRunner(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                       dbt_executable=str(Path(sys.executable).parent / "dbt"))  # dagster-dbt's path runs it
    return dg.materialize([processing_dbt_models], selection=dg.AssetSelection.assets(dg.AssetKey(["processing", model])),
                          resources={"dbt": runner, "store": FactoryStore(home=str(tmp_path / "home"))},
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


HOLD_DUCKDB = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_a_warehouse_another_program_holds_is_tried_again_with_back_off_then_builds_once_released(tmp_path, monkeypatch):
    """DuckDB's own file lock, held by a program that does not take the factory's warehouse lock
    (a notebook, the duckdb CLI): every try fails on it, retried twice with back-off, then the
    step fails with DuckDB's words naming the holder; released, the next run builds."""
    import subprocess

    from factory_assets.settings import FactoryPaths

    paths = FactoryPaths(tmp_path / "home").create()
    monkeypatch.setenv("FACTORY_WAREHOUSE", "duckdb")  # a file another program can hold (the lake has no such lock)
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(paths.warehouse))
    monkeypatch.setenv("FACTORY_WAREHOUSE_LOCK_TIMEOUT", "1")  # the step's own wait gives up at once: dbt's retry is tested
    holder = subprocess.Popen([sys.executable, "-c", HOLD_DUCKDB, str(paths.warehouse)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        blocked = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    finally:
        holder.kill()
        holder.wait()
    assert not blocked.success and len(_events(blocked, "STEP_UP_FOR_RETRY")) == 2
    cause = _events(blocked, "STEP_FAILURE")[0].event_specific_data.error.cause
    assert "Could not set lock" in cause.message and f"PID {holder.pid}" in cause.message
    released = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    assert released.success and _events(released, "STEP_UP_FOR_RETRY") == []
    assert [e.asset_key.to_user_string() for e in released.get_asset_materialization_events()] == ["processing/stg_erp__deliveries"]


def test_a_model_whose_sql_fails_is_not_retried(tmp_path, monkeypatch):
    """calendar alone on an empty warehouse: its upstream views do not exist, a permanent error."""
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(tmp_path / "home" / "warehouse.duckdb"))
    result = _materialize_dbt(tmp_path, "calendar")
    assert not result.success
    assert _events(result, "STEP_UP_FOR_RETRY") == []
    failure = _events(result, "STEP_FAILURE")[0].event_specific_data.error
    assert "dbt could not build some models" in failure.message and "dbt_stdout.log" in failure.message
    log = Path(failure.message.split("see dbt's log ")[1].strip().rstrip("."))
    assert "ERROR creating sql table model marts.calendar" in log.read_text()  # dbt's words, in the named log


def test_a_subset_selects_its_models_and_the_whole_step_selects_the_folder():
    import dagster as dg

    from factory_assets.processing.dbt_assets import DbtStep, dbt_selection

    cal, fct = dg.AssetKey(["processing", "calendar"]), dg.AssetKey(["processing", "fct_order_lines"])
    checks = frozenset({dg.AssetCheckKey(cal, "not_null_calendar_region"), dg.AssetCheckKey(fct, "unique_fct_id")})
    step = DbtStep(whole=["--exclude", "path:models/operations"], model_by_key={cal: "calendar", fct: "fct_order_lines"},
                   check_keys=checks)
    assert dbt_selection(step, {cal, fct}, checks) == ["--exclude", "path:models/operations"]
    assert dbt_selection(step, {fct}, {dg.AssetCheckKey(fct, "unique_fct_id")}) == ["--select", "fct_order_lines"]
    # a check re-run on its own selects the test, not its model
    assert dbt_selection(step, set(), {dg.AssetCheckKey(cal, "not_null_calendar_region")}) == ["--select", "not_null_calendar_region"]


def test_a_manifest_parsed_for_another_warehouse_file_is_retargeted_to_this_one(tmp_path):
    """dagster-dbt's row counts and column lineage query the manifest's relations: they must name
    the catalog of the warehouse file the step builds, not the one ``dbt parse`` saw at setup."""
    manifest = load_manifest()
    uid = "model.ai_factory.fct_order_lines"
    parsed_as = manifest["nodes"][uid]["database"]
    with duckdb.connect(str(tmp_path / "factory_prod.duckdb")) as conn:
        conn.execute("create schema marts; create table marts.fct_order_lines as select 1 as n union all select 2")
        if parsed_as != "factory_prod":
            with pytest.raises(duckdb.BinderException, match="does not exist"):
                conn.execute(f"select count(*) from {manifest['nodes'][uid]['relation_name']}")
        moved = retarget_manifest(manifest, "factory_prod")
        assert conn.execute(f"select count(*) from {moved['nodes'][uid]['relation_name']}").fetchone() == (2,)
    assert moved["nodes"][uid]["database"] == "factory_prod"
    source = next(iter(moved["sources"].values()))
    assert source["database"] == "factory_prod" and source["relation_name"].startswith('"factory_prod".')
    tests = [n for n in moved["nodes"].values() if n["resource_type"] == "test"]
    assert tests and all(t is manifest["nodes"][t["unique_id"]] for t in tests)  # no relation: untouched
    assert retarget_manifest(moved, parsed_as) == manifest  # and back: nothing else changed


#: What dbt's own log says when it cannot reuse a saved parse (and why), and when it reuses one unchanged.
FULL_PARSE, REUSED_PARSE = "Unable to do partial parsing because", "Partial parsing enabled, no changes found, skipping parsing"


def _dbt_folder(result) -> Path:
    """The target folder of the run's dbt step (its artifacts and dbt's logs)."""
    (folder,) = DBT_PROJECT_DIR.glob(f"target/processing_dbt_models-{result.run_id[:7]}-*")
    return folder


def _dbt_log(result) -> str:
    """The dbt.log of the run's dbt step (dbt writes it, debug lines included, to its target folder)."""
    return (_dbt_folder(result) / "dbt.log").read_text()


#: What only the nightly, in-process path writes into a dbt step's target folder (dagster-dbt's path has dbt.log only).
IN_PROCESS_LOG = "dbt_stdout.log"


def _dbt_files(result) -> set[str]:
    return {p.name for p in _dbt_folder(result).iterdir()}


def test_the_next_dbt_step_on_a_home_reuses_the_last_parse_and_another_warehouse_parses_again(tmp_path, monkeypatch):
    import shutil

    from factory_assets.processing.dbt_cli import partial_parse_file
    from factory_assets.settings import FactoryPaths

    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(tmp_path / "home" / "warehouse.duckdb"))
    first = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    kept = partial_parse_file(FactoryPaths(tmp_path / "home").dbt_state, None)
    assert first.success and kept.is_file() and REUSED_PARSE not in _dbt_log(first)
    second = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    assert second.success and REUSED_PARSE in _dbt_log(second) and FULL_PARSE not in _dbt_log(second)

    # The same saved parse in another home: its profile names another warehouse file, so dbt parses in full.
    other = tmp_path / "other"
    shutil.copytree(kept.parent, FactoryPaths(other / "home").dbt_state)
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(other / "home" / "warehouse.duckdb"))
    moved = _materialize_dbt(other, "stg_erp__deliveries")
    assert moved.success and f"{FULL_PARSE} profile has changed" in _dbt_log(moved)
    assert [e.asset_key.to_user_string() for e in moved.get_asset_materialization_events()] == ["processing/stg_erp__deliveries"]

    # A saved parse that does not load (a damaged file): dbt says so and parses in full.
    partial_parse_file(FactoryPaths(other / "home").dbt_state, None).write_bytes(b"not msgpack")
    damaged = _materialize_dbt(other, "stg_erp__deliveries")
    assert damaged.success and "Failed to load parsed file from disk" in _dbt_log(damaged)
    assert REUSED_PARSE not in _dbt_log(damaged)


def test_a_step_through_dagster_dbt_keeps_the_homes_parse_not_the_projects_set_up_parse(tmp_path, monkeypatch):
    """dagster-dbt copies the project's set-up parse (another warehouse path) into a target folder
    that has none, and a dbt that reuses the saved parse writes none: that copy used to be kept, so
    the next step found "profile has changed" and parsed in full. The folder is seeded instead."""
    from factory_assets.processing.dbt_cli import partial_parse_file
    from factory_assets.settings import FactoryPaths

    set_up_parse = DBT_PROJECT_DIR / "target" / "partial_parse.msgpack"  # written by `tasks.py setup`
    assert set_up_parse.is_file()
    monkeypatch.setenv("FACTORY_WAREHOUSE_PATH", str(tmp_path / "home" / "warehouse.duckdb"))
    monkeypatch.setenv("FACTORY_DBT_COLUMN_METADATA", "1")  # a fresh instance: lineage to fetch, dagster-dbt's path
    first = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    kept = partial_parse_file(FactoryPaths(tmp_path / "home").dbt_state, None, session_file=True)
    assert first.success and kept.is_file()
    home_parse = kept.read_bytes()
    second = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    assert second.success and REUSED_PARSE in _dbt_log(second)
    assert kept.read_bytes() == home_parse != set_up_parse.read_bytes()


def test_keeping_the_parse_replaces_it_whole_and_a_failed_copy_keeps_the_last_one(tmp_path):
    import os

    from factory_assets.processing.dbt_cli import (
        PARTIAL_PARSE_FILE,
        keep_partial_parse,
        partial_parse_args,
        partial_parse_file,
    )

    run = tmp_path / "run"
    run.mkdir()
    state = partial_parse_file(tmp_path / "state", None)
    assert state.name == "partial_parse.default.msgpack"
    assert partial_parse_args(state) == []  # none saved yet: dbt refuses a path that does not exist
    keep_partial_parse(run, state)  # this invocation wrote none (nothing changed): nothing to keep
    assert not state.exists()
    (run / PARTIAL_PARSE_FILE).write_bytes(b"first")
    keep_partial_parse(run, state)
    assert state.read_bytes() == b"first" and partial_parse_args(state) == ["--partial-parse-file-path", str(state)]
    (run / PARTIAL_PARSE_FILE).write_bytes(b"second")
    blocked = state.with_name(f".{state.name}.{os.getpid()}")
    blocked.mkdir()  # the copy cannot be written (as on a full disk): no error, the last parse stays
    keep_partial_parse(run, state)
    assert state.read_bytes() == b"first"
    blocked.rmdir()
    keep_partial_parse(run, state)
    assert state.read_bytes() == b"second" and [p.name for p in state.parent.iterdir()] == [state.name]


def test_a_step_through_dagster_dbt_leaves_the_nightly_paths_parse_valid_on_the_lake(tmp_path, monkeypatch):
    """On the lake the two paths' profiles differ (dagster-dbt's session is a file, the nightly path's
    in memory), and dbt keys a saved parse to the profile: one shared saved parse made every
    in-process night after a column-lineage step parse the project in full. Each path keeps its own."""
    monkeypatch.setenv("FACTORY_WAREHOUSE", "lake")
    monkeypatch.setenv("FACTORY_DBT_COLUMN_METADATA", "0")  # the nightly path, in process
    nightly = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    assert nightly.success and IN_PROCESS_LOG in _dbt_files(nightly)
    monkeypatch.setenv("FACTORY_DBT_COLUMN_METADATA", "1")  # lineage to fetch: dagster-dbt's path
    lineage = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    assert lineage.success and IN_PROCESS_LOG not in _dbt_files(lineage)
    monkeypatch.setenv("FACTORY_DBT_COLUMN_METADATA", "0")
    again = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    assert again.success and IN_PROCESS_LOG in _dbt_files(again)
    assert REUSED_PARSE in _dbt_log(again) and FULL_PARSE not in _dbt_log(again)
    monkeypatch.setenv("FACTORY_DBT_COLUMN_METADATA", "1")
    lineage_again = _materialize_dbt(tmp_path, "stg_erp__deliveries")
    assert lineage_again.success and REUSED_PARSE in _dbt_log(lineage_again)
