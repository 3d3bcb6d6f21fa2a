"""The code location loads fast, without heavy ML libraries, and shows one group per layer."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from factory_assets.settings import RAW_SOURCES


def test_loading_definitions_imports_no_heavy_library():
    code = ("import sys, factory_assets.definitions as d; assert d.defs is not None; "
            "print(','.join(m for m in ('lightgbm', 'xgboost', 'evidently', 'sklearn', 'pandas') if m in sys.modules))")
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
    assert set(groups) == {"raw_material", "processing", "assembly", "distribution", "feedback"}
    assert all(prefixes == {group} for group, prefixes in groups.items())
    assert keys["raw_material"] == {f"raw_material/{source}" for source in RAW_SOURCES}  # one asset per raw source
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"supply_chain_nightly", "assembly_training"} <= jobs
    assert isinstance(defs.resolve_sensor_def("landing_zone_sensor"), dg.SensorDefinition)
