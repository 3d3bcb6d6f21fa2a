"""The code location: every layer's definitions, the use cases of ``factory_assets/defs``, the shared
resources, jobs and schedules."""

from pathlib import Path

import dagster as dg

from factory_assets.assembly import defs as assembly
from factory_assets.assembly.specs import USE_CASES_DIR, declaration_files, load_use_case, load_use_cases
from factory_assets.distribution import defs as distribution
from factory_assets.execution import executor_from_env
from factory_assets.feedback.defs import build_feedback_defs
from factory_assets.governance.assets import build_governance_defs
from factory_assets.jobs import (
    lake_maintenance_job,
    lake_maintenance_schedule,
    nightly_schedule,
    supply_chain_job,
    training_job,
    weekly_training_schedule,
)
from factory_assets.processing import defs as processing
from factory_assets.raw_material import defs as raw_material
from factory_assets.resources import FactoryStore, GovernancePolicy, dbt_resource, default_store
from factory_assets.settings import PROJECT_ROOT, apply_dagster_runtime_env

apply_dagster_runtime_env()  # runs launched in this process (factory run, tests): see settings


def use_cases_from_folder(folder: Path) -> dg.Definitions:
    """The slices of the use cases declared under ``folder`` (tests point at a folder of their own)."""
    from factory_assets.components.use_case import use_case_definitions

    return dg.Definitions.merge(*[use_case_definitions(load_use_case(p), p) for p in declaration_files(folder)])


def declarations_definitions(root: Path, folder: Path) -> dg.Definitions:
    from factory_assets.location import declarations_definitions as build

    return build(root, folder)


def build_definitions(store: FactoryStore | None = None, use_cases_folder: Path | None = None) -> dg.Definitions:
    """All layers wired to one store (default: FACTORY_HOME). The use cases are this project's
    components (``factory_assets/defs``); tests may pass a store in a temp folder and a folder of
    use-case declarations of their own."""
    if use_cases_folder is None:
        use_cases = declarations_definitions(PROJECT_ROOT, PROJECT_ROOT / "factory_assets" / "defs")
        own = load_use_cases(USE_CASES_DIR)
    else:
        use_cases = use_cases_from_folder(Path(use_cases_folder))
        own = load_use_cases(use_cases_folder)
    return dg.Definitions.merge(
        raw_material.defs,
        processing.defs,
        assembly.defs,
        use_cases,
        distribution.defs,
        build_feedback_defs(own),
        build_governance_defs(use_cases_folder, own),
        dg.Definitions(
            jobs=[supply_chain_job, training_job, lake_maintenance_job],
            schedules=[nightly_schedule, weekly_training_schedule, lake_maintenance_schedule],
            resources={"store": store or default_store(), "dbt": dbt_resource(), "policy": GovernancePolicy()},
            # In process by default (steps share imports, DuckDB has one writer); FACTORY_EXECUTOR
            # moves the steps to Dagster's multiprocess executor or a Dask cluster (execution.py).
            executor=executor_from_env(),
        ),
    )


defs = build_definitions()
