"""Layer 2, processing: dbt + DuckDB turn raw data into contracted data products."""

import dagster as dg

from factory_assets.processing.checks import product_contract_checks
from factory_assets.processing.dbt_assets import processing_dbt_models

defs = dg.Definitions(assets=[processing_dbt_models], asset_checks=product_contract_checks)
