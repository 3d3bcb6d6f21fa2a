"""The nightly dbt step's own dbt runner: run_results.json read back, row counts, a dbt that fails."""

from __future__ import annotations

import duckdb
import pytest

from factory_assets.processing.dbt_cli import (
    DbtBuild,
    ModelResult,
    build_command,
    model_errors,
    parse_run_results,
    run_build,
    table_row_counts,
)
from factory_assets.processing.dbt_manifest import load_manifest
from factory_assets.settings import DBT_PROJECT_DIR

FCT = "model.ai_factory.fct_order_lines"
STG = "model.ai_factory.stg_erp__deliveries"


def _test_of(manifest, model: str, prefix: str) -> str:
    return next(uid for uid, n in manifest["nodes"].items()
                if n["resource_type"] == "test" and n["name"].startswith(prefix) and n.get("attached_node") == model)


def test_run_results_become_model_and_test_results_with_their_tested_model():
    manifest = load_manifest()
    unique = _test_of(manifest, FCT, "unique_fct_order_lines_order_line_id")
    not_null = _test_of(manifest, FCT, "not_null_fct_order_lines_order_line_id")
    results = {"results": [
        {"unique_id": STG, "status": "success", "execution_time": 0.25, "message": "OK"},
        {"unique_id": FCT, "status": "error", "execution_time": 1.5, "message": "Binder Error: column x"},
        {"unique_id": unique, "status": "fail", "failures": 3, "message": "Got 3 results"},
        {"unique_id": not_null, "status": "warn", "failures": 1},
        {"unique_id": "unit_test.ai_factory.fct_order_lines.net_amount", "status": "pass"},
    ]}
    models, tests = parse_run_results(results, manifest)
    assert [(m.unique_id, m.status, m.materialized, m.relation) for m in models] == [
        (STG, "success", "view", '"staging"."stg_erp__deliveries"'),
        (FCT, "error", "incremental", '"marts"."fct_order_lines"')]
    assert [(t.name, t.tested_unique_id, t.status, t.failures, t.passed) for t in tests] == [
        (manifest["nodes"][unique]["name"], FCT, "fail", 3, False),
        (manifest["nodes"][not_null]["name"], FCT, "warn", 1, False)]  # unit tests are not data checks
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
    command = build_command("dbt", ["build", "--select", "calendar"], DBT_PROJECT_DIR, DBT_PROJECT_DIR, tmp_path, target="prod")
    assert command[:4] == ["dbt", "build", "--select", "calendar"]
    assert command[command.index("--target-path") + 1] == str(tmp_path) == command[command.index("--log-path") + 1]
    assert command[-2:] == ["--target", "prod"]


def test_a_dbt_that_cannot_start_names_its_log_and_the_cause(tmp_path):
    """A missing profile makes real dbt exit before building anything: an error, not an empty success."""
    import sys
    from pathlib import Path

    dbt = str(Path(sys.executable).parent / "dbt")
    empty_profiles = tmp_path / "profiles"
    empty_profiles.mkdir()
    target = tmp_path / "run"
    with pytest.raises(RuntimeError) as error:
        run_build(build_command(dbt, ["build"], DBT_PROJECT_DIR, empty_profiles, target), target, load_manifest())
    message = str(error.value)
    assert "wrote no run_results.json" in message and str(target / "dbt_stdout.log") in message
    assert "ai_factory" in message  # dbt's own words: the profile it could not find


def test_summary_names_tests_that_did_not_pass(tmp_path):
    from factory_assets.processing.dbt_cli import TestResult

    build = DbtBuild(1, tmp_path, 2.0, models=[ModelResult("model.p.a", "success", 1.0, "table", "a"),
                                               ModelResult("model.p.b", "skipped", 0.0, "table", "b")],
                     tests=[TestResult("test.p.ok", "ok", "model.p.a", "pass", 0),
                            TestResult("test.p.dup", "unique_a_id", "model.p.a", "fail", 2),
                            TestResult("test.p.later", "not_null_b_id", "model.p.b", "skipped", None)])
    assert build.summary() == "dbt build: 1/2 models built, 1/3 tests passed, not passing: unique_a_id (2.0 s)"
