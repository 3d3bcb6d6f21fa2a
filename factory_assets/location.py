"""A business unit's code location, built the way the core's is.

Its declarations (``<package>/defs``: use cases, feature sets), its raw sources
(``data_contracts/raw``), a nightly job and schedule that land, score and monitor, a training job
and the retraining sensor: the same slice, store, registry and policy as the core's use cases.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import dagster as dg

import factory_assets.execution  # noqa: F401 - a unit's runs get the core's executor fixes too
from factory_assets.assembly.specs import load_use_cases
from factory_assets.feedback.sensors import build_retraining_sensor
from factory_assets.keys import training_keys
from factory_assets.raw_material.assets import daily_partitions
from factory_assets.resources import FactoryStore, GovernancePolicy, default_store
from factory_assets.settings import ML_TEAM, WAREHOUSE_WRITER_TAG


def project_root(anchor: Path) -> Path:
    """The nearest folder at or above ``anchor`` with a ``pyproject.toml``: the location's folder."""
    anchor = anchor.resolve()
    for folder in [anchor, *anchor.parents]:
        if (folder / "pyproject.toml").is_file():
            return folder
    raise FileNotFoundError(f"{anchor}: no pyproject.toml above it; a business unit's folder holds one")


def _project(root: Path) -> tuple[str, str]:
    config = tomllib.loads((root / "pyproject.toml").read_text())
    project = config.get("tool", {}).get("dg", {}).get("project", {})
    package = project.get("root_module")
    if not package:
        raise ValueError(f"{root / 'pyproject.toml'}: [tool.dg.project] root_module is missing; name the unit's package")
    return package, project.get("code_location_name", package)


def unit_definitions(anchor: Path, store: FactoryStore | None = None) -> dg.Definitions:
    from factory_assets.raw_material.assets import raw_assets_from_contracts

    root = project_root(anchor)
    package, name = _project(root)
    defs_folder = root / package / "defs"
    components = declarations_definitions(root, defs_folder) if defs_folder.is_dir() else dg.Definitions()
    raw_folder = root / "data_contracts" / "raw"
    raw = raw_assets_from_contracts(raw_folder) if raw_folder.is_dir() else []
    use_cases = sorted(load_use_cases(defs_folder)) if defs_folder.is_dir() else []
    trained = [key for uc in use_cases for key in training_keys(uc)]
    owners = sorted({spec.owner for spec in load_use_cases(defs_folder).values()}) if use_cases else [ML_TEAM]
    nightly = dg.define_asset_job(
        name=f"{name}_nightly", partitions_def=daily_partitions, owners=owners,
        description=f"{name}'s night: its raw sources, feature sets, champion scores and monitoring for a day "
        "(after the core's nightly run has refreshed the shared products).",
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*trained) if trained else dg.AssetSelection.all(),
        tags={WAREHOUSE_WRITER_TAG: "true"},
    )
    training = dg.define_asset_job(
        name=f"{name}_training", owners=owners, tags={WAREHOUSE_WRITER_TAG: "true"},
        description=f"Builds {name}'s training sets, trains its models and runs their promotion gates.",
        selection=dg.AssetSelection.assets(*trained) if trained else dg.AssetSelection.groups("assembly"),
    )
    schedule = dg.build_schedule_from_partitioned_job(
        nightly, name=f"{name}_nightly_schedule", hour_of_day=3,
        description=f"Every night at 03:00, an hour after the core's chain, runs {name}'s night.",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    sensors = [build_retraining_sensor(use_cases, job_name=training.name, name=f"{name}_retraining")] if use_cases else []
    return dg.Definitions.merge(components, dbt_project_definitions(root, name), dg.Definitions(
        assets=raw, jobs=[nightly, training], schedules=[schedule], sensors=sensors,
        resources={"store": store or default_store(), "policy": GovernancePolicy()}, executor=dg.in_process_executor,
    ))


def dbt_project_definitions(root: Path, name: str) -> dg.Definitions:
    """The unit's own dbt project (``<root>/dbt_project``, if any) as the core's is: its models are
    assets ``processing/<model>`` (``distribution/<model>`` in ``models/operations``) in group
    processing, built by ``dbt build`` into the same warehouse (the store's); a model with a product
    contract in the unit's ``data_contracts/products/<model>.odcs.yaml`` is owned by the contract's
    owner and gets its blocking ``contract`` check (and ``freshness``); dbt tests are checks; a dbt
    source in schema ``raw`` is the ingestion asset ``raw_material/<table>``.

    The manifest is parsed on load when it is missing or older than the project (``dbt parse``, no
    network); dbt then runs from the unit's folder with its ``profiles.yml`` (the core's profile when
    it has none; FACTORY_DBT_TARGET picks its target too) and keeps its saved parse under
    ``FACTORY_HOME/dbt_state/<location>``."""
    project = root / "dbt_project"
    if not (project / "dbt_project.yml").is_file():
        return dg.Definitions()
    from factory_assets.keys import product_key
    from factory_assets.lib.contracts import load_contract, load_raw_contracts
    from factory_assets.processing.checks import contract_check, freshness_check
    from factory_assets.processing.dbt_assets import dbt_multi_asset  # first: defaults FACTORY_WAREHOUSE_PATH
    from factory_assets.processing.dbt_cli import prepare_manifest
    from factory_assets.resources import DbtRunner, dbt_resource
    from factory_assets.settings import DBT_PROJECT_DIR

    profiles = project if (project / "profiles.yml").is_file() else DBT_PROJECT_DIR
    manifest = prepare_manifest(project, profiles)
    contracts = root / "data_contracts"
    products = {path.name.removesuffix(".odcs.yaml"): load_contract(path)
                for path in sorted((contracts / "products").glob("*.odcs.yaml"))}
    raw = tuple(load_raw_contracts(contracts / "raw").values()) if (contracts / "raw").is_dir() else ()
    owner = next((c.owner for c in [*products.values(), *raw]), None)
    shared = {"project_dir": project, "manifest_path": manifest, "products": products, "owner": owner,
              "raw_contracts": raw, "state_folder": name}
    assets = [a for a in (
        dbt_multi_asset(f"{name}_dbt_models", operations=False, **shared,
                        description=f"dbt build of {name}'s own models (its data products), with their tests."),
        dbt_multi_asset(f"{name}_operations_dbt_models", operations=True, **shared,
                        description=f"{name}'s dbt models that read prediction products; they run after scoring."),
    ) if a is not None]
    built = {key for a in assets for key in a.keys}
    checks = [check for model, contract in products.items() if product_key(model) in built
              for check in ([contract_check(contract, product_key(model))]
                            + ([freshness_check(contract, product_key(model))] if contract.freshness_column else []))]
    core = dbt_resource()
    runner = DbtRunner(project_dir=str(project), profiles_dir=str(profiles), dbt_executable=core.dbt_executable,
                       target=core.target)
    return dg.Definitions(assets=assets, asset_checks=checks, resources={"dbt": runner})


def declarations_definitions(root: Path, defs_folder: Path) -> dg.Definitions:
    """The definitions of every ``defs.yaml`` under ``defs_folder``.

    The factory's own component types are built directly from their files; a folder holding any
    other component type (a dbt project component, say) is loaded by Dagster's own loader, which
    also enumerates every installed integration (it imports dagster-dbt and dbt: slower start-up).
    """
    from factory_assets.assembly.catalogue import FEATURE_SET_COMPONENT
    from factory_assets.assembly.specs import USE_CASE_COMPONENT
    from factory_assets.lib.yaml_files import load_yaml

    files = sorted(defs_folder.rglob("defs.y*ml"))
    documents = [(path, load_yaml(path.read_text()) or {}) for path in files]
    ours = {USE_CASE_COMPONENT, FEATURE_SET_COMPONENT}
    python_files = [p for p in defs_folder.rglob("*.py") if p.name != "__init__.py"]
    if python_files or any(doc.get("type") not in ours for _, doc in documents):
        return dg.load_from_defs_folder(path_within_project=root)
    built = [_component_definitions(path, doc) for path, doc in documents]
    return dg.Definitions.merge(*built) if built else dg.Definitions()


def _component_definitions(path: Path, doc: dict) -> dg.Definitions:
    from factory_assets.assembly.catalogue import FEATURE_SET_COMPONENT, FeatureSetDecl
    from factory_assets.assembly.specs import UseCaseSpecError, spec_from_attributes, validation_problems
    from factory_assets.components.feature_set import feature_set_definitions
    from factory_assets.components.use_case import use_case_definitions

    if doc.get("type") == FEATURE_SET_COMPONENT:
        from pydantic import ValidationError

        try:
            decl = FeatureSetDecl.model_validate(doc.get("attributes"))
        except ValidationError as exc:
            raise UseCaseSpecError(f"{path}: invalid feature set: {validation_problems(exc)}") from exc
        return feature_set_definitions(decl, path)
    return use_case_definitions(spec_from_attributes(doc.get("attributes"), path), path)
