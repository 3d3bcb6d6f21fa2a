"""Reading dbt's manifest.json without dbt: asset keys, layers and test descriptions.

The code location builds its dbt asset specs from this plain JSON. Importing dagster-dbt at load
pulls in dbt-core, a large share of start-up (README, "What the benchmarks found"); dagster-dbt is imported only
inside the step that runs ``dbt build``, where it maps dbt's events to the same keys through
:func:`asset_key_path`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from factory_assets.settings import DBT_PROJECT_DIR

MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"

#: dbt folder whose models consume prediction products: they belong to the distribution layer
#: (predictions flowing back into operations) and run after scoring, as their own Dagster step.
OPERATIONS_FOLDER = "operations"

#: dbt resource types that become Dagster assets (tests become asset checks).
REFABLE = ("model", "seed", "snapshot")

#: The warehouse schema the ingestion assets land raw tables in (``raw.<source>``).
RAW_SCHEMA = "raw"


@functools.cache
def load_manifest(path: Path = MANIFEST_PATH, project_dir: Path = DBT_PROJECT_DIR) -> Mapping[str, Any]:
    """``path``'s manifest, parsed from ``project_dir`` (default: the core's); warns when stale."""
    if not path.exists():
        raise FileNotFoundError(
            f"dbt manifest not found at {path}. Run `python3 tasks.py setup` "
            "(it runs `dbt parse`) before loading the code location."
        )
    stale = newer_dbt_sources(path, project_dir)
    if stale:
        logging.getLogger(__name__).warning(
            "dbt manifest %s is older than %s%s: the assets show the last parsed project. "
            "Run `python3 tasks.py setup` (it runs `dbt parse`).", path, stale[0],
            f" and {len(stale) - 1} more" if len(stale) > 1 else "")
    return json.loads(path.read_text())


def retarget_manifest(manifest: Mapping[str, Any], database: str) -> dict[str, Any]:
    """``manifest`` with every model, seed, snapshot and source in DuckDB catalog ``database``.

    dbt-duckdb names the catalog after the warehouse file (``warehouse.duckdb`` -> ``warehouse``),
    and ``dbt parse`` writes that name into every relation of the manifest. dbt itself re-parses on
    each run, but dagster-dbt reads row counts and column lineage through the manifest we pass:
    with a warehouse file named otherwise than at setup (FACTORY_WAREHOUSE_PATH), every such query
    failed on a catalog that does not exist, no column schema was recorded, and so every night
    took the slow path that fetches it again. Nodes without a relation (tests) are kept as they are."""
    def moved(node: Mapping[str, Any]) -> Mapping[str, Any]:
        old = node.get("database")
        if not old or old == database or not node.get("relation_name"):
            return node
        prefix = f'"{old}".'
        relation = node["relation_name"]
        return {**node, "database": database,
                "relation_name": f'"{database}".{relation[len(prefix):]}' if relation.startswith(prefix) else relation}

    return {**manifest, **{part: {uid: moved(node) for uid, node in manifest.get(part, {}).items()}
                           for part in ("nodes", "sources")}}


def newer_dbt_sources(manifest: Path = MANIFEST_PATH, project_dir: Path = DBT_PROJECT_DIR) -> list[Path]:
    """Files of the dbt project ``project_dir`` (default: the core's) changed after ``manifest`` was
    parsed (what ``tasks.py setup`` re-parses)."""
    parsed, newer = manifest.stat().st_mtime, []
    for folder, subfolders, files in os.walk(project_dir):
        subfolders[:] = [d for d in subfolders if d not in ("target", "logs", "dbt_packages")]  # run outputs
        newer += [Path(folder, f) for f in files if f.endswith((".sql", ".yml", ".yaml"))
                  and Path(folder, f).stat().st_mtime > parsed]
    return sorted(newer)


def dbt_folder(props: Mapping[str, Any]) -> str:
    """The model's folder under models/ (staging, intermediate, marts, operations)."""
    fqn = props.get("fqn") or []
    return fqn[1] if len(fqn) > 2 else "models"


def layer_of(props: Mapping[str, Any]) -> str:
    return "distribution" if dbt_folder(props) == OPERATIONS_FOLDER else "processing"


def asset_key_path(props: Mapping[str, Any]) -> list[str]:
    """``processing/<model>`` (``distribution/<model>`` for operations models); a source maps to
    the raw asset named in its ``meta.dagster.asset_key``, so lineage runs from the landing file.
    A source in schema ``raw`` without one is a landed table: ``raw_material/<table>`` (the
    ingestion asset's key), so a business unit's dbt sources need no meta."""
    if props["resource_type"] == "source":
        configured = ((props.get("meta") or {}).get("dagster") or {}).get("asset_key")
        if configured:
            return list(configured)
        if props.get("schema") == RAW_SCHEMA:
            return ["raw_material", props.get("identifier") or props["name"]]
        return [props["source_name"], props["name"]]
    return [layer_of(props), props["name"]]


def resource_props(manifest: Mapping[str, Any], unique_id: str) -> Mapping[str, Any]:
    return manifest["nodes"].get(unique_id) or manifest["sources"][unique_id]


def model_nodes(manifest: Mapping[str, Any], operations: bool) -> dict[str, Mapping[str, Any]]:
    """The refable nodes of this project, of the operations folder or of every other folder."""
    return {
        uid: node for uid, node in manifest["nodes"].items()
        if node["resource_type"] in REFABLE
        and node["package_name"] == manifest["metadata"].get("project_name", node["package_name"])
        and (dbt_folder(node) == OPERATIONS_FOLDER) == operations
    }


def tested_node(manifest: Mapping[str, Any], test: Mapping[str, Any]) -> str | None:
    """The node a dbt test checks: its ``attached_node``, or its only refable parent."""
    if test.get("attached_node"):
        return test["attached_node"]
    parents = [p for p in test.get("depends_on", {}).get("nodes", []) if p.split(".")[0] in REFABLE]
    return parents[0] if len(parents) == 1 else None


def tests_by_node(manifest: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "test":
            target = tested_node(manifest, node)
            if target:
                out.setdefault(target, []).append(node)
    return out


def describe_dbt_test(node: Mapping[str, Any]) -> str:
    """One line for the UI: which dbt test, on which column, with which arguments."""
    if node.get("description"):
        return node["description"]
    meta = node.get("test_metadata") or {}
    kwargs = {k: v for k, v in (meta.get("kwargs") or {}).items() if k not in ("model", "column_name", "combination_of_columns")}
    test = f"{meta['namespace']}.{meta['name']}" if meta.get("namespace") else meta.get("name", node.get("name", "test"))
    column = (meta.get("kwargs") or {}).get("column_name")
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    columns = (meta.get("kwargs") or {}).get("combination_of_columns")
    on = f" on column {column}" if column else (f" on columns {', '.join(columns)}" if columns else "")
    return (f"dbt test {test}{on}" + (f" ({args})" if args else "")
            + f"; reported, not blocking (the contract check blocks). dbt's name for it: {node.get('name')}.")
