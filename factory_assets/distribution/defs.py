"""Layer 4, distribution: prediction products of every use case as Dagster definitions."""

from pathlib import Path

import dagster as dg

from factory_assets.distribution.assets import all_prediction_assets
from factory_assets.processing.dbt_assets import operations_dbt_models


def build_distribution_defs(use_cases_folder: Path | None = None) -> dg.Definitions:
    assets, checks = all_prediction_assets(use_cases_folder)
    return dg.Definitions(assets=[*assets, operations_dbt_models], asset_checks=checks)


defs = build_distribution_defs()
