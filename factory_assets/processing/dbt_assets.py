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
from factory_assets.settings import DBT_PROJECT_DIR, RAW_SOURCES, default_paths

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
        return spec._replace(blocking=False) if spec is not None else None


translator = FactoryDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def _model_errors(invocation) -> list[str]:
    """Models (not tests) that dbt could not build; failing tests are reported as asset checks."""
    results = invocation.get_artifact("run_results.json")
    return [
        f"{r['unique_id']}: {r.get('message')}"
        for r in results.get("results", [])
        if r["status"] in ("error", "runtime error") and not r["unique_id"].startswith(("test.", "unit_test."))
    ]


def _dbt_build(context: dg.AssetExecutionContext, dbt: DbtCliResource, store: FactoryStore):
    from factory_assets.distribution.scoring import ensure_prediction_tables

    # The dbt profile reads the warehouse path from the environment; the store resource owns it.
    os.environ["FACTORY_WAREHOUSE_PATH"] = str(store.paths.warehouse)
    with store.warehouse() as conn:
        ensure_raw_tables(conn, list(RAW_SOURCES))  # a source that never landed is an empty table
        ensure_prediction_tables(conn)  # likewise a prediction product never scored (no champion yet)
    invocation = dbt.cli(["build"], context=context, raise_on_error=False)
    yield from invocation.stream()
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
