"""dbt models as Dagster assets: staging -> intermediate -> data products (marts).

The manifest is prepared at setup time (``python3 tasks.py setup`` runs ``dbt parse``), never
at code-location load. dbt sources carry ``meta.dagster.asset_key`` pointing at the raw ingestion
assets, so lineage runs unbroken from landing file to data product.
"""


import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from factory_assets.lib.contracts import product_contract, product_contract_names
from factory_assets.raw_material.ingest import ensure_raw_tables
from factory_assets.resources import FactoryStore
from factory_assets.settings import DBT_PROJECT_DIR, RAW_SOURCES, dbt_column_metadata, default_paths

PLATFORM_OWNER = "team:data-platform"

# dbt's profile reads the warehouse path from the environment; default it to FACTORY_HOME's so
# `dg dev` / `dg check defs` (which re-parse the project in dev mode) work without set-up.
os.environ.setdefault("FACTORY_WAREHOUSE_PATH", str(default_paths().warehouse))

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()

if not dbt_project.manifest_path.exists():
    raise FileNotFoundError(
        f"dbt manifest not found at {dbt_project.manifest_path}. Run `python3 tasks.py setup` "
        "(it runs `dbt parse`) before loading the code location."
    )


#: dbt folder whose models consume prediction products: they belong to the distribution layer
#: (predictions flowing back into operations) and run after scoring, as their own Dagster step.
OPERATIONS_FOLDER = "operations"
OPERATIONS_OWNER = "team:customer-service"


class FactoryDbtTranslator(DagsterDbtTranslator):
    """Maps dbt models to ``processing/<model>`` keys (``distribution/<model>`` for the operations
    folder), their layer's group, and contract owners."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            return spec
        name = props["name"]
        layer = props["fqn"][1] if len(props["fqn"]) > 2 else "models"
        owners, metadata = [PLATFORM_OWNER], {}
        if name in product_contract_names():
            contract = product_contract(name)
            owners = [contract.owner]
            metadata = {
                "contract": contract.path.name,
                "contract_version": contract.version,
                "data_product": contract.data_product,
            }
        group = "distribution" if layer == OPERATIONS_FOLDER else "processing"
        if group == "distribution":
            owners = [OPERATIONS_OWNER]
        return spec.replace_attributes(
            key=dg.AssetKey([group, name]),
            group_name=group,
            owners=owners,
            tags={**spec.tags, "layer": group, "dbt_layer": layer},
        ).merge_attributes(metadata=metadata)


    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project):
        """dbt tests stay visible as checks, but are not Dagster-blocking.

        dbt itself skips models downstream of a failing test inside ``dbt build``; the Dagster-level
        gate is each product's ``contract`` check, which must run after a failure to show the
        failing rows. If dbt tests were blocking, the dbt step would fail first and that check
        would never run.
        """
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None:
            return None
        return spec._replace(blocking=False, description=describe_dbt_test(manifest["nodes"].get(unique_id, {})))


def describe_dbt_test(node: Mapping[str, Any]) -> str:
    """One line for the UI: which dbt test, on which column, with which arguments."""
    if node.get("description"):
        return node["description"]
    meta = node.get("test_metadata") or {}
    kwargs = {k: v for k, v in (meta.get("kwargs") or {}).items() if k not in ("model", "column_name")}
    test = f"{meta['namespace']}.{meta['name']}" if meta.get("namespace") else meta.get("name", node.get("name", "test"))
    column = (meta.get("kwargs") or {}).get("column_name")
    args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return (f"dbt test {test}" + (f" on column {column}" if column else "") + (f" ({args})" if args else "")
            + "; reported, not blocking (the contract check blocks).")


translator = FactoryDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def _model_errors(invocation) -> list[str]:
    """Models (not tests) that dbt could not build; failing tests are reported as asset checks."""
    results = invocation.get_artifact("run_results.json")
    return [
        f"{r['unique_id']}: {r.get('message')}"
        for r in results.get("results", [])
        if r["status"] in ("error", "runtime error") and not r["unique_id"].startswith(("test.", "unit_test."))
    ]


def _release_duckdb(invocation) -> None:
    """Close the warehouse connection dagster-dbt's in-process adapter opened for the metadata.

    dbt-duckdb keeps one DuckDB instance per process; left open, it blocks this process's later
    read-only connections ("different configuration") and other processes' writes."""
    if invocation.adapter is not None:
        invocation.adapter.cleanup_connections()
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter (production warehouse): nothing process-wide to release
        return
    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


def _dbt_build(context: dg.AssetExecutionContext, dbt: DbtCliResource, store: FactoryStore):
    from factory_assets.distribution.scoring import ensure_prediction_tables

    # The dbt profile reads the warehouse path from the environment; the store resource owns it.
    os.environ["FACTORY_WAREHOUSE_PATH"] = str(store.paths.warehouse)
    with store.warehouse() as conn:
        ensure_raw_tables(conn, list(RAW_SOURCES))  # a source that never landed is an empty table
        ensure_prediction_tables(conn)  # likewise a prediction product never scored (no champion yet)
    invocation = dbt.cli(["build"], context=context, raise_on_error=False)
    # Row counts, column schema and column-level lineage (sqlglot over the compiled SQL) for the UI.
    # With DuckDB, dagster-dbt reads them once dbt has exited and released the file's write lock.
    events = invocation.stream().fetch_row_counts()
    if dbt_column_metadata():  # about 1 s per model: the adapter reads each model's and parents' columns
        events = events.fetch_column_metadata(with_column_lineage=True)
    try:
        yield from events
    finally:
        _release_duckdb(invocation)
    errors = _model_errors(invocation)
    if errors:
        raise dg.Failure(
            description="dbt could not build some models; see the dbt log above.",
            metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors))},
        )


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    name="processing_dbt_models",
    exclude=f"path:models/{OPERATIONS_FOLDER}",
)
def processing_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, store: FactoryStore):
    yield from _dbt_build(context, dbt, store)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    name="operations_dbt_models",
    select=f"path:models/{OPERATIONS_FOLDER}",
)
def operations_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, store: FactoryStore):
    """dbt models that read prediction products (e.g. service_priority); they run after scoring."""
    yield from _dbt_build(context, dbt, store)
