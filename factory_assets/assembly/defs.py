"""Layer 3, assembly: feature sets and use-case models as Dagster definitions."""

import dagster as dg

from factory_assets.assembly.assets import feature_set_assets, use_case_asset_defs

defs = dg.Definitions(assets=[*feature_set_assets, *use_case_asset_defs])
