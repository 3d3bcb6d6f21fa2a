"""Layer 4, distribution: the operations models built on the prediction products (each use case's
prediction product comes with its ``UseCase`` component)."""

import dagster as dg

from factory_assets.processing.dbt_assets import operations_dbt_models

defs = dg.Definitions(assets=[operations_dbt_models])
