"""The code location loads fast, without heavy ML libraries, and shows one group per layer."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from factory_assets.settings import RAW_SOURCES


def test_loading_definitions_imports_no_heavy_library():
    # dagster-dbt imports dbt-core (~2 s of start-up): the dbt specs are read from manifest.json instead
    code = ("import sys, factory_assets.definitions as d; d.defs.resolve_asset_graph(); "
            "print(','.join(m for m in ('lightgbm', 'xgboost', 'evidently', 'sklearn', 'pandas', 'dagster_dbt', 'dbt')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_every_asset_is_in_its_layer_group_with_an_owner_and_a_description():
    from factory_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    groups, keys = {}, {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups.setdefault(node.group_name, set()).add(key.path[0])
        keys.setdefault(node.group_name, set()).add(key.to_user_string())
        assert node.owners, key
        assert node.description, key
        assert node.kinds, key  # dbt, duckdb, lightgbm, xgboost, evidently ... shown as badges
    assert set(groups) == {"raw_material", "processing", "assembly", "distribution", "feedback"}
    assert all(prefixes == {group} for group, prefixes in groups.items())
    assert keys["raw_material"] == {f"raw_material/{source}" for source in RAW_SOURCES}  # one asset per raw source
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"supply_chain_nightly", "assembly_training"} <= jobs
    assert isinstance(defs.resolve_sensor_def("landing_zone_sensor"), dg.SensorDefinition)


def test_the_nightly_chain_runs_landing_to_monitoring_and_training_is_weekly_and_on_request():
    from factory_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    nightly = defs.resolve_job_def("supply_chain_nightly")
    nightly_keys = {k.to_user_string() for k in nightly.asset_layer.selected_asset_keys}
    by_group = {}
    for key in graph.get_all_asset_keys():
        by_group.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    assert by_group["raw_material"] | by_group["processing"] | by_group["distribution"] | by_group["feedback"] <= nightly_keys
    from factory_assets.assembly.features import FEATURE_SETS

    features = {f"assembly/{n}" for n in FEATURE_SETS}
    assert nightly_keys & by_group["assembly"] == features  # feature snapshots nightly; models are not retrained nightly
    schedules = {name: defs.resolve_schedule_def(name) for name in ("supply_chain_nightly_schedule", "assembly_training_weekly")}
    assert schedules["supply_chain_nightly_schedule"].job_name == "supply_chain_nightly"
    assert schedules["assembly_training_weekly"].job_name == "assembly_training"
    assert schedules["assembly_training_weekly"].cron_schedule == "0 4 * * 0"
    sensor = defs.resolve_sensor_def("retraining_on_monitoring_breach")
    assert sensor.job_name == "assembly_training"
    # lineage: a use case's prediction product follows its champion and feeds its monitoring
    late = dg.AssetKey(["distribution", "late_delivery_predictions"])
    assert dg.AssetKey(["assembly", "late_delivery_champion"]) in graph.get(late).parent_keys
    assert dg.AssetKey(["feedback", "late_delivery_monitoring"]) in graph.get(late).child_keys


KNOWN_KINDS = {"dbt", "duckdb", "python", "parquet", "lightgbm", "xgboost", "evidently"}


def test_every_check_sensor_schedule_and_job_says_what_it_does_and_who_owns_it():
    from factory_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    kinds = set().union(*(graph.get(k).kinds for k in graph.get_all_asset_keys()))
    assert kinds <= KNOWN_KINDS and {"dbt", "lightgbm", "xgboost", "evidently"} <= kinds
    checks = list(graph.asset_check_keys)
    assert len(checks) > 100
    for check in checks:
        description = graph.get_check_spec(check).description
        assert description and "\n" not in description.strip(), check
    dbt_check = next(c for c in checks if c.name == "accepted_range__day_of_week" and c.asset_key.path[-1] == "calendar")
    assert "column day_of_week" in graph.get_check_spec(dbt_check).description  # dbt tests read as sentences
    definitions = [*defs.sensors, *defs.schedules, *defs.resolve_all_job_defs()]
    assert len(definitions) >= 9
    for definition in definitions:
        if definition.name == "__ASSET_JOB":
            continue
        assert definition.description, definition.name
        assert definition.owners, definition.name


def test_dbt_models_keep_their_layer_keys_lineage_and_test_checks():
    from factory_assets.definitions import defs
    from factory_assets.processing.dbt_manifest import load_manifest, model_nodes, tests_by_node

    graph = defs.resolve_asset_graph()
    manifest = load_manifest()
    models = {**model_nodes(manifest, operations=False), **model_nodes(manifest, operations=True)}
    keys = {dg.AssetKey([("distribution" if n["fqn"][1] == "operations" else "processing"), n["name"]]) for n in models.values()}
    assert keys <= graph.get_all_asset_keys()
    fct = graph.get(dg.AssetKey(["processing", "fct_order_lines"]))
    assert dg.AssetKey(["processing", "stg_erp__order_lines"]) in fct.parent_keys
    assert dg.AssetKey(["raw_material", "transactions"]) in graph.get(dg.AssetKey(["processing", "stg_erp__order_lines"])).parent_keys
    tests = sum(len(tests_by_node(manifest).get(uid, [])) for uid in models)
    dbt_checks = [k for k in graph.asset_check_keys if k.asset_key in keys and k.name not in ("contract", "freshness")]
    assert len(dbt_checks) == tests > 60  # a data test per contract rule (not_null is a constraint)


def test_old_dbt_run_folders_are_pruned(tmp_path):
    from factory_assets.resources import DbtRunner

    target = tmp_path / "target"
    for i in range(60):
        folder = target / f"processing_dbt_models-run{i:04d}-abc{i}"
        folder.mkdir(parents=True)
        os.utime(folder, (1_000_000 + i, 1_000_000 + i))
    (target / "manifest.json").write_text("{}")
    runner = DbtRunner(project_dir=str(tmp_path), profiles_dir=str(tmp_path))
    fresh = runner.target_path("processing_dbt_models-run9999", keep=50)
    kept = sorted(p.name for p in target.iterdir() if p.is_dir())
    assert len(kept) == 49 and kept[0] == "processing_dbt_models-run0011-abc11"  # the oldest went first
    assert (target / "manifest.json").exists() and fresh.parts[0] == "target" and not (tmp_path / fresh).exists()


def test_a_manifest_older_than_the_dbt_sources_is_reported(tmp_path, caplog):
    from factory_assets.processing import dbt_manifest

    old = tmp_path / "manifest.json"
    old.write_text('{"nodes": {}, "sources": {}, "metadata": {}}')
    os.utime(old, (0, 0))
    stale = dbt_manifest.newer_dbt_sources(old)
    assert any(p.name == "fct_order_lines.sql" for p in stale)
    assert not any("target" in p.parts for p in stale)  # run folders are not sources
    with caplog.at_level("WARNING"):
        dbt_manifest.load_manifest(old)
    assert "python3 tasks.py setup" in caplog.text and "older than" in caplog.text
    assert dbt_manifest.newer_dbt_sources() == []  # the committed project is parsed (tasks.py setup)
