"""The code location: every layer's definitions, the shared resources, jobs and schedules."""

from pathlib import Path

import dagster as dg

from factory_assets.assembly import defs as assembly
from factory_assets.distribution import defs as distribution
from factory_assets.execution import executor_from_env
from factory_assets.feedback import defs as feedback
from factory_assets.governance.assets import build_governance_defs
from factory_assets.processing import defs as processing
from factory_assets.raw_material import defs as raw_material
from factory_assets.jobs import nightly_schedule, supply_chain_job, training_job, weekly_training_schedule
from factory_assets.resources import FactoryStore, dbt_resource, default_store
from factory_assets.settings import apply_dagster_runtime_env

apply_dagster_runtime_env()  # runs launched in this process (factory run, tests): see settings


def build_definitions(store: FactoryStore | None = None, use_cases_folder: Path | None = None) -> dg.Definitions:
    """All layers wired to one store (default: FACTORY_HOME); tests pass a store in a temp folder
    and may point at another folder of use-case YAMLs."""
    return dg.Definitions.merge(
        raw_material.defs,
        processing.defs,
        assembly.defs if use_cases_folder is None else assembly.build_assembly_defs(use_cases_folder),
        distribution.defs if use_cases_folder is None else distribution.build_distribution_defs(use_cases_folder),
        feedback.defs if use_cases_folder is None else feedback.build_feedback_defs(use_cases_folder),
        build_governance_defs(use_cases_folder),
        dg.Definitions(
            jobs=[supply_chain_job, training_job],
            schedules=[nightly_schedule, weekly_training_schedule],
            resources={"store": store or default_store(), "dbt": dbt_resource()},
            # In process by default (steps share imports, DuckDB has one writer); FACTORY_EXECUTOR
            # moves the steps to Dagster's multiprocess executor or a Dask cluster (execution.py).
            executor=executor_from_env(),
        ),
    )


defs = build_definitions()
