"""Every asset spec of every location (key, deps, group, owners, checks, kinds), against a reviewed
snapshot: any change to the graph shows up as a diff in review.

After an intended change: `FACTORY_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_asset_spec_snapshot.py`,
then review and commit tests/snapshots/asset_specs.json.
"""

from __future__ import annotations

import json
import os
import sys

import dagster as dg

from factory_assets.lib.locations import workspace_locations
from factory_assets.settings import PROJECT_ROOT

SNAPSHOT = PROJECT_ROOT / "tests" / "snapshots" / "asset_specs.json"


def _specs(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        if not node.is_materializable:
            continue  # another location's asset, drawn here as a dependency
        out[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "group": node.group_name,
            "owners": sorted(node.owners),
            "checks": sorted(c.name for c in graph.get_check_keys_for_assets([key])) if hasattr(
                graph, "get_check_keys_for_assets") else sorted(c.name for c in node.check_keys),
            "kinds": sorted(node.kinds),
        }
    return out


def _all_locations() -> dict:
    import importlib

    found = {}
    for location in workspace_locations():
        if str(location.root) not in sys.path:
            sys.path.insert(0, str(location.root))
        module = importlib.import_module(f"{location.package}.definitions")
        found[location.name] = _specs(module.defs)
    return found


def test_every_asset_spec_matches_the_reviewed_snapshot():
    current = _all_locations()
    if os.environ.get("FACTORY_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing: write it with FACTORY_UPDATE_SNAPSHOTS=1 and review it"
    expected = json.loads(SNAPSHOT.read_text())
    assert set(current) == set(expected), "code locations changed"
    for location, specs in expected.items():
        added = sorted(set(current[location]) - set(specs))
        removed = sorted(set(specs) - set(current[location]))
        assert not added and not removed, f"{location}: added {added}, removed {removed}"
        changed = {k: (specs[k], current[location][k]) for k in specs if specs[k] != current[location][k]}
        assert not changed, f"{location}: changed specs (expected, now): {json.dumps(changed, indent=1)}"
